"""What a connection knows of its close, and the one rule for its close reason.

A connection keeps a :class:`CloseRecord`: the close frame it received, the close frame
it sent, which came first, and the reason decided for good (the peer's close frame once
acted on, or a failure). The record is immutable: the connection replaces it whole,
with its lock held, each time it learns something, so a thread that reads it without
the lock still sees a consistent record.

:attr:`CloseRecord.reason` is the only place that says what "the close reason" of a
connection is, and :meth:`CloseRecord.error` the only place that chooses between
:class:`~syncws.ConnectionClosedOK` and :class:`~syncws.ConnectionClosedError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from .exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from .types import CloseReason

__all__ = [
    "NORMAL_CODES",
    "CloseRecord",
    "check_close_arguments",
    "close_in_background",
    "exit_close_code",
]

logger = logging.getLogger("syncws")

#: The codes of a normal close: 1000 (normal closure), 1001 (going away) and 1005, which
#: stands for a close frame without a code. The same codes as in ``websockets``.
NORMAL_CODES = frozenset([1000, 1001, 1005])
#: Close codes an application may send (RFC 6455, section 7.4).
_SENDABLE_CODES = frozenset([1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)])
#: The reason of a connection that closed before anything else was known.
_ABNORMAL = CloseReason(1006, None)


@dataclass(frozen=True)
class CloseRecord:
    """The close frames of a connection and the reason decided for it, as far as known."""

    #: The reason decided for good: the peer's close frame, once acted on, or the
    #: failure that ended the connection (an abort, a protocol error, ...). The first
    #: one decided stays.
    decided: CloseReason | None = None
    #: The close frame received (parsed), or ``None``.
    rcvd: CloseReason | None = None
    #: The close frame sent (handed to the write queue), or ``None``.
    sent: CloseReason | None = None
    #: With both frames, whether the received one came first; ``None`` otherwise.
    rcvd_then_sent: bool | None = None

    def received(self, frame: CloseReason) -> CloseRecord:
        """Return the record with the close frame received (wsproto takes only one)."""
        return replace(self, rcvd=frame, rcvd_then_sent=None if self.sent is None else False)

    def sending(self, frame: CloseReason) -> CloseRecord:
        """Return the record with the close frame sent (wsproto sends only one)."""
        return replace(self, sent=frame, rcvd_then_sent=None if self.rcvd is None else True)

    def decide(self, reason: CloseReason) -> CloseRecord:
        """Return the record with ``reason`` decided, unless a reason was decided already."""
        return self if self.decided is not None else replace(self, decided=reason)

    @property
    def complete(self) -> bool:
        """Whether the closing handshake is done: a close frame went each way."""
        return self.rcvd is not None and self.sent is not None

    @property
    def reason(self) -> CloseReason | None:
        """The close reason: the one rule, ``None`` while nothing is known.

        The reason decided for good when there is one. Before that, only a closing
        handshake is under way: the close frame sent by a ``close()`` that waits for
        the peer's answer (an answer parsed but not acted on yet does not count), else
        the peer's close frame, parsed but not acted on yet (the reader waits for room
        in the message queue for the messages before it). A close frame sent to answer
        the peer's, or to fail the connection, comes with a decided reason.
        """
        return self.decided or self.sent or self.rcvd

    @property
    def normal(self) -> bool:
        """Whether the close is normal: :class:`~syncws.ConnectionClosedOK` material.

        At least one close frame went through, every close frame sent or received has
        a code of :data:`NORMAL_CODES`, and so has the close reason: the connection was
        neither failed nor aborted (unless only the TCP close went wrong, after both
        close frames). Once the connection is closed, a normal close reason means that
        both close frames went through, as ``websockets`` requires; during a closing
        handshake, it means that the handshake so far is normal.
        """
        reason = self.reason
        frames = [frame for frame in (self.rcvd, self.sent) if frame is not None]
        return (
            reason is not None
            and reason.code in NORMAL_CODES
            and bool(frames)
            and all(frame.code in NORMAL_CODES for frame in frames)
        )

    def error(self) -> ConnectionClosed:
        """Make the exception for a call that finds the connection closing or closed.

        Its reason is :attr:`reason` (code 1006 when nothing is known, which a closed
        connection never lets happen), its class says whether the close is
        :attr:`normal`.
        """
        kind = ConnectionClosedOK if self.normal else ConnectionClosedError
        return kind(
            self.reason or _ABNORMAL,
            rcvd=self.rcvd,
            sent=self.sent,
            rcvd_then_sent=self.rcvd_then_sent,
        )


def check_close_arguments(code: int, reason: str | None) -> None:
    """Raise ValueError for a close code that may not be sent or a reason too long."""
    if code not in _SENDABLE_CODES:
        raise ValueError(f"close code {code} may not be sent")
    if reason is not None and len(reason.encode("utf-8")) > 123:
        raise ValueError("a close reason is at most 123 bytes in UTF-8")


def exit_close_code(exc_type: type[BaseException] | None) -> int:
    """Return the close code for leaving a ``with`` block, by the exception leaving it.

    1000 without one, 1001 (going away) for Ctrl-C (:exc:`KeyboardInterrupt`): the user
    leaves, nothing failed; 1011 (internal error) for any other exception.
    """
    if exc_type is None:
        return 1000
    return 1001 if issubclass(exc_type, KeyboardInterrupt) else 1011


def close_in_background(
    close: Callable[[int, str | None], object], code: int, reason: str | None, name: str
) -> None:
    """Call ``close(code, reason)`` on a thread of its own, named ``syncws-{name}``.

    For ``close()`` called from a signal handler that interrupted the connection's own
    code, which may hold a lock that closing needs. The thread is a daemon, like the
    reader: it ends within ``disconnect_timeout``. When no thread can start, a warning
    is logged and nothing else happens.
    """
    closer = threading.Thread(target=close, args=(code, reason), name=f"syncws-{name}", daemon=True)
    try:
        closer.start()
    except RuntimeError as exc:
        logger.warning("%s: cannot close from a signal handler now: %s", name, exc)
