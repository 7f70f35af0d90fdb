"""Command line interface: ``python -m syncws``.

``python -m syncws demo`` (also what runs without arguments) starts an echo server on the
loopback interface in a background thread, connects a client to it, sends a few messages
and prints each one and its echo.

``python -m syncws echo-server [--host HOST] [--port PORT]`` runs an echo server in the
foreground, logging to standard error, until it is interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from . import WebSocketRequest, WebSocketServer, connect, serve_websocket
from .exceptions import ConnectionClosed, WebSocketError

#: The messages that ``python -m syncws demo`` sends: two text messages, one binary.
DEMO_MESSAGES: tuple[str | bytes, ...] = ("hello", "syncws", b"\x00\x01\x02\xff")

#: Seconds the demonstration waits for each step (connecting, each echo, closing).
DEMO_TIMEOUT = 10.0

_log = logging.getLogger("syncws.cli")


def echo_handler(request: WebSocketRequest) -> None:
    """Accept the connection and send every message back until the client closes."""
    ws = request.accept()
    client = str(request.remote)
    _log.info("%s connected to %s", client, request.path)
    try:
        for message in ws:
            ws.send_message(message)
    except ConnectionClosed as exc:
        _log.info("%s disconnected: %s", client, exc.reason)
    else:
        _log.info("%s disconnected: %s", client, ws.close_reason)


def run_demo() -> int:
    """Run an echo server and a client against each other; print what they exchange."""
    with WebSocketServer(
        echo_handler,
        "127.0.0.1",
        0,
        connect_timeout=DEMO_TIMEOUT,
        disconnect_timeout=DEMO_TIMEOUT,
    ) as server:
        url = f"ws://127.0.0.1:{server.port}/demo"
        print(f"echo server listening on ws://127.0.0.1:{server.port}")
        with connect(url, connect_timeout=DEMO_TIMEOUT, disconnect_timeout=DEMO_TIMEOUT) as ws:
            print(f"client connected to {url}")
            for message in DEMO_MESSAGES:
                print(f"client -> server: {message!r}")
                ws.send_message(message)
                reply = ws.get_message(timeout=DEMO_TIMEOUT)
                print(f"server -> client: {reply!r}")
                if reply != message:
                    print("error: the echo differs from the message sent", file=sys.stderr)
                    return 1
        print(f"connection closed: {ws.close_reason}")
    print("echo server stopped")
    return 0


def run_echo_server(host: str, port: int) -> int:
    """Serve the echo handler on ``host`` and ``port`` until interrupted with Ctrl-C."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the server was up
        serve_websocket(echo_handler, host, port)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; without a command, the demonstration is chosen."""
    parser = argparse.ArgumentParser(
        prog="python -m syncws",
        description="syncws demonstration and echo server.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run an echo server and a client against each other (default)",
        description="Run an echo server and a client on 127.0.0.1 and print the messages.",
    )
    echo = commands.add_parser(
        "echo-server",
        help="run an echo server until Ctrl-C",
        description="Run a WebSocket echo server until interrupted with Ctrl-C.",
    )
    echo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    echo.add_argument(
        "--port", type=int, default=8765, help="port to listen on (default: %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command given by ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = parse_args(argv)
    try:
        if args.command == "echo-server":
            return run_echo_server(args.host, args.port)
        return run_demo()
    except (WebSocketError, OSError) as exc:
        print(f"error: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
