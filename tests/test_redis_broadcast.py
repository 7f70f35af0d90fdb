"""syncws.RedisHub against a real redis-server, with real syncws servers and clients.

Each test server has a hub of its own, hence Redis connections of its own, as two
processes would. ``redis-server`` runs as a child process (see :mod:`redisserver`); the
tests skip where it is not installed.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import MARGIN, UNIT, WAIT, SyncwsServer, checkout_env, wait_for
from rawpeer import raw_client
from redisserver import RedisServer, redis_server, skip_without_redis

import syncws
from syncws import ConnectionClosed, RedisHub, RedisUnavailable
from syncws.redis_broadcast import decode_message, encode_message

__all__ = ["redis_server"]  # The fixture, imported for the tests of this module.

#: Redis timeouts of the hubs of these tests: short, so that failures show fast.
HUB_TIMEOUT = 1.0 * UNIT


@pytest.fixture
def hubs() -> Iterator[Callable[..., RedisHub]]:
    """Factory: ``hubs(url, **options)`` -> a RedisHub, closed at teardown."""
    made: list[RedisHub] = []

    def make(url: str, **options: Any) -> RedisHub:
        options.setdefault("timeout", HUB_TIMEOUT)
        options.setdefault("max_reconnect_delay", 0.5 * UNIT)
        made.append(RedisHub(url, **options))
        return made[-1]

    yield make
    for hub in made:
        hub.close()


def room_handler(hub: RedisHub, channel: str = "room") -> Callable[[Any, SyncwsServer], None]:
    """A handler: subscribe the client to ``channel``, publish each of its messages there."""

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        hub.subscribe(ws, channel)
        srv.record.put(ws)
        try:
            for message in ws:
                hub.publish(channel, message)
        except ConnectionClosed:
            pass

    return handler


def join(srv: SyncwsServer, **options: Any) -> tuple[syncws.WebSocketConnection, Any]:
    """Connect a client to ``srv``; return it and the server side, once subscribed."""
    client = syncws.connect(srv.url, disconnect_timeout=WAIT, **options)
    return client, srv.get()


@pytest.fixture
def two_servers(
    redis_server: Callable[..., RedisServer],
    hubs: Callable[..., RedisHub],
    syncws_server: Callable[..., SyncwsServer],
) -> tuple[RedisServer, list[RedisHub], list[SyncwsServer]]:
    """One redis-server, and two syncws servers, each with a hub of its own."""
    redis = redis_server()
    made = [hubs(redis.url), hubs(redis.url)]
    return redis, made, [syncws_server(room_handler(hub)) for hub in made]


def test_envelope_keeps_the_type() -> None:
    assert encode_message("é") == b"t\xc3\xa9"
    assert encode_message(bytearray(b"\x00")) == b"b\x00"
    assert decode_message(b"t\xc3\xa9") == "é"
    assert decode_message(b"b") == b""
    for bad in (b"", b"x1", b"t\xff"):
        with pytest.raises(ValueError):
            decode_message(bad)
    with pytest.raises(TypeError):
        encode_message(42)  # type: ignore[arg-type]


def test_text_and_binary_reach_the_clients_of_both_servers(two_servers) -> None:
    _redis, _hubs, (one, two) = two_servers
    alice, _ = join(one)
    bob, _ = join(two)
    with alice, bob:
        for sender, message in [
            (alice, "hello é"),
            (bob, b"\x00\xff" * 1000),
            (bob, ""),
            (alice, b""),
        ]:
            sender.send_message(message)
            for client in (alice, bob):
                got = client.get_message(WAIT)
                assert got == message and type(got) is type(message)


def test_a_foreign_publisher_reaches_the_clients(two_servers) -> None:
    redis, _hubs, (one, _two) = two_servers
    alice, _ = join(one)
    with alice:
        assert b":1" in redis.command(b"PUBLISH", b"room", b"tfrom redis-cli")
        assert alice.get_message(WAIT) == "from redis-cli"
        assert redis.command(b"PUBLISH", b"room", b"b\x01")
        assert alice.get_message(WAIT) == b"\x01"


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_a_message_without_the_envelope_is_dropped(two_servers, caplog) -> None:
    redis, _hubs, (one, _two) = two_servers
    alice, _ = join(one)
    with alice, caplog.at_level(logging.WARNING, "syncws"):
        redis.command(b"PUBLISH", b"room", b"no envelope")
        redis.command(b"PUBLISH", b"room", b"tafter")
        assert alice.get_message(WAIT) == "after"
    assert "dropped a message of Redis channel 'room'" in caplog.text


def test_unsubscribed_when_the_connection_closes(two_servers) -> None:
    redis, (hub, _), (one, _two) = two_servers
    alice, server_side = join(one)
    bob, _ = join(one)
    assert len(hub.subscribers("room")) == 2 and hub.subscribers("room")[0] is server_side
    assert hub.channels(server_side) == {"room"}
    assert redis.numsub("room") == 1  # One pub/sub connection for both.
    alice.close()
    wait_for(lambda: server_side not in hub.subscribers("room"), WAIT, "alice to be forgotten")
    assert hub.channels(server_side) == frozenset()
    bob.close()
    wait_for(lambda: hub.channels() == frozenset(), WAIT, "bob to be forgotten")
    # No local subscriber left: the hub left the channel in Redis.
    wait_for(lambda: redis.numsub("room") == 0, WAIT, "the hub to unsubscribe in Redis")
    assert not hub.is_listening("room")


def test_unsubscribe(redis_server, hubs, syncws_server) -> None:
    redis = redis_server()
    hub = hubs(redis.url)
    both = threading.Event()

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        hub.subscribe(ws, "a", "b")
        srv.record.put(ws)
        both.wait(WAIT)
        hub.unsubscribe(ws, "a")
        srv.record.put(hub.channels(ws))
        hub.unsubscribe(ws)
        srv.record.put(hub.channels(ws))
        srv.release.wait(WAIT)

    srv = syncws_server(handler)
    with syncws.connect(srv.url) as client:
        srv.get()
        assert hub.publish("a", "to a") == 1
        assert hub.publish("b", "to b") == 1
        assert client.get_message(WAIT) == "to a"
        assert client.get_message(WAIT) == "to b"
        both.set()
        assert srv.get() == {"b"}
        assert srv.get() == frozenset()
        wait_for(lambda: redis.numsub("b") == 0, WAIT, "the hub to leave channel b")
        assert hub.publish("b", "nobody") == 0


def test_each_senders_messages_arrive_in_order(two_servers) -> None:
    _redis, _hubs, (one, two) = two_servers
    count = 200
    clients = [join(one)[0], join(two)[0], join(one)[0], join(two)[0]]
    senders = clients[:2]
    received: list[queue.Queue[str | bytes]] = [queue.Queue() for _ in clients]

    def read(client: syncws.WebSocketConnection, into: queue.Queue[str | bytes]) -> None:
        for _ in range(2 * count):
            into.put(client.get_message(WAIT))

    readers = [
        threading.Thread(target=read, args=pair, name=f"reader-{n}")
        for n, pair in enumerate(zip(clients, received, strict=True))
    ]
    for reader in readers:
        reader.start()

    def send(n: int) -> None:
        for i in range(count):
            senders[n].send_message(f"{n}:{i}")

    writers = [threading.Thread(target=send, args=(n,), name=f"sender-{n}") for n in (0, 1)]
    for thread in writers:
        thread.start()
    for thread in writers + readers:
        thread.join(WAIT)
    try:
        for n, messages in enumerate(received):
            seen = [messages.get(timeout=WAIT) for _ in range(2 * count)]
            for sender in ("0", "1"):
                sequence = [int(m.split(":")[1]) for m in seen if m.startswith(f"{sender}:")]  # type: ignore[union-attr]
                assert sequence == list(range(count)), f"client {n}, sender {sender}"
    finally:
        for client in clients:
            client.close()


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_redis_down_then_back(two_servers) -> None:
    redis, (hub, other), (one, two) = two_servers
    alice, alice_side = join(one)
    bob, _ = join(two)
    with alice, bob:
        redis.kill()
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            hub.publish("room", "lost")
        assert time.monotonic() - started < HUB_TIMEOUT + MARGIN
        wait_for(lambda: not hub.is_listening("room"), WAIT, "the hub to notice")
        # Subscribing waits for Redis, but no longer than its timeout; the
        # subscription stands, and comes back with Redis.
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            hub.subscribe(alice_side, "elsewhere", timeout=0.2 * UNIT)
        assert time.monotonic() - started < 0.2 * UNIT + MARGIN
        assert hub.channels(alice_side) == {"room", "elsewhere"}
        redis.start()  # On the same port.
        for h in (hub, other):
            wait_for(lambda h=h: h.is_listening("room"), WAIT, "the hubs to subscribe again")
        alice.send_message("back")
        assert alice.get_message(WAIT) == "back"
        assert bob.get_message(WAIT) == "back"
        wait_for(lambda: hub.is_listening("elsewhere"), WAIT, "the second channel")
        assert hub.publish("elsewhere", b"too") == 1
        assert alice.get_message(WAIT) == b"too"


def test_publish_times_out_when_redis_does_not_answer(redis_server, hubs) -> None:
    redis = redis_server()
    hub = hubs(redis.url)
    assert redis.process is not None
    redis.process.send_signal(19)  # SIGSTOP: connections open, no answer.
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            hub.publish("room", "x")
        assert time.monotonic() - started < HUB_TIMEOUT + MARGIN
    finally:
        redis.process.send_signal(18)  # SIGCONT


def test_a_slow_reader_does_not_stall_the_others(redis_server, hubs, syncws_server) -> None:
    redis = redis_server()
    send_timeout = 1.0 * UNIT
    hub = hubs(redis.url, send_timeout=send_timeout)
    srv = syncws_server(room_handler(hub), max_message_size=1 << 20)
    fast = [join(srv)[0] for _ in range(2)]
    slow = raw_client(srv.port, rcvbuf=4096, timeout=WAIT)  # Never reads.
    slow_side = srv.get()
    chunk = b"\x00" * (128 << 10)
    count = 40
    try:
        started = time.monotonic()
        for i in range(count):
            hub.publish("room", bytes([i]) + chunk)
        for client in fast:
            for i in range(count):
                assert client.get_message(WAIT)[0] == i
        elapsed = time.monotonic() - started
        assert elapsed < send_timeout + 2 * MARGIN, f"the fast readers took {elapsed:.2f}s"
        wait_for(lambda: slow_side not in hub.subscribers("room"), WAIT, "the slow reader cut off")
        assert slow_side.close_reason.code == 1006
    finally:
        slow.sock.close()
        for client in fast:
            client.close()


def redis_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("syncws-redis-")]


def test_close_joins_the_listener_thread(redis_server, syncws_server) -> None:
    redis = redis_server()
    with RedisHub(redis.url, timeout=HUB_TIMEOUT) as hub:
        srv = syncws_server(room_handler(hub))
        assert redis_threads() == []  # Started by the first subscription.
        ws, _ = join(srv)
        threads = redis_threads()
        assert [t.name for t in threads] == [f"syncws-redis-127.0.0.1:{redis.port}"]
        ws.close()
    assert not threads[0].is_alive()
    hub.close()  # Idempotent.
    with pytest.raises(RuntimeError):
        hub.publish("room", "closed")


def test_arguments_are_checked() -> None:
    skip_without_redis()
    with pytest.raises(ValueError):
        RedisHub("http://127.0.0.1:1/")
    with pytest.raises(ValueError):
        RedisHub(timeout=0)


def test_syncws_imports_without_redis() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import syncws\n"
        "try:\n"
        "    syncws.RedisHub()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    assert "pip install 'syncws[redis]'" in result.stdout, result.stderr
