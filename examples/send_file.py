"""Send a file from disk to a WebSocket server as one binary message, in fragments.

Usage::

    python examples/send_file.py ws://127.0.0.1:8765/ path/to/file

The file is read 64 KiB at a time, and each piece goes out as one frame of the message
as soon as it is read: memory holds two pieces whatever the size of the file. The server
must accept a message that large (``max_message_size=None`` on a syncws server). The
script prints how much it sent, and exits with status 0 on success and 1 on failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import syncws
from syncws.client import redact_url

CHUNK_SIZE = 64 * 1024


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Send a file as one WebSocket message.")
    parser.add_argument("url", help="server URL, e.g. ws://127.0.0.1:8765/")
    parser.add_argument("path", help="the file to send")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds the connection and the whole transfer may take (default: %(default)s)",
    )
    return parser.parse_args(argv)


class Pieces:
    """The pieces of an open file, as an iterable for ``send_message``; counts them."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.count = 0
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        piece = self.file.read(CHUNK_SIZE)
        while True:
            self.count += 1
            self.size += len(piece)
            # An empty file is one empty piece: an empty message, not none at all.
            yield piece
            piece = self.file.read(CHUNK_SIZE)
            if not piece:
                return


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with (
            open(args.path, "rb") as file,
            syncws.connect(args.url, connect_timeout=args.timeout) as ws,
        ):
            pieces = Pieces(file)
            # One message: a frame per piece, the last one final. If reading the file
            # fails half-way, the connection closes with 1011 and the error is raised.
            ws.send_message(pieces, timeout=args.timeout)
    except syncws.ConnectionClosed as exc:
        print(f"error: connection closed: {exc.reason}", file=sys.stderr)
        return 1
    except syncws.HandshakeError as exc:
        print(f"error: WebSocket handshake failed: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"error: not sent within {args.timeout} seconds", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = args.path if exc.filename else redact_url(args.url)
        print(f"error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"sent {pieces.size} bytes in {pieces.count} frame{'' if pieces.count == 1 else 's'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
