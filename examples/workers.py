"""An echo server in several worker processes that share one port.

Usage::

    python examples/workers.py [--host 127.0.0.1] [--port 8765] [--workers 2]

Each client first gets the process ID of the worker that serves it, then its messages
back. On Linux the kernel spreads new connections over the workers (``SO_REUSEPORT``);
open a few connections to see different IDs. The workers are forked from this process
(POSIX only). Stop it with Ctrl-C or SIGTERM: every worker closes its clients with code
1001, and a worker that dies meanwhile is started again.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import syncws


def handler(request: syncws.WebSocketRequest) -> None:
    # Runs in a thread of its own, in the worker process that accepted the client.
    ws = request.accept()
    ws.send_message(f"worker {os.getpid()}")
    for message in ws:
        ws.send_message(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an echo server in worker processes.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8765, help="default: %(default)s")
    parser.add_argument("--workers", type=int, default=2, help="default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    # Returns once the workers have stopped, after Ctrl-C or SIGTERM.
    syncws.serve_websocket(handler, args.host, args.port, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
