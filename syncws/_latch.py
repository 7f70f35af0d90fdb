"""A one-shot event, lighter than :class:`threading.Event`.

Every connection has one, set when it is closed. :class:`threading.Event` carries a
condition variable with a deque of waiters, about 1.5 KiB per connection; a latch is a
held lock that :meth:`Latch.set` releases, and waiters pass through one at a time.
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["Latch"]


class Latch:
    """Set once, waited on by any number of threads."""

    __slots__ = ("_gate", "_set")

    def __init__(self) -> None:
        self._set = False
        self._gate = threading.Lock()
        self._gate.acquire()

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._set

    def set(self) -> None:
        """Open the latch for good, waking every waiter; later calls do nothing."""
        if self._set:
            return
        self._set = True
        with contextlib.suppress(RuntimeError):  # Another thread set it meanwhile.
            self._gate.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the latch is set, at most ``timeout`` seconds (``None``: no limit).

        :returns: whether it is set.
        """
        if self._set:
            return True
        if timeout is None:
            passed = self._gate.acquire()
        elif timeout <= 0:
            passed = self._gate.acquire(blocking=False)
        else:
            passed = self._gate.acquire(timeout=timeout)
        if passed:
            self._gate.release()  # For the next waiter.
        return passed or self._set
