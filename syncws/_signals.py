"""Signals that stop a server: SIGTERM as Ctrl-C, and a second one that stops the wait.

:func:`sigterm_interrupts` makes SIGTERM, what service managers and container runtimes
send, raise :exc:`KeyboardInterrupt` as Ctrl-C does, for as long as a server runs.

:class:`SecondInterrupt` serves the graceful shutdown that follows the first
interrupt: while it waits for handlers, another SIGINT (or SIGTERM, when it raises
:exc:`KeyboardInterrupt`) stops the waiting at once instead of landing anywhere in
the shutdown as an exception. Its handler raises only inside :meth:`SecondInterrupt.wait`,
which catches it; elsewhere it only counts the interrupt.

:class:`SignalWakeup` lets a signal wake the main thread's ``select`` in whichever
thread the kernel delivered it.

Signal handlers run in the main thread only: off it, all three do nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, NoReturn

__all__ = [
    "SIGTERM_MESSAGE",
    "SecondInterrupt",
    "SignalWakeup",
    "interrupted_inside",
    "on_main_thread",
    "raise_interrupt",
    "sigterm_interrupts",
]


def on_main_thread() -> bool:
    """Whether the caller runs on the main thread, the one that runs signal handlers.

    Only there can an exception (:exc:`KeyboardInterrupt`) arrive between any two
    steps of the library's code.
    """
    return threading.get_ident() == _main_ident


_main_ident = threading.main_thread().ident


def _forked() -> None:
    global _main_ident  # noqa: PLW0603 - the thread that forked is the child's main thread
    _main_ident = threading.main_thread().ident


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)

#: The modules whose code holds a connection's locks.
_CONNECTION_MODULES = frozenset(
    f"syncws.{name}"
    for name in (
        "_deflate",
        "_framing",
        "_latch",
        "_messages",
        "_protocol",
        "_reader",
        "_readturns",
        "_starter",
        "_transport",
        "broadcast",
        "connection",
        "notify",
    )
)


def interrupted_inside(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a frame below it on the stack runs a connection's code.

    ``frame`` is the caller of ``WebSocketConnection.close()``. When close() is called
    from a signal handler, the frames below the handler's are those of the code it
    interrupted, on the same thread. (The library itself never calls the public
    close() from its own code.)
    """
    while frame is not None:
        if frame.f_globals.get("__name__") in _CONNECTION_MODULES:
            return True
        frame = frame.f_back
    return False


#: The argument of the :exc:`KeyboardInterrupt` that SIGTERM raises.
SIGTERM_MESSAGE = "SIGTERM"


def raise_interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    """Handle SIGTERM as Python handles SIGINT: raise :exc:`KeyboardInterrupt`."""
    raise KeyboardInterrupt(SIGTERM_MESSAGE)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :exc:`KeyboardInterrupt` in the main thread.

    The handler in place before is restored when the block ends. Nothing changes off
    the main thread, when SIGTERM is ignored (a choice of whoever started the
    process, as Python leaves an ignored SIGINT ignored), or when its handler was not
    installed from Python and so could not be restored.
    """
    if not on_main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None or previous == signal.SIG_IGN:
        yield
        return
    try:
        # Inside the try: a SIGTERM right after this call still restores the handler.
        signal.signal(signal.SIGTERM, raise_interrupt)
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raises_interrupt(handler: object) -> bool:
    """Whether a signal's handler is one that raises :exc:`KeyboardInterrupt`."""
    return handler is signal.default_int_handler or handler is raise_interrupt


class SecondInterrupt:
    """Within ``with``: SIGINT and SIGTERM cut the waits of :meth:`wait` short.

    Only the signals whose handler raised :exc:`KeyboardInterrupt` (Python's own for
    SIGINT, :func:`raise_interrupt` for SIGTERM) are taken over, so that a handler an
    application installed keeps working; the handlers are restored on exit.
    :attr:`count` counts the signals that arrived meanwhile.
    """

    def __init__(self) -> None:
        #: How many signals arrived since :meth:`__enter__`.
        self.count = 0
        self._armed = False
        self._previous: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        """Whether a signal was taken over: only then can :meth:`wait` end early."""
        return bool(self._previous)

    def __enter__(self) -> SecondInterrupt:
        """Take SIGINT and SIGTERM over (main thread only)."""
        if not on_main_thread():
            return self
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                handler = signal.getsignal(signum)
                if _raises_interrupt(handler):
                    self._previous[signum] = handler
                    signal.signal(signum, self._handle)
        except BaseException:
            # The signal not yet taken over raised KeyboardInterrupt in between.
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Restore the handlers taken over."""
        self._armed = False
        while self._previous:
            signum, handler = self._previous.popitem()
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self._armed:
            self._armed = False  # One exception per wait, raised where it is caught.
            raise KeyboardInterrupt

    def wait(self, wait: Callable[[], object], since: int = 0) -> bool:
        """Call ``wait()``, a blocking call, unless a signal came.

        ``wait()`` must be safe to interrupt with an exception at any point, as a
        wait on a :class:`threading.Condition` is; :meth:`threading.Thread.join` is
        not (an exception inside it can mark a running thread as stopped).

        :param since: the :attr:`count` from which on a signal ends the wait.
        :returns: ``False`` when a signal came after ``since`` (before or during the
            call, which it then ended), ``True`` when ``wait()`` returned by itself.
        """
        if self.count > since:
            return False
        if not self._previous:  # Nothing taken over: nothing to catch.
            wait()
            return True
        try:
            try:
                self._armed = True
                if self.count <= since:
                    wait()
            finally:
                self._armed = False
        except KeyboardInterrupt:
            if self.count <= since:  # Not raised by this object's handler.
                raise
        return self.count <= since


class SignalWakeup:
    """Within ``with``: a signal arriving in any thread makes :attr:`reader` readable.

    The kernel may deliver SIGINT or SIGTERM to any thread of the process, while
    Python runs signal handlers in the main thread only, the next time it runs
    Python code. A main thread blocked in ``select`` with no timeout would not notice
    a signal that landed on a reader thread until something else woke it. With a
    socket as the process's signal wakeup descriptor (:func:`signal.set_wakeup_fd`),
    the interpreter's low-level handler writes a byte to it in whichever thread the
    signal lands, and a ``select`` on :attr:`reader` returns.

    :attr:`reader` is ``None`` off the main thread, and when the wakeup descriptor is
    already someone else's (an event loop's), which is left in place.
    """

    def __init__(self) -> None:
        #: The socket to select on for reading (drain it when readable), or ``None``.
        self.reader: socket.socket | None = None
        self._writer: socket.socket | None = None

    def __enter__(self) -> SignalWakeup:
        """Make a socket pair the signal wakeup descriptor (main thread only)."""
        if not on_main_thread():
            return self
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)
        try:
            try:
                previous = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
            except (ValueError, OSError):
                previous = None
            if previous != -1:
                if previous is not None:
                    signal.set_wakeup_fd(previous)  # Someone else's: give it back.
                self.reader.close()
                self._writer.close()
                self.reader = self._writer = None
        except BaseException:
            # An interrupt in between: leave no descriptor about to be closed in place.
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop using the socket pair, then close it."""
        if self._writer is None or self.reader is None:
            return
        current = signal.set_wakeup_fd(-1)
        if current not in (-1, self._writer.fileno()):
            signal.set_wakeup_fd(current)  # Set by someone else since: leave theirs.
        self.reader.close()
        self._writer.close()
        self.reader = self._writer = None
