"""Whose turn it is to read the socket: the connection's reader thread, or a caller.

Why callers read
----------------
Handing a message from the reader thread to the thread that waits for it costs a
thread wake-up: about 7 µs when both run on one CPU, about 24 µs across CPUs, more
than the WebSocket framing of a small message. So a caller of ``get_message`` that
finds no message queued, and nobody else reading, reads the socket itself: the
message it waits for never crosses threads. This module decides who reads; it does
no I/O, and its clock can be replaced (the unit tests drive it with a fake one).

States and transitions
----------------------
One :class:`ReadTurns` per connection is in one of three states:

``READER``
    The reader thread reads (or, on a server connection whose reader thread never
    started, the thread that closes the connection runs the reader's loop).
``CALLER``
    One caller of ``get_message`` reads, for one read.
``FREE``
    Nobody reads. A caller may take the turn; the reader thread takes it once the
    *caller window* has passed with nobody reading, or at once when something else
    waits for the network (a ping, a close, a write the socket cannot take:
    :meth:`ReadTurns.hand_to_reader`), or when a keepalive timer is due.

Independently, :attr:`ReadTurns.input_ended` becomes true when the input ended (close
frame, failure, end of stream): from then on no caller takes the turn, and the reader
thread keeps it to finish the connection.

The allowed transitions, by event (:data:`TRANSITIONS` is the table that the code
checks each move against):

=====================  =======  ========  ====================================
event                  from     to        when
=====================  =======  ========  ====================================
``caller_takes``       FREE     CALLER    the input has not ended
``caller_gives_back``  CALLER   FREE      after the caller's read
``reader_takes``       FREE     READER    window over, timer due, input ended,
                                          or the reader thread starts for good
``reader_hands_over``  READER   FREE      a caller asked, after the reader's read
``after_fork``         any      READER    the child of ``fork()``: input ended
=====================  =======  ========  ====================================

The caller window
-----------------
When a caller gives the turn back, it stays free for a window: a caller that reads
message after message takes it again long before, and the reader thread never runs.
The window adapts to the caller: :attr:`Timing.factor` times the longest recent gap
between its reads, between :attr:`Timing.shortest` and :attr:`Timing.longest`
seconds. While callers keep taking turns, the reader thread checks only about once
every :attr:`Timing.longest` seconds whether they stopped.

Locks: one lock per object (``_lock``), a leaf: nothing else is locked while it is
held, and no callback runs under it (``start`` in :meth:`ReadTurns.start_reader_once`
runs after it is released).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["GRACE", "MIN_GRACE", "TRANSITIONS", "Event", "ReadTurns", "Timing", "Turn"]

#: The longest caller window, in seconds (the default of :attr:`Timing.longest`).
GRACE = 1.0
#: The shortest caller window, in seconds (the default of :attr:`Timing.shortest`).
MIN_GRACE = 0.02


@dataclass(frozen=True)
class Timing:
    """How long the turn stays free for callers after a caller's read.

    The defaults come from :data:`GRACE` and :data:`MIN_GRACE` when the object is made.
    """

    #: The longest window, in seconds; also how often the reader thread looks while
    #: callers take turns.
    longest: float = -1.0
    #: The shortest window, in seconds.
    shortest: float = -1.0
    #: The window is this many times the longest recent gap between a caller's reads:
    #: long enough that the callers of a busy server (hundreds of connections sharing
    #: two CPUs, each waiting its turn for a CPU) keep the turn from one read to the next.
    factor: float = 8.0
    #: How fast the longest recent gap is forgotten: its weight after each read.
    decay: float = 0.9

    def __post_init__(self) -> None:
        if self.longest < 0:
            object.__setattr__(self, "longest", GRACE)
        if self.shortest < 0:
            object.__setattr__(self, "shortest", MIN_GRACE)


class Turn(enum.Enum):
    """Who reads the socket now."""

    # Members are singletons: hash them by identity, in C (Enum's own hash is Python
    # code, and the table lookup of every move hashes two members).
    __hash__ = object.__hash__

    READER = "reader"
    CALLER = "caller"
    FREE = "free"


class Event(enum.Enum):
    """What moves the turn (see the module's table)."""

    __hash__ = object.__hash__

    CALLER_TAKES = "caller_takes"
    CALLER_GIVES_BACK = "caller_gives_back"
    READER_TAKES = "reader_takes"
    READER_HANDS_OVER = "reader_hands_over"
    AFTER_FORK = "after_fork"


#: The allowed moves: (state, event) -> next state.
TRANSITIONS: dict[tuple[Turn, Event], Turn] = {
    (Turn.FREE, Event.CALLER_TAKES): Turn.CALLER,
    (Turn.CALLER, Event.CALLER_GIVES_BACK): Turn.FREE,
    (Turn.FREE, Event.READER_TAKES): Turn.READER,
    (Turn.READER, Event.READER_HANDS_OVER): Turn.FREE,
    **{(turn, Event.AFTER_FORK): Turn.READER for turn in Turn},
}


class ReadTurns:
    """Whose turn it is to read one connection's socket (see the module's documentation).

    :param reader_starts_now: the reader thread starts with the connection (a client):
        the turn starts with it. Otherwise (a server connection, whose reader thread
        starts on demand) the turn starts free, and a caller may read first.
    :param timing: the caller window's parameters.
    :param clock: returns the time in seconds (:func:`time.monotonic`).
    """

    __slots__ = (
        "_clock",
        "_cond",
        "_free_until",
        "_gap",
        "_given_back_at",
        "_input_ended",
        "_lock",
        "_reader_sleeping",
        "_started",
        "_takes",
        "_timing",
        "_turn",
        "_wanted",
    )

    def __init__(
        self,
        *,
        reader_starts_now: bool = True,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._timing = timing or Timing()
        self._clock = clock
        self._turn = Turn.READER
        self._free_until = 0.0  # FREE: when the reader thread takes the turn
        self._given_back_at = 0.0  # when a caller last gave the turn back (0: not since)
        self._gap = 0.0  # the longest recent gap from then to the caller's next try
        self._reader_sleeping = False  # the reader thread waits without a timeout
        self._wanted = False  # a caller found the turn taken and waits for a message
        self._input_ended = False
        self._takes = 0  # how many times a caller took the turn
        self._started = False  # the reader thread was started (or its loop runs)
        if not reader_starts_now:
            self._turn = Turn.FREE
            self._open_window(self._clock())

    # -- state ---------------------------------------------------------------------------

    @property
    def turn(self) -> Turn:
        """Who reads now."""
        return self._turn

    @property
    def input_ended(self) -> bool:
        """Whether the input has ended: no caller reads any more."""
        return self._input_ended

    @property
    def caller_asked(self) -> bool:
        """Whether a caller found the turn taken and waits for the reader to hand it over."""
        return self._wanted

    def window(self) -> float:
        """Return the current caller window, in seconds."""
        with self._lock:
            return self._window()

    def _move(self, event: Event) -> None:
        """Make the move ``event`` (lock held); the one place where the turn changes."""
        assert self._lock.locked()
        try:
            self._turn = TRANSITIONS[self._turn, event]
        except KeyError:
            message = f"read turn: {event.value} is not allowed in {self._turn.value}"
            raise RuntimeError(message) from None

    def _window(self) -> float:
        timing = self._timing
        return min(timing.longest, max(timing.shortest, timing.factor * self._gap))

    def _open_window(self, now: float) -> None:
        """Start the caller window (lock held, the turn free)."""
        self._given_back_at = now
        self._free_until = now + self._window()

    # -- callers of get_message ----------------------------------------------------------

    def try_take(self, ask: bool = True) -> bool:
        """Take the turn for one read if it is free; else maybe ask for it, return False.

        :param ask: whether to ask the reader thread to hand the turn over after its
            next read. False for a caller that will not wait (``get_message(timeout=0)``):
            handing it over would leave the socket to nobody.
        """
        now = self._clock()
        with self._lock:
            if self._given_back_at:
                gap = min(now - self._given_back_at, self._timing.longest / self._timing.factor)
                self._gap = max(gap, self._gap * self._timing.decay)
                self._given_back_at = 0.0
            if self._turn is Turn.FREE and not self._input_ended:
                self._move(Event.CALLER_TAKES)
                self._takes += 1
                return True
            if ask and not self._input_ended:
                self._wanted = True
            return False

    def give_back(self, input_ended: bool) -> bool:
        """Give the turn back after one read; return whether another caller asked for it.

        :param input_ended: the read ended the input (close frame, failure or end of
            stream): the reader thread takes over for good, to finish the connection.
        """
        with self._lock:
            self._move(Event.CALLER_GIVES_BACK)
            self._open_window(self._clock())
            if input_ended:
                self._input_ended = True
            if self._reader_sleeping or input_ended:
                self._cond.notify()
            wanted, self._wanted = self._wanted, False
        return wanted

    def hand_to_reader(self) -> None:
        """Close the caller window: the reader thread takes the turn now unless a caller has it."""
        with self._lock:
            self._free_until = 0.0
            if self._turn is Turn.FREE:
                self._cond.notify()

    # -- starting the reader thread ------------------------------------------------------

    def start_reader_once(
        self, start: Callable[[], object], *, unless_caller_reads: bool = False
    ) -> None:
        """Call ``start`` (which starts the reader thread) unless it was called already.

        ``start`` runs without the lock held. If it raises (the system cannot start a
        thread now), nothing changed and a later call tries again.

        :param unless_caller_reads: nor when a caller has the turn now (the server's
            check); when no caller ever read, the reader thread then reads at once,
            without a window.
        """
        with self._lock:
            if self._started or (unless_caller_reads and self._turn is Turn.CALLER):
                return
            self._started = True
            free_until = self._free_until
            if unless_caller_reads and self._takes == 0:
                self._free_until = 0.0
        try:
            start()
        except BaseException:
            with self._lock:
                self._started = False
                self._free_until = free_until
            raise

    def take_for_closing(self) -> bool:
        """Take the turn to run the reader's loop on the calling thread, if possible.

        Possible when the reader thread was not started and no caller reads (a caller's
        read may not be bounded by any deadline).

        :returns: True when the calling thread now runs the reader's loop; the reader
            thread never starts.
        """
        with self._lock:
            if self._started or self._turn is not Turn.FREE:
                return False
            self._started = True
            self._move(Event.READER_TAKES)
            return True

    def take_for_closing_after_caller(self, timeout: float | None) -> bool:
        """Like :meth:`take_for_closing`, first waiting up to ``timeout`` for a caller's read.

        For ``close()`` when the reader thread cannot start.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._lock:
            while self._turn is Turn.CALLER:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return False
                self._sleep(remaining)
            if self._started:
                return False
            self._started = True
            self._move(Event.READER_TAKES)
            return True

    def after_fork(self) -> None:
        """In a child process after ``fork()``: fresh locks, and nobody reads any more."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        with self._lock:
            self._move(Event.AFTER_FORK)
        self._started = True
        self._input_ended = True
        self._reader_sleeping = False
        self._wanted = False

    # -- the reader thread ---------------------------------------------------------------

    def reader_should_take(self, timer: float | None) -> tuple[bool, float | None]:
        """Decide whether the reader thread takes a free turn now (lock held).

        :param timer: seconds until the next keepalive or closing deadline (``None``:
            none).
        :returns: whether to take it, and else how long to wait before deciding again
            (``None``: until woken).
        """
        wait = self._free_until - self._clock()
        if self._input_ended or wait <= 0 or (timer is not None and timer <= 0):
            return True, 0.0
        return False, wait if timer is None else min(wait, timer)

    def reader_wait_turn(self, next_timer: Callable[[], float | None]) -> bool:
        """Wait until the reader thread may read; return False once the input has ended.

        Returns early, with the turn, when ``next_timer()`` (seconds until the next
        keepalive or closing deadline) reaches zero while the turn is free. After
        False, the reader thread has the turn for good.

        While callers take turns reading, this thread wakes about once every
        :attr:`Timing.longest` seconds, and nobody has to wake it; once one caller has
        had the turn for that long (it waits for the network), this thread sleeps
        until that caller gives the turn back and wakes it.
        """
        seen = -1
        with self._lock:
            while True:
                if self._turn is Turn.READER:
                    return not self._input_ended
                if self._turn is Turn.CALLER:
                    # The caller runs the timers while it reads.
                    if self._takes == seen:
                        self._sleep(None)
                    else:
                        seen = self._takes
                        # Not the window, which may be short: hundreds of reader
                        # threads waking that often would cost a busy server more
                        # than the hand-offs they save.
                        self._cond.wait(self._timing.longest)
                    continue
                take, wait = self.reader_should_take(next_timer())
                if take:
                    self._move(Event.READER_TAKES)
                    return not self._input_ended
                self._cond.wait(wait)

    def reader_hand_over_if_asked(self) -> bool:
        """After a read by the reader thread: free the turn if a caller asked for it.

        :returns: whether it was freed (the caller must then be woken).
        """
        with self._lock:
            if not self._wanted or self._input_ended:
                return False
            self._wanted = False
            self._move(Event.READER_HANDS_OVER)
            self._open_window(self._clock())
            return True

    def reader_keep_for_good(self) -> None:
        """Keep the turn for good, once a caller reading now has given it back.

        Called by the reader thread when the input has ended (or when it failed), to
        end the connection: no caller reads any more.
        """
        with self._lock:
            self._input_ended = True
            while self._turn is Turn.CALLER:
                self._sleep(None)
            if self._turn is Turn.FREE:
                self._move(Event.READER_TAKES)

    def _sleep(self, timeout: float | None) -> None:
        """Wait (lock held) until a caller gives the turn back, or ``timeout``."""
        self._reader_sleeping = True
        self._cond.wait(timeout)
        self._reader_sleeping = False
