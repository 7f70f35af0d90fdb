"""Starting a connection's reader thread: with the connection, or on demand.

A client connection's reader thread starts with it (:meth:`ReaderStart.start_now`);
a server connection's starts on demand (:mod:`._starter`), when no caller of
``get_message`` reads. :class:`ReaderStart` is the part of :class:`~._reader.Reader`
that does it; the reader's loop (``run``) is the thread's target.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ._starter import STARTER

if TYPE_CHECKING:
    from ._readturns import ReadTurns

__all__ = ["ReaderStart"]

logger = logging.getLogger("syncws")


class ReaderStart:
    """Starts the reader thread of one connection (a base class of the reader)."""

    __slots__ = ("check_asked", "number", "on_demand", "start_warned", "thread", "turns")

    #: A check of the process's timer is due (see :meth:`start_later`).
    check_asked: bool

    #: The connection's number, in its thread's name.
    number: int
    #: The thread starts on demand (a server's connection), not with the connection.
    on_demand: bool
    #: A failure to start the thread was logged already.
    start_warned: bool
    #: The reader thread, once it runs (``None`` before).
    thread: threading.Thread | None
    #: Whose turn it is to read.
    turns: ReadTurns

    def run(self) -> None:
        """Run the reader's loop: the thread's target (the reader defines it)."""
        raise NotImplementedError

    def start_now(self) -> None:
        """Start the reader thread with the connection (a client's).

        :raises RuntimeError: when no thread can start: the connection cannot open.
        """
        self.turns.start_reader_once(self.new_thread)

    def schedule_start(self) -> None:
        """Have the process's timer check shortly whether the reader thread must start."""
        STARTER.opened()
        STARTER.check_soon(self)

    def start(self) -> bool:
        """Start the reader thread unless it runs already (any thread may call this).

        :returns: whether the reader's loop runs (on its thread, or on a thread that
            closes the connection). When the system cannot start a thread now, a
            warning is logged (once per connection) and a later call tries again (the
            timer's, shortly, for a server's connection); meanwhile callers of
            ``get_message`` read themselves.
        """
        if self.thread is not None:
            return True
        try:
            self.turns.start_reader_once(self.new_thread)
        except RuntimeError as exc:
            if not self.start_warned:
                self.start_warned = True
                logger.warning("%s: cannot start the reader thread yet: %s", self, exc)
            if self.on_demand:
                STARTER.check_soon(self)  # The timer tries again shortly.
            return False
        return True

    def new_thread(self) -> None:
        thread = threading.Thread(
            target=self.run,
            name=f"syncws-reader-{self.number}",
            # A daemon, so that a connection the application forgot to close never
            # keeps the interpreter from exiting. close() joins it.
            daemon=True,
        )
        thread.start()
        self.thread = thread  # Only once it runs: close() joins it.

    def hand_over(self) -> None:
        """Something waits for the network: the reader thread reads now if nobody does."""
        self.start()
        self.turns.hand_to_reader()

    def start_unless_caller_reads(self) -> None:
        """Start the reader thread unless a caller is reading (the timer calls this).

        Called by the process's timer (:mod:`._starter`) for a connection whose reader
        thread starts on demand, shortly after it asked: after the connection opened,
        and after a handler's read ended the input. A handler waiting in
        ``get_message`` reads itself, and its connection needs no reader thread until
        it stops (an idle connection then costs one thread); a handler that closes the
        connection soon after its end ends it on its own thread; any other handler
        gets the reader thread.
        """
        self.check_asked = False
        if self.thread is None:
            try:
                self.turns.start_reader_once(self.new_thread, unless_caller_reads=True)
            except RuntimeError as exc:
                # The system cannot start a thread now: try again shortly.
                logger.debug("%s: cannot start the reader thread yet: %s", self, exc)
                STARTER.check_soon(self)

    def start_later(self) -> None:
        """Have the reader thread start soon, unless a caller reads by then.

        A caller of ``get_message`` stopped reading. On a server's connection, the
        process's timer looks in :data:`~._starter.START_DELAY` seconds (one look at a
        time per connection): a handler back in ``get_message`` by then reads itself,
        and its connection still needs no reader thread, so that a connection idle
        between messages costs one thread. Elsewhere it starts now.
        """
        if not self.on_demand:
            self.start()
        elif not self.check_asked:
            self.check_asked = True
            STARTER.check_soon(self)
