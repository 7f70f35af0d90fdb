"""An echo server ready to run behind a reverse proxy and a load balancer.

Usage::

    python examples/health_check.py [--host 127.0.0.1] [--port 8765]
        [--trusted-proxy 127.0.0.1 ...]

* ``GET /healthz`` (plain HTTP, no WebSocket) answers ``200 ok``: point the health check
  of a load balancer, of Kubernetes (``httpGet``) or of Docker (``HEALTHCHECK``) at it.
  The ``process_request`` hook answers it before any handler runs; other plain HTTP
  requests get ``426 Upgrade Required``, as without the hook.
* ``--trusted-proxy`` (repeatable; an address or a network such as ``10.0.0.0/8``)
  names the reverse proxies, nginx for instance, whose ``X-Forwarded-For`` and
  ``X-Real-IP`` headers say who the client is. Each WebSocket client is greeted with
  ``hello ADDRESS``, the address the server believes: the proxy's one unless the proxy
  is trusted. Never trust an address that clients can connect from directly.

Stop it with Ctrl-C, or with SIGTERM as systemd and ``docker stop`` do: the server then
closes every connection with 1001 (going away) and exits with status 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import syncws

log = logging.getLogger("health")


def health_check(request: syncws.WebSocketRequest) -> None:
    """The ``process_request`` hook: answer ``/healthz``, let everything else through."""
    if request.path == "/healthz" and not request.is_upgrade:
        request.respond(200, "ok\n", extra_headers={"Cache-Control": "no-store"})


def handler(request: syncws.WebSocketRequest) -> None:
    """Greet the client with the address the server sees, then echo."""
    ws = request.accept()
    address = getattr(request.remote, "address", request.remote)  # a str on a Unix socket
    log.info("client %s connected", address)
    ws.send_message(f"hello {address}")
    for message in ws:
        ws.send_message(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an echo server with a health check.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument(
        "--port", type=int, default=8765, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a reverse proxy (IP address or network) whose X-Forwarded-For is believed",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        # Returns after Ctrl-C or SIGTERM, once the server has shut down.
        syncws.serve_websocket(
            handler,
            args.host,
            args.port,
            process_request=health_check,
            trusted_proxies=args.trusted_proxy or None,
        )
    except ValueError as exc:  # a --trusted-proxy that is no address
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
