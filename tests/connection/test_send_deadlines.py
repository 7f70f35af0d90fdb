"""Sends that end on time and tell the truth: resets, many senders, slow readers."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from helpers import MARGIN, WAIT, Background
from rawpeer import PeerConnection

import syncws
from syncws import ConnectionClosed


def received_before(ws: syncws.WebSocketConnection) -> list[str | bytes]:
    """The messages ``ws`` still delivers before it raises ConnectionClosed."""
    messages = []
    with pytest.raises(ConnectionClosed):
        while True:
            messages.append(ws.get_message(timeout=WAIT))
    return messages


def reset_after(conn: PeerConnection, count: int) -> None:
    """Send ``count`` numbered messages, then reset the connection (no close frame)."""
    for i in range(count):
        conn.send_text(f"m{i}")
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    conn.close()


def test_a_send_after_a_reset_raises_within_its_timeout(raw_peer) -> None:
    """The reader waits for room in a full queue while the peer resets."""
    peer = raw_peer()
    ws = syncws.connect(peer.url, message_queue_size=2, disconnect_timeout=10)
    try:
        conn = peer.connection()
        reset_after(conn, 20)
        for attempt in range(2):
            start = time.monotonic()
            with pytest.raises(ConnectionClosed) as excinfo:
                # The first send used to return as if its bytes had been taken, the
                # second to wait out disconnect_timeout.
                ws.send_message("after the reset", timeout=1)
            assert time.monotonic() - start < 1 + MARGIN, attempt
            assert excinfo.value.reason.code == 1006
        # Every message that arrived before the reset is still delivered, in order.
        messages = received_before(ws)
        assert messages == [f"m{i}" for i in range(len(messages))]
        assert len(messages) >= 2
    finally:
        start = time.monotonic()
        ws.close()
        assert time.monotonic() - start < MARGIN


def test_a_reset_wakes_a_ping_at_once(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, message_queue_size=2, disconnect_timeout=10) as ws:
        conn = peer.connection()
        reset_after(conn, 20)
        start = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.ping(timeout=5)
        assert time.monotonic() - start < MARGIN
        received_before(ws)


# ----------------------------------------------------------- many senders


class SlowReader:
    """Read from ``sock`` at about ``rate`` bytes per second until stopped."""

    TICK = 0.01

    def __init__(self, sock: socket.socket, rate: int) -> None:
        self.sock = sock
        self.per_tick = int(rate * self.TICK)
        self.stop = threading.Event()
        self.received = 0
        self._thread = threading.Thread(target=self._run, name="test-slow-reader")
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(self.TICK)
        # The pace of a slow consumer, not a synchronisation: one read per tick.
        while not self.stop.wait(self.TICK):
            wanted = self.per_tick
            while wanted > 0:
                try:
                    data = self.sock.recv(wanted)
                except TimeoutError:
                    break
                except OSError:
                    return
                if not data:
                    return
                wanted -= len(data)
                self.received += len(data)

    def join(self) -> None:
        self.stop.set()
        self._thread.join(WAIT)


@pytest.mark.slow  # 3 s: it fills the socket buffers with a peer that does not read
def test_a_send_returns_once_its_own_message_is_written(raw_peer) -> None:
    """Eight threads send to a slow reader: none is left writing the others' messages."""
    peer = raw_peer(rcvbuf=64 * 1024)
    threads, per_thread, size = 8, 24, 64 * 1024
    durations: list[float] = []
    # The slow reader never answers the close frame: the close gives up after 1 s.
    with syncws.connect(peer.url, disconnect_timeout=1) as ws:
        conn = peer.connection()
        reader = SlowReader(conn.sock, rate=4 << 20)
        try:

            def sender(index: int) -> None:
                message = bytes([index]) * size
                for _ in range(per_thread):
                    start = time.monotonic()
                    ws.send_message(message)
                    durations.append(time.monotonic() - start)

            started = time.monotonic()
            senders = [Background(sender, i) for i in range(threads)]
            for background in senders:
                background.result(timeout=60)
            total = time.monotonic() - started
        finally:
            reader.join()
    assert len(durations) == threads * per_thread
    # A send waits for the messages queued before it, about one from each other
    # thread, never for the whole run: the old writer kept writing for everyone.
    assert max(durations) < total / 4, (max(durations), total)
