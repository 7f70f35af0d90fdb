"""A deadline spent across the steps of one blocking operation."""

from __future__ import annotations

import time

__all__ = ["Deadline", "check_timeout"]


def check_timeout(name: str, value: float | None, *, allow_none: bool = True) -> None:
    """Raise ValueError (TypeError for a non-number) unless ``value`` is seconds >= 0."""
    if value is None and allow_none:
        return
    if value is None:
        raise ValueError(f"{name} must be a number >= 0")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, not {type(value).__name__}")
    if not value >= 0:  # NaN too
        raise ValueError(f"{name} must be a number >= 0{' or None' if allow_none else ''}")


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
