"""The deadlines of one connection: keepalive pings, a silent peer, the closing handshake.

:class:`Timers` decides when the thread that reads must wake up and what is due then;
it does no I/O, takes no lock and reads no clock: the time is passed in (the unit tests
drive it with made-up times). The connection acts on what is due:

=====================  ===================================================================
due                    what the connection does
=====================  ===================================================================
``CLOSE_TIMEOUT``      the closing handshake did not finish by ``close_deadline``: abort
``PEER_SILENT``        a keepalive ping went unanswered, and nothing else came from the
                       peer, for ``ping_timeout`` seconds: fail the connection with 1011
``PING``               ``ping_interval`` seconds passed since the last keepalive ping:
                       send one (then call :meth:`Timers.ping_sent`)
=====================  ===================================================================

A peer is silent only while the connection waits for it: bytes from the peer end the
wait (:meth:`Timers.heard_from_peer`), and so does the time the connection spends
waiting for the application to make room in its message queue
(:meth:`Timers.waited_for_application`): a peer that keeps sending to a slow local
reader is busy, not dead.

Called by the thread whose turn it is to read (see :mod:`._readturns`), except
:attr:`Timers.close_deadline`, which ``close()`` sets with the connection lock held.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

__all__ = ["Due", "Timers"]


class Due(enum.Enum):
    """What is due when a connection's timer expires."""

    CLOSE_TIMEOUT = "close timeout"
    PEER_SILENT = "peer silent"
    PING = "ping"


class Timers:
    """The keepalive and closing deadlines of one connection (see the module's documentation).

    :param ping_interval: seconds between keepalive pings (``None``: none).
    :param ping_timeout: how long an unanswered keepalive ping may wait (``None``: as
        long as ``ping_interval``).
    :param now: the time the connection opened.
    """

    __slots__ = ("_awaiting_peer_since", "_next_ping", "close_deadline", "interval", "timeout")

    def __init__(self, ping_interval: float | None, ping_timeout: float | None, now: float) -> None:
        #: Seconds between keepalive pings, or ``None``.
        self.interval = ping_interval
        #: How long an unanswered keepalive ping may wait, or ``None``.
        self.timeout = ping_timeout if ping_timeout is not None else ping_interval
        #: When the closing handshake must be over (``None``: no close under way).
        self.close_deadline: float | None = None
        self._next_ping = None if ping_interval is None else now + ping_interval
        # Since when a keepalive ping waits for the peer, if one does.
        self._awaiting_peer_since: float | None = None

    def next_wait(self, clock: Callable[[], float]) -> float | None:
        """Return the seconds until something is due (0 when overdue), ``None`` for never.

        :param clock: returns the time now; not called when nothing is scheduled.
        """
        if self.close_deadline is None and self._next_ping is None:
            return None  # No keepalive and no close under way: the common case.
        soonest = self.close_deadline
        if self._next_ping is not None and (soonest is None or self._next_ping < soonest):
            soonest = self._next_ping
        silent_at = self._silent_at()
        if silent_at is not None and (soonest is None or silent_at < soonest):
            soonest = silent_at
        return None if soonest is None else max(0.0, soonest - clock())

    def due(self, now: float) -> Due | None:
        """Return what is due at ``now``, most urgent first, or ``None``.

        ``PING`` is returned once per interval: the next one is scheduled at once.
        """
        if self.close_deadline is not None and now >= self.close_deadline:
            return Due.CLOSE_TIMEOUT
        silent_at = self._silent_at()
        if silent_at is not None and now >= silent_at:
            return Due.PEER_SILENT
        if self._next_ping is not None and self.interval is not None and now >= self._next_ping:
            self._next_ping = now + self.interval
            return Due.PING
        return None

    def ping_sent(self, now: float) -> None:
        """Note a keepalive ping sent at ``now``: the peer must answer within the timeout."""
        if self._awaiting_peer_since is None:
            self._awaiting_peer_since = now

    def heard_from_peer(self) -> None:
        """Bytes came from the peer: it is not silent."""
        self._awaiting_peer_since = None

    def waited_for_application(self, now: float) -> None:
        """Note that the connection waited for room in its message queue until ``now``.

        The peer was not silent meanwhile, whatever it sent: its silence counts again
        from ``now``.
        """
        if self._awaiting_peer_since is not None:
            self._awaiting_peer_since = now

    def _silent_at(self) -> float | None:
        if self._awaiting_peer_since is None or self.timeout is None:
            return None
        return self._awaiting_peer_since + self.timeout
