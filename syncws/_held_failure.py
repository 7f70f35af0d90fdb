"""A protocol error held back until the application has read the messages before it.

RFC 6455 lets an endpoint fail the connection as soon as it finds a protocol error in
its input. When a valid message and a violation arrive together, failing at once
would close the connection before the application has seen the message, let alone
answered it. syncws fails in order instead: the reader queues the messages that
arrived before the error, stops parsing, and holds the failure back (a
:class:`HeldFailure`), unless nothing is left for the application to read or answer:
no message came before the error, or a ``get_message`` call already waits past the
last one; then it fails at once. The connection stays open meanwhile, so what the application
sends in answer to those messages goes out before the close frame. The failure is
done (close frame queued with the error's code, pings in flight woken) by the first
of:

* ``get_message`` asking past the last of those messages (the message queue ends
  with :meth:`HeldFailure.error`), at once for a call that was already waiting;
* ``close()``, whose close frame then carries the error's code, not the caller's;
* the reader, :data:`FAIL_AFTER_MESSAGES_TIMEOUT` seconds after the error arrived,
  for an application that does not read.

Nothing after the error is parsed: a ping behind it is not answered, and no more
bytes are read until the failure is done, so the bounds on memory hold.

Locks: none of its own; :class:`~syncws._protocol.Protocol` takes the connection lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._protocol import Protocol
    from .exceptions import ConnectionClosed

__all__ = ["FAIL_AFTER_MESSAGES_TIMEOUT", "HeldFailure"]

logger = logging.getLogger("syncws")

#: The longest a protocol error waits for the application to read the messages that
#: arrived before it, in seconds.
FAIL_AFTER_MESSAGES_TIMEOUT = 1.0


class HeldFailure:
    """A protocol error held back behind unread messages (see the module docstring).

    The protocol must hold it already (:meth:`~syncws._protocol.Protocol.hold_failure`).

    :param protocol: the connection's protocol state.
    :param name: the connection's name in logs.
    :param clock: the monotonic clock (seconds).
    """

    __slots__ = ("_done", "_name", "_protocol", "until")

    def __init__(
        self, protocol: Protocol, name: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._protocol = protocol
        self._name = name
        self._done = threading.Event()
        #: When the reader does the failure if nothing did it before (a clock time).
        self.until = clock() + FAIL_AFTER_MESSAGES_TIMEOUT

    def fail(self) -> None:
        """Fail the connection with the error held back, unless that was done (any thread)."""
        record = self._protocol.fail_held()
        if record is not None:
            logger.debug("%s: failing the connection: %s", self._name, record.reason)
            for ping in self._protocol.take_pings():
                ping.done.set()
        self._done.set()

    def error(self) -> ConnectionClosed:
        """Fail now; return what ``get_message`` raises once the messages are read."""
        self.fail()
        return self._protocol.close_record.error()

    def wait(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Wait until the failure is done, or do it when its time is up (the reader's loop)."""
        self._done.wait(max(0.0, self.until - clock()))
        self.fail()

    def wake(self) -> None:
        """Wake :meth:`wait` now (the connection was aborted: no close frame will go)."""
        self._done.set()
