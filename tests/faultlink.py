"""Helpers of the fault tests: a syncws connection with a raw peer, from either side.

A :class:`Link` is a syncws connection (``ws``) and the raw peer at its other end
(``conn``, tests/rawpeer.py): with syncws as the client, a raw server peer; with
syncws as the server, a ``WebSocketServer`` whose handler hands its connection over
and a raw client.  :class:`Timing` checks measured durations against their bounds.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from helpers import MARGIN, UNIT, WAIT, Background, SyncwsServer, syncws_threads, wait_for
from rawpeer import (
    OP_CLOSE,
    OP_PING,
    ClientPeerConnection,
    PeerConnection,
    encode_frame,
    raw_client,
)

import syncws
from syncws import ConnectionClosed

#: Far more than the socket buffers of both ends hold: sending it must block.
BIG = 16 * 2**20
#: The receive buffer of a raw peer that stops reading (small: no autotuning).
PEER_RCVBUF = 64 * 1024
#: Slack below a timeout that must expire (clock granularity).
EARLY = 0.01 * UNIT
#: When set, every measured time is appended to this file.
FIGURES = os.environ.get("SYNCWS_FAULT_FIGURES")


class Timing:
    """Checks measured durations against bounds; records them when asked to."""

    def __init__(self, test: str) -> None:
        self.test = test

    def check(
        self, what: str, elapsed: float, *, at_most: float, at_least: float | None = None
    ) -> None:
        if FIGURES:
            low = "" if at_least is None else f"{at_least:.3f} <= "
            with open(FIGURES, "a", encoding="utf-8") as out:
                out.write(f"{self.test}\t{what}\t{elapsed:.3f}\t{low}x <= {at_most:.3f}\n")
        assert elapsed <= at_most, f"{what}: took {elapsed:.3f}s, more than {at_most:.3f}s"
        if at_least is not None:
            assert elapsed >= at_least - EARLY, (
                f"{what}: took {elapsed:.3f}s, less than the {at_least:.3f}s that must pass"
            )


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, BaseException | None]:
    """Call ``fn``; return how long it took and what it raised (``None``: nothing)."""
    start = time.monotonic()
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


class HandlerCall:
    """A call run by a server handler's own thread; the interface of ``Background``."""

    def __init__(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self.started = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        self.started.set()
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except Exception as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            self.done.set()

    def exception(self, timeout: float = WAIT) -> BaseException | None:
        assert self.done.wait(timeout), "the call in the handler thread is still running"
        return self.error

    def result(self, timeout: float = WAIT) -> Any:
        error = self.exception(timeout)
        if error is not None:
            raise error
        return self.value


class Link:
    """A syncws connection (``ws``) and the raw peer at its other end (``conn``).

    On the server side, ``ws`` comes out of a ``WebSocketServer`` handler, whose
    thread then runs what :meth:`call` gives it until :meth:`end`.
    """

    def __init__(
        self,
        side: str,
        ws: syncws.WebSocketConnection,
        conn: PeerConnection,
        before: set[threading.Thread],
        *,
        server: SyncwsServer | None = None,
        jobs: queue.Queue[HandlerCall | None] | None = None,
        handler_thread: threading.Thread | None = None,
    ) -> None:
        self.side = side
        self.ws = ws
        self.conn = conn
        self.before = before
        self.server = server
        self.jobs = jobs
        self.handler_thread = handler_thread
        self.ended = False

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in the thread that owns ``ws``: the handler's, or a new one."""
        if self.jobs is None:
            return Background(fn, *args, **kwargs)
        job = HandlerCall(fn, args, kwargs)
        self.jobs.put(job)
        assert job.started.wait(WAIT), "the handler thread is busy"
        return job

    def frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
        """A frame as this peer must put it on the wire (masked from a client)."""
        mask = os.urandom(4) if isinstance(self.conn, ClientPeerConnection) else None
        return encode_frame(opcode, payload, fin=fin, mask=mask)

    def sync(self) -> None:
        """Return once ``ws`` has processed everything the peer sent so far."""
        pinger = Background(self.ws.ping, b"sync", WAIT)
        frame = self.conn.recv_frame()
        assert (frame.opcode, frame.payload) == (OP_PING, b"sync"), frame
        self.conn.send_pong(b"sync")
        pinger.result()

    def readers(self) -> list[threading.Thread]:
        """Reader threads started since the link opened that still run."""
        return [
            t
            for t in syncws_threads()
            if t not in self.before and t.name.startswith("syncws-reader-")
        ]

    def wait_readers_gone(self, start: float, timing: Timing, what: str) -> None:
        """The connection ends by itself (no close() needed) within MARGIN of ``start``.

        A server connection may start its reader thread only on demand, so "no reader
        thread" alone proves nothing: the connection must also be over.
        """
        wait_for(
            lambda: self.ws.has_ended and not self.readers(),
            WAIT,
            "the connection to end and its reader thread with it",
        )
        timing.check(what, time.monotonic() - start, at_most=MARGIN)
        assert self.ws.is_closed

    def close_at_once(self, timing: Timing) -> None:
        """close() on a connection that is already over returns without waiting."""
        elapsed, error = timed(self.ws.close)
        assert error is None, error
        timing.check("close() once the connection is over", elapsed, at_most=MARGIN)

    def close_cleanly(self) -> None:
        """Our close(), answered by the peer, which then ends TCP as its role wants."""
        closer = self.call(timed, self.ws.close)
        frame = self.conn.expect_close()
        self.conn.send_frame(OP_CLOSE, frame.payload[:2])
        if isinstance(self.conn, ClientPeerConnection):
            self.conn.wait_eof()  # The server closes TCP first.
        self.conn.close()
        elapsed, error = closer.result()
        assert error is None, error
        assert elapsed < MARGIN, f"a clean close took {elapsed:.3f}s"

    def end(self) -> None:
        """Release everything; every syncws thread started since the link opened ends."""
        if self.ended:
            return
        self.ended = True
        self.conn.close()
        self.ws.close()
        if self.jobs is not None:
            assert self.handler_thread is not None and self.server is not None
            self.jobs.put(None)
            self.handler_thread.join(MARGIN)
            assert not self.handler_thread.is_alive(), "the handler thread did not end"
            self.server.stop()
        left = [t for t in syncws_threads() if t not in self.before]
        assert left == [], f"syncws threads left: {left}"


LinkFactory = Callable[..., Link]


def open_links(side: str, raw_peer: Any, syncws_server: Any) -> Iterator[LinkFactory]:
    """The body of a ``link`` fixture: yield a factory, release every link at the end.

    The factory is ``open_link(peer_rcvbuf=None, **options)``; ``side`` is the side
    syncws plays, ``"client"`` or ``"server"``.
    """
    links: list[Link] = []

    def open_link(peer_rcvbuf: int | None = None, **options: Any) -> Link:
        before = set(syncws_threads())
        if side == "client":
            peer = raw_peer(rcvbuf=peer_rcvbuf)
            ws = syncws.connect(peer.url, connect_timeout=WAIT, **options)
            links.append(Link(side, ws, peer.connection(), before))
            return links[-1]
        accepted: queue.Queue[tuple[syncws.WebSocketConnection, threading.Thread]] = queue.Queue()
        jobs: queue.Queue[HandlerCall | None] = queue.Queue()

        def handler(request: Any, srv: SyncwsServer) -> None:
            accepted.put((request.accept(), threading.current_thread()))
            while (job := jobs.get(timeout=6 * WAIT)) is not None:
                job.run()

        srv = syncws_server(handler, **options)
        conn = raw_client(srv.port, rcvbuf=peer_rcvbuf, timeout=WAIT)
        try:
            ws, thread = accepted.get(timeout=WAIT)
        except queue.Empty:
            conn.close()
            raise AssertionError("the server did not accept the raw client") from None
        links.append(Link(side, ws, conn, before, server=srv, jobs=jobs, handler_thread=thread))
        return links[-1]

    yield open_link
    for lnk in links:
        lnk.conn.close()
        if lnk.jobs is not None:
            lnk.jobs.put(None)
        lnk.ws.close()


def closed_code(exc: BaseException | None) -> int:
    assert isinstance(exc, ConnectionClosed), f"expected ConnectionClosed, got {exc!r}"
    return exc.reason.code


def numbered(i: int) -> str | bytes:
    """Message ``i``: text or binary, now and then large enough for partial writes."""
    size = 64 * 1024 if i % 16 == 0 else 64
    head = f"{i} "
    return head + "t" * size if i % 2 == 0 else head.encode() + b"b" * size


def number(message: str | bytes) -> int:
    text = message if isinstance(message, str) else message.decode("ascii", "replace")
    return int(text.split(" ", 1)[0])
