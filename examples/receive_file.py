"""A WebSocket upload server: each binary message a client sends is saved to a file.

Usage::

    python examples/receive_file.py --dir uploads [--host 127.0.0.1] [--port 8765]

Each message is read as a stream of chunks and written to disk as the chunks arrive
(``get_message_stream``), so a file of any size costs the server a few hundred KiB of
memory, although ``max_message_size`` stays at its default of 1 MiB. Each upload is
answered with a text message, ``saved <size> bytes to <name>``. Send one with
``python examples/send_file.py ws://127.0.0.1:8765/ some.file``. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import syncws

#: How long a client may pause in the middle of an upload, in seconds.
CHUNK_TIMEOUT = 60.0

logger = logging.getLogger("receive_file")


class Uploads:
    """Saves each binary message of a client to a new file in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.numbers = itertools.count(1)  # next() is atomic: threads get distinct names

    def handler(self, request: syncws.WebSocketRequest) -> None:
        # Runs in its own thread for each client, until the client closes.
        with request.accept() as ws:
            while True:
                try:
                    # Waits for the start of the next message, with no limit: an
                    # idle client may stay connected.
                    stream = ws.get_message_stream()
                except syncws.ConnectionClosedOK:
                    return
                stream.timeout = CHUNK_TIMEOUT  # A client that stalls mid-upload fails.
                with stream:
                    if stream.text:
                        ws.close(1003, "send files as binary messages")
                        return
                    path = self.directory / f"upload-{next(self.numbers)}.bin"
                    size = self.save(stream, path)
                logger.info("saved %d bytes to %s", size, path)
                ws.send_message(f"saved {size} bytes to {path.name}")

    @staticmethod
    def save(stream: syncws.MessageStream, path: Path) -> int:
        """Write the chunks of ``stream`` to ``path`` as they arrive; return the size."""
        size = 0
        with path.open("wb") as file:
            for chunk in stream:
                assert isinstance(chunk, bytes)  # a binary message (text was refused)
                file.write(chunk)
                size += len(chunk)
        return size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Save uploaded WebSocket messages to files.")
    parser.add_argument("--dir", required=True, type=Path, help="where the files go")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8765, help="default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.dir.mkdir(parents=True, exist_ok=True)
    uploads = Uploads(args.dir)
    syncws.serve_websocket(uploads.handler, args.host, args.port)  # returns after Ctrl-C
    return 0


if __name__ == "__main__":
    sys.exit(main())
