"""Sending on one connection: frames into the write queue, then onto the socket.

:class:`Sender` runs on the caller's thread. It frames a message (itself, on the fast
path of :mod:`._framing`, or through wsproto) into the transport's write queue under
the connection lock, in the order of the engine's output, then waits, within the
caller's deadline, until the socket took it (:meth:`~syncws._transport.Transport.flush`).
A send that cannot finish (a timeout, an interrupt in the middle of a frame, a broken
socket) leaves part of a frame on the wire, so it aborts the connection (1006), through
the reader, which ends it.

No lock of its own: the connection lock (the protocol's) is held only to queue bytes.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from wsproto.events import BytesMessage, Event, Ping, TextMessage

from ._framing import encode_message, message_event
from ._protocol import PendingPing, describe, trace_logger
from ._reader import ABORT_JOIN_TIMEOUT
from ._transport import TransportError
from .exceptions import ConnectionClosed
from .types import CloseReason

if TYPE_CHECKING:
    from ._deadline import Deadline
    from ._protocol import Protocol
    from ._reader import Reader
    from ._transport import Transport

__all__ = ["Sender"]

logger = logging.getLogger("syncws")


class Sender:
    """Sends a connection's messages and control frames (see the module docstring).

    :param name: the connection's name, for the trace.
    :param protocol: its protocol state.
    :param transport: its socket.
    :param reader: its reader, which ends it after an abort.
    """

    __slots__ = ("_name", "_protocol", "_reader", "_transport")

    def __init__(self, name: str, protocol: Protocol, transport: Transport, reader: Reader) -> None:
        self._name = name
        self._protocol = protocol
        self._transport = transport
        self._reader = reader

    def __str__(self) -> str:
        return self._name

    def send_message(
        self, message: str | bytes | bytearray | memoryview, deadline: Deadline
    ) -> None:
        """Send a message whole, within ``deadline`` (see ``WebSocketConnection.send_message``)."""
        protocol = self._protocol
        if not protocol.fast:
            self.flush(self.enqueue(message_event(message)), deadline)
            return
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            message_event(message)  # Raises the TypeError.
        end, written = self._put(None, encode_message(message, protocol.is_client), write=True)
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, describe(message))
        if not written:
            self.flush(end, deadline)

    def ping(self, payload: bytes | None, deadline: Deadline) -> float:
        """Send a ping, wait for its pong; return the round trip (``WebSocketConnection.ping``)."""
        protocol = self._protocol
        with protocol.lock:
            protocol.check_open()
            if payload is None:
                payload = protocol.new_ping_payload()
            elif payload in protocol.pings:
                raise ValueError(f"a ping with payload {payload!r} is already in flight")
            ping = protocol.pings[payload] = PendingPing(time.monotonic())
            end = protocol.queue_event(Ping(payload=payload))
        # The pong must be read even if no get_message() runs.
        self._reader.hand_over()
        try:
            self.flush(end, deadline)
            if not ping.done.wait(deadline.remaining()):
                raise TimeoutError("no pong received in time")
        finally:
            with protocol.lock:
                if protocol.pings.get(payload) is ping:
                    del protocol.pings[payload]
        if ping.rtt is None:
            raise protocol.close_record.error()
        return ping.rtt

    def send_close(self, code: int, reason: str | None, deadline: Deadline) -> int | None:
        """Queue a close frame if the connection is open; return its write-queue end.

        A protocol error held back behind unread messages fails the connection
        instead: its close code is the one sent.
        """
        self._reader.fail_held()
        end = self._protocol.begin_close(code, reason, deadline.when)
        if end is None:
            return None
        logger.debug("%s: closing with %s", self, CloseReason(code, reason))
        # The reader must not wait for the application any more, and must read the
        # peer's answer even if no get_message() runs.
        self._reader.queue.release()
        self._reader.hand_over()
        return end

    def enqueue(self, event: Event) -> int:
        """Frame ``event`` into the write queue; return the queue offset just past it."""
        pieces = None
        if self._protocol.fast and isinstance(event, (TextMessage, BytesMessage)):
            pieces = encode_message(event.data, self._protocol.is_client)
        end, _ = self._put(event, pieces, write=False)
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, describe(event))
        return end

    def _put(
        self, event: Event | None, pieces: tuple[bytes, ...] | None, *, write: bool
    ) -> tuple[int, bool]:
        """Queue ``pieces`` (framed here) or ``event`` (framed by wsproto) if still open.

        With ``write``, the pieces go straight to the socket when nobody else is writing.

        :returns: the write-queue offset past the bytes, and whether they are written.
        """
        protocol = self._protocol
        written = False
        try:
            with protocol.lock:
                protocol.check_open()
                if pieces is None:
                    assert event is not None
                    end = protocol.queue_event(event)
                elif write:
                    for piece in pieces:
                        end, written = self._transport.write(piece)
                else:
                    for piece in pieces:
                        end = self._transport.queue(piece)
        except ConnectionClosed:
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt in the main thread) while framing or
            # writing: part of a frame may be on the wire, or wsproto's state (its
            # compressor's) and the write queue may disagree: the connection cannot go on.
            self._reader.abort("send interrupted")
            raise
        return end, written

    def flush(self, end: int, deadline: Deadline) -> None:
        """Wait until the write queue is written up to ``end``, within ``deadline``."""
        reader = self._reader
        try:
            self._transport.flush(end, deadline)
        except TimeoutError:
            reader.abort("send timed out")
            # Let the reader wind down, so the caller finds the connection closed.
            reader.ended.wait(ABORT_JOIN_TIMEOUT)
            raise
        except TransportError as exc:
            # The socket broke. The reader may be paused on a full message queue with
            # the peer's last messages, or its close frame, parsed: let it go on
            # without waiting for the application, so that it learns the real reason
            # and ends the connection; wait for that within this call's deadline.
            reader.queue.release()
            reader.hand_over()
            remaining = deadline.remaining()
            wait = ABORT_JOIN_TIMEOUT if remaining is None else min(remaining, ABORT_JOIN_TIMEOUT)
            if not reader.ended.wait(wait):
                reader.abort("connection lost")
            raise self._protocol.close_record.error() from exc
        except BaseException:
            # Interrupted (KeyboardInterrupt in the main thread): part of the frame may
            # be on the wire and nobody waits to write the rest, so, as after a
            # timeout, the connection cannot go on. Nothing more is waited for here.
            if not self._transport.written(end):
                reader.abort("send interrupted")
            raise
