"""The timer that starts the reader threads of server connections, one per process.

A server connection does not start its reader thread when it opens: a handler that
waits in ``get_message`` reads the socket itself (see :mod:`._readturns`), and its
connection then costs no thread of its own. Something must still start the reader
thread of a connection whose handler does not read (it only sends, or is busy), a
short while after the connection opened or after the handler stopped reading, and
try again when the system could not start a thread. That is this module's job.

One :class:`ReaderStarter` per process (:data:`STARTER`) keeps a queue of
connections to look at, by due time, and one thread, ``syncws-starter``, that
calls each connection's ``start_unless_caller_reads()`` when it is due. The thread runs while at
least one such connection is open and ends with the last one (it is a daemon, like
the reader threads, and the last connection to end joins it). A connection counts
from its opening (:meth:`ReaderStarter.opened`) to its end (:meth:`ReaderStarter.ended`).

When the system cannot start the timer's thread, the calls return quietly; the next
call tries again, and so does a server's accept loop: it watches the timer
(:meth:`ReaderStarter.watch`), is woken when the thread cannot start, and retries every
:data:`START_DELAY` seconds while :attr:`ReaderStarter.stalled` is true.
Meanwhile a handler that reads still reads for itself.

Locks: one condition (``_cond``), a leaf: nothing else is locked while it is held, no
thread is started and no connection is called under it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["GRAIN", "STARTER", "START_DELAY", "ReaderStarter", "StartsReader"]

logger = logging.getLogger("syncws")

#: Seconds between a request (:meth:`ReaderStarter.check_soon`) and the check.
START_DELAY = 0.05
#: Checks are due on multiples of this many seconds (of the clock), so that those
#: asked for within it are made together: a server opening a connection a
#: millisecond wakes the thread a hundred times a second, not a thousand.
GRAIN = 0.01


class StartsReader(Protocol):
    """What the timer calls: a connection whose reader thread starts on demand."""

    def start_unless_caller_reads(self) -> None:
        """Start the reader thread unless a caller reads; ask again if none can start."""


class ReaderStarter:
    """Calls ``start_unless_caller_reads()`` of connections when it is due, on a thread of its own.

    :param clock: the monotonic clock (seconds).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        # (due time, sequence number, connection), the soonest first.
        self._due: list[tuple[float, int, StartsReader]] = []
        self._seq = itertools.count()
        self._open = 0
        self._running = False
        self._thread: threading.Thread | None = None
        # Called when the thread could not start (a server's accept loop, to retry).
        self._watchers: list[Callable[[], None]] = []

    def watch(self, wake: Callable[[], None]) -> None:
        """Have ``wake()`` called (on the failing thread) when the timer's thread cannot start.

        A server's accept loop watches, so that it wakes and retries (:meth:`retry`).
        ``wake`` must not block, nor call the timer.
        """
        with self._cond:
            self._watchers.append(wake)

    def unwatch(self, wake: Callable[[], None]) -> None:
        """Stop calling ``wake`` (see :meth:`watch`)."""
        with self._cond, contextlib.suppress(ValueError):
            self._watchers.remove(wake)

    def opened(self) -> None:
        """Count a connection that starts its reader on demand: the timer runs while one is open."""
        with self._cond:
            self._open += 1

    def ended(self) -> None:
        """Count such a connection out, as it ends: the timer stops with the last one.

        The last one waits for the timer's thread to end (it never waits for anything
        but its lock), so that no thread of syncws outlives the connections.
        """
        with self._cond:
            self._open -= 1
            thread = self._thread if self._open <= 0 else None
            if thread is not None:
                self._cond.notify()  # The thread ends.
        if thread is not None and thread is not threading.current_thread():
            with contextlib.suppress(RuntimeError):  # Not started yet: nothing to wait for.
                thread.join()

    def check_soon(self, connection: StartsReader, delay: float | None = None) -> None:
        """Call ``connection.start_unless_caller_reads()`` in ``delay`` seconds.

        :param delay: seconds (default :data:`START_DELAY`).
        """
        when = self._clock() + (START_DELAY if delay is None else delay)
        # Rounded up to the grain: checks asked for close together share one wake-up.
        when = math.ceil(when / GRAIN) * GRAIN
        with self._cond:
            # The thread waits for the soonest check: only a sooner one must wake it.
            wake = not self._due or when < self._due[0][0]
            heapq.heappush(self._due, (when, next(self._seq), connection))
            if wake:
                self._cond.notify()
        self.retry()

    def retry(self) -> None:
        """Start the timer's thread if checks wait and it does not run.

        :meth:`check_soon` calls this; so does the accept loop of a server while
        :attr:`stalled` (the system refused the thread when it was asked), so that a
        connection whose handler stopped reading gets its reader thread once threads
        can start again, with no further call of its own.
        """
        with self._cond:
            if self._running or not self._due:
                return
            self._running = True
            thread = self._thread = threading.Thread(
                target=self._run, name="syncws-starter", daemon=True
            )
        try:
            thread.start()
        except RuntimeError as exc:
            # Out of threads: the next request, or the accept loop, tries again.
            with self._cond:
                self._running = False
                self._thread = None
                watchers = list(self._watchers)
            logger.debug("cannot start the reader starter's thread yet: %s", exc)
            for wake in watchers:
                wake()

    @property
    def stalled(self) -> bool:
        """Whether checks wait with no thread to make them (it could not start)."""
        with self._cond:
            return bool(self._due) and not self._running

    @property
    def pending(self) -> int:
        """How many checks wait to be made."""
        with self._cond:
            return len(self._due)

    def _take_due(self) -> list[StartsReader] | None:
        """Wait for the next checks; ``None`` when the thread must end."""
        with self._cond:
            while True:
                if self._open <= 0:
                    # Every connection ended: their checks are moot.
                    self._due.clear()
                    self._running = False
                    self._thread = None
                    return None
                now = self._clock()
                if self._due and self._due[0][0] <= now:
                    due = []
                    while self._due and self._due[0][0] <= now:
                        due.append(heapq.heappop(self._due)[2])
                    return due
                self._cond.wait(self._due[0][0] - now if self._due else None)

    def _run(self) -> None:
        while (due := self._take_due()) is not None:
            for connection in due:
                try:
                    connection.start_unless_caller_reads()
                except Exception:
                    logger.exception("%s: starting the reader thread failed", connection)

    def after_fork(self) -> None:
        """In a child process after ``fork()``: forget the parent's connections."""
        self._cond = threading.Condition(threading.Lock())
        self._due = []
        self._open = 0
        self._running = False
        self._thread = None
        self._watchers = []


#: The process's timer.
STARTER = ReaderStarter()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=STARTER.after_fork)
