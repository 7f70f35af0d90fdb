"""syncws.broadcast: one message to many connections; a peer that does not read is cut off."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import MARGIN, SHORT, WAIT, Background, SyncwsServer
from rawpeer import ClientPeerConnection, raw_client

import syncws

BIG = 256 * 1024


class Hub:
    """A server whose handler hands every accepted connection to the test."""

    def __init__(self, syncws_server: Callable[..., SyncwsServer]) -> None:
        self.accepted: queue.Queue[syncws.WebSocketConnection] = queue.Queue()
        self.server = syncws_server(self._handler, disconnect_timeout=SHORT)
        self.clients: list[syncws.WebSocketConnection] = []
        self.raw: list[ClientPeerConnection] = []

    def _handler(self, request: Any, srv: SyncwsServer) -> None:
        connection = request.accept()
        self.accepted.put(connection)
        srv.release.wait(2 * WAIT)

    def client(self, **options: Any) -> tuple[syncws.WebSocketConnection, Any]:
        ws = syncws.connect(self.server.url, disconnect_timeout=WAIT, **options)
        self.clients.append(ws)
        return ws, self.accepted.get(timeout=WAIT)

    def non_reader(self) -> tuple[ClientPeerConnection, Any]:
        """A raw client that never reads after its handshake, with a small receive buffer."""
        peer = raw_client(self.server.server.port)
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.raw.append(peer)
        return peer, self.accepted.get(timeout=WAIT)

    def close(self) -> None:
        for ws in self.clients:
            ws.close()
        for peer in self.raw:
            peer.abort()


@pytest.fixture
def hub(syncws_server: Callable[..., SyncwsServer]) -> Iterator[Hub]:
    hub = Hub(syncws_server)
    try:
        yield hub
    finally:
        hub.close()


def read_all(ws: syncws.WebSocketConnection, count: int) -> list[str | bytes]:
    return [ws.get_message(timeout=WAIT) for _ in range(count)]


def test_every_connection_gets_every_message_in_order(hub: Hub) -> None:
    pairs = [hub.client() for _ in range(5)]
    servers = [server for _, server in pairs]
    readers = [Background(read_all, client, 200) for client, _ in pairs]
    for index in range(200):
        message: str | bytes = f"message {index}" if index % 2 else index.to_bytes(4, "big")
        assert syncws.broadcast(servers, message, timeout=WAIT) == []
    expected = [f"message {i}" if i % 2 else i.to_bytes(4, "big") for i in range(200)]
    for reader in readers:
        assert reader.result() == expected


def test_broadcast_keeps_order_with_concurrent_sends(hub: Hub) -> None:
    client, server = hub.client()
    stop = threading.Event()

    def send_loop() -> int:
        count = 0
        while not stop.is_set() and count < 500:
            server.send_message(f"direct {count}")
            count += 1
        return count

    sender = Background(send_loop)
    for index in range(500):
        assert syncws.broadcast([server], f"broadcast {index}", timeout=WAIT) == []
    stop.set()
    direct = sender.result()
    received = read_all(client, 500 + direct)
    assert [m for m in received if str(m).startswith("broadcast")] == [
        f"broadcast {i}" for i in range(500)
    ]
    assert [m for m in received if str(m).startswith("direct")] == [
        f"direct {i}" for i in range(direct)
    ]


def test_non_reader_is_cut_off_without_stalling_readers(hub: Hub) -> None:
    pairs = [hub.client(message_queue_size=64) for _ in range(3)]
    _peer, stuck = hub.non_reader()
    targets = [server for _, server in pairs] + [stuck]
    received: list[list[str | bytes]] = [[] for _ in pairs]

    def drain(index: int, ws: syncws.WebSocketConnection) -> None:
        try:
            while True:
                received[index].append(ws.get_message(timeout=WAIT))
        except syncws.ConnectionClosed:
            pass

    readers = [Background(drain, i, client) for i, (client, _) in enumerate(pairs)]
    payload = bytes(BIG)
    sent = 0
    cut_at = None
    for _ in range(400):
        started = time.monotonic()
        missed = syncws.broadcast(targets, payload, timeout=SHORT)
        assert time.monotonic() - started < SHORT + MARGIN
        sent += 1
        if missed:
            assert missed == [stuck]
            cut_at = sent
            break
    assert cut_at is not None, "the non-reading peer was never cut off"
    assert stuck.is_closed
    assert stuck.close_reason is not None
    assert stuck.close_reason.code == 1006
    # The others go on as before.
    for _ in range(5):
        assert syncws.broadcast(targets, payload, timeout=WAIT) == [stuck]
        sent += 1
    for _, server in pairs:
        server.close()  # After the data: each reader gets everything, then the close.
    for index, reader in enumerate(readers):
        reader.result()
        assert len(received[index]) == sent
        assert all(message == payload for message in received[index])


def test_closed_connections_are_skipped_and_returned(hub: Hub) -> None:
    (client1, server1), (client2, server2) = hub.client(), hub.client()
    server2.close()
    assert syncws.broadcast([server1, server2], "hello", timeout=WAIT) == [server2]
    assert client1.get_message(timeout=WAIT) == "hello"
    with pytest.raises(syncws.ConnectionClosed):
        client2.get_message(timeout=WAIT)


def test_close_from_another_thread_releases_a_broadcast_without_timeout(hub: Hub) -> None:
    _peer, stuck = hub.non_reader()
    payload = bytes(BIG)
    result: queue.Queue[list[syncws.WebSocketConnection]] = queue.Queue()

    def flood() -> None:
        while True:
            missed = syncws.broadcast([stuck], payload)
            if missed:
                result.put(missed)
                return

    flooder = Background(flood)
    # Wait until the broadcast blocks: the socket buffers are full.
    with pytest.raises(queue.Empty):
        result.get(timeout=SHORT)
    started = time.monotonic()
    stuck.close()
    assert result.get(timeout=WAIT) == [stuck]
    flooder.result()
    # close() tries its closing handshake for disconnect_timeout, then aborts.
    assert time.monotonic() - started < SHORT + MARGIN


def test_a_connection_listed_twice_gets_the_message_once(hub: Hub) -> None:
    client, server = hub.client()
    assert syncws.broadcast([server, server], "once", timeout=WAIT) == []
    server.send_message("next")
    assert read_all(client, 2) == ["once", "next"]


def test_broadcast_to_nobody_and_bad_message(hub: Hub) -> None:
    assert syncws.broadcast([], "nobody", timeout=0) == []
    _client, server = hub.client()
    with pytest.raises(TypeError):
        syncws.broadcast([server], 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["broadcast", "send_message"])
def test_a_full_socket_that_takes_bytes_again_is_not_waited_for(hub: Hub, how: str) -> None:
    """Linux reports a full socket writable late; a call must not wait for that signal.

    Each call either writes its message soon, or times out and cuts the peer off: it
    never waits out its timeout and then writes the message after all.
    """
    _peer, stuck = hub.non_reader()
    payload = bytes(2048)
    timeout = 2 * SHORT
    late: list[tuple[int, float]] = []
    for index in range(20000):
        started = time.monotonic()
        if how == "broadcast":
            written = syncws.broadcast([stuck], payload, timeout=timeout) == []
        else:
            try:
                stuck.send_message(payload, timeout=timeout)
            except TimeoutError:
                written = False
            else:
                written = True
        seconds = time.monotonic() - started
        if not written:
            break
        if seconds >= timeout / 2:
            late.append((index, round(seconds, 3)))
    else:
        pytest.fail("the peer that does not read was never cut off")
    assert stuck.close_reason is not None
    assert stuck.close_reason.code == 1006
    assert late == [], f"calls that waited {timeout}s, then wrote: {late}"
