"""Reading on the caller's thread: ``get_message`` reads the socket itself when it can.

The reading turn (``syncws/_readturns.py``) moves between the reader thread and callers of
``get_message``. These tests check what must hold whoever reads: every message is
delivered once and in order, pings and closes are answered while nobody reads, and
nothing waits out the caller window when something needs the network.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

import pytest
from helpers import SHORT, WAIT, Background, finish, off_main_thread, wait_for
from rawpeer import OP_PONG

import syncws
from syncws import ConnectionClosed, _reader, _readturns, _starter, _transport


@contextlib.contextmanager
def read_once(raw_peer, **options):
    """``(ws, conn)``: a connection to a raw peer whose first message the caller has read;
    the closing handshake runs at the end (unless the body failed)."""
    peer = raw_peer()
    with syncws.connect(peer.url, **options) as ws:
        conn = peer.connection()
        conn.send_text("warm up")
        assert ws.get_message(timeout=WAIT) == "warm up"
        yield ws, conn
        finish(ws, conn)


@pytest.fixture
def reading_threads(monkeypatch):
    """Record the name of every thread that feeds received bytes to the engine."""
    names: list[str] = []
    original = _reader.Reader._handle

    def handle(self, data, block=True):
        if data is not None:
            names.append(threading.current_thread().name)
        return original(self, data, block)

    monkeypatch.setattr(_reader.Reader, "_handle", handle)
    return names


@pytest.mark.usefixtures("long_grace")
@off_main_thread
def test_a_waiting_caller_reads_the_socket_itself(raw_peer, reading_threads) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        # A caller that waits and finds nothing asks the reader thread for the
        # socket; it lends it after its next read. (A poll with timeout=0 does not
        # ask, and a message the reader thread queued before anyone waited for it is
        # simply taken from the queue.) The grace outlasts the test, so that a slow
        # machine cannot make the reader thread take the socket back in between.
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=0.05)
        conn.send_text("first")
        assert ws.get_message(timeout=WAIT) == "first"
        reading_threads.clear()
        for i in range(20):
            conn.send_text(f"m{i}")
            assert ws.get_message(timeout=WAIT) == f"m{i}"
        finish(ws, conn)
    # After the first message (read by the reader thread, which then lends the read
    # role), every message was read on the caller's own thread.
    caller = threading.current_thread().name
    assert reading_threads[:20] == [caller] * 20


@off_main_thread
def test_pings_are_answered_while_the_application_does_not_read(raw_peer) -> None:
    with read_once(raw_peer) as (ws, conn):
        # The caller read last and now does something else: the reader thread takes
        # the socket back after the grace period and answers.
        conn.send_ping(b"are you there")
        frame = conn.recv_frame(timeout=WAIT)
        assert (frame.opcode, frame.payload) == (OP_PONG, b"are you there")
        conn.send_text("still here")
        assert ws.get_message(timeout=WAIT) == "still here"


@off_main_thread
def test_pings_are_answered_while_a_caller_waits(raw_peer) -> None:
    with read_once(raw_peer) as (ws, conn):
        getter = Background(ws.get_message, timeout=WAIT)
        conn.send_ping(b"1")
        assert conn.recv_frame(timeout=WAIT).payload == b"1"
        conn.send_text("done")
        assert getter.result() == "done"


def waits_in_receive(thread: threading.Thread | None) -> bool:
    """Whether ``thread`` waits for bytes from the socket now."""
    assert thread is not None
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code is _transport.Transport.receive.__code__:
            return True
        frame = frame.f_back
    return False


@off_main_thread
def test_a_message_queued_while_the_caller_takes_the_socket_is_not_left_behind(
    raw_peer,
) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        # The reader thread holds the socket, and a caller asked for it before (and
        # then took a message from the queue instead): the reader thread lends the
        # socket after its next read.
        ws._reader.turns.hand_to_reader()
        wait_for(lambda: waits_in_receive(ws.reader_thread), what="the reader thread to read")
        ws._reader.turns._wanted = True
        original = ws._reader.queue.take

        def take():
            message = original()
            if message is None and not reads:
                reads.append(True)
                # Between this look at the queue and the caller's try for the
                # socket, the reader thread reads a message, queues it and lends.
                conn.send_text("in between")
                wait_for(lambda: ws._reader.turns.turn is _readturns.Turn.FREE, what="the lend")
            return message

        reads: list[bool] = []
        ws._reader.queue.take = take
        # The message is in the queue: the caller must not wait for the socket (it
        # would find the message only when its timeout ran out).
        started = time.monotonic()
        assert ws.get_message(timeout=WAIT) == "in between"
        assert time.monotonic() - started < SHORT
        del ws._reader.queue.take
        finish(ws, conn)


@pytest.fixture
def long_grace(monkeypatch) -> None:
    """Make the grace period longer than any test: whatever must not wait for it, doesn't."""
    monkeypatch.setattr(_readturns, "GRACE", 3600.0)
    monkeypatch.setattr(_readturns, "MIN_GRACE", 3600.0)


@pytest.mark.usefixtures("long_grace")
@off_main_thread
def test_ping_takes_the_socket_back_at_once(raw_peer) -> None:
    peer = raw_peer(auto=True, echo=True)
    with syncws.connect(peer.url) as ws:
        ws.send_message("x")
        assert ws.get_message(timeout=WAIT) == "x"
        assert ws.ping(timeout=WAIT) < WAIT


@pytest.mark.usefixtures("long_grace")
@off_main_thread
def test_close_takes_the_socket_back_at_once(raw_peer) -> None:
    peer = raw_peer(auto=True, echo=True)
    ws = syncws.connect(peer.url, disconnect_timeout=WAIT)
    ws.send_message("x")
    assert ws.get_message(timeout=WAIT) == "x"
    closer = Background(ws.close)
    closer.result()
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1000


@pytest.mark.usefixtures("long_grace")
@off_main_thread
def test_keepalive_runs_while_the_socket_is_lent(raw_peer) -> None:
    with read_once(raw_peer, ping_interval=0.05, ping_timeout=WAIT) as (_ws, conn):
        # Nobody reads, and the grace outlasts the test: the keepalive timer still
        # makes the reader thread take the socket and ping.
        frame = conn.recv_frame(timeout=WAIT)
        assert frame.opcode == 0x9


@pytest.mark.usefixtures("long_grace")
@off_main_thread
def test_a_second_waiting_thread_is_not_left_waiting(raw_peer) -> None:
    with read_once(raw_peer) as (ws, conn):
        first = Background(ws.get_message, timeout=WAIT)
        second = Background(ws.get_message, timeout=WAIT)
        conn.send_text("a")
        conn.send_text("b")
        assert sorted([first.result(), second.result()]) == ["a", "b"]


@off_main_thread
def test_many_threads_share_the_messages(syncws_server) -> None:
    count = 3000

    def handler(request, srv):
        ws = request.accept()
        for i in range(count):
            ws.send_message(str(i))
        ws.close()

    srv = syncws_server(handler)
    got: list[list[int]] = [[] for _ in range(4)]
    with syncws.connect(srv.url) as ws:

        def consume(mine: list[int]) -> None:
            with pytest.raises(ConnectionClosed):
                while True:
                    mine.append(int(ws.get_message(timeout=WAIT)))

        threads = [Background(consume, g) for g in got]
        for t in threads:
            t.result()
    everything = sorted(i for g in got for i in g)
    assert everything == list(range(count))
    for mine in got:
        assert mine == sorted(mine)


@off_main_thread
def test_a_burst_beyond_the_queue_size_arrives_whole_and_in_order(syncws_server) -> None:
    count = 5000

    def handler(request, srv):
        ws = request.accept()
        for i in range(count):
            ws.send_message(i.to_bytes(4, "big"))
        ws.get_message(timeout=WAIT)

    srv = syncws_server(handler)
    with syncws.connect(srv.url, message_queue_size=1) as ws:
        received = [int.from_bytes(ws.get_message(timeout=WAIT), "big") for _ in range(count)]
    assert received == list(range(count))


@off_main_thread
def test_close_from_another_thread_wakes_a_caller_reading(raw_peer) -> None:
    peer = raw_peer()
    ws = syncws.connect(peer.url, disconnect_timeout=WAIT)
    conn = peer.connection()
    conn.send_text("warm up")
    assert ws.get_message(timeout=WAIT) == "warm up"
    getter = Background(ws.get_message)  # no timeout: reads the socket directly
    closer = Background(ws.close)
    conn.close_handshake()
    closer.result()
    with pytest.raises(ConnectionClosed):
        getter.result()


@off_main_thread
def test_get_message_with_zero_timeout_reads_what_is_there(raw_peer) -> None:
    with read_once(raw_peer) as (ws, conn):
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=0)
        conn.send_text("polled")
        # Polling (a GUI loop) finds the message, whoever reads it.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                assert ws.get_message(timeout=0) == "polled"
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the message never showed up")


# ------------------------------------------------- server connections: reader on demand


@off_main_thread
def test_an_idle_server_connection_has_no_reader_thread(syncws_server) -> None:
    waiting = threading.Event()
    accepted: list[syncws.WebSocketConnection] = []

    def handler(request, srv):
        ws = request.accept()
        accepted.append(ws)
        waiting.set()
        for message in ws:
            ws.send_message(message)

    srv = syncws_server(handler)
    with syncws.connect(srv.url) as ws:
        assert waiting.wait(WAIT)
        # The handler waits in get_message and reads the socket itself: the server
        # checks the connection once, shortly after it opened, and starts nothing.
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=0.3)
        assert accepted[0].reader_thread is None
        # It still answers, on the handler's own thread.
        assert ws.ping(timeout=WAIT) < WAIT
        ws.send_message("hi")
        assert ws.get_message(timeout=WAIT) == "hi"
        # Back in get_message after its message, the handler reads again: the check
        # that follows each of its messages starts nothing either.
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=0.3)
        assert accepted[0].reader_thread is None
        ws.send_message("again")
        assert ws.get_message(timeout=WAIT) == "again"


@off_main_thread
def test_a_server_handler_that_does_not_read_gets_a_reader_thread(syncws_server) -> None:
    release = threading.Event()

    def handler(request, srv):
        ws = request.accept()
        release.wait(WAIT)  # Busy with something else: never reads.
        ws.close()

    srv = syncws_server(handler)
    try:
        with syncws.connect(srv.url) as ws:
            # The server starts the reader thread, which answers the ping.
            assert ws.ping(timeout=WAIT) < WAIT
    finally:
        release.set()


@off_main_thread
def test_a_handler_that_reads_until_the_close_ends_it_on_its_own_thread(
    syncws_server, monkeypatch
) -> None:
    # The timer's check, which would start a reader thread, comes too late to matter.
    monkeypatch.setattr(_starter, "START_DELAY", 3600.0)
    accepted: list[syncws.WebSocketConnection] = []

    def handler(request, srv):
        ws = request.accept()
        accepted.append(ws)
        for message in ws:
            ws.send_message(message)

    srv = syncws_server(handler)
    for _ in range(3):
        with syncws.connect(srv.url, disconnect_timeout=WAIT) as ws:
            pass
        assert ws.close_reason == syncws.CloseReason(1000, None)
    for ws in accepted:
        wait_for(lambda ws=ws: ws.has_ended, what="the server's connection to end")
        assert ws.close_reason == syncws.CloseReason(1000, None)
        # The handler read the close frame, returned, and the server's close()
        # finished the connection on the handler's thread.
        assert ws.reader_thread is None


@off_main_thread
def test_a_connection_ends_while_its_handler_still_runs(syncws_server) -> None:
    accepted: list[syncws.WebSocketConnection] = []
    release = threading.Event()

    def handler(request, srv):
        ws = request.accept()
        accepted.append(ws)
        with pytest.raises(ConnectionClosed):
            ws.get_message(timeout=WAIT)
        release.wait(WAIT)  # Busy after the close: the server finishes it meanwhile.

    srv = syncws_server(handler)
    try:
        ws = syncws.connect(srv.url, disconnect_timeout=WAIT)
        ws.close()
        assert ws.close_reason == syncws.CloseReason(1000, None)
        wait_for(lambda: accepted[0].has_ended, what="the server's connection to end")
        assert accepted[0].is_closed
    finally:
        release.set()


@off_main_thread
def test_a_close_is_answered_soon_after_the_handler_stops_reading(syncws_server) -> None:
    release = threading.Event()

    def handler(request, srv):
        ws = request.accept()
        ws.send_message(ws.get_message(timeout=WAIT))
        release.wait(WAIT)  # Busy with something else: reads no more.

    srv = syncws_server(handler)
    try:
        with syncws.connect(srv.url, disconnect_timeout=WAIT) as ws:
            ws.send_message("x")
            assert ws.get_message(timeout=WAIT) == "x"
            started = time.monotonic()
            ws.close()
            # The reader thread took the socket back after a short grace: the
            # handler read once, so the grace is the shortest.
            assert time.monotonic() - started < _readturns.GRACE / 2
            assert ws.close_reason == syncws.CloseReason(1000, None)
    finally:
        release.set()
