"""When the system cannot start a thread: connections fail cleanly or recover.

``threading.stack_size`` set beyond what the address space can hold makes every
``Thread.start()`` of the process fail with RuntimeError, as a container's pid or
memory limit does: a real failure of the system, for as long as the test wants it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, Background, SyncwsServer
from rawpeer import OP_PONG, raw_client

import syncws
from syncws._starter import STARTER


@contextlib.contextmanager
def no_new_threads() -> Iterator[None]:
    """While inside, no thread of this process can start."""
    threading.stack_size(2**47)
    try:
        probe = threading.Thread(target=lambda: None)
        with pytest.raises(RuntimeError):
            probe.start()
        yield
    finally:
        threading.stack_size(0)


def test_connect_fails_cleanly_when_no_thread_can_start(raw_peer: Any) -> None:
    peer = raw_peer()  # Its thread starts now, before the failure.
    with no_new_threads(), pytest.raises(RuntimeError):
        syncws.connect(peer.url)
    # Nothing was left behind (the leak check), and connecting works again.
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url) as ws:
        ws.ping(timeout=WAIT)


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_a_reader_thread_that_cannot_start_is_started_later(syncws_server: Any) -> None:
    """The handler stops reading while no thread can start: its reader starts later."""
    paused = threading.Event()
    resume = threading.Event()
    got: list[str | bytes] = []

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        got.append(ws.get_message(timeout=WAIT))  # reads the socket itself
        paused.set()
        resume.wait(WAIT)
        with contextlib.suppress(syncws.ConnectionClosed):
            for _ in ws:
                pass

    srv = syncws_server(handler)
    with syncws.connect(srv.url) as ws:
        with no_new_threads():
            ws.send_message("pause")
            assert paused.wait(WAIT)
        # The message was delivered, not lost to the failure.
        assert got == ["pause"]
        # Nobody reads on the server side but its reader thread, started once the
        # system allows it: pings are answered.
        ws.ping(timeout=WAIT)
        resume.set()


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_when_even_the_starter_cannot_start_the_accept_loop_retries(
    syncws_server: Any,
) -> None:
    """The connection opens while no thread can start, not even the starter's own.

    Its handler reads one message and stops reading: nothing in the connection asks
    for its reader thread again, so the server's accept loop, which sees the starter
    stalled, starts it once threads can start again.
    """
    arrived = threading.Event()
    go = threading.Event()
    paused = threading.Event()
    resume = threading.Event()
    reading_again = threading.Event()
    got: list[str | bytes] = []

    def handler(request: Any, srv: SyncwsServer) -> None:
        arrived.set()
        go.wait(WAIT)
        ws = request.accept()
        got.append(ws.get_message(timeout=WAIT))
        paused.set()
        resume.wait(WAIT)
        reading_again.set()
        with contextlib.suppress(syncws.ConnectionClosed):
            for _ in ws:
                pass

    srv = syncws_server(handler)
    opening = Background(raw_client, srv.port)  # A thread of its own, started now.
    assert arrived.wait(WAIT)
    with no_new_threads():
        go.set()
        conn = opening.result()
        conn.send_text("pause")
        assert paused.wait(WAIT)
        assert STARTER.stalled
    assert got == ["pause"]
    try:
        conn.send_ping(b"are you there")
        frame = conn.recv_frame(timeout=WAIT)
        assert (frame.opcode, frame.payload) == (OP_PONG, b"are you there")
        assert not reading_again.is_set()  # The reader thread answered, not the handler.
    finally:
        resume.set()
    conn.close_handshake()
