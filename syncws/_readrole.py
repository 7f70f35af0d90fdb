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

When a caller gives the role back, it stays lent for :data:`GRACE` seconds: a caller
that reads message after message takes it back long before, and the reader thread never
runs. Once the grace has passed with nobody reading, the reader thread takes the role
back, so pings and close frames are still answered while the application does not
read, at most :data:`GRACE` seconds late. Anything that waits for the network other
than ``get_message`` (``ping``, ``close``, a write the socket cannot take) calls
:meth:`ReadRole.reclaim` to end the grace at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["GRACE", "ReadRole"]

#: How long the role stays lent after a caller last read, in seconds. Long enough that
#: the callers of a busy server (hundreds of connections sharing two CPUs, each caller
#: waiting its turn) keep the role from one message to the next.
GRACE = 1.0

_FREE = 0
_READER = 1
_CALLER = 2


class ReadRole:
    """The read role of one connection (see the module's documentation)."""

    __slots__ = (
        "_cond",
        "_finished",
        "_lent_until",
        "_owner",
        "_parked",
        "_started",
        "_takes",
        "_wanted",
    )

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner = _READER
        self._lent_until = 0.0
        self._parked = False  # the reader thread waits, without a timeout, for a caller
        self._wanted = False  # a caller found the role taken and waits for a message
        self._finished = False  # the input has ended: only the reader thread reads now
        self._takes = 0  # how many times a caller took the role
        self._started = False  # the reader thread was started

    # -- callers of get_message --------------------------------------------------------

    def try_take(self) -> bool:
        """Take the role for one read if nobody holds it; else ask for it and return False."""
        with self._cond:
            if self._owner == _FREE and not self._finished:
                self._owner = _CALLER
                self._takes += 1
                return True
            if not self._finished:
                self._wanted = True
            return False

    def give_back(self, finished: bool) -> bool:
        """Return the role after one read; return whether another caller asked for it.

        :param finished: the read ended the input (close frame, failure or end of
            stream): the reader thread takes over for good, to finish the connection.
        """
        with self._cond:
            self._owner = _FREE
            self._lent_until = time.monotonic() + GRACE
            if finished:
                self._finished = True
            if self._parked or finished:
                self._cond.notify()
            wanted, self._wanted = self._wanted, False
        return wanted

    def reclaim(self) -> None:
        """End the grace: the reader thread takes the role now unless a caller holds it."""
        with self._cond:
            self._lent_until = 0.0
            if self._owner == _FREE:
                self._cond.notify()

    # -- starting the reader thread on demand -------------------------------------------

    def lend(self) -> None:
        """Start lent, before the reader thread runs: a caller may read first."""
        with self._cond:
            self._owner = _FREE
            self._lent_until = time.monotonic() + GRACE

    def start_once(self, start: Callable[[], object]) -> None:
        """Call ``start`` (which starts the reader thread) unless it was called already."""
        with self._cond:
            if self._started:
                return
            self._started = True
            start()

    def held_by_caller(self) -> bool:
        """Whether a caller of ``get_message`` holds the role now."""
        with self._cond:
            return self._owner == _CALLER

    # -- the reader thread ---------------------------------------------------------------

    def acquire(self, next_timer: Callable[[], float | None]) -> bool:
        """Wait until the reader thread may read; return False once the input has ended.

        Returns early, holding the role, when ``next_timer()`` (seconds until the next
        keepalive or closing deadline) reaches zero while the role is lent. After
        False, the reader thread holds the role for good.

        While callers take turns reading, this thread wakes about once per grace
        period, and nobody has to wake it. Once one caller has held the role for a
        whole grace period (it waits for the network), this thread sleeps until that
        caller gives the role back and wakes it.
        """
        seen = -1
        with self._cond:
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
        with self._cond:
            if not self._wanted or self._finished:
                return False
            self._wanted = False
            self._owner = _FREE
            self._lent_until = time.monotonic() + GRACE
            return True

    def finish(self) -> None:
        """Take the role for good, once a caller reading now has given it back.

        Called by the reader thread when the input has ended (or when it failed), to
        end the connection: no caller reads any more.
        """
        with self._cond:
            self._finished = True
            while self._owner == _CALLER:
                self._parked = True
                self._cond.wait()
                self._parked = False
            self._owner = _READER
