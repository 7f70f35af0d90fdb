"""Send messages to a WebSocket echo server through a proxy and print each reply.

Usage::

    python examples/proxy_client.py ws://127.0.0.1:8765/ --proxy http://127.0.0.1:3128
    https_proxy=http://proxy.example:3128 python examples/proxy_client.py wss://example.org/
    python examples/proxy_client.py ws://127.0.0.1:8765/ --no-proxy

``--proxy`` takes an ``http://``, ``https://`` or SOCKS proxy URL (SOCKS needs
``pip install 'syncws[socks]'``), with ``user:password@`` when the proxy asks for
credentials. Without it the proxy comes from the environment (``ws_proxy``,
``http_proxy``, ``wss_proxy``, ``https_proxy``, ``all_proxy``, except for the hosts of
``no_proxy``); ``--no-proxy`` connects directly. The script exits with status 0 on
success and 1 when the connection fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import syncws
from syncws.client import redact_url


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Talk to an echo server through a proxy.")
    parser.add_argument("url", help="server URL, e.g. ws://127.0.0.1:8765/")
    parser.add_argument("messages", nargs="*", default=["hello", "through", "a proxy"])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--proxy", help="proxy URL (default: from the environment)")
    choice.add_argument("--no-proxy", action="store_true", help="connect directly")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default: 10)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options: syncws.ConnectOptions = {"connect_timeout": args.timeout}
    if args.no_proxy:
        options["proxy"] = None
    elif args.proxy:
        options["proxy"] = args.proxy
    try:
        with syncws.connect(args.url, **options) as ws:
            for message in args.messages:
                ws.send_message(message)
                reply = ws.get_message(timeout=args.timeout)
                print(reply if isinstance(reply, str) else repr(reply))
    except (ValueError, ImportError, syncws.WebSocketError) as exc:
        # A ProxyError names the proxy (its password hidden) and what it answered.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # The proxy or the server cannot be reached: the message says which.
        print(f"error: cannot connect to {redact_url(args.url)}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
