"""Send messages to a WebSocket echo server and print each reply.

Usage::

    python examples/echo_client.py ws://127.0.0.1:8765/ [message ...]

Every message is sent as a text message; the script waits for one reply per message and
prints it. It exits with status 0 on success and 1 when the connection fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import syncws
from syncws.client import redact_url

DEFAULT_MESSAGES = ("hello", "from", "syncws")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Send messages to a WebSocket echo server and print the replies."
    )
    parser.add_argument("url", help="server URL, e.g. ws://127.0.0.1:8765/")
    parser.add_argument(
        "messages",
        nargs="*",
        default=list(DEFAULT_MESSAGES),
        help="messages to send (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the connection and for each reply (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with syncws.connect(args.url, connect_timeout=args.timeout) as ws:
            for message in args.messages:
                ws.send_message(message)
                reply = ws.get_message(timeout=args.timeout)
                print(reply if isinstance(reply, str) else repr(reply))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except syncws.ConnectionClosed as exc:
        print(f"error: connection closed: {exc.reason}", file=sys.stderr)
        return 1
    except syncws.HandshakeError as exc:
        print(f"error: WebSocket handshake failed: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"error: no reply within {args.timeout} seconds", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot connect to {redact_url(args.url)}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
