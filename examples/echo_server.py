"""A WebSocket echo server: every message a client sends comes straight back.

Usage::

    python examples/echo_server.py [--host 127.0.0.1] [--port 8765]

Stop it with Ctrl-C. Try it with ``python examples/echo_client.py ws://127.0.0.1:8765/``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import syncws


def handler(request: syncws.WebSocketRequest) -> None:
    # Runs in its own thread for each client. Leaving the loop means the client closed.
    ws = request.accept()
    for message in ws:
        ws.send_message(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a WebSocket echo server.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8765, help="default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    syncws.serve_websocket(handler, args.host, args.port)  # returns after Ctrl-C
    return 0


if __name__ == "__main__":
    sys.exit(main())
