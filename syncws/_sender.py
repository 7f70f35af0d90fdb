"""Sending on one connection: frames into the write queue, then onto the socket.

:class:`Sender` runs on the caller's thread. It frames a message (itself, on the fast
path of :mod:`._framing`, or through wsproto) into the transport's write queue under
the connection lock, in the order of the engine's output, then waits, within the
caller's deadline, until the socket took it (:meth:`~syncws._transport.Transport.flush`).
A send that cannot finish (a timeout, an interrupt in the middle of a frame, a broken
socket) leaves part of a frame on the wire, so it aborts the connection (1006), through
the reader, which ends it.

A message sent in fragments (:meth:`Sender.send_fragments`) holds the connection's
*message turn* (:attr:`Protocol.message_turn <syncws._protocol.Protocol.message_turn>`)
from its first frame to its last: meanwhile other senders' data frames wait for it
(within their own deadline) on the protocol's ``turn_free`` condition, while control
frames (pings, pongs, close frames) go out at once. One that cannot finish after its
first frame fails the connection with 1011: a message cut in the middle cannot be taken
back (an interrupt or a cut frame still aborts it).

No lock of its own: the connection lock (the protocol's) is held only to queue bytes,
or to wait for the message turn on a condition that releases it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, cast

from wsproto.events import BytesMessage, Event, Ping, TextMessage

from ._deadline import Deadline
from ._framing import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_TEXT,
    chunk_is_text,
    encode_frame,
    encode_message,
    message_event,
)
from ._protocol import PendingPing, describe, trace_logger
from ._reader import ABORT_JOIN_TIMEOUT
from ._transport import TransportError
from .types import CloseReason

if TYPE_CHECKING:
    from ._protocol import Protocol
    from ._reader import Reader
    from ._transport import Transport

__all__ = ["CONTROL", "MessageTurn", "Sender", "TurnTaken", "control_payload"]

logger = logging.getLogger("syncws")

Chunk = str | bytes | bytearray | memoryview
#: The end of a message's chunks (``next``'s default).
_END = object()


class TurnTaken(Exception):
    """A data frame cannot be queued now: a message being sent in fragments holds the turn."""


class MessageTurn:
    """The token of a message being sent in fragments: who holds the message turn."""

    __slots__ = ("thread",)

    def __init__(self) -> None:
        self.thread = threading.current_thread()


#: What control frames pass as their turn: they never wait for one.
CONTROL = MessageTurn.__new__(MessageTurn)


def control_payload(payload: bytes | None, kind: str) -> bytes | None:
    """Return a ping's or pong's payload as ``bytes`` (``None`` stays ``None``).

    :raises ValueError: when it is longer than 125 bytes.
    """
    if payload is None:
        return None
    data = bytes(payload)
    if len(data) > 125:
        raise ValueError(f"a {kind} payload is at most 125 bytes")
    return data


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

    def send_message(self, message: Chunk | Iterable[Chunk], deadline: Deadline) -> None:
        """Send a message within ``deadline`` (see ``WebSocketConnection.send_message``)."""
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            self.send_fragments(message, deadline)
            return
        protocol = self._protocol
        if protocol.fast:
            end, written = self._put(
                None, encode_message(message, protocol.is_client), write=True, wait=deadline
            )
        else:
            end, written = self._put(message_event(message), None, write=False, wait=deadline)
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, describe(message))
        if not written:
            self.flush(end, deadline)

    def send_fragments(self, chunks: Iterable[Chunk], deadline: Deadline) -> None:
        """Send ``chunks`` as one message, a frame per chunk, within ``deadline``.

        The first two chunks are taken before anything is sent, and one ahead of the
        frame being sent after that, so that the last frame carries FIN: an iterable
        of one chunk makes an ordinary message, an empty one sends nothing. Errors up
        to the first frame leave the connection as it was.
        """
        try:
            # A mapping or a set is an error, most likely: its keys, in an order of
            # its own, would not make a message.
            if isinstance(chunks, (Mapping, set, frozenset)):
                raise TypeError
            iterator: Iterator[object] = iter(chunks)
        except TypeError:
            raise TypeError(
                "message must be str, bytes-like, or an iterable of them, not "
                f"{type(chunks).__name__}"
            ) from None
        try:
            self._send_iterator(chunks, iterator, deadline)
        except BaseException:
            # Stopped early: a generator's cleanup (its finally, its with blocks) runs
            # now, not whenever it is garbage-collected.
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.debug("%s: closing the message's iterable failed", self, exc_info=True)
            raise

    def _send_iterator(
        self, chunks: Iterable[Chunk], iterator: Iterator[object], deadline: Deadline
    ) -> None:
        first = next(iterator, _END)
        if first is _END:
            return
        try:
            text = chunk_is_text(first)
        except TypeError:
            raise TypeError(
                "message must be str, bytes-like, or an iterable of them, not "
                f"{type(chunks).__name__} of {type(first).__name__}"
            ) from None
        upcoming = next(iterator, _END)
        if deadline.expired():
            raise TimeoutError("timed out waiting for the message's chunks")
        if upcoming is _END:
            self.send_message(cast("Chunk", first), deadline)
            return
        _check_kind(upcoming, text)
        turn = MessageTurn()
        protocol = self._protocol
        try:
            self._take_turn(turn, deadline)
            self._send_frames(turn, cast("Chunk", first), upcoming, iterator, deadline)
        finally:
            with protocol.lock:
                if protocol.message_turn is turn:
                    protocol.message_turn = None
                    protocol.turn_free.notify_all()

    def _send_frames(
        self,
        turn: MessageTurn,
        current: Chunk,
        upcoming: object,
        chunks: Iterator[object],
        deadline: Deadline,
    ) -> None:
        """Send the frames of a fragmented message, holding ``turn``; fail it if cut."""
        text = isinstance(current, str)
        opcode = OP_TEXT if text else OP_BINARY
        started = False
        try:
            while True:
                fin = upcoming is _END
                end, written = self._queue_frame(turn, opcode, fin, current, deadline)
                started = True
                if not written:
                    self.flush(end, deadline)
                if fin:
                    return
                opcode = OP_CONTINUATION
                current = cast("Chunk", upcoming)
                upcoming = next(chunks, _END)
                if upcoming is not _END:
                    _check_kind(upcoming, text)
                if deadline.expired():
                    raise TimeoutError("timed out waiting for the message's chunks")
        except Exception as exc:
            # Part of the message is on the wire and the rest will not follow: the
            # peer must not take what comes next as more of it. (Once the connection
            # is closing, after a ConnectionClosed of its own or a timeout of the
            # flush, which aborted it, nothing more is sent.)
            if started:
                late = isinstance(exc, TimeoutError)
                self._fail_message(f"message not finished{' in time' if late else ''}", exc)
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt): as for an interrupted whole message,
            # unless the last frame is out whole.
            if started and not (fin and self._transport.written(end)):
                self._reader.abort("send interrupted")
            raise

    def _queue_frame(
        self, turn: MessageTurn, opcode: int, fin: bool, chunk: Chunk, deadline: Deadline
    ) -> tuple[int, bool]:
        """Queue one frame of a fragmented message; return its end and whether it is written."""
        protocol = self._protocol
        if protocol.fast:
            pieces = encode_frame(opcode, fin, chunk, protocol.is_client)
            end, written = self._put(None, pieces, write=True, wait=deadline, turn=turn)
        else:
            # wsproto compresses the message as one (RSV1 on its first frame only).
            event: Event
            if isinstance(chunk, str):
                event = TextMessage(data=chunk, message_finished=fin)
            else:
                event = BytesMessage(data=chunk, message_finished=fin)  # type: ignore[arg-type]
            end, written = self._put(event, None, write=False, wait=deadline, turn=turn)
        if trace_logger.isEnabledFor(logging.DEBUG):
            kind = {OP_TEXT: "TEXT", OP_BINARY: "BINARY"}.get(opcode, "CONTINUATION")
            trace_logger.debug("%s > %s %d (%s)", self, kind, len(chunk), "fin" if fin else "more")
        return end, written

    def _take_turn(self, turn: MessageTurn, deadline: Deadline) -> None:
        """Take the message turn for ``turn``, waiting for it within ``deadline``."""
        protocol = self._protocol
        with protocol.lock:
            if protocol.message_turn is not None:
                self._wait_turn(deadline)
            protocol.check_open()
            protocol.message_turn = turn

    def _wait_turn(self, deadline: Deadline | None) -> None:
        """Wait until no message is being sent in fragments (connection lock held).

        :param deadline: ``None``: do not wait, raise :exc:`TurnTaken`.
        :raises TimeoutError: when ``deadline`` passes first; nothing was sent.
        :raises ConnectionClosed: when the connection closes meanwhile.
        :raises RuntimeError: when the message being sent is this thread's own: its
            iterable sends on the same connection, which would wait for ever.
        """
        protocol = self._protocol
        while (holder := protocol.message_turn) is not None:
            protocol.check_open()
            if isinstance(holder, MessageTurn) and holder.thread is threading.current_thread():
                raise RuntimeError(
                    "cannot send a message while this thread sends one in fragments "
                    "on the same connection"
                )
            if deadline is None:
                raise TurnTaken
            remaining = deadline.remaining()
            if remaining == 0:
                raise TimeoutError("timed out waiting for a message sent in fragments")
            protocol.turn_free.wait(remaining)

    def _fail_message(self, reason: str, exc: Exception) -> None:
        """Fail the connection with 1011 after a message was cut off between frames."""
        self._reader.fail_held()
        if self._protocol.fail_if_open(1011, reason) is None:
            return
        logger.debug("%s: failing the connection: %s (%r)", self, reason, exc)
        # As after close(): the reader must read the peer's answer, even if the
        # application does not read; the close frame goes out now if the socket takes it.
        self._reader.release()
        self._reader.hand_over()
        self._transport.try_flush()

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
        self._reader.release()
        self._reader.hand_over()
        return end

    def close(self, code: int, reason: str | None, timeout: float) -> bool:
        """Close within ``timeout``; return False when the closing handshake was late.

        Sends the close frame, writes it, then waits for the reader to end the
        connection (which it aborts when the time runs out).
        """
        deadline = Deadline(timeout)
        end = self.send_close(code, reason, deadline)
        if end is not None:
            with contextlib.suppress(TimeoutError, TransportError):
                self._transport.flush(end, deadline)
        return self._reader.wait_ended(deadline)

    def start_close(self, code: int, reason: str | None, timeout: float) -> None:
        """Send a close frame, writing what the socket takes now; wait for nothing."""
        if self.send_close(code, reason, Deadline(timeout)) is not None:
            self._transport.try_flush()

    def enqueue(self, event: Event) -> int | None:
        """Frame ``event`` into the write queue; return the queue offset just past it.

        ``None`` for a message while one is being sent in fragments: nothing queued.
        """
        pieces = None
        turn: MessageTurn | None = CONTROL
        if isinstance(event, (TextMessage, BytesMessage)):
            turn = None
            if self._protocol.fast:
                pieces = encode_message(event.data, self._protocol.is_client)
        try:
            end, _ = self._put(event, pieces, write=False, wait=None, turn=turn)
        except TurnTaken:
            return None
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, describe(event))
        return end

    def send_control(self, event: Event, deadline: Deadline) -> None:
        """Send a control frame (a pong) now, within ``deadline``: it waits for no message."""
        end, _ = self._put(event, None, write=False, wait=None, turn=CONTROL)
        if trace_logger.isEnabledFor(logging.DEBUG):
            trace_logger.debug("%s > %s", self, describe(event))
        self.flush(end, deadline)

    def _put(
        self,
        event: Event | None,
        pieces: tuple[bytes, ...] | None,
        *,
        write: bool,
        wait: Deadline | None,
        turn: MessageTurn | None = None,
    ) -> tuple[int, bool]:
        """Queue ``pieces`` (framed here) or ``event`` (framed by wsproto) if still open.

        With ``write``, the pieces go straight to the socket when nobody else is writing.
        A data frame waits, within ``wait``, for the message turn unless it holds it
        (``turn``); control frames pass :data:`CONTROL`, and never wait.

        :returns: the write-queue offset past the bytes, and whether they are written.
        """
        protocol = self._protocol
        written = False
        framing = False
        try:
            with protocol.lock:
                if protocol.message_turn is not turn and turn is not CONTROL:
                    self._wait_turn(wait)
                protocol.check_open()
                framing = True
                if pieces is None:
                    assert event is not None
                    end = protocol.queue_event(event)
                elif write:
                    for piece in pieces:
                        end, written = self._transport.write(piece)
                else:
                    for piece in pieces:
                        end = self._transport.queue(piece)
        except BaseException as exc:
            # wsproto encodes text before it touches any state: a str that is not
            # valid Unicode (a lone surrogate) leaves the connection as it was.
            if framing and not isinstance(exc, UnicodeEncodeError):
                # Interrupted (KeyboardInterrupt in the main thread) while framing or
                # writing: part of a frame may be on the wire, or wsproto's state (its
                # compressor's) and the write queue may disagree: the connection
                # cannot go on. (Nothing was sent when waiting or checking failed.)
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
            reader.release()
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


def _check_kind(chunk: object, text: bool) -> None:
    """Raise TypeError unless ``chunk`` is of the kind the message's first chunk set."""
    if chunk_is_text(chunk) is not text:
        first, other = ("str", "bytes-like") if text else ("bytes-like", "str")
        raise TypeError(f"a message's chunks must be all of one kind: {other} after {first}")
