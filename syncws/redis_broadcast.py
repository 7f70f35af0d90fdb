"""Broadcasting to the clients of many processes and machines, through Redis pub/sub.

:func:`syncws.broadcast` reaches the connections of one process. A :class:`RedisHub`
extends it across processes: a handler subscribes its connection to named channels
and publishes messages to a channel; every process subscribed to that channel gets
the message from Redis and sends it to its own subscribed connections with
:func:`~syncws.broadcast`, so a slow reader never holds up the others::

    hub = syncws.RedisHub("redis://127.0.0.1:6379/0")

    def handler(request):
        ws = request.accept()
        hub.subscribe(ws, "room")
        for message in ws:
            hub.publish("room", message)

Needs the ``redis`` package: ``pip install 'syncws[redis]'``.

Each hub holds one Redis pub/sub connection, read by one thread, and a small pool of
connections for publishing. Messages cross Redis in a one-byte envelope that keeps
their type (see :func:`encode_message`), so other programs can publish to and read
from the same channels.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from .broadcast import broadcast
from .exceptions import RedisUnavailable

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import WebSocketConnection

logger = logging.getLogger("syncws")

__all__ = ["BINARY_PREFIX", "TEXT_PREFIX", "RedisHub", "decode_message", "encode_message"]

#: First byte of a text message on a Redis channel; the UTF-8 text follows.
TEXT_PREFIX = b"t"
#: First byte of a binary message on a Redis channel; the bytes follow as they are.
BINARY_PREFIX = b"b"

#: How long the listener thread waits for Redis at a time: the longest a new
#: subscription, an unsubscription or :meth:`RedisHub.close` waits for it to look up.
_POLL = 0.05
#: How often the listener forgets connections that closed without unsubscribing.
_PRUNE_INTERVAL = 0.5

#: Every hub of this process, so that a forked child starts each one afresh.
_hubs: weakref.WeakSet[RedisHub] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for hub in list(_hubs):
        hub._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def encode_message(message: str | bytes | bytearray | memoryview) -> bytes:
    """Wrap a message for a Redis channel: ``b"t"`` + UTF-8 text, or ``b"b"`` + bytes.

    This is the whole format: any program that publishes ``t`` followed by UTF-8 text,
    or ``b`` followed by bytes, sends a text or binary message to the WebSocket clients
    subscribed to the channel, e.g. ``redis-cli PUBLISH room "thello"``.

    :raises TypeError: when ``message`` is neither ``str`` nor bytes-like.
    """
    if isinstance(message, str):
        return TEXT_PREFIX + message.encode("utf-8")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return BINARY_PREFIX + bytes(message)
    raise TypeError(f"a message is str or bytes-like, not {type(message).__name__}")


def decode_message(data: bytes) -> str | bytes:
    """Unwrap what :func:`encode_message` made: ``str`` for text, ``bytes`` for binary.

    :raises ValueError: for an unknown first byte (or none), or text that is not UTF-8.
    """
    prefix, payload = data[:1], data[1:]
    if prefix == TEXT_PREFIX:
        return payload.decode("utf-8")  # UnicodeDecodeError is a ValueError.
    if prefix == BINARY_PREFIX:
        return payload
    raise ValueError(f"not a syncws message: starts with {prefix!r}, not b't' or b'b'")


class RedisHub:
    """Channels shared by every process connected to one Redis server.

    A connection subscribed to a channel gets every message published to it, by any
    process, in a message of the same type (text or binary). Messages that one thread
    publishes to a channel arrive in the order it published them, at every subscriber
    (see :ref:`redis-order`). Messages published while a process is not subscribed,
    or while its Redis connection is down, do not reach its clients: Redis pub/sub
    stores nothing.

    Creating a hub starts its listener thread, ``syncws-redis-HOST:PORT``, a daemon
    thread (a forgotten :meth:`close` does not keep the process alive); it connects
    to Redis once a connection subscribes to a channel, and keeps one pub/sub
    connection while any channel has local subscribers. When that connection fails,
    it reconnects after ``reconnect_delay`` seconds, doubling up to
    ``max_reconnect_delay``, and subscribes again to every channel with local
    subscribers. Use the hub as a context manager, or call :meth:`close`.

    What a hub holds: for each channel, the set of its local subscribers; for each
    connection, the set of its channel names. It queues no message: the listener hands
    each message to every subscriber with :func:`~syncws.broadcast`, and a connection
    that has not taken it after ``send_timeout`` seconds is cut off (closed with code
    1006). While it does, Redis buffers the messages that follow, up to its
    ``client-output-buffer-limit`` for pub/sub clients, and past it drops the
    connection, which the hub then reconnects.

    :param url: the Redis server, e.g. ``redis://127.0.0.1:6379/0``,
        ``rediss://`` for TLS, ``unix:///run/redis.sock``; a password goes in the URL.
    :param timeout: seconds allowed for each exchange with Redis: connecting, and
        waiting for an answer (the sockets' timeouts); also how long :meth:`subscribe`
        waits by default.
    :param send_timeout: seconds a local subscriber may take to read a message.
    :param max_connections: connections used for publishing at once; a thread that
        publishes while all are busy waits up to ``timeout`` for one.
    :param reconnect_delay: seconds before the first attempt to reconnect.
    :param max_reconnect_delay: the longest wait between two attempts.
    :param health_check_interval: after this many seconds without any word from Redis,
        the listener pings it; no answer within ``timeout`` counts as a lost connection.
    :raises ImportError: when the ``redis`` package is not installed.
    :raises ValueError: for a URL that is not a Redis URL.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        timeout: float = 5.0,
        send_timeout: float = 5.0,
        max_connections: int = 4,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        health_check_interval: float = 15.0,
    ) -> None:
        try:
            import redis  # noqa: PLC0415
            from redis.backoff import NoBackoff  # noqa: PLC0415
            from redis.retry import Retry  # noqa: PLC0415
        except ImportError:
            raise ImportError(
                "RedisHub needs the redis package: pip install 'syncws[redis]'"
            ) from None
        for name, value in (("timeout", timeout), ("send_timeout", send_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if not 0 < reconnect_delay <= max_reconnect_delay:
            raise ValueError("0 < reconnect_delay <= max_reconnect_delay is required")
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._timeout = timeout
        self._send_timeout = send_timeout
        self._first_delay = reconnect_delay
        self._max_delay = max_reconnect_delay
        self._health_interval = health_check_interval
        # syncws retries by itself, with a backoff; redis-py must not retry in a call.
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        publisher_pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
        self._publisher = redis.Redis(connection_pool=publisher_pool)
        self._subscriber = redis.Redis(
            connection_pool=redis.ConnectionPool.from_url(url, **options)
        )
        where = publisher_pool.connection_kwargs
        self._where = where.get("path") or f"{where.get('host')}:{where.get('port')}"
        # Guarded by _changed: the subscriptions, the channels Redis confirmed, closing.
        self._changed = threading.Condition()
        self._by_channel: dict[str, dict[WebSocketConnection, None]] = {}
        self._by_connection: dict[WebSocketConnection, set[str]] = {}
        self._listening: set[str] = set()
        self._closing = False
        self._stop = threading.Event()  # Set with _closing: wakes the listener.
        self._delay = reconnect_delay  # The listener's alone.
        # Started by the first subscribe(), in the process that makes it: a hub made
        # before the workers fork (serve_websocket(workers=N)) listens in each worker.
        self._thread: threading.Thread | None = None
        _hubs.add(self)

    def _forked(self) -> None:
        """In a forked child: no listener yet, no subscription of the parent's."""
        self._changed = threading.Condition()
        self._by_channel = {}
        self._by_connection = {}
        self._listening = set()
        self._stop = threading.Event()
        self._delay = self._first_delay
        self._thread = None
        # redis-py's pools see the new process ID and open connections of their own.

    def _start_listener(self) -> None:
        """Start the listener thread unless it runs (no lock is held while it starts)."""
        if self._thread is not None:
            return
        thread = threading.Thread(target=self._run, name=f"syncws-redis-{self._where}", daemon=True)
        with self._changed:
            if self._thread is not None or self._closing:
                return
            self._thread = thread
        thread.start()

    # ------------------------------------------------------------ the handlers' API

    def subscribe(
        self, connection: WebSocketConnection, *channels: str, timeout: float | None = None
    ) -> None:
        """Send ``connection`` every message published to each of ``channels`` from now on.

        Returns once Redis confirmed the subscription to every channel (at once for a
        channel with other local subscribers). The subscription lasts until
        :meth:`unsubscribe`, or until the connection closes: the hub then forgets it
        by itself, within half a second. A connection that is closed already is not
        subscribed.

        :param connection: an open connection.
        :param channels: channel names, at least one.
        :param timeout: how long to wait for Redis (default: the hub's ``timeout``).
        :raises RedisUnavailable: when Redis did not confirm in time. The subscription
            stands: the hub keeps reconnecting, and messages flow once it succeeds.
        :raises RuntimeError: once the hub is closed.
        """
        if not channels:
            raise TypeError("subscribe() needs at least one channel")
        for channel in channels:
            if not isinstance(channel, str):
                raise TypeError(f"a channel name is a str, not {type(channel).__name__}")
        wait = self._timeout if timeout is None else timeout
        self._start_listener()
        with self._changed:
            if self._closing:
                raise RuntimeError("this RedisHub is closed")
            if connection.is_closed:
                return
            for channel in channels:
                self._by_channel.setdefault(channel, {})[connection] = None
                self._by_connection.setdefault(connection, set()).add(channel)
            confirmed = self._changed.wait_for(
                lambda: self._closing or self._listening.issuperset(channels), wait
            )
        if not confirmed:
            raise RedisUnavailable(
                f"Redis at {self._where} did not confirm a subscription within {wait}s"
            )

    def unsubscribe(self, connection: WebSocketConnection, *channels: str) -> None:
        """Stop sending ``connection`` the messages of ``channels`` (none given: of all).

        Does not wait for Redis: the hub unsubscribes from a channel without local
        subscribers in the background. Channels the connection is not subscribed to
        are ignored.
        """
        with self._changed:
            self._drop(connection, channels or None)

    def publish(self, channel: str, message: str | bytes | bytearray | memoryview) -> int:
        """Send ``message`` to every subscriber of ``channel``, in every process.

        Waits for Redis's answer, so the messages that one thread publishes reach
        Redis, then every subscriber, in order. Other threads may publish meanwhile.

        :param channel: the channel name.
        :param message: ``str`` for a text message, bytes-like for a binary message.
        :returns: how many Redis pub/sub connections (one per hub) got the message.
        :raises RedisUnavailable: when Redis cannot be reached or did not answer
            within the hub's ``timeout`` (plus up to ``timeout`` waiting for a free
            connection, when ``max_connections`` threads are publishing at once). The
            message may have reached the subscribers anyway.
        :raises TypeError: when ``message`` is neither ``str`` nor bytes-like.
        :raises RuntimeError: once the hub is closed.
        """
        data = encode_message(message)
        if self._closing:
            raise RuntimeError("this RedisHub is closed")
        try:
            return int(self._publisher.publish(channel, data))
        except self._redis_errors as exc:
            raise RedisUnavailable(f"cannot publish through Redis at {self._where}: {exc}") from exc

    def channels(self, connection: WebSocketConnection | None = None) -> frozenset[str]:
        """Return the channels of ``connection``; without one, those with local subscribers."""
        with self._changed:
            if connection is None:
                return frozenset(self._by_channel)
            return frozenset(self._by_connection.get(connection, ()))

    def subscribers(self, channel: str) -> list[WebSocketConnection]:
        """Return the local subscribers of ``channel``, in the order they subscribed."""
        with self._changed:
            return list(self._by_channel.get(channel, ()))

    def is_listening(self, channel: str) -> bool:
        """Whether the hub's Redis connection is up and subscribed to ``channel``."""
        with self._changed:
            return channel in self._listening

    def close(self, timeout: float | None = None) -> None:
        """Forget every subscription, stop the listener thread, close the Redis connections.

        The connections that were subscribed stay open. Idempotent.

        :param timeout: how long to wait for the listener thread (default: the hub's
            ``send_timeout`` plus one second, enough for a broadcast in progress).
        """
        with self._changed:
            self._closing = True
            self._by_channel.clear()
            self._by_connection.clear()
            self._changed.notify_all()
        self._stop.set()
        thread = self._thread
        if thread is not None and threading.current_thread() is not thread:
            thread.join(self._send_timeout + 1.0 if timeout is None else timeout)
            if thread.is_alive():
                logger.warning("%s did not stop in time", thread.name)
        self._publisher.close()
        self._publisher.connection_pool.disconnect()
        self._subscriber.connection_pool.disconnect()

    def __enter__(self) -> RedisHub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the hub."""
        self.close()

    def __repr__(self) -> str:
        return f"<RedisHub {self._where}>"

    # ------------------------------------------------------------- the listener

    def _drop(self, connection: WebSocketConnection, channels: tuple[str, ...] | None) -> None:
        """Unsubscribe ``connection`` (``_changed`` held); ``None``: from every channel."""
        mine = self._by_connection.get(connection)
        if mine is None:
            return
        for channel in list(mine) if channels is None else channels:
            if channel not in mine:
                continue
            mine.discard(channel)
            members = self._by_channel[channel]
            members.pop(connection, None)
            if not members:
                del self._by_channel[channel]
        if not mine:
            del self._by_connection[connection]

    def _prune(self) -> None:
        """Forget the connections that closed."""
        with self._changed:
            for connection in [c for c in self._by_connection if c.is_closed]:
                self._drop(connection, None)

    def _wanted(self) -> set[str]:
        with self._changed:
            return set(self._by_channel)

    def _run(self) -> None:
        """Keep a subscription to every channel in use (the listener thread)."""
        while not self._stop.is_set():
            if not self._wanted():
                self._prune()
                self._stop.wait(_POLL)
                continue
            pubsub = self._subscriber.pubsub()
            try:
                self._listen(pubsub)
            except self._redis_errors as exc:
                if self._stop.is_set():
                    break
                if self._delay == self._first_delay:
                    logger.warning(
                        "lost the Redis subscription at %s (%s); reconnecting",
                        self._where,
                        exc,
                    )
                else:
                    logger.debug("Redis at %s: still unreachable (%s)", self._where, exc)
                self._set_listening(set())
                self._stop.wait(self._delay)
                self._delay = min(self._delay * 2, self._max_delay)
            except BaseException:
                logger.exception("%s crashed", threading.current_thread().name)
                raise
            finally:
                self._set_listening(set())
                with contextlib.suppress(*self._redis_errors):
                    pubsub.close()

    def _listen(self, pubsub: Any) -> None:
        """Follow the subscriptions on one pub/sub connection; return when none is left.

        :raises redis.RedisError: (or OSError) when the connection fails.
        """
        subscribed: set[str] = set()
        heard = time.monotonic()
        pinged: float | None = None
        next_prune = heard + _PRUNE_INTERVAL
        while not self._stop.is_set():
            wanted = self._wanted()
            if not wanted:
                return
            if wanted - subscribed:
                pubsub.subscribe(*sorted(wanted - subscribed))
                subscribed |= wanted
            if subscribed - wanted:
                pubsub.unsubscribe(*sorted(subscribed - wanted))
                subscribed &= wanted
                with self._changed:
                    self._listening &= wanted
            reply = pubsub.get_message(timeout=_POLL)
            now = time.monotonic()
            if reply is not None:
                heard, pinged = now, None
                self._handle(reply)
            elif pinged is not None and now - pinged > self._timeout:
                raise TimeoutError(f"no answer to a PING within {self._timeout}s")
            elif pinged is None and now - heard > self._health_interval:
                pubsub.ping()
                pinged = now
            if now >= next_prune:
                self._prune()
                next_prune = now + _PRUNE_INTERVAL

    def _handle(self, reply: dict[str, Any]) -> None:
        """Act on one reply of the pub/sub connection."""
        kind = _text(reply.get("type"))
        channel = _text(reply.get("channel"))
        if kind == "subscribe":
            if self._delay != self._first_delay:
                logger.info("subscribed again through Redis at %s", self._where)
            self._delay = self._first_delay
            with self._changed:
                if channel in self._by_channel:
                    self._listening.add(channel)
                    self._changed.notify_all()
        elif kind == "message":
            data = reply.get("data")
            try:
                message = decode_message(data if isinstance(data, bytes) else b"")
            except ValueError as exc:
                logger.warning("dropped a message of Redis channel %r: %s", channel, exc)
                return
            missed = broadcast(self.subscribers(channel), message, timeout=self._send_timeout)
            if missed:
                with self._changed:
                    for connection in missed:
                        if connection.is_closed:
                            self._drop(connection, None)

    def _set_listening(self, channels: set[str]) -> None:
        with self._changed:
            self._listening = channels
            self._changed.notify_all()


def _text(value: object) -> str:
    """Decode a channel name or reply type as redis-py gives it (bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
