"""An echo server with the security options of syncws: origins, authentication, TLS, limits.

Usage::

    python examples/secure_server.py [--host 127.0.0.1] [--port 8765]
        [--origin https://example.com ...] [--user NAME:PASSWORD ...]
        [--certfile cert.pem [--keyfile key.pem]]

* ``--origin`` (repeatable) lists the web pages allowed to connect. Browsers send the
  page's origin in the ``Origin`` header, so this stops a page on another site from
  opening a WebSocket with your users' cookies (cross-site WebSocket hijacking). Requests
  without the header, from clients other than browsers, are always allowed here. Other
  origins get HTTP 403.
* ``--user`` (repeatable) requires HTTP Basic authentication with one of these user
  names and passwords; other requests get HTTP 401. Clients give the credentials in the
  URL: ``ws://alice:secret@127.0.0.1:8765/``. Each authenticated user is greeted with
  "hello NAME" (anonymous ones with "hello guest"), then every message comes back.
* ``--certfile`` and ``--keyfile`` (PEM files) turn on TLS: clients then use ``wss://``.
  Basic authentication sends the password in clear text, so use it with TLS only.

Passwords on the command line are visible to other users of the machine (``ps``): a real
server would read them from a file or a secrets store. This one never prints nor logs them.
Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Sequence

import syncws

log = logging.getLogger("secure")

# Explicit limits. The defaults of syncws suit trusted clients; a server open to the
# internet should choose its own, because each client costs a thread and memory.

#: The largest message accepted, in bytes. A bigger one closes the connection with code
#: 1009 before it is buffered. With up to MESSAGE_QUEUE_SIZE messages queued per client,
#: this bounds the memory one client can make the server hold.
MAX_MESSAGE_SIZE = 64 * 1024
#: Messages received but not yet handled, per client; beyond it syncws stops reading the
#: socket and TCP flow control slows the client down.
MESSAGE_QUEUE_SIZE = 16
#: Clients served at once; more get HTTP 503. Every client has a thread of its own, so
#: this bounds threads and memory when many clients connect at once.
MAX_CONNECTIONS = 100
#: Seconds for the TLS handshake and the HTTP upgrade request together. A client that
#: opens a TCP connection and then sends nothing (or a byte at a time, "slowloris")
#: would otherwise hold a thread for as long as it likes.
CONNECT_TIMEOUT = 10.0
#: Seconds between keepalive pings when a client is silent, and how long it then has to
#: answer. A client that vanished without closing (a laptop lid shut, a network cable
#: pulled) is detected and its connection closed with code 1011, instead of holding a
#: thread forever.
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
#: Seconds for the closing handshake; bounds how long closing a stuck client takes.
DISCONNECT_TIMEOUT = 5.0
#: Seconds an echo may take to go out before a client that does not read is cut off.
SEND_TIMEOUT = 10.0


def handler(request: syncws.WebSocketRequest) -> None:
    """Greet the client by name, then echo (runs in a thread of its own per client)."""
    ws = request.accept()
    name = request.username or "guest"  # set by basic_auth for an authenticated client
    log.info("%s connected as %s", ws.remote, name)
    try:
        ws.send_message(f"hello {name}", timeout=SEND_TIMEOUT)
        for message in ws:
            ws.send_message(message, timeout=SEND_TIMEOUT)
    except syncws.ConnectionClosed:
        pass  # closed abnormally: the reason is logged below
    except TimeoutError:
        pass  # the client did not read: syncws has cut it off (1006)
    log.info("%s (%s) left: %s", ws.remote, name, ws.close_reason)


def logged(auth: syncws.Handler) -> syncws.Handler:
    """Wrap the ``basic_auth`` hook to log refusals (without the credentials tried)."""

    def process_request(request: syncws.WebSocketRequest) -> None:
        auth(request)
        if request.username is None:  # basic_auth sets it when the credentials are valid
            log.info("%s refused: no valid credentials", request.remote)

    return process_request


def user(value: str) -> tuple[str, str]:
    """Parse a ``--user NAME:PASSWORD`` value (error messages never show the password)."""
    name, sep, password = value.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD, both non-empty")
    return name, password


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a WebSocket echo server with security.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument(
        "--port", type=int, default=8765, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--origin",
        action="append",
        default=[],
        help="an origin allowed to connect, e.g. https://example.com (repeatable; "
        "requests without Origin are always allowed)",
    )
    parser.add_argument(
        "--user",
        type=user,
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="require Basic authentication with these credentials (repeatable)",
    )
    parser.add_argument("--certfile", help="PEM certificate chain: serve wss:// (TLS)")
    parser.add_argument("--keyfile", help="PEM private key (default: in --certfile)")
    args = parser.parse_args(argv)
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    ssl_context = None
    if args.certfile:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(args.certfile, args.keyfile)

    process_request = None
    if args.user:
        if ssl_context is None:
            log.warning("Basic authentication without TLS: passwords travel in clear text")
        process_request = logged(syncws.basic_auth(realm="syncws example", credentials=args.user))

    server = syncws.WebSocketServer(
        handler,
        args.host,
        args.port,
        ssl_context,
        # None admits requests without an Origin header: clients other than browsers.
        origins=[None, *args.origin],
        process_request=process_request,
        max_message_size=MAX_MESSAGE_SIZE,
        message_queue_size=MESSAGE_QUEUE_SIZE,
        max_connections=MAX_CONNECTIONS,
        connect_timeout=CONNECT_TIMEOUT,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        disconnect_timeout=DISCONNECT_TIMEOUT,
    )
    try:
        for listener in server.listeners:
            print(f"listening on {listener}/", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # serve_forever() has shut the server down gracefully
    finally:
        server.shutdown()  # no-op after a graceful stop; closes the sockets otherwise
    return 0


if __name__ == "__main__":
    sys.exit(main())
