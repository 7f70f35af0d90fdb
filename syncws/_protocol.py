"""The protocol state of one connection: what was said, what may still be said.

:class:`Protocol` holds the wsproto engine with the fast data-frame path beside it
(:mod:`._framing`), the connection's lifecycle (:class:`State`, the one answer to
"can messages still be sent"), the close frames and the close reason
(:class:`~syncws._closing.CloseRecord`, the one place that decides it), the pings in
flight and the keepalive and closing deadlines (:mod:`._timers`). It does no I/O: it
parses bytes it is given and puts the bytes it must send into the write queue it is
given (the transport's, which only appends).

Locking: every method takes the connection lock (:attr:`Protocol.lock`, which the
transport's condition shares) for a short, non-blocking hold, except those documented
"(lock held)", which assert that their caller holds it. The reading thread alone calls
:meth:`Protocol.parse`; what it returns is acted on, in frame order, by the reader
(:mod:`._reader`).
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from ._assembler import MessageAssembler, MessageOversize, MessageTooBig
from ._closing import CloseRecord
from ._deflate import INFLATE_SLICE
from ._framing import FrameSplitter, apply_mask, speedups
from ._streams import Chunk, Oversize
from ._timers import Timers
from ._transport import RECV_SIZE
from ._wsproto import is_peer_close, unmask_with
from .types import CloseReason

if TYPE_CHECKING:
    from wsproto.connection import Connection

__all__ = ["PendingPing", "Protocol", "Received", "State", "describe", "trace_logger"]

#: Frame-level trace, opt in with ``logging.getLogger("syncws.trace").setLevel(logging.DEBUG)``.
trace_logger = logging.getLogger("syncws.trace")
if trace_logger.level == logging.NOTSET:
    trace_logger.setLevel(logging.INFO)

#: What parsing received bytes yields, in frame order: messages, pongs, close frames,
#: and the start and further pieces of a message larger than ``max_message_size``.
Received = str | bytes | CloseConnection | Pong | Oversize | Chunk


class State(enum.Enum):
    """Where the connection is in its life. wsproto keeps the protocol's own state."""

    #: Messages flow both ways.
    OPEN = "open"
    #: A close frame was sent or received, or the connection failed; the reader runs on.
    CLOSING = "closing"
    #: The reader has finished and the socket is closed.
    CLOSED = "closed"


_TRANSITIONS = {
    State.OPEN: frozenset([State.CLOSING, State.CLOSED]),
    State.CLOSING: frozenset([State.CLOSING, State.CLOSED]),
    State.CLOSED: frozenset(),
}


@dataclass(eq=False)
class PendingPing:
    """A ping in flight."""

    sent_at: float
    done: threading.Event = field(default_factory=threading.Event)
    #: The round trip in seconds; stays ``None`` when the connection closed first.
    rtt: float | None = None


class Protocol:
    """The protocol state of one connection (see the module docstring).

    :param name: the connection's name in logs (``client-3``).
    :param ws: wsproto's engine of the open connection.
    :param lock: the connection lock.
    :param queue: appends bytes to the write queue; returns the offset just past them.
    :param max_message_size: the largest message accepted, in bytes.
    :param timers: the keepalive and closing deadlines.
    :param fast: whether whole data frames bypass wsproto (no extension negotiated).
    :param received: the bytes wsproto was given with the handshake.
    """

    __slots__ = (
        "_keepalive_payload",
        "_queue",
        "assembler",
        "close_record",
        "close_timed_out",
        "fast",
        "held_failure",
        "is_client",
        "latency",
        "lock",
        "max_message_size",
        "message_turn",
        "name",
        "paused",
        "pings",
        "pongs",
        "rest",
        "sliced",
        "splitter",
        "state",
        "streamed",
        "streaming",
        "timers",
        "turn_free",
        "ws",
    )

    def __init__(
        self,
        name: str,
        ws: Connection,
        lock: threading.Lock,
        queue: Callable[[bytes | bytearray], int],
        *,
        max_message_size: int,
        timers: Timers,
        fast: bool,
        received: bytes,
    ) -> None:
        self.name = name
        self.lock = lock
        #: wsproto's engine; used under the lock only.
        self.ws = ws
        self._queue = queue
        self.is_client: bool = ws.client
        self.max_message_size = max_message_size
        #: Whole data frames are framed and parsed here, not by wsproto (:mod:`._framing`).
        self.fast = fast
        self.splitter = FrameSplitter(ws.client, max_message_size, enabled=fast)
        if speedups() and not ws.client:
            unmask_with(ws, apply_mask)  # The frames left to wsproto, unmasked in C.
        self.splitter.prime(received)
        #: The lifecycle; changed by :meth:`set_state` only.
        self.state = State.OPEN
        #: The message being sent in fragments (its sender's token, see ._sender), or
        #: ``None``: no other data frame may be queued while it is set.
        self.message_turn: object | None = None
        #: Notified when :attr:`message_turn` is given back or the connection leaves
        #: ``OPEN``: senders waiting for their turn wake on it.
        self.turn_free = threading.Condition(lock)
        #: The close frames received and sent, and the close reason (see ._closing).
        self.close_record = CloseRecord()
        #: Whether the closing handshake ran out of time.
        self.close_timed_out = False
        #: A protocol error found behind messages not read yet: the connection fails
        #: with it once they are read (see :meth:`hold_failure`).
        self.held_failure: CloseReason | None = None
        self.pings: dict[bytes, PendingPing] = {}
        self.latency = 0.0
        #: The keepalive and closing deadlines: the reading thread's, but for the
        #: closing deadline, which is set under the lock.
        self.timers = timers
        self._keepalive_payload: bytes | None = None
        # Reading thread only: the message being joined from its frames, and the
        # write-queue offsets just past the pongs that may not be written yet.
        self.assembler = MessageAssembler(max_message_size)
        self.pongs: list[int] = []
        #: Parsing stopped at a message grown past ``max_message_size`` (reading thread):
        #: :meth:`resume` goes on once its head is claimed; ``rest`` holds what the
        #: splitter has not handed over yet.
        self.paused = False
        self.rest: Iterator[str | bytes | memoryview] | None = None
        #: The message being received is streamed as :class:`~._streams.Chunk` pieces,
        #: of which ``streamed`` bytes (of characters, for text) came in this parse.
        self.streaming = False
        self.streamed = 0
        #: Received bytes reach wsproto in slices of :data:`INFLATE_SLICE` (compression).
        self.sliced = not fast

    def __str__(self) -> str:
        return self.name

    # -- lifecycle (lock held) ---------------------------------------------------------

    def set_state(self, state: State) -> None:
        """Change :attr:`state`; the one place where it changes (lock held)."""
        assert self.lock.locked()
        if state not in _TRANSITIONS[self.state]:
            if state is self.state:
                return
            raise RuntimeError(f"invalid transition {self.state} -> {state}")
        self.state = state
        # Nothing more can be sent: senders waiting for their turn must give up.
        self.turn_free.notify_all()

    def check_open(self) -> None:
        """Raise ConnectionClosed unless messages can still be sent (lock held)."""
        if self.state is not State.OPEN:
            raise self.close_record.error()

    # -- sending -----------------------------------------------------------------------

    def queue_event(self, event: Event) -> int:
        """Frame ``event`` with wsproto into the write queue (lock held); return its end."""
        return self._queue(self.ws.send(event))

    def new_ping_payload(self) -> bytes:
        """Return a random payload that no ping in flight has (lock held)."""
        while True:
            payload = os.urandom(4)
            if payload not in self.pings:
                return payload

    def send_keepalive_ping(self, now: float) -> bool:
        """Queue a keepalive ping if the connection is open; return whether it was."""
        with self.lock:
            if self.state is not State.OPEN:
                return False
            # An unanswered keepalive ping gives way to the next one, so that a peer
            # that never answers pings cannot grow the table.
            if self._keepalive_payload is not None:
                self.pings.pop(self._keepalive_payload, None)
            payload = self._keepalive_payload = self.new_ping_payload()
            self.pings[payload] = PendingPing(now)
            self.queue_event(Ping(payload=payload))
        return True

    def begin_close(self, code: int, reason: str | None, deadline: float | None) -> int | None:
        """Queue a close frame if the connection is open; return its write-queue end.

        ``deadline`` (a :func:`time.monotonic` time) becomes the closing deadline.
        """
        with self.lock:
            if self.state is not State.OPEN:
                return None
            self.timers.close_deadline = deadline
            end = self.queue_event(CloseConnection(code, reason))
            self.close_record = self.close_record.sending(CloseReason(code, reason))
            self.set_state(State.CLOSING)
        return end

    # -- receiving (the reading thread) ------------------------------------------------

    def parse(
        self, items: Iterable[str | bytes | memoryview] | None
    ) -> tuple[list[Received], str | None]:
        """Collect messages, pongs and close frames; also say if a message was too big.

        ``items`` are what the frame splitter made of the received bytes: messages it
        decoded itself, and bytes for wsproto, in order (``None``: only what wsproto got
        with the handshake). wsproto parses lazily, one frame per event, so what must
        happen in frame order happens here: a ping is answered while the engine is
        still open (a close frame parsed after it would make pongs impossible), and
        parsing stops at the frame that makes a message too big, so nothing after it
        is acted on.
        """
        events: list[Received] = []
        with self.lock:
            self.streamed = 0
            if items is None:
                return events, self._parse_events(events)
            return events, self._parse_items(iter(items), events)

    def resume(self) -> tuple[list[Received], str | None]:
        """Go on parsing after a pause (see :meth:`parse`), streaming the paused message."""
        events: list[Received] = []
        with self.lock:
            self.paused = False
            self.streamed = 0
            too_big = self._parse_events(events)
            rest, self.rest = self.rest, None
            if too_big is not None or self.paused or rest is None:
                self.rest = rest if self.paused else None
                return events, too_big
            return events, self._parse_items(rest, events)

    def _parse_items(
        self, items: Iterator[str | bytes | memoryview], events: list[Received]
    ) -> str | None:
        """Parse what the splitter made of the received bytes (lock held), as :meth:`parse`.

        Stops at a message grown past ``max_message_size`` (:attr:`paused`), keeping
        the items not parsed yet in :attr:`rest`.
        """
        for item in items:
            peer_closed = self.close_record.rcvd is not None
            if isinstance(item, (str, bytes)):
                if not peer_closed:
                    events.append(item)
                continue
            if peer_closed:
                break  # Nothing counts after the peer's close frame.
            step = INFLATE_SLICE if self.sliced else max(1, len(item))
            for start in range(0, len(item), step):
                piece = item if step >= len(item) else item[start : start + step]
                self.ws.receive_data(piece)  # type: ignore[arg-type]
                too_big = self._parse_events(events)
                if too_big is not None:
                    return too_big
                if self.paused or self.streamed >= STREAM_BATCH:
                    # Paused, or enough of a streamed message for the reader to queue
                    # (with compression, a slice may inflate to MAX_INFLATE bytes).
                    after = item[start + step :]
                    self.rest = itertools.chain([after], items) if after else items
                    return None
        return None

    def _parse_events(self, events: list[Received]) -> str | None:
        """Act on wsproto's pending events (lock held): keep messages, pongs and close frames.

        Everything else is done here, one frame at a time, so that no object is kept
        per frame: the frames of a fragmented message are joined into one buffer and
        pings are answered. Pongs are kept, to be matched in order with the messages.

        :returns: why the message being received is too big, or ``None``; nothing
            after that message is parsed.
        """
        tracing = trace_logger.isEnabledFor(logging.DEBUG)
        for event in self.ws.events():
            if (
                tracing
                and not isinstance(event, (CloseConnection, Pong))
                and not (isinstance(event, (TextMessage, BytesMessage)) and event.message_finished)
            ):
                # Whole messages, pongs and close frames are traced as they are acted on.
                trace_logger.debug("%s < %s", self, describe(event))
            if isinstance(event, (TextMessage, BytesMessage)):
                if self.streaming:
                    if event.data or event.message_finished:
                        data = event.data if isinstance(event.data, str) else bytes(event.data)
                        events.append(Chunk(data, event.message_finished))
                        self.streamed += len(data)
                    self.streaming = not event.message_finished
                    continue
                try:
                    message = self.assembler.add(
                        event.data, event.message_finished, event.frame_finished
                    )
                except MessageTooBig as exc:
                    return str(exc)
                except MessageOversize as exc:
                    # Stop here until the reader has the message claimed (see ._streams).
                    events.append(Oversize(exc.data, isinstance(event, TextMessage)))
                    if event.message_finished:
                        events.append(Chunk(exc.data[:0], True))
                    self.paused = True
                    self.streaming = not event.message_finished
                    return None
                if message is not None:
                    events.append(message)
            elif isinstance(event, Ping):
                if self.state is State.OPEN:
                    self.pongs.append(self.queue_event(event.response()))
            elif isinstance(event, Pong):
                events.append(event)
            elif isinstance(event, CloseConnection):
                if is_peer_close(self.ws):
                    # A close frame (not a protocol error), recorded as it is parsed.
                    # Messages before it may wait for room in the queue; senders fail
                    # from now on, with the peer's reason.
                    self.close_record = self.close_record.received(
                        CloseReason(event.code, event.reason or None)
                    )
                    self.set_state(State.CLOSING)
                events.append(event)
                return None  # Nothing counts after a close frame (or a protocol error).
        return None

    def match_pong(self, payload: bytes, now: float) -> None:
        """Complete the ping ``payload`` answers, and every ping sent before it."""
        with self.lock:
            if payload not in self.pings:
                return
            for key in list(self.pings):
                ping = self.pings.pop(key)
                ping.rtt = now - ping.sent_at
                ping.done.set()
                if key == payload:
                    self.latency = ping.rtt
                    return

    def answer_close(self, event: CloseConnection) -> CloseRecord | None:
        """Answer the peer's close frame; ``None`` when ``event`` reports a protocol error.

        :returns: the close record, the answer queued.
        """
        with self.lock:
            # The peer's close frame was recorded as it was parsed; any other
            # CloseConnection event is wsproto's report of a protocol error.
            if self.close_record.rcvd is None:
                return None
            record = self.close_record.decide(CloseReason(event.code, event.reason or None))
            if record.sent is None:
                answer = event.response()
                self.queue_event(answer)
                record = record.sending(CloseReason(answer.code, answer.reason or None))
            self.close_record = record
            self.set_state(State.CLOSING)
            return record

    def fail(self, code: int, reason: str | None) -> CloseRecord:
        """Fail the connection: queue a close frame with ``code``; return the record."""
        with self.lock:
            return self._fail(CloseReason(code, reason))

    def fail_if_open(self, code: int, reason: str | None) -> CloseRecord | None:
        """Fail the connection unless it is closing already (a sender's message cut off).

        :returns: the close record, or ``None`` when the connection was not open.
        """
        with self.lock:
            if self.state is not State.OPEN:
                return None
            return self._fail(CloseReason(code, reason))

    def hold_failure(self, code: int, reason: str | None) -> None:
        """Hold a protocol error back until the messages received before it are read.

        The connection stays open meanwhile (the application may still answer those
        messages); :meth:`fail_held` fails it (see :mod:`._held_failure`).
        """
        with self.lock:
            if self.state is State.OPEN and self.held_failure is None:
                self.held_failure = CloseReason(code, reason)

    def fail_held(self) -> CloseRecord | None:
        """Fail the connection with the protocol error held back, if one waits.

        :returns: the close record, or ``None`` when no failure was waiting.
        """
        with self.lock:
            frame, self.held_failure = self.held_failure, None
            return None if frame is None else self._fail(frame)

    def _fail(self, frame: CloseReason) -> CloseRecord:
        assert self.lock.locked()
        record = self.close_record.decide(frame)
        if record.sent is None:
            # Also when the peer's close frame was parsed behind the fault: it is
            # then never handled, and ours answers it.
            self.queue_event(CloseConnection(frame.code, frame.reason))
            record = record.sending(frame)
        self.close_record = record
        self.set_state(State.CLOSING)
        return record

    # -- the end -------------------------------------------------------------------------

    def abort(self, why: str | None, *, timed_out: bool = False) -> bool:
        """Record an abort (code 1006 unless decided); ``False`` when already closed."""
        with self.lock:
            if timed_out:
                self.close_timed_out = True
            self.held_failure = None  # No close frame can be sent any more.
            if self.state is State.CLOSED:
                return False
            self.close_record = self.close_record.decide(CloseReason(1006, why))
            self.set_state(State.CLOSING)
        return True

    def internal_error(self) -> None:
        """Record that the reader failed (1011) unless the reason is decided."""
        with self.lock:
            self.close_record = self.close_record.decide(CloseReason(1011, "internal error"))

    def take_pings(self) -> list[PendingPing]:
        """Forget the pings in flight and return them, to wake their waiters."""
        with self.lock:
            pings = list(self.pings.values())
            self.pings.clear()
        return pings

    def finish(self) -> CloseRecord:
        """Mark the connection closed (1006 unless decided); return the final record."""
        with self.lock:
            record = self.close_record = self.close_record.decide(CloseReason(1006, None))
            self.set_state(State.CLOSED)
        return record

    def after_fork(self, lock: threading.Lock) -> None:
        """Become a closed copy of the parent's state (child process after ``fork()``)."""
        # The reason is this one, whatever the parent's connection had.
        self.close_record = replace(
            self.close_record, decided=CloseReason(1006, "connection inherited across fork()")
        )
        self.lock = lock
        self.turn_free = threading.Condition(lock)
        self.message_turn = None
        self.pings = {}
        with lock:
            self.set_state(State.CLOSED)


#: Parsing a streamed message stops once this many bytes of it are parsed, for the
#: reader to queue them (:meth:`Protocol.resume` goes on).
STREAM_BATCH = RECV_SIZE


def describe(event: Event | str | bytes | bytearray | memoryview | Oversize | Chunk) -> str:
    """Summarise a wsproto event (or a message of the fast path) in one line, for the trace."""
    if isinstance(event, Oversize):
        return f"{'TEXT' if event.text else 'BINARY'} over the limit, {len(event.data)} so far"
    if isinstance(event, Chunk):
        return f"CHUNK {len(event.data)}{' (fin)' if event.last else ''}"
    if isinstance(event, (str, bytes, bytearray, memoryview)):
        return f"{'TEXT' if isinstance(event, str) else 'BINARY'} {len(event)} (fin)"
    if isinstance(event, (TextMessage, BytesMessage)):
        kind = "TEXT" if isinstance(event, TextMessage) else "BINARY"
        return f"{kind} {len(event.data)} ({'fin' if event.message_finished else 'more'})"
    if isinstance(event, (Ping, Pong)):
        return f"{type(event).__name__.upper()} {event.payload!r}"
    if isinstance(event, CloseConnection):
        return f"CLOSE {event.code} {event.reason!r}"
    return type(event).__name__
