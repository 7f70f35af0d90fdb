"""A deadline spent across the steps of one blocking operation."""

from __future__ import annotations

import time

__all__ = ["Deadline"]


class Deadline:
    """The moment a blocking operation must give up.

    One deadline is created per operation and spent across all of its steps
    (connect, TLS, HTTP; or wait for the lock, then write), so the total never
    exceeds the timeout the caller gave.

    :param timeout: seconds from now, or ``None`` for no deadline.
    """

    __slots__ = ("_at",)

    def __init__(self, timeout: float | None) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout!r}")
        self._at = None if timeout is None else time.monotonic() + timeout

    @classmethod
    def at(cls, when: float | None) -> Deadline:
        """Make a deadline at an absolute :func:`time.monotonic` time (``None``: never)."""
        deadline = cls(None)
        deadline._at = when
        return deadline

    @property
    def when(self) -> float | None:
        """The absolute :func:`time.monotonic` time, or ``None``."""
        return self._at

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` when there is no deadline."""
        if self._at is None:
            return None
        return max(0.0, self._at - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self._at is not None and time.monotonic() >= self._at
