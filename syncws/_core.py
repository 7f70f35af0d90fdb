"""The protocol core of a connection: its state and its reader thread.

:class:`ConnectionCore` holds what the application's calls
(:mod:`syncws.connection`) and the reader thread share, and runs the reading: it
reads the socket, feeds wsproto, answers pings, matches pongs, runs the closing
handshake and the keepalive timers, and hands complete messages to a bounded queue.
Reading is done by whoever has the turn (:mod:`._readturns`): the reader thread, or
a caller of ``get_message`` that found no message queued.

Locking: ``_lock``, the connection lock, guards the wsproto engine, the write queue,
``_state``, ``_close_record`` and the pending pings; it is only ever held for short,
non-blocking work. Socket waits happen outside it. Fields marked *reading turn* are
touched only by the thread whose turn it is to read; the end of the connection
(lingering for the peer's TCP close, closing the socket) is the reader thread's alone.

Lock order. A thread that holds one of these locks takes only those below it:

1. the server's lock (``WebSocketServer``): no connection method is called with it held;
2. the connection lock (``ConnectionCore._lock``, also the
   :class:`~syncws._transport.Transport`'s condition);
3. the TLS socket's lock (``Transport``: writing under the connection lock may send at
   once) and the pings' events (set when a pong is matched).

The message queue's lock (then the lock of a :class:`~syncws.notify.MessageNotifier`
listening to it), the reading turns' lock (:mod:`._readturns`), the ``_closed``
latch's and the reader starter's (:mod:`._starter`) are never held together with the
connection lock: they are taken with no other
lock of the connection held. No thread is started and no application callback runs
while any of these locks is held. Methods documented "(lock held)" assert that the
connection lock is held.
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from ._assembler import MessageAssembler, MessageTooBig
from ._closing import CloseRecord
from ._deadline import Deadline
from ._framing import FrameSplitter
from ._latch import Latch
from ._messages import MessageQueue
from ._options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DISCONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MESSAGE_QUEUE_SIZE,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    OPTIONS,
    UNLIMITED,
)
from ._readturns import ReadTurns
from ._starter import STARTER
from ._timers import Due, Timers
from ._transport import BLOCKED, BUSY, Progress, Transport, TransportError, retry_wait
from ._wsproto import is_peer_close, negotiated_extensions
from .types import CloseReason, Endpoint

if TYPE_CHECKING:
    import socket

    from wsproto import WSConnection

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DISCONNECT_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_QUEUE_SIZE",
    "ConnectionCore",
    "PendingPing",
    "State",
]

logger = logging.getLogger("syncws")
#: Frame-level trace, opt in with ``logging.getLogger("syncws.trace").setLevel(logging.DEBUG)``.
trace_logger = logging.getLogger("syncws.trace")
if trace_logger.level == logging.NOTSET:
    trace_logger.setLevel(logging.INFO)


#: How long to wait for the reader thread once the socket was shut down under it.
ABORT_JOIN_TIMEOUT = 5.0
#: The most pongs that may wait to be written: past it, the reader stops reading until
#: the peer reads them, so that a peer which sends pings and never reads is held back
#: by TCP flow control instead of filling our memory with its answers.
MAX_UNSENT_PONGS = 128
_ids = itertools.count(1)


def on_main_thread() -> bool:
    """Whether the caller runs on the main thread, the one that runs signal handlers.

    Only there can an exception (:exc:`KeyboardInterrupt`) arrive between any two
    steps of the library's code.
    """
    return threading.get_ident() == _main_ident


_main_ident = threading.main_thread().ident


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


def endpoint(sock: socket.socket, *, local: bool, is_ssl: bool) -> Endpoint | str:
    """Describe one end of a socket: an Endpoint, or a path for Unix sockets."""
    try:
        address = sock.getsockname() if local else sock.getpeername()
    except OSError:
        return ""
    if isinstance(address, tuple):
        return Endpoint(str(address[0]), int(address[1]), is_ssl)
    return os.fsdecode(address)


class ConnectionCore:
    """State shared by the application's threads and the reader, and the reader itself.

    See :class:`~syncws.WebSocketConnection` for the parameters.
    """

    # Slots: an instance dict with this many attributes would cost 1.5 KiB more.
    __slots__ = (
        "__weakref__",
        "_assembler",
        "_close_record",
        "_close_timed_out",
        "_closed",
        "_disconnect_timeout",
        "_eof",
        "_extensions",
        "_fast_send",
        "_handshake_headers",
        "_id",
        "_input_done",
        "_keepalive_payload",
        "_latency",
        "_local",
        "_lock",
        "_max_message_size",
        "_on_demand",
        "_path",
        "_pings",
        "_pongs",
        "_primed",
        "_queue",
        "_reader",
        "_remote",
        "_splitter",
        "_start_warned",
        "_state",
        "_subprotocol",
        "_timers",
        "_transport",
        "_turns",
        "_ws",
    )

    def __init__(
        self,
        sock: socket.socket,
        ws: WSConnection,
        *,
        path: str,
        subprotocol: str | None = None,
        handshake_headers: tuple[tuple[bytes, bytes], ...] = (),
        message_queue_size: int = DEFAULT_MESSAGE_QUEUE_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        disconnect_timeout: float = DEFAULT_DISCONNECT_TIMEOUT,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        received: bytes = b"",
        reader_on_demand: bool = False,
    ) -> None:
        for name, given in (
            ("message_queue_size", message_queue_size),
            ("max_message_size", max_message_size),
            ("disconnect_timeout", disconnect_timeout),
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
        ):
            OPTIONS[name].check(name, given)
        if max_message_size is None:
            max_message_size = UNLIMITED
        if ws.connection is None:
            raise ValueError("the opening handshake of ws is not complete")
        self._id = next(_ids)
        self._lock = threading.Lock()
        # The engine of the open connection; the handshake engine is not kept.
        self._ws: Connection = ws.connection
        self._transport = Transport(sock, self._lock)
        self._local = endpoint(sock, local=True, is_ssl=self._transport.is_ssl)
        self._remote = endpoint(sock, local=False, is_ssl=self._transport.is_ssl)
        self._path = path
        self._subprotocol = subprotocol
        self._handshake_headers = handshake_headers
        self._max_message_size = max_message_size
        self._disconnect_timeout = disconnect_timeout
        self._queue = MessageQueue(
            message_queue_size, max(1, message_queue_size) * max_message_size
        )
        # A server connection's reader thread starts on demand: a caller may read first.
        self._turns = ReadTurns(reader_starts_now=not reader_on_demand)
        extensions = negotiated_extensions(ws)
        self._extensions = extensions or ""
        plain = extensions == ""
        #: Whole data frames are framed here, not by wsproto (see :mod:`._framing`).
        self._fast_send = plain
        self._splitter = FrameSplitter(ws.client, max_message_size, enabled=plain)
        self._splitter.prime(received)
        self._closed = Latch()
        # Guarded by _lock.
        self._state = State.OPEN
        # The close frames received and sent, and the close reason (see ._closing).
        self._close_record = CloseRecord()
        self._close_timed_out = False
        self._pings: dict[bytes, PendingPing] = {}
        self._latency = 0.0
        # Reading turn only.
        # The message being joined from its frames.
        self._assembler = MessageAssembler(max_message_size)
        # The write-queue offsets just past the pongs that may not be written yet.
        self._pongs: list[int] = []
        self._input_done = False
        self._eof = False
        # Reading turn only, but for the closing deadline (set under the lock).
        self._timers = Timers(ping_interval, ping_timeout, time.monotonic())
        self._keepalive_payload: bytes | None = None
        # Parsed what wsproto got with the handshake (the first holder of the role does).
        self._primed = False
        self._reader: threading.Thread | None = None
        # A reader thread started on demand: the process's timer (._starter) calls
        # check_reader() shortly. Keepalive timers run on whichever thread reads: a
        # handler waiting in get_message, or the reader thread once it stops.
        self._on_demand = reader_on_demand
        self._start_warned = False
        logger.debug("%s: open, %s -> %s", self, self._local, self._remote)
        if not reader_on_demand:
            # A client's reader thread starts with the connection. A thread that cannot
            # start here fails the opening of the connection (RuntimeError).
            self._turns.start_reader_once(self._new_reader)
        else:
            STARTER.opened()
            STARTER.check_later(self)
        _live.add(self)

    def _start_reader(self) -> bool:
        """Start the reader thread unless it runs already (any thread may call this).

        :returns: whether the reader's loop runs (on its thread, or on a thread that
            closes the connection). When the system cannot start a thread now, a
            warning is logged (once per connection) and a later call tries again (a
            server's, shortly); meanwhile callers of ``get_message`` read themselves.
        """
        if self._reader is not None:
            return True
        try:
            self._turns.start_reader_once(self._new_reader)
        except RuntimeError as exc:
            if not self._start_warned:
                self._start_warned = True
                logger.warning("%s: cannot start the reader thread yet: %s", self, exc)
            if self._on_demand:
                STARTER.check_later(self)  # The timer tries again shortly.
            return False
        return True

    def _new_reader(self) -> None:
        reader = threading.Thread(
            target=self._run,
            name=f"syncws-reader-{self._id}",
            # A daemon, so that a connection the application forgot to close never
            # keeps the interpreter from exiting. close() joins it.
            daemon=True,
        )
        reader.start()
        self._reader = reader  # Only once it runs: close() joins it.

    def _hand_to_reader(self) -> None:
        """Something waits for the network: the reader thread reads now if nobody does."""
        self._start_reader()
        self._turns.hand_to_reader()

    def check_reader(self) -> None:
        """Start the reader thread unless a caller is reading.

        Called by the process's timer (:mod:`._starter`) for a connection whose reader
        thread starts on demand, shortly after it asked: after the connection opened,
        and after a handler's read ended the input. A handler waiting in
        ``get_message`` reads itself, and its connection needs no reader thread until
        it stops (an idle connection then costs one thread); a handler that closes the
        connection soon after its end ends it on its own thread; any other handler
        gets the reader thread.
        """
        if self._reader is None:
            try:
                self._turns.start_reader_once(self._new_reader, unless_caller_reads=True)
            except RuntimeError as exc:
                # The system cannot start a thread now: try again shortly.
                logger.debug("%s: cannot start the reader thread yet: %s", self, exc)
                STARTER.check_later(self)

    def _set_state(self, state: State) -> None:
        """Change ``_state``; the one place where it changes (lock held)."""
        assert self._lock.locked()
        if state not in _TRANSITIONS[self._state]:
            if state is self._state:
                return
            raise RuntimeError(f"invalid transition {self._state} -> {state}")
        self._state = state

    # -- the interface for syncws's own tools ------------------------------------------
    #
    # broadcast, notify, the server and syncws.testing use a connection through these
    # methods (and enqueue, start_close and close_within_timeout of the connection) and
    # nothing else of its insides. They are not public API: the API reference leaves
    # them out, and they may change in any release.

    def abort(self, why: str | None) -> None:
        """Give up on the connection now: no closing handshake (code 1006).

        Part of the interface for syncws's own tools; not public API.

        :param why: the reason recorded in :attr:`close_reason` (with code 1006), unless
            the connection had a reason already.
        """
        with self._lock:
            if self._state is State.CLOSED:
                return
            self._close_record = self._close_record.decide(CloseReason(1006, why))
            self._set_state(State.CLOSING)
        logger.debug("%s: aborting (%s)", self, why)
        self._queue.release()
        self._transport.abort()
        self._hand_to_reader()

    def progress(self, end: int) -> Progress:
        """Write what the socket takes now, without waiting, up to offset ``end``.

        Part of the interface for syncws's own tools (:func:`~syncws.broadcast.broadcast`);
        not public API.

        :param end: a write-queue offset returned by ``enqueue``.
        :returns: whether the bytes up to ``end`` are written, the socket is full,
            another thread is writing, or the connection failed.
        """
        return self._transport.progress(end)

    @property
    def socket_fileno(self) -> int:
        """The socket's file descriptor, to wait until it can be written.

        Part of the interface for syncws's own tools; not public API. Never read from
        it: the connection's reader does.
        """
        return self._transport.fileno

    def read_in_background(self) -> None:
        """Let the reader thread read now, even if a caller of ``get_message`` just read.

        Part of the interface for syncws's own tools (:class:`~syncws.notify.MessageNotifier`,
        whose thread goes back to an event loop after it takes messages); not public API.
        """
        self._hand_to_reader()

    def set_message_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` each time a message is queued (``None``: stop).

        Part of the interface for syncws's own tools (:class:`~syncws.notify.MessageNotifier`);
        not public API. The listener runs on the thread that queues the message, with
        the queue's lock held: it must only wake another thread.

        :raises RuntimeError: when another listener is set already.
        """
        self._queue.set_listener(listener)

    @property
    def has_ended(self) -> bool:
        """Whether the connection has ended: its socket closed and its reader done.

        Part of the interface for syncws's own tools; not public API. Unlike
        ``is_closed``, false during the closing handshake.
        """
        return self._closed.is_set()

    @property
    def reader_thread(self) -> threading.Thread | None:
        """The connection's reader thread, once started (``None`` before).

        Part of the interface for syncws's own tools (:mod:`syncws.testing` checks that
        it ended); not public API.
        """
        return self._reader

    def _new_ping_payload(self) -> bytes:
        while True:
            payload = os.urandom(4)
            if payload not in self._pings:
                return payload

    # -- the reader thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not (self._input_done or self._eof) and self._turns.reader_wait_turn(
                self._next_timer
            ):
                self._read_step(self._next_timer(), block=True)
                if not (self._input_done or self._eof) and self._turns.reader_hand_over_if_asked():
                    self._queue.wake()
            self._turns.reader_keep_for_good()
            if not self._eof:
                self._linger()
        except Exception:
            logger.exception("%s: reader thread failed", self)
            with self._lock:
                self._close_record = self._close_record.decide(CloseReason(1011, "internal error"))
        finally:
            self._finish()

    def _read_step(self, wait: float | None, *, block: bool) -> bool:
        """Read once (the thread whose turn it is): wait up to ``wait`` seconds for bytes.

        Runs the timers when the wait ends without bytes, and writes the control
        frames the bytes called for. ``block`` says whether a full message queue may
        hold the read up (only the reader thread may wait for the application).
        While more than :data:`MAX_UNSENT_PONGS` pongs wait for the socket, it does
        not read at all: it waits for the socket to take them.

        :returns: whether queued bytes are still waiting for the socket.
        """
        if not self._primed:
            self._primed = True
            self._handle(None, block)
            if self._input_done:
                return self._flush_now()
        progress = self._transport.try_flush()
        blocked = progress is BLOCKED
        if blocked or progress is BUSY:
            wait = retry_wait(wait)
            if self._pongs and self._unsent_pongs() > MAX_UNSENT_PONGS:
                # The peer does not read our answers to its pings: read nothing more
                # from it until it does.
                self._transport.wait_writable(wait, blocked)
                self._on_timer()
                return self._flush_now()
        elif self._pongs:
            self._unsent_pongs()  # Forget the pongs written.
        data = self._transport.receive(wait, want_write=blocked)
        if data is None:
            self._on_timer()
        elif data:
            self._timers.heard_from_peer()
            self._handle(data, block)
        else:
            self._eof = True
            return False
        return self._flush_now()

    def _flush_now(self) -> bool:
        """Write what the socket takes now; return whether bytes still wait for it."""
        progress = self._transport.try_flush()
        return progress is BLOCKED or progress is BUSY

    def _unsent_pongs(self) -> int:
        """Forget the pongs written since the last look; return how many are left."""
        written = self._transport.written_offset
        pongs = self._pongs
        sent = 0
        while sent < len(pongs) and pongs[sent] <= written:
            sent += 1
        del pongs[:sent]
        return len(pongs)

    def read_directly(self, deadline: Deadline) -> bool:
        """Read once on the calling thread if the turn is free; return whether it was.

        Called by ``get_message`` when no message is queued (see :mod:`._readturns`).
        """
        if not self._turns.try_take(not deadline.expired()):
            return False
        if self._queue.has_items():
            # The reader thread queued a message after the caller looked, then lent
            # the role: the caller takes the message, it does not wait for the socket.
            if self._turns.give_back(False):
                self._queue.wake()
            return True
        pending = True
        try:
            timer = self._next_timer()
            wait = deadline.remaining()
            if timer is not None:
                wait = timer if wait is None else min(wait, timer)
            pending = self._read_step(wait, block=False)
        finally:
            finished = self._input_done or self._eof
            if self._turns.give_back(finished):
                self._queue.wake()
            if finished and not pending and self._reader is None and not self._ws.client:
                # RFC 6455, section 7.1.1: the server closes TCP first. Do it now, not
                # after the reader thread has started, so the client is not kept waiting.
                with self._lock:
                    closed = self._close_record.complete
                if closed:
                    self._transport.shutdown_write()
            if finished and self._input_done and not pending and self._reader is None:
                # The close reason is known and get_message raises it: the handler's
                # close() ends the connection on its own thread, or the reader thread
                # starts shortly (see check_reader).
                assert self._on_demand  # A client's reader thread starts at once.
                STARTER.check_later(self)
            elif finished or pending:
                # The reader thread ends the connection, or waits for the socket to
                # take the rest.
                self._hand_to_reader()
        return True

    def _handle(self, data: bytes | None, block: bool = True) -> None:
        """Split received bytes into messages and wsproto's events, and act on them."""
        with self._lock:
            if data is None:  # Only what wsproto got with the handshake.
                events: list[str | bytes | CloseConnection | Pong] = []
                too_big = self._parse_events(events)
            else:
                events, too_big = self._parse(self._splitter.feed(data))
        tracing = trace_logger.isEnabledFor(logging.DEBUG)
        for event in events:
            if self._input_done:
                return
            if tracing:
                trace_logger.debug("%s < %s", self, describe(event))
            if isinstance(event, CloseConnection):
                self._on_close_frame(event)
            elif isinstance(event, Pong):
                # Matched in frame order, after the messages before it are queued: a
                # ping that returns guarantees that they can be read.
                with self._lock:
                    self._match_pong(event.payload)
            else:
                self._deliver(event, block)
        if too_big is not None and not self._input_done:
            self._fail(1009, too_big)

    def _parse(
        self, items: Iterable[str | bytes | memoryview]
    ) -> tuple[list[str | bytes | CloseConnection | Pong], str | None]:
        """Collect messages and close frames (lock held); also say if a message was too big.

        ``items`` are what the frame splitter made of the received bytes: messages it
        decoded itself, and bytes for wsproto, in order. wsproto parses lazily, one
        frame per event, so what must happen in frame order happens here: a ping is
        answered while the engine is still open (a close frame parsed after it would
        make pongs impossible), and parsing stops at the frame that makes a message
        too big, so nothing after it is acted on.
        """
        events: list[str | bytes | CloseConnection | Pong] = []
        for item in items:
            peer_closed = self._close_record.rcvd is not None
            if isinstance(item, (str, bytes)):
                if not peer_closed:
                    events.append(item)
                continue
            if peer_closed:
                break  # Nothing counts after the peer's close frame.
            self._ws.receive_data(item)  # type: ignore[arg-type]
            too_big = self._parse_events(events)
            if too_big is not None:
                return events, too_big
        return events, None

    def _parse_events(self, events: list[str | bytes | CloseConnection | Pong]) -> str | None:
        """Act on wsproto's pending events (lock held): keep messages, pongs and close frames.

        Everything else is done here, one frame at a time, so that no object is kept
        per frame: the frames of a fragmented message are joined into one buffer and
        pings are answered. Pongs are kept, to be matched in order with the messages.

        :returns: why the message being received is too big, or ``None``; nothing
            after that message is parsed.
        """
        tracing = trace_logger.isEnabledFor(logging.DEBUG)
        for event in self._ws.events():
            if (
                tracing
                and not isinstance(event, (CloseConnection, Pong))
                and not (isinstance(event, (TextMessage, BytesMessage)) and event.message_finished)
            ):
                # Whole messages, pongs and close frames are traced as they are acted on.
                trace_logger.debug("%s < %s", self, describe(event))
            if isinstance(event, (TextMessage, BytesMessage)):
                try:
                    message = self._assembler.add(
                        event.data, event.message_finished, event.frame_finished
                    )
                except MessageTooBig as exc:
                    return str(exc)
                if message is not None:
                    events.append(message)
            elif isinstance(event, Ping):
                if self._state is State.OPEN:
                    self._pongs.append(self._transport.queue(self._ws.send(event.response())))
            elif isinstance(event, Pong):
                events.append(event)
            elif isinstance(event, CloseConnection):
                if is_peer_close(self._ws):
                    # A close frame (not a protocol error), recorded as it is parsed.
                    # Messages before it may wait for room in the queue; senders fail
                    # from now on, with the peer's reason.
                    self._close_record = self._close_record.received(
                        CloseReason(event.code, event.reason or None)
                    )
                    self._set_state(State.CLOSING)
                events.append(event)
                return None  # Nothing counts after a close frame (or a protocol error).
        return None

    def _deliver(self, data: str | bytes, block: bool) -> None:
        """Queue a complete message, unless the application closed the connection.

        Messages that arrive after :meth:`close` are discarded, as documented; those
        that arrived before the connection failed or was aborted are kept. (A close
        frame sent otherwise, as an answer or to fail the connection, ends the input.)
        """
        if self._close_record.sent is not None:
            logger.debug("%s: message discarded, the connection is closing", self)
            return
        if self._queue.put(data, block):
            # The reader was paused by a full queue: the peer's silence while we were
            # not reading proves nothing, so keepalive starts counting again now.
            self._timers.waited_for_application(time.monotonic())

    def _match_pong(self, payload: bytes) -> None:
        """Complete the ping ``payload`` answers, and every ping sent before it (lock held)."""
        assert self._lock.locked()
        if payload not in self._pings:
            return
        now = time.monotonic()
        for key in list(self._pings):
            ping = self._pings.pop(key)
            ping.rtt = now - ping.sent_at
            ping.done.set()
            if key == payload:
                self._latency = ping.rtt
                return

    def _on_close_frame(self, event: CloseConnection) -> None:
        with self._lock:
            # The peer's close frame was recorded as it was parsed; any other
            # CloseConnection event is wsproto's report of a protocol error.
            protocol_error = self._close_record.rcvd is None
            if not protocol_error:
                record = self._close_record.decide(CloseReason(event.code, event.reason or None))
                if record.sent is None:
                    answer = event.response()
                    self._transport.queue(self._ws.send(answer))
                    record = record.sending(CloseReason(answer.code, answer.reason or None))
                self._close_record = record
                self._set_state(State.CLOSING)
                self._input_done = True
            record = self._close_record
        if protocol_error:
            if event.code == 1009:
                # Also for a compressed message whose inflated size passed the limit:
                # wsproto says "error in extension" there.
                self._fail(1009, f"message larger than {self._max_message_size} bytes")
            else:
                self._fail(event.code, event.reason or None)
        else:
            logger.debug("%s: close frame received: %s", self, record.reason)
            self._end_stream(record)

    def _fail(self, code: int, reason: str | None) -> None:
        """Fail the connection: send a close frame with ``code``, stop parsing input."""
        with self._lock:
            frame = CloseReason(code, reason)
            record = self._close_record.decide(frame)
            if record.sent is None:
                # Also when the peer's close frame was parsed behind the fault: it is
                # then never handled, and ours answers it.
                self._transport.queue(self._ws.send(CloseConnection(code, reason)))
                record = record.sending(frame)
            self._close_record = record
            self._set_state(State.CLOSING)
        self._input_done = True
        logger.debug("%s: failing the connection: %s", self, record.reason)
        self._end_stream(record)

    def _next_timer(self) -> float | None:
        """Seconds until the next keepalive or closing deadline, ``None`` for none."""
        return self._timers.next_wait(time.monotonic)

    def _on_timer(self) -> None:
        """Act on what the timers say is due (see :mod:`._timers`)."""
        now = time.monotonic()
        due = self._timers.due(now)
        if due is None:
            return
        if due is Due.CLOSE_TIMEOUT:
            with self._lock:
                self._close_timed_out = True
            self.abort("closing handshake timed out")
        elif due is Due.PEER_SILENT:
            self._fail(1011, "keepalive ping timeout")
        else:
            with self._lock:
                if self._state is not State.OPEN:
                    return
                # An unanswered keepalive ping gives way to the next one, so that a
                # peer that never answers pings cannot grow the table.
                if self._keepalive_payload is not None:
                    self._pings.pop(self._keepalive_payload, None)
                payload = self._keepalive_payload = self._new_ping_payload()
                self._pings[payload] = PendingPing(now)
                self._transport.queue(self._ws.send(Ping(payload=payload)))
            self._timers.ping_sent(now)

    def _linger(self) -> None:
        """After the close frames: write ours, end TCP (server first), await EOF."""
        with self._lock:
            timers = self._timers
            if timers.close_deadline is None:
                timers.close_deadline = time.monotonic() + self._disconnect_timeout
            deadline = Deadline.at(timers.close_deadline)
            end = self._transport.queue(b"")
        try:
            self._transport.flush(end, deadline)
        except (TimeoutError, TransportError):
            return
        if not self._ws.client:
            # RFC 6455, section 7.1.1: the server closes the TCP connection first.
            self._transport.shutdown_write()
        while True:
            data = self._transport.receive(deadline.remaining())
            if data == b"" or (data is None and deadline.expired()):
                return

    def _end_stream(self, record: CloseRecord) -> None:
        """No more messages will come: wake pings, end the message queue.

        Called as soon as the close reason is known, so that ``get_message``
        returns what is queued and then raises without waiting for TCP to close.
        ``record`` is the close record then: what ``get_message`` raises says it.
        """
        with self._lock:
            pings = list(self._pings.values())
            self._pings.clear()
        for ping in pings:
            ping.done.set()
        self._queue.end(record.error)

    def _finish(self) -> None:
        """Last act of the reader: mark the connection closed and wake everyone."""
        with self._lock:
            record = self._close_record = self._close_record.decide(CloseReason(1006, None))
            self._set_state(State.CLOSED)
        self._end_stream(record)
        # A caller still reading (after a failure of this thread) wakes up and gives
        # the socket back before it is closed.
        self._transport.abort()
        self._turns.reader_keep_for_good()
        self._transport.close(self._disconnect_timeout)
        if self._on_demand:
            STARTER.ended()
        self._closed.set()
        logger.debug("%s: closed: %s", self, record.reason)

    def _forsake(self) -> None:
        """Become a closed copy of the parent's connection (child process only)."""
        # The reason is this one, whatever the parent's connection had.
        self._close_record = replace(
            self._close_record, decided=CloseReason(1006, "connection inherited across fork()")
        )
        self._lock = threading.Lock()
        self._transport.forsake(self._lock)
        self._turns.after_fork()
        self._queue = MessageQueue(1, 1)
        self._queue.end(self._close_record.error)
        self._closed = Latch()
        self._closed.set()
        self._pings = {}
        self._reader = None
        self._on_demand = False
        with self._lock:
            self._set_state(State.CLOSED)


#: Every open connection of this process, for :func:`_forsake_inherited`.
_live: weakref.WeakSet[ConnectionCore] = weakref.WeakSet()


def _forsake_inherited() -> None:
    """In a child process after ``fork()``: let go of the parent's connections.

    A connection belongs to the process that opened it. The child has none of its
    threads, and its locks may have been held when the process forked; it must not
    send a close frame or shut the socket down either, which would end the parent's
    connection. Each inherited connection is marked closed (1006) with fresh
    locks, and its copy of the socket is released.
    """
    global _main_ident  # noqa: PLW0603 - the thread that forked is the child's main thread
    _main_ident = threading.main_thread().ident
    for connection in list(_live):
        connection._forsake()
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forsake_inherited)


def describe(event: Event | str | bytes | bytearray | memoryview) -> str:
    """Summarise a wsproto event (or a message of the fast path) in one line, for the trace."""
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
