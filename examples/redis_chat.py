"""A chat server whose rooms span processes and machines, through Redis pub/sub.

Usage::

    python examples/redis_chat.py [--host 127.0.0.1] [--port 8765]
        [--redis redis://127.0.0.1:6379/0]

Needs a Redis server and ``pip install 'syncws[redis]'``. The path of the URL a client
connects to names its room: a client of ``ws://127.0.0.1:8765/lobby`` talks with every
client of ``/lobby``, on this server and on every other one started with the same
``--redis``. Start two, on ports 8765 and 8766, and connect clients to both.

Text messages go out prefixed with the sender's address ("127.0.0.1:50312: hi"); binary
messages go unchanged. A client that stops reading is cut off after ``--send-timeout``
seconds, without holding up the others; while Redis is unreachable, messages are
refused with a notice to their sender, and the rooms come back with Redis.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import syncws

log = logging.getLogger("chat")


class RedisChat:
    """The WebSocket handler: one Redis channel per room, named ``chat:PATH``."""

    def __init__(self, hub: syncws.RedisHub) -> None:
        self.hub = hub

    def handler(self, request: syncws.WebSocketRequest) -> None:
        """Serve one client (syncws runs this in a thread of its own per client)."""
        ws = request.accept()
        room = f"chat:{request.path}"
        name = str(ws.remote)
        try:
            self.hub.subscribe(ws, room)
        except syncws.RedisUnavailable as exc:
            log.warning("%s: %s", name, exc)  # Still subscribed: Redis may come back.
        log.info("%s joined %s (%d here)", name, room, len(self.hub.subscribers(room)))
        try:
            for message in ws:
                text = f"{name}: {message}" if isinstance(message, str) else message
                try:
                    self.hub.publish(room, text)
                except syncws.RedisUnavailable:
                    ws.send_message("* not delivered: the chat is unavailable, try again later")
        except syncws.ConnectionClosed as exc:
            log.info("%s: connection closed: %s", name, exc.reason)
        finally:
            self.hub.unsubscribe(ws)  # The hub also forgets closed connections by itself.
            log.info("%s left %s", name, room)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a chat server that shares rooms via Redis.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8765, help="default: %(default)s")
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="Redis URL (default: %(default)s)"
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=5.0,
        help="seconds a client may take to read one message (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with syncws.RedisHub(args.redis, send_timeout=args.send_timeout) as hub:
        chat = RedisChat(hub)
        syncws.serve_websocket(chat.handler, args.host, args.port, disconnect_timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
