"""Who reads the socket: the connection's reader thread, or a caller of ``get_message``.

Handing a message from the reader thread to the thread that waits for it costs a
thread wake-up: about 7 µs when both run on one CPU, about 24 µs across CPUs, which is
more than the WebSocket framing of a small message. So a caller of ``get_message``
that finds no message queued, and nobody else reading, reads the socket itself: the
message it waits for then never crosses threads.

Exactly one thread holds the *read role* at a time; it alone reads the socket and feeds
the protocol engine. The reader thread holds it to begin with and whenever no caller
waits. (A server connection starts its reader thread on demand: its role starts lent,
and the server starts the thread unless the handler is reading.) A caller that wants
it while the reader thread holds it waits for a message in the queue as before, and
raises a flag; after its next read, the reader thread *lends*
the role (and puts a wake-up token in the queue, so that the caller tries again).

When a caller gives the role back, it stays lent for a *grace*: a caller that reads
message after message takes it back long before, and the reader thread never runs.
Once the grace has passed with nobody reading, the reader thread takes the role back,
so pings and close frames are still answered while the application does not read,
a grace late at most. The grace adapts to the caller: :data:`GAP_FACTOR` times the
longest recent gap between its reads, between :data:`MIN_GRACE` and :data:`GRACE`
seconds (a caller that reads in a loop gets the shortest); while a caller keeps reading,
the reader thread only checks about once every :data:`GRACE` seconds whether it stopped.
Anything that waits for the
network other than ``get_message`` (``ping``, ``close``, a write the socket cannot
take) calls :meth:`ReadRole.reclaim` to end the grace at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["GAP_FACTOR", "GRACE", "MIN_GRACE", "ReadRole"]

#: The longest the role stays lent after a caller last read, in seconds.
GRACE = 1.0
#: The shortest grace, in seconds.
MIN_GRACE = 0.02
#: The grace is this many times the longest recent gap between a caller's reads: long
#: enough that the callers of a busy server (hundreds of connections sharing two CPUs,
#: each caller waiting its turn for a CPU) keep the role from one message to the next.
GAP_FACTOR = 8.0
#: How fast the longest recent gap is forgotten: its weight after each read.
_GAP_DECAY = 0.9

_FREE = 0
_READER = 1
_CALLER = 2


class ReadRole:
    """The read role of one connection (see the module's documentation)."""

    __slots__ = (
        "_cond",
        "_finished",
        "_gap",
        "_given_at",
        "_lent_until",
        "_lock",
        "_owner",
        "_parked",
        "_started",
        "_takes",
        "_wanted",
    )

    def __init__(self) -> None:
        # Held directly (a C call) where nobody waits; _cond for waiting.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._owner = _READER
        self._lent_until = 0.0
        self._given_at = 0.0  # when a caller last gave the role back, or it was lent
        self._gap = 0.0  # the longest recent gap from then to the next try_take()
        self._parked = False  # the reader thread waits, without a timeout, for a caller
        self._wanted = False  # a caller found the role taken and waits for a message
        self._finished = False  # the input has ended: only the reader thread reads now
        self._takes = 0  # how many times a caller took the role
        self._started = False  # the reader thread was started

    # -- callers of get_message --------------------------------------------------------

    def try_take(self, want: bool = True) -> bool:
        """Take the role for one read if nobody holds it; else ask for it and return False.

        :param want: whether to ask for the role when it is taken; False for a caller
            that will not wait (``get_message(timeout=0)``): lending it the role after
            the reader thread's next read would leave the socket to nobody.
        """
        now = time.monotonic()
        with self._lock:
            if self._given_at:
                gap = min(now - self._given_at, GRACE / GAP_FACTOR)
                self._gap = max(gap, self._gap * _GAP_DECAY)
                self._given_at = 0.0
            if self._owner == _FREE and not self._finished:
                self._owner = _CALLER
                self._takes += 1
                return True
            if want and not self._finished:
                self._wanted = True
            return False

    def give_back(self, finished: bool) -> bool:
        """Return the role after one read; return whether another caller asked for it.

        :param finished: the read ended the input (close frame, failure or end of
            stream): the reader thread takes over for good, to finish the connection.
        """
        with self._lock:
            self._owner = _FREE
            self._lend(time.monotonic())
            if finished:
                self._finished = True
            if self._parked or finished:
                self._cond.notify()
            wanted, self._wanted = self._wanted, False
        return wanted

    def _grace(self) -> float:
        """Return the current grace, in seconds (lock held)."""
        return min(GRACE, max(MIN_GRACE, GAP_FACTOR * self._gap))

    def _lend(self, now: float) -> None:
        """Lend the role for a grace (lock held)."""
        self._given_at = now
        self._lent_until = now + self._grace()

    def reclaim(self) -> None:
        """End the grace: the reader thread takes the role now unless a caller holds it."""
        with self._lock:
            self._lent_until = 0.0
            if self._owner == _FREE:
                self._cond.notify()

    # -- starting the reader thread on demand -------------------------------------------

    def lend(self) -> None:
        """Start lent, before the reader thread runs: a caller may read first."""
        with self._lock:
            self._owner = _FREE
            self._lend(time.monotonic())

    def start_once(self, start: Callable[[], object], *, unless_reading: bool = False) -> None:
        """Call ``start`` (which starts the reader thread) unless it was called already.

        ``start`` runs without the lock held. If it raises (the system cannot start a
        thread now), the role is as before and a later call tries again.

        :param unless_reading: nor when a caller holds the role now (the server's check);
            when no caller ever read, the reader thread then reads at once, without a
            grace.
        """
        with self._lock:
            if self._started or (unless_reading and self._owner == _CALLER):
                return
            self._started = True
            lent_until = self._lent_until
            if unless_reading and self._takes == 0:
                self._lent_until = 0.0
        try:
            start()
        except BaseException:
            with self._lock:
                self._started = False
                self._lent_until = lent_until
            raise

    def forsake(self) -> None:
        """In a child process after ``fork()``: fresh locks, and nobody reads any more."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._owner = _READER
        self._started = True
        self._finished = True
        self._parked = False
        self._wanted = False

    def run_here(self) -> bool:
        """Take the role for the reader thread's loop on the calling thread, if possible.

        Possible when the reader thread was not started and no caller holds the role
        (a caller's read may not be bounded by any deadline).

        :returns: True when the calling thread now holds the role as the reader
            thread would; the reader thread never starts.
        """
        with self._lock:
            if self._started or self._owner != _FREE:
                return False
            self._started = True
            self._owner = _READER
            return True

    def run_here_after_caller(self, timeout: float | None) -> bool:
        """Like :meth:`run_here`, but first wait up to ``timeout`` for a caller's read to end.

        For ``close()`` when the reader thread cannot start.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._owner == _CALLER:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._parked = True
                self._cond.wait(remaining)
                self._parked = False
            if self._started:
                return False
            self._started = True
            self._owner = _READER
            return True

    @property
    def finished(self) -> bool:
        """Whether the input has ended: no caller reads any more."""
        return self._finished

    # -- the reader thread ---------------------------------------------------------------

    def acquire(self, next_timer: Callable[[], float | None]) -> bool:
        """Wait until the reader thread may read; return False once the input has ended.

        Returns early, holding the role, when ``next_timer()`` (seconds until the next
        keepalive or closing deadline) reaches zero while the role is lent. After
        False, the reader thread holds the role for good.

        While callers take turns reading, this thread wakes about once every
        :data:`GRACE` seconds, and nobody has to wake it; so after the last read of
        a caller that stops reading, it may take up to that long, plus the grace,
        to take the role back. Once one caller has held the role for a whole
        :data:`GRACE` (it waits for the network), this thread sleeps until that
        caller gives the role back and wakes it: it takes the role back a grace
        after that.
        """
        seen = -1
        with self._lock:
            while True:
                if self._owner == _READER:
                    return not self._finished
                if self._owner == _CALLER:
                    # The caller runs the timers while it reads.
                    if self._takes == seen:
                        self._parked = True
                        self._cond.wait()
                        self._parked = False
                    else:
                        seen = self._takes
                        # Not the grace, which may be short: hundreds of reader
                        # threads waking that often would cost a busy server more
                        # than the hand-offs they save.
                        self._cond.wait(GRACE)
                    continue
                wait = self._lent_until - time.monotonic()
                timer = next_timer()
                if self._finished or wait <= 0 or (timer is not None and timer <= 0):
                    self._owner = _READER
                    return not self._finished
                self._cond.wait(wait if timer is None else min(wait, timer))

    def release_if_wanted(self) -> bool:
        """After a read by the reader thread: lend the role if a caller asked for it.

        :returns: whether it was lent (the caller must then be woken).
        """
        with self._lock:
            if not self._wanted or self._finished:
                return False
            self._wanted = False
            self._owner = _FREE
            self._lend(time.monotonic())
            return True

    def finish(self) -> None:
        """Take the role for good, once a caller reading now has given it back.

        Called by the reader thread when the input has ended (or when it failed), to
        end the connection: no caller reads any more.
        """
        with self._lock:
            self._finished = True
            while self._owner == _CALLER:
                self._parked = True
                self._cond.wait()
                self._parked = False
            self._owner = _READER
