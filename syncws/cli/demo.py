"""``python -m syncws demo``: an echo server and a client talking to each other.

The demonstration (also what runs without a command) starts an echo server on the
loopback interface in a background thread, connects a client to it, sends a few
messages and prints each one and its echo.
"""

from __future__ import annotations

import sys

from .. import WebSocketServer, connect
from ..exceptions import WebSocketError
from .serve import echo_handler

__all__ = ["DEMO_MESSAGES", "DEMO_TIMEOUT", "main", "run_demo"]

#: The messages that ``python -m syncws demo`` sends: two text messages, one binary.
DEMO_MESSAGES: tuple[str | bytes, ...] = ("hello", "syncws", b"\x00\x01\x02\xff")

#: Seconds the demonstration waits for each step (connecting, each echo, closing).
DEMO_TIMEOUT = 10.0


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


def main() -> int:
    """Run the demonstration; report a failure in one line on standard error."""
    try:
        return run_demo()
    except (WebSocketError, OSError) as exc:
        print(f"error: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
