"""Recurring troubles of a server, logged without flooding the log.

Running out of file descriptors, threads that cannot start, a bug in a hook: each is
logged as one warning at most every :data:`WARNING_INTERVAL` seconds, with a count.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["WARNING_INTERVAL", "Trouble"]

logger = logging.getLogger("syncws")

#: At most one warning per this many seconds about each recurring trouble of the
#: accept loop (out of file descriptors, threads that cannot start, a bug).
WARNING_INTERVAL = 10.0


class Trouble:
    """A recurring trouble of the accept loop: a warning at most every WARNING_INTERVAL.

    :meth:`happened` counts an occurrence and logs the warning when none was logged
    for WARNING_INTERVAL seconds, with the count since the last one; :meth:`over`
    ends an episode, with one ``INFO`` line when a warning was logged during it.
    """

    def __init__(self, warning: str, recovery: str | None = None) -> None:
        self._warning = warning
        self._recovery = recovery
        self._last_warning: float | None = None
        self._unreported = 0
        self._episode: float | None = None
        self._count = 0
        self._warned = False

    def happened(self, detail: object, level: int = logging.WARNING, **kwargs: Any) -> None:
        """Count one occurrence; log it (``detail``, the count) unless one was just logged.

        :param kwargs: for the log call, e.g. ``exc_info=True``.
        """
        now = time.monotonic()
        if self._episode is None:
            self._episode, self._count = now, 0
        self._count += 1
        self._unreported += 1
        if self._last_warning is None or now - self._last_warning >= WARNING_INTERVAL:
            logger.log(level, self._warning, detail, self._unreported, **kwargs)
            self._last_warning, self._unreported, self._warned = now, 0, True

    def over(self) -> None:
        """End the current episode, if any (an INFO line when it was warned about)."""
        if self._episode is not None and self._warned and self._recovery is not None:
            logger.info(self._recovery, time.monotonic() - self._episode, self._count)
        self._episode, self._warned = None, False
