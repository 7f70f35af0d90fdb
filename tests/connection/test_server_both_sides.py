"""Core connection behaviour, run once from the client side and once from the server side.

The ``pair`` fixture gives ``(local, remote)``: both ends of one syncws connection,
``local`` being the client end in one run and the server end (from a WebSocketServer
handler) in the other.
"""

from __future__ import annotations

import threading
import time

import pytest
from helpers import MARGIN, SHORT, WAIT, Background, wait_for

from syncws import CloseReason, ConnectionClosed

THREADS = 4
PER_THREAD = 60


def test_sides(pair) -> None:
    local, remote = pair
    assert local.is_client != remote.is_client
    assert local.is_server == remote.is_client
    assert local.local == remote.remote
    assert local.remote == remote.local
    assert local.path == remote.path == "/"


def test_text_and_binary_both_ways(pair) -> None:
    local, remote = pair
    local.send_message("text \u00e9")
    local.send_message(b"\x00binary")
    local.send_message(bytearray(b"array"))
    local.send_message(memoryview(b"view"))
    assert remote.get_message(timeout=WAIT) == "text \u00e9"
    assert remote.get_message(timeout=WAIT) == b"\x00binary"
    assert remote.get_message(timeout=WAIT) == b"array"
    assert remote.get_message(timeout=WAIT) == b"view"
    remote.send_message("reply")
    remote.send_message(b"")
    assert local.get_message(timeout=WAIT) == "reply"
    assert local.get_message(timeout=WAIT) == b""
    with pytest.raises(TypeError):
        local.send_message(42)


def test_large_message_both_ways(pair) -> None:
    local, remote = pair
    payload = bytes(range(256)) * 3000  # 750 KiB, below the default 1 MiB limit
    sender = Background(local.send_message, payload)
    assert remote.get_message(timeout=WAIT) == payload
    sender.result()
    remote.send_message(payload.hex()[:500_000])
    assert local.get_message(timeout=WAIT) == payload.hex()[:500_000]


def test_ping_round_trip(pair) -> None:
    local, remote = pair
    assert local.latency == 0.0
    rtt = local.ping(timeout=WAIT)
    assert 0 < rtt < WAIT
    assert local.latency == rtt
    assert local.ping(b"payload", timeout=WAIT) > 0
    # The remote answered without its application reading anything.
    with pytest.raises(TimeoutError):
        remote.get_message(timeout=0)


def test_get_message_timeout(pair) -> None:
    local, remote = pair
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        local.get_message(timeout=SHORT)
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + MARGIN
    remote.send_message("after the timeout")
    assert local.get_message(timeout=WAIT) == "after the timeout"


def test_close_from_local_gives_close_reason_on_remote(pair) -> None:
    local, remote = pair
    local.close(4001, "local says bye")
    with pytest.raises(ConnectionClosed) as excinfo:
        remote.get_message(timeout=WAIT)
    assert excinfo.value.reason == CloseReason(4001, "local says bye")
    assert remote.close_reason == CloseReason(4001, "local says bye")
    assert local.is_closed
    assert local.close_reason.code == 4001
    with pytest.raises(ConnectionClosed):
        local.send_message("too late")
    with pytest.raises(ConnectionClosed):
        remote.send_message("too late")


def test_queued_messages_come_before_connection_closed(pair) -> None:
    local, remote = pair
    for i in range(5):
        local.send_message(f"m{i}")
    local.close()
    wait_for(lambda: remote.is_closed, what="the remote to see the close")
    assert [remote.get_message(timeout=WAIT) for _ in range(5)] == [f"m{i}" for i in range(5)]
    with pytest.raises(ConnectionClosed) as excinfo:
        remote.get_message(timeout=WAIT)
    assert excinfo.value.reason.code == 1000


def test_iteration_ends_quietly_on_normal_close(pair) -> None:
    local, remote = pair
    collector = Background(list, remote)
    for i in range(3):
        local.send_message(f"n{i}")
    local.close(1001)
    assert collector.result() == ["n0", "n1", "n2"]


def test_iteration_raises_on_other_close_codes(pair) -> None:
    local, remote = pair
    collector = Background(list, remote)
    local.send_message("one")
    local.close(4002)
    error = collector.exception()
    assert isinstance(error, ConnectionClosed)
    assert error.reason.code == 4002


def test_concurrent_senders_never_interleave(pair) -> None:
    local, remote = pair
    barrier = threading.Barrier(THREADS)

    def payload(thread: int, index: int) -> bytes:
        size = 200_000 if index % 10 == 0 else 50 + index
        return f"t{thread}-{index:03d}-".encode() + bytes([65 + thread]) * size

    def send_all(thread: int) -> None:
        barrier.wait(WAIT)
        for index in range(PER_THREAD):
            data = payload(thread, index)
            local.send_message(data.decode() if index % 2 else data, timeout=WAIT)

    senders = [Background(send_all, t) for t in range(THREADS)]
    seen: dict[int, list[int]] = {t: [] for t in range(THREADS)}
    for _ in range(THREADS * PER_THREAD):
        message = remote.get_message(timeout=WAIT)
        data = message.encode() if isinstance(message, str) else message
        thread, index = int(data[1:2]), int(data[3:6])
        assert data == payload(thread, index), "message corrupted or interleaved"
        assert isinstance(message, str) == bool(index % 2)
        seen[thread].append(index)
    for sender in senders:
        sender.result()
    for thread in range(THREADS):
        assert seen[thread] == list(range(PER_THREAD)), f"thread {thread} out of order"


def test_close_from_another_thread_wakes_get_message(pair) -> None:
    local, remote = pair
    waiter = Background(local.get_message, WAIT)
    with pytest.raises(TimeoutError):
        remote.get_message(timeout=SHORT)  # Give the waiter time to block.
    assert waiter.running
    started = time.monotonic()
    local.close(1000, "woken")
    error = waiter.exception(MARGIN)
    assert isinstance(error, ConnectionClosed), error
    assert waiter.finished_at is not None
    assert waiter.finished_at - started < MARGIN
    with pytest.raises(ConnectionClosed) as excinfo:
        remote.get_message(timeout=WAIT)
    assert excinfo.value.reason == CloseReason(1000, "woken")


def test_remote_close_wakes_local_get_message(pair) -> None:
    local, remote = pair
    waiter = Background(local.get_message, WAIT)
    remote.close(4003, "remote leaves")
    error = waiter.exception()
    assert isinstance(error, ConnectionClosed), error
    assert error.reason == CloseReason(4003, "remote leaves")


def test_send_timeout_when_remote_does_not_read(pair) -> None:
    local, remote = pair
    chunk = b"p" * (512 * 1024)
    sent = 0
    with pytest.raises(TimeoutError):
        for _ in range(200):  # far more than the queue and the socket buffers hold
            local.send_message(chunk, timeout=SHORT)
            sent += 1
    assert local.is_closed
    assert local.close_reason.code == 1006
    # Whole messages that arrived before the abort are still readable.
    received = 0
    with pytest.raises(ConnectionClosed) as excinfo:
        while True:
            assert remote.get_message(timeout=WAIT) == chunk
            received += 1
    assert received <= sent
    assert excinfo.value.reason.code == 1006
