"""Several worker processes serving one port, and the supervisor that keeps them running.

:class:`WorkerPool` is the supervisor. It forks ``workers`` processes (the ``fork``
start method of :mod:`multiprocessing`, so that the handler may be any callable, a
closure too); each runs a :class:`~syncws.WebSocketServer` of its own. On Linux each
worker listens on a socket of its own bound with ``SO_REUSEPORT`` to the same port, and
the kernel spreads new connections over them by a hash of the client's address and
port. Elsewhere (``SO_REUSEPORT`` does not balance on macOS or the BSDs) the supervisor
binds one listening socket and the workers accept from it in turn.

With port 0 the supervisor binds the port first, with ``SO_REUSEPORT``, without
listening: the port stays reserved for the workers (and for workers started again
later) while the supervisor's socket takes no connection itself.

The supervisor waits on the workers' process sentinels: a worker that dies is started
again, at once the first time, after a growing pause when it keeps dying soon after
its start. SIGINT and SIGTERM (main thread only) or :meth:`WorkerPool.shutdown` stop
it: every worker gets SIGTERM, which its server handles as a graceful shutdown (code
1001 to every client), and workers still running after ``disconnect_timeout`` and
:data:`STOP_MARGIN` are killed. A second signal sends SIGTERM again, which cuts the
workers' shutdowns short, and waits :data:`HURRY_GRACE` at most.

Workers ignore SIGINT: a Ctrl-C at a terminal reaches the whole process group, and the
supervisor alone decides. Each worker watches a pipe whose writing end only the
supervisor holds; when the supervisor dies (``kill -9``) the pipe ends and the worker
shuts down by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._deadline import Deadline
from ._listen import adopt, bind, check_address
from ._options import seconds
from ._signals import SecondInterrupt, SignalWakeup, raise_interrupt, sigterm_interrupts
from ._transport import endpoint
from .request import Handler, ServeOptions, check_handler, check_options
from .server import WebSocketServer
from .types import Endpoint

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from typing_extensions import Unpack

__all__ = ["BALANCED_REUSE_PORT", "WorkerPool", "check_workers"]

logger = logging.getLogger("syncws")

#: Whether each worker binds a socket of its own with ``SO_REUSEPORT`` (the kernel then
#: balances connections between them: Linux); otherwise the workers share one socket.
BALANCED_REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
#: Seconds :meth:`WorkerPool.start` waits for every worker to listen.
START_TIMEOUT = 10.0
#: A worker that ran this many seconds before it died is started again at once.
STABLE_AFTER = 10.0
#: The pause before the second quick restart of a worker, doubled each time after.
RESTART_PAUSE = 0.5
#: The longest pause between restarts of a worker that keeps dying.
RESTART_PAUSE_MAX = 30.0
#: Seconds granted to the workers on top of ``disconnect_timeout`` before they are killed.
STOP_MARGIN = 1.0
#: After a second interrupt: seconds the workers get before they are killed.
HURRY_GRACE = 1.0
#: Seconds to wait for a killed worker to be reaped; the longest wait of the loop.
POLL = 1.0
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def check_workers(workers: object) -> int:
    """Return ``workers`` if it is a whole number >= 1; raise TypeError or ValueError."""
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int, not {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    return workers


@dataclass
class _Slot:
    """One worker's place in the pool: its current process and its restart history."""

    index: int
    process: BaseProcess | None = None
    started: float = 0.0
    quick_deaths: int = 0
    due: float | None = None  # monotonic time to start it again


class WorkerPool:
    """A supervisor: ``workers`` forked processes, each running a :class:`WebSocketServer`.

    All workers serve the same port: on Linux each listens on a socket of its own with
    ``SO_REUSEPORT`` and the kernel balances new connections between them; on other
    POSIX systems they share one listening socket bound here. The workers are forked
    (the ``fork`` start method of ``multiprocessing``): the handler may be any callable,
    and each worker starts with a copy of the calling process, which should not be
    running threads of its own at the time. Windows has no ``fork``. The workers are
    daemonic ``multiprocessing`` processes: a handler may run commands
    (``subprocess``) but not start ``multiprocessing`` processes of its own.

    Options apply per worker: ``max_connections=100`` with 4 workers admits up to 400
    clients. Each worker is a process of its own, so :func:`broadcast` and anything a
    handler keeps in memory reach only the clients of that worker.

    Start with :meth:`start` (optional: it waits until every worker listens), then
    :meth:`serve_forever`, which watches the workers until SIGINT, SIGTERM or
    :meth:`shutdown`. :func:`serve_websocket` with ``workers=N`` does both.

    :param handler: called with a :class:`WebSocketRequest` for each client, in the
        worker that accepted it.
    :param host: as for :class:`WebSocketServer`.
    :param port: the TCP port; ``0`` (the default) picks one free port for every worker.
    :param ssl_context: for TLS: a server-side :class:`ssl.SSLContext`.
    :param workers: how many worker processes (at least 1).
    :param sock: a bound stream socket for the workers to share instead of ``host`` and
        ``port`` (they then share it on every platform); closed at the end.
    :param reuse_port: also set ``SO_REUSEPORT`` on a socket the workers share, for
        other processes to listen on the port too (on Linux the workers' own sockets
        always have it).
    :param options: see :class:`ServeOptions`; they apply to each worker's server.
    :raises ValueError: for a bad address (as :class:`WebSocketServer`, and
        ``unix_path`` is not supported), a bad option, where ``fork`` is missing, or
        when a name to share one socket on resolves to several addresses.
    :raises TypeError: for an unknown option or a handler that cannot be called.
    :raises OSError: when the address cannot be bound.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        *,
        workers: int,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        **options: Unpack[ServeOptions],
    ) -> None:
        check_handler(handler)
        check_options(options)
        self._count = check_workers(workers)
        check_address(host, port, sock, None, reuse_port)
        # Imported here, in the parent and before any fork: multiprocessing (about 10 ms,
        # tempfile and subprocess with it) is for worker pools only, not every import.
        import multiprocessing  # noqa: PLC0415
        import multiprocessing.connection  # noqa: PLC0415

        if "fork" not in multiprocessing.get_all_start_methods():
            raise ValueError("workers > 1 needs the fork start method (POSIX systems only)")
        self._context = multiprocessing.get_context("fork")
        self._wait = multiprocessing.connection.wait
        self._handler = handler
        self._host = host
        self._ssl_context = ssl_context
        self._options = options
        self._own_sockets = sock is None and BALANCED_REUSE_PORT
        if sock is not None:
            self._sockets = [adopt(sock)]
        elif self._own_sockets:
            # Reserve the port for the workers, without taking connections.
            self._sockets = bind(host, port, reuse_port=True, listen=False)
        else:
            self._sockets = bind(host, port, reuse_port=reuse_port)
            if len(self._sockets) > 1:
                for each in self._sockets:
                    each.close()
                raise ValueError(
                    f"{host!r} has several addresses: the workers share one socket on "
                    "this platform, give one IP address"
                )
        address = self._sockets[0].getsockname()
        self._port = int(address[1])
        # A line "<pid>\n" from each worker that listens; the end of alive_w for workers
        # whose supervisor died.
        self._ready_r, self._ready_w = os.pipe()
        self._alive_r, self._alive_w = os.pipe()
        os.set_blocking(self._ready_r, False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._slots = [_Slot(index) for index in range(1, self._count + 1)]
        self._lock = threading.Lock()  # guards the flags below and the slots' processes
        self._started = self._serving = self._stopping = self._closed = False
        self._cut_short = False
        self._stop_timeout: float | None = None
        self._done = threading.Event()
        self._pending = b""

    # -- information -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port every worker serves (the real one when 0 was asked)."""
        return self._port

    @property
    def listeners(self) -> list[Endpoint | str]:
        """Where the workers listen, as endpoints."""
        is_ssl = self._ssl_context is not None
        return [endpoint(sock, local=True, is_ssl=is_ssl) for sock in self._sockets]

    @property
    def pids(self) -> list[int]:
        """The process IDs of the workers running now, in worker order."""
        with self._lock:
            return [s.process.pid for s in self._slots if s.process and s.process.pid]

    @property
    def shutdown_cut_short(self) -> bool:
        """Whether a second interrupt cut the workers' graceful shutdown short."""
        return self._cut_short

    def __repr__(self) -> str:
        return f"<WorkerPool {self._count} workers on {', '.join(map(str, self.listeners))}>"

    # -- starting ------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the workers and wait until each one listens.

        Called by :meth:`serve_forever` unless called before; once every worker
        listens, no client is refused. Idempotent.

        :raises RuntimeError: when a worker exits before it listens or the pool was
            shut down; the workers started are then stopped.
        :raises TimeoutError: when the workers do not all listen within ``timeout``.
        """
        with self._lock:
            if self._stopping:
                raise RuntimeError("the worker pool was shut down")
            if self._started:
                return
            self._started = True
        try:
            for slot in self._slots:
                self._fork(slot)
            self._wait_ready(Deadline(timeout))
        except BaseException:
            self._stop_workers(0.0, None)
            self._close()
            raise
        logger.info(
            "%d workers listening on %s",
            self._count,
            ", ".join(map(str, self.listeners)),
        )

    def _wait_ready(self, deadline: Deadline) -> None:
        waiting = set(self.pids)
        while waiting:
            if deadline.expired():
                raise TimeoutError(f"{len(waiting)} workers not listening yet")
            sentinels = {s.process.sentinel: s for s in self._slots if s.process}
            ready = self._wait([self._ready_r, *sentinels], deadline.remaining())
            waiting -= self._read_ready()
            for sentinel in ready:
                if sentinel in sentinels and sentinels[sentinel].process is not None:
                    process = sentinels[sentinel].process
                    assert process is not None
                    process.join(POLL)
                    raise RuntimeError(
                        f"worker {sentinels[sentinel].index} exited with code "
                        f"{process.exitcode} before it listened"
                    )

    def _read_ready(self) -> set[int]:
        """Return the PIDs of the workers that said they listen since the last call."""
        with contextlib.suppress(BlockingIOError):
            self._pending += os.read(self._ready_r, 4096)
        *lines, self._pending = self._pending.split(b"\n")
        pids = {int(line) for line in lines if line.strip().isdigit()}
        for pid in sorted(pids):
            index = next((s.index for s in self._slots if s.process and s.process.pid == pid), 0)
            logger.info("worker %d listening (pid %d)", index, pid)
        return pids

    def _fork(self, slot: _Slot) -> None:
        """Start the worker of ``slot``; SIGINT and SIGTERM wait until it took them over."""
        process = self._context.Process(
            target=self._worker, args=(slot.index,), name=f"syncws-worker-{slot.index}"
        )
        process.daemon = True  # Killed at the supervisor's exit if it never stops them.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        with self._lock:
            slot.process = process
            slot.started = time.monotonic()
            slot.due = None

    # -- in a worker ---------------------------------------------------------------------

    def _worker(self, index: int) -> None:
        """Serve in a worker process, just forked, with SIGINT and SIGTERM blocked."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # The supervisor's to handle.
        signal.signal(signal.SIGTERM, raise_interrupt)
        for fd in (self._ready_r, self._alive_w):
            os.close(fd)
        # The supervisor's signal wakeup socket stays open, unused (its writing end is
        # not this module's to close).
        self._wake_r.close()
        self._wake_w.close()
        shared = None if self._own_sockets else self._sockets[0]
        if self._own_sockets:
            for each in self._sockets:
                each.close()
        threading.Thread(target=self._watch_supervisor, name="syncws-watch", daemon=True).start()
        server: WebSocketServer | None = None
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            if shared is None:
                server = WebSocketServer(
                    self._handler,
                    self._host,
                    self._port,
                    self._ssl_context,
                    reuse_port=True,
                    **self._options,
                )
            else:
                server = WebSocketServer(
                    self._handler, ssl_context=self._ssl_context, sock=shared, **self._options
                )
            os.write(self._ready_w, b"%d\n" % os.getpid())
            with sigterm_interrupts():
                server.serve_forever()
        except KeyboardInterrupt:
            pass  # serve_forever() has shut the server down, unless it came before.
        except Exception:
            logger.exception("worker %d failed", index)
            raise SystemExit(1) from None
        finally:
            if server is not None:
                server.shutdown()

    def _watch_supervisor(self) -> None:
        """In a worker: SIGTERM to itself once the supervisor is gone (its pipe ended)."""
        while True:
            readable, _, _ = select.select([self._alive_r], [], [], POLL)
            if readable and not os.read(self._alive_r, 1):
                logger.warning("the supervisor is gone: worker (pid %d) stops", os.getpid())
                os.kill(os.getpid(), signal.SIGTERM)
                return

    # -- supervising ---------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Start the workers unless :meth:`start` did, then keep them running.

        A worker that exits is started again. Returns once the workers have stopped,
        after :meth:`shutdown` from another thread or, in the main thread, SIGINT
        (Ctrl-C) or SIGTERM: every worker then gets SIGTERM and shuts down gracefully,
        closing its connections with code 1001. Workers still running after
        ``disconnect_timeout`` plus one second are killed. A second
        SIGINT or SIGTERM meanwhile cuts the workers' shutdown short (see
        :attr:`shutdown_cut_short`). The signal handlers in place before are restored.

        :raises RuntimeError: when the pool is already serving or was shut down, or
            as :meth:`start`.
        """
        with self._lock:
            if self._serving or self._closed:
                raise RuntimeError("the worker pool is serving already or was shut down")
            self._serving = True
        try:
            with sigterm_interrupts(), SecondInterrupt() as signals, SignalWakeup() as wakeup:
                self.start()
                self._supervise(signals, wakeup.reader)
                self._stop_workers(self._stop_limit(), signals)
        except KeyboardInterrupt:
            # A signal before the handlers were taken over (or in start()).
            self._stop_workers(self._stop_limit(), None)
        finally:
            self._close()
            self._done.set()

    def _supervise(self, signals: SecondInterrupt, reader: socket.socket | None) -> None:
        """Restart the workers that exit, until a signal or :meth:`shutdown`."""
        while not signals.count and not self._stopping:
            now = time.monotonic()
            dues = [s.due for s in self._slots if s.due is not None]
            timeout = POLL if not dues else min(POLL, max(0.0, min(dues) - now))
            sentinels = [s.process.sentinel for s in self._slots if s.process]
            waits: list[socket.socket | int] = [self._ready_r, self._wake_r, *sentinels]
            if reader is not None:
                waits.append(reader)
            self._wait(waits, timeout)
            self._drain(reader)
            self._read_ready()
            for slot in self._slots:
                if slot.process is not None and slot.process.exitcode is not None:
                    self._died(slot)
                due = slot.due is not None and slot.due <= time.monotonic()
                if due and not signals.count and not self._stopping:
                    self._fork(slot)

    def _died(self, slot: _Slot) -> None:
        """Schedule the restart of a worker that exited."""
        assert slot.process is not None
        pid, code = slot.process.pid, slot.process.exitcode
        slot.process.join(POLL)
        lived = time.monotonic() - slot.started
        slot.quick_deaths = slot.quick_deaths + 1 if lived < STABLE_AFTER else 0
        pause = 0.0
        if slot.quick_deaths > 1:
            pause = min(RESTART_PAUSE * 2 ** (slot.quick_deaths - 2), RESTART_PAUSE_MAX)
        with self._lock:
            slot.process = None
            slot.due = time.monotonic() + pause
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        logger.warning(
            "worker %d (pid %s) died (%s); starting it again%s",
            slot.index,
            pid,
            how,
            f" in {pause:g} s" if pause else "",
        )

    def _drain(self, reader: socket.socket | None) -> None:
        for each in (self._wake_r, reader):
            if each is not None:
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    each.setblocking(False)
                    each.recv(4096)

    # -- stopping ------------------------------------------------------------------------

    def _stop_workers(self, timeout: float | None, signals: SecondInterrupt | None) -> None:
        """SIGTERM to every worker; wait ``timeout`` s (shorter after a second signal)."""
        with self._lock:
            self._stopping = True
            for slot in self._slots:
                slot.due = None
            running = [s.process for s in self._slots if s.process is not None]
        # Counted before the workers hear of it: a second signal may come as soon as
        # one of them says it is waiting.
        seen = 0 if signals is None else signals.count
        if running:
            logger.info("stopping %d workers", len(running))
        self._signal(running, signal.SIGTERM)
        deadline = Deadline(timeout)
        while running and not deadline.expired():
            wait = POLL if deadline.remaining() is None else min(POLL, deadline.remaining() or 0)
            self._wait([p.sentinel for p in running], wait)
            running = [p for p in running if p.exitcode is None]
            if signals is not None and signals.count > seen and running:
                seen = signals.count
                self._cut_short = True
                logger.warning("interrupted again, %d workers hurried", len(running))
                self._signal(running, signal.SIGTERM)
                deadline = Deadline(min(HURRY_GRACE, deadline.remaining() or HURRY_GRACE))
        if running:
            logger.warning("killing %d workers that did not stop in time", len(running))
            self._signal(running, signal.SIGKILL)
        for process in running:
            process.join(POLL)
        with self._lock:
            for slot in self._slots:
                if slot.process is not None:
                    slot.process.join(POLL)
                    slot.process = None

    @staticmethod
    def _signal(processes: list[BaseProcess], signum: int) -> None:
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the workers gracefully and wait until :meth:`serve_forever` returns.

        Callable from any thread; idempotent. Without :meth:`serve_forever` running,
        stops the workers :meth:`start` started in the calling thread.

        :param timeout: seconds each worker gets to close its clients before it is
            killed (default: ``disconnect_timeout``), plus one second.
        """
        with self._lock:
            if timeout is not None:
                self._stop_timeout = timeout
            serving, self._stopping = self._serving, True
        if not serving:
            self._stop_workers(self._stop_limit(), None)
            self._close()
            return
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        limit = self._stop_limit()
        self._done.wait(None if limit is None else limit + 2 * POLL)

    def _stop_limit(self) -> float | None:
        """Seconds the workers get to stop: the shutdown timeout plus the margin."""
        timeout = self._stop_timeout
        if timeout is None:
            timeout = seconds(self._options, "disconnect_timeout")
        return None if timeout is None else timeout + STOP_MARGIN

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for each in self._sockets:
            each.close()
        for fd in (self._ready_r, self._ready_w, self._alive_r, self._alive_w):
            os.close(fd)
        self._wake_r.close()
        self._wake_w.close()
