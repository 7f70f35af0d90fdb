"""``serve --broadcast --redis URL``: a chat room shared by servers through Redis.

Every message of a client is published to one Redis channel (``--channel``, default
:data:`DEFAULT_CHANNEL`); every message on the channel goes to every local client.
Servers started with the same ``--redis`` and ``--channel`` thus relay the messages of
each one's clients to the clients of all, in order per sender.
"""

from __future__ import annotations

import argparse
import logging

from .. import RedisHub, RedisUnavailable, WebSocketRequest
from .._redact import redact_url
from ..exceptions import ConnectionClosed
from ._common import BadArgument

__all__ = ["DEFAULT_CHANNEL", "RedisChatRoom", "add_arguments", "make_room"]

#: The Redis channel of ``--channel`` when it is not given.
DEFAULT_CHANNEL = "syncws"

_log = logging.getLogger("syncws.cli")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--redis`` and ``--channel`` to ``parser``."""
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="with --broadcast: relay the messages through Redis at URL, e.g. "
        "redis://127.0.0.1:6379/0, to the clients of every server using it "
        "(needs pip install 'syncws[redis]')",
    )
    parser.add_argument(
        "--channel",
        default=DEFAULT_CHANNEL,
        metavar="NAME",
        help="with --redis: the Redis channel (default: %(default)s)",
    )


def make_room(args: argparse.Namespace, send_timeout: float) -> RedisChatRoom | None:
    """Make the handler for ``--redis``; ``None`` without it.

    :raises BadArgument: for ``--redis`` without ``--broadcast``, a URL that is not a
        Redis URL, or a missing ``redis`` package.
    """
    url = getattr(args, "redis", None)
    if url is None:
        if getattr(args, "channel", DEFAULT_CHANNEL) != DEFAULT_CHANNEL:
            raise BadArgument("argument --channel: needs --redis")
        return None
    if args.mode != "broadcast" or args.exec_command is not None:
        raise BadArgument("argument --redis: needs --broadcast")
    try:
        hub = RedisHub(url, send_timeout=send_timeout)
    except ImportError as exc:
        raise BadArgument(f"argument --redis: {exc}") from None
    except ValueError as exc:
        raise BadArgument(f"argument --redis: {redact_url(url)!r}: {exc}") from None
    return RedisChatRoom(hub, args.channel)


class RedisChatRoom:
    """The handler of ``serve --broadcast --redis``: one channel for every client.

    A message that cannot be published while Redis is unreachable is dropped, with a
    warning; the client stays connected, and its later messages go through once Redis
    is back.

    :param hub: the hub; :meth:`close` closes it.
    :param channel: the Redis channel.
    """

    def __init__(self, hub: RedisHub, channel: str) -> None:
        self.hub = hub
        self.channel = channel

    def __call__(self, request: WebSocketRequest) -> None:
        """Serve one client: publish its messages until it leaves."""
        ws = request.accept()
        try:
            self.hub.subscribe(ws, self.channel)
        except RedisUnavailable as exc:
            _log.warning("%s: %s; subscribed once Redis is back", ws.remote, exc)
        _log.info(
            "%s joined (%d connected here)", ws.remote, len(self.hub.subscribers(self.channel))
        )
        try:
            for message in ws:
                try:
                    self.hub.publish(self.channel, message)
                except RedisUnavailable as exc:
                    _log.warning("%s: message dropped: %s", ws.remote, exc)
        except ConnectionClosed:
            pass  # Closed abnormally, e.g. cut off by a broadcast it did not read.
        finally:
            self.hub.unsubscribe(ws)
        _log.info("%s left: %s", ws.remote, ws.close_reason)

    def close(self) -> None:
        """Close the hub: its thread and its Redis connections."""
        self.hub.close()
