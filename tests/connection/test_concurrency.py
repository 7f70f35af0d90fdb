"""Threads: concurrent senders and receivers, the reader thread, interpreter exit."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading

import websocket  # websocket-client
from helpers import WAIT, Background, WsServer, checkout_env, echo_handler, record_close_handler
from rawpeer import OP_BINARY, OP_CLOSE, OP_TEXT

import syncws
from syncws import ConnectionClosed

THREADS = 4
PER_THREAD = 100


def payload_for(thread: int, index: int) -> bytes:
    """A self-describing payload; every 10th one is large enough for partial writes."""
    head = f"t{thread}-{index:04d}-".encode()
    size = 300_000 if index % 10 == 0 else 100 + index
    return head + bytes([65 + thread]) * size


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("syncws-reader-")]


def test_concurrent_senders_never_interleave(raw_peer) -> None:
    peer = raw_peer(auto=True)
    barrier = threading.Barrier(THREADS)

    def send_all(thread: int) -> None:
        barrier.wait(WAIT)
        for index in range(PER_THREAD):
            data = payload_for(thread, index)
            ws.send_message(data.decode() if index % 2 else data)

    with syncws.connect(peer.url) as ws:
        senders = [Background(send_all, t) for t in range(THREADS)]
        frames = [peer.next_frame() for _ in range(THREADS * PER_THREAD)]
        for sender in senders:
            sender.result()
    seen: dict[int, list[int]] = {t: [] for t in range(THREADS)}
    for frame in frames:
        # Each message is exactly one complete, masked frame: nothing interleaved.
        assert frame.fin
        assert frame.masked
        assert frame.opcode in (OP_TEXT, OP_BINARY)
        head, _, _ = frame.payload.partition(b"-")
        thread = int(head[1:])
        index = int(frame.payload.split(b"-")[1])
        assert frame.payload == payload_for(thread, index), "message corrupted"
        assert frame.opcode == (OP_TEXT if index % 2 else OP_BINARY)
        seen[thread].append(index)
    for thread in range(THREADS):
        assert seen[thread] == list(range(PER_THREAD)), f"thread {thread} out of order"
    assert peer.next_frame().opcode == OP_CLOSE


def test_concurrent_senders_to_websockets_server(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    barrier = threading.Barrier(THREADS)

    def send_all(thread: int) -> None:
        barrier.wait(WAIT)
        for index in range(50):
            ws.send_message(f"{thread}:{index}")

    with syncws.connect(srv.url) as ws:
        for sender in [Background(send_all, t) for t in range(THREADS)]:
            sender.result()
    received: dict[int, list[int]] = {t: [] for t in range(THREADS)}
    while True:
        item = srv.get()
        if item[0] == "closed":
            assert item[1] == 1000
            break
        thread, index = map(int, item[1].split(":"))
        received[thread].append(index)
    assert all(received[t] == list(range(50)) for t in range(THREADS))


def test_sending_and_receiving_from_different_threads(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    total = THREADS * 50

    def send_all(thread: int) -> None:
        for index in range(50):
            ws.send_message(f"{thread}:{index}")

    def receive_all() -> list[str]:
        return [ws.get_message(timeout=WAIT) for _ in range(total)]

    with syncws.connect(srv.url, message_queue_size=2) as ws:
        receiver = Background(receive_all)
        for sender in [Background(send_all, t) for t in range(THREADS)]:
            sender.result()
        got = receiver.result()
    per_thread: dict[int, list[int]] = {t: [] for t in range(THREADS)}
    for message in got:
        thread, index = map(int, message.split(":"))
        per_thread[thread].append(index)
    assert all(per_thread[t] == list(range(50)) for t in range(THREADS))


def test_concurrent_pings(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        pingers = [Background(ws.ping, None, WAIT) for _ in range(8)]
        for pinger in pingers:
            assert pinger.result() > 0


def test_close_from_many_threads_at_once(raw_peer) -> None:
    peer = raw_peer(auto=True)
    ws = syncws.connect(peer.url)
    barrier = threading.Barrier(5)

    def close() -> None:
        barrier.wait(WAIT)
        ws.close()

    for closer in [Background(close) for _ in range(5)]:
        closer.result()
    assert ws.is_closed
    assert peer.next_frame().opcode == OP_CLOSE
    peer.wait_finished()
    assert peer.frames.empty(), "more than one close frame was sent"


def test_sender_gets_connection_closed_when_another_thread_closes(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    ws = syncws.connect(srv.url)
    started = threading.Event()

    def keep_sending() -> int:
        sent = 0
        try:
            while True:
                ws.send_message(f"n{sent}")
                sent += 1
                started.set()
        except ConnectionClosed:
            return sent

    sender = Background(keep_sending)
    assert started.wait(WAIT)
    ws.close()
    assert sender.result() > 0


def test_many_connections_at_once(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    count = 20

    def roundtrip(index: int) -> str:
        with syncws.connect(srv.url) as ws:
            ws.send_message(f"client {index}")
            return ws.get_message(timeout=WAIT)

    clients = [Background(roundtrip, i) for i in range(count)]
    assert [c.result() for c in clients] == [f"client {i}" for i in range(count)]


# ------------------------------------------------------------------ reader thread


def test_reader_thread_is_named_and_daemon(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    before = set(reader_threads())
    ws = syncws.connect(srv.url)
    try:
        new = [t for t in reader_threads() if t not in before]
        assert len(new) == 1
        assert new[0].name.startswith("syncws-reader-")
        assert new[0].daemon
        assert new[0].is_alive()
    finally:
        ws.close()
    # close() joins the reader: nothing of syncws is left running.
    assert not new[0].is_alive()
    assert [t for t in reader_threads() if t not in before] == []


def test_each_connection_has_its_own_reader(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    before = set(reader_threads())
    with syncws.connect(srv.url), syncws.connect(srv.url):
        names = [t.name for t in reader_threads() if t not in before]
        assert len(names) == 2
        assert len(set(names)) == 2
    assert [t for t in reader_threads() if t not in before] == []


def test_reader_thread_ends_when_peer_closes(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "close please"
        ws.close(1000, "server done")

    srv = websockets_server(handler)
    before = set(reader_threads())
    ws = syncws.connect(srv.url)
    try:
        (reader,) = [t for t in reader_threads() if t not in before]
        ws.send_message("close please")
        reader.join(WAIT)
        assert not reader.is_alive()
        assert ws.close_reason.code == 1000
    finally:
        ws.close()


def test_reader_thread_ends_after_handshake_failure_cleanup(raw_peer) -> None:
    def handshake(request) -> bytes:
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    peer = raw_peer(handshake=handshake)
    before = set(reader_threads())
    with contextlib.suppress(syncws.ConnectionRejected):
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert [t for t in reader_threads() if t not in before] == []


def test_forgotten_connection_does_not_keep_the_interpreter_alive(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    code = (
        "import sys, syncws\n"
        "ws = syncws.connect(sys.argv[1])\n"
        "ws.send_message('hi')\n"
        "assert ws.get_message(timeout=10) == 'hi'\n"
        "print('done', flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, srv.url],
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


# --------------------------------------------------------- a second, independent client


def test_server_sees_syncws_and_websocket_client_side_by_side(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        for message in ws:
            srv.record.put((ws.request.path, message))
            ws.send(message)

    srv = websockets_server(handler)
    other = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/wsclient", timeout=WAIT)
    try:
        with syncws.connect(f"ws://127.0.0.1:{srv.port}/syncws") as ws:
            ws.send_message("from syncws")
            other.send("from websocket-client")
            assert ws.get_message(timeout=WAIT) == "from syncws"
            assert other.recv() == "from websocket-client"
    finally:
        other.close()
    seen = {srv.get(), srv.get()}
    assert seen == {("/syncws", "from syncws"), ("/wsclient", "from websocket-client")}
