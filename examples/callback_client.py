"""A client driven by callbacks that reconnects when the connection drops.

Usage::

    python examples/echo_server.py &
    python examples/callback_client.py ws://127.0.0.1:8765/ hello world

On every connection it sends its arguments as messages, and it prints each message it
receives. When the connection ends, it connects again after a growing, randomised
pause (``syncws.Backoff``); stop it with Ctrl-C, or give ``--count N`` to stop after N
messages. ``--attempts N`` gives up after N failed connection attempts in a row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import syncws
from syncws.client import redact_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Callback-driven WebSocket client.")
    parser.add_argument("url", help="e.g. ws://127.0.0.1:8765/")
    parser.add_argument("messages", nargs="*", help="sent on every connection")
    parser.add_argument("--count", type=int, help="stop after this many messages")
    parser.add_argument("--attempts", type=int, help="failed attempts in a row before giving up")
    args = parser.parse_args(argv)
    received = 0

    def on_open(ws: syncws.WebSocketConnection) -> None:
        print(f"connected to {redact_url(args.url)}", file=sys.stderr)
        for message in args.messages:
            ws.send_message(message)

    def on_message(ws: syncws.WebSocketConnection, message: str | bytes) -> None:
        nonlocal received
        print(message if isinstance(message, str) else repr(message), flush=True)
        received += 1
        if args.count is not None and received >= args.count:
            client.close()  # from a callback: the loop ends after on_close

    def on_close(ws: syncws.WebSocketConnection, reason: syncws.CloseReason) -> None:
        print(f"disconnected: {reason}", file=sys.stderr)

    def on_error(error: Exception) -> None:
        print(f"connection failed, trying again: {error}", file=sys.stderr)

    client = syncws.CallbackClient(
        args.url,
        on_open=on_open,
        on_message=on_message,
        on_close=on_close,
        on_error=on_error,
        reconnect=syncws.Backoff(initial=0.5, max_delay=10.0, max_attempts=args.attempts),
        connect_timeout=10,
        disconnect_timeout=2,
    )
    try:
        client.run_forever()
    except (syncws.WebSocketError, OSError, ValueError) as exc:
        print(f"error: cannot connect to {redact_url(args.url)}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
