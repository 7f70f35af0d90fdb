"""The reading of one connection: its reader thread, or a caller whose turn it is.

:class:`Reader` reads the socket (:mod:`._transport`), has the bytes parsed
(:class:`~syncws._protocol.Protocol`), acts on what they held in frame order (queues
messages, matches pongs, answers or fails on close frames), runs the keepalive and
closing timers, and ends the connection: waits for the peer's TCP close, closes the
socket and wakes everyone. Who reads is decided by :mod:`._readturns`: the reader
thread, or a caller of ``get_message`` that found no message queued; a server
connection's reader thread starts on demand (:mod:`._starter`, :mod:`._reader_start`).
A message over ``max_message_size`` goes through :mod:`._stream_intake`.

Fields marked *reading turn* are touched only by the thread whose turn it is to read;
the end of the connection (waiting for TCP to close, closing the socket) is the reader
loop's alone. No lock of its own: the protocol's methods take the connection lock, the message
queue and the turns take theirs, one at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from wsproto.events import CloseConnection

from ._deadline import Deadline
from ._fork import track
from ._held_failure import HeldFailure
from ._latch import Latch
from ._messages import MessageQueue
from ._protocol import describe, trace_logger
from ._reader_start import ReaderStart
from ._readturns import ReadTurns
from ._starter import STARTER
from ._stream_intake import StreamIntake
from ._streams import Chunk, Claim, Oversize
from ._timers import Due
from ._transport import BLOCKED, BUSY, TransportError, retry_wait

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._closing import CloseRecord
    from ._protocol import Protocol, Received
    from ._transport import Transport
    from .exceptions import ConnectionClosed

__all__ = ["ABORT_JOIN_TIMEOUT", "MAX_UNSENT_PONGS", "Reader"]

logger = logging.getLogger("syncws")

#: How long to wait for the reader thread once the socket was shut down under it.
ABORT_JOIN_TIMEOUT = 5.0
#: The most pongs that may wait to be written: past it, the reader stops reading until
#: the peer reads them, so that a peer which sends pings and never reads is held back
#: by TCP flow control instead of filling our memory with its answers.
MAX_UNSENT_PONGS = 128


class Reader(ReaderStart):
    """Reads one connection and ends it (see the module docstring).

    :param number: the connection's number, in its name for logs and its thread's.
    :param protocol: the connection's protocol state.
    :param transport: its socket.
    :param queue: its received messages.
    :param disconnect_timeout: how long the closing handshake may take.
    :param on_demand: start the reader thread only when no caller reads (a server's
        connections); otherwise :meth:`start_now` starts it.
    """

    __slots__ = (
        "__weakref__",
        "_disconnect_timeout",
        "_handshake_bytes_parsed",
        "_name",
        "asked",
        "delivered",
        "ended",
        "eof",
        "held",
        "input_done",
        "intake",
        "protocol",
        "queue",
        "transport",
    )

    def __init__(
        self,
        number: int,
        protocol: Protocol,
        transport: Transport,
        queue: MessageQueue,
        *,
        disconnect_timeout: float,
        on_demand: bool,
    ) -> None:
        self.number = number
        self._name = f"{'client' if protocol.is_client else 'server'}-{number}"
        self.protocol = protocol
        self.transport = transport
        self.queue = queue
        self._disconnect_timeout = disconnect_timeout
        self.on_demand = on_demand
        self.turns = ReadTurns(reader_starts_now=not on_demand)
        #: Set once the connection has ended: its socket closed, its reader done.
        self.ended = Latch()
        self.thread = None
        # Reading turn only.
        self.input_done = False
        self.eof = False
        #: A protocol error held back behind unread messages (see ._held_failure).
        self.held: HeldFailure | None = None
        #: Messages queued (reading turn), and calls of ``get_message`` that did not
        #: time out (the callers'; a lost count under a race only holds a failure
        #: back): more calls than messages means a caller asks past the last one.
        self.delivered = 0
        self.asked = 0
        #: Messages over ``max_message_size``: their heads and chunks.
        self.intake = StreamIntake(protocol, queue)
        # Parsed what wsproto got with the handshake (the first to read does).
        self._handshake_bytes_parsed = False
        self.start_warned = False
        self.check_asked = False
        track(self)

    def __str__(self) -> str:
        return self._name

    def release(self) -> None:
        """Never again wait for the application to take messages or chunks (closing)."""
        self.queue.release()
        self.intake.release()

    def abort(self, why: str | None, *, timed_out: bool = False) -> None:
        """Give up on the connection now: no closing handshake (code 1006)."""
        if not self.protocol.abort(why, timed_out=timed_out):
            return
        if self.held is not None:
            self.held.wake()
        logger.debug("%s: aborting (%s)", self, why)
        self.release()
        self.transport.abort()
        self.hand_over()

    def wait_ended(self, deadline: Deadline) -> bool:
        """Wait for the end of the connection after a close; ``False`` when out of time.

        A connection with no reader thread (a server's, never started, or out of
        threads) has its loop run here, on the closing thread, within ``deadline``;
        otherwise the reader thread ends it, and is aborted when ``deadline`` passes.
        """
        if self.thread is None and (self.turns.take_for_closing() or self._run_here(deadline)):
            self.run()
            return not self.protocol.close_timed_out
        thread = self.thread
        if thread is not None and threading.current_thread() is thread:
            return True
        if not self.ended.wait(deadline.remaining()):
            # Past the close frames, only the TCP close is late: not a timeout of the
            # closing handshake.
            late = not self.protocol.close_record.complete
            self.abort("closing handshake timed out", timed_out=late)
            if not self.ended.wait(ABORT_JOIN_TIMEOUT):  # pragma: no cover - a bug
                logger.warning("%s: reader thread did not stop", self)
        thread = self.thread  # Also one that started while this call waited.
        if thread is not None and thread is not threading.current_thread():
            thread.join(ABORT_JOIN_TIMEOUT)
        return not self.protocol.close_timed_out

    def _run_here(self, deadline: Deadline) -> bool:
        """Start the reader thread to end the connection; ``True``: run its loop here."""
        if self.start():
            return False
        if self.turns.take_for_closing_after_caller(deadline.remaining()):
            return True
        # A caller's read outlasted the closing deadline: wake it.
        self.abort("closing handshake timed out")
        return self.turns.take_for_closing_after_caller(ABORT_JOIN_TIMEOUT)

    # -- the reader's loop -------------------------------------------------------------

    def run(self) -> None:
        """Run the reader's loop: read until the input ends, then end the connection."""
        try:
            turns = self.turns
            while not (self.input_done or self.eof) and turns.reader_wait_turn(self._next_timer):
                self._read_step(self._next_timer(), block=True)
                if not (self.input_done or self.eof) and turns.reader_hand_over_if_asked():
                    self.queue.wake()
            turns.reader_keep_for_good()
            if self.held is not None:
                self.held.wait()
            if not self.eof:
                self._await_tcp_close()
        except Exception:
            logger.exception("%s: reader thread failed", self)
            self.protocol.internal_error()
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
        transport = self.transport
        protocol = self.protocol
        if (protocol.paused or protocol.rest is not None) and not self.input_done:
            # Parsing waits for a message over max_message_size to be claimed, or
            # has more of a streamed one.
            self._act_on_parsed([], None, block)
            if protocol.paused or protocol.rest is not None or self.input_done:
                return self._flush_now()
        if not self._handshake_bytes_parsed:
            self._handshake_bytes_parsed = True
            self._handle(None, block)
            if self.input_done:
                return self._flush_now()
        progress = transport.try_flush()
        blocked = progress is BLOCKED
        if blocked or progress is BUSY:
            wait = retry_wait(wait)
            if self.protocol.pongs and self._unsent_pongs() > MAX_UNSENT_PONGS:
                # The peer does not read our answers to its pings: read nothing more
                # from it until it does.
                transport.wait_writable(wait, blocked)
                self._on_timer()
                return self._flush_now()
        elif self.protocol.pongs:
            self._unsent_pongs()  # Forget the pongs written.
        data = transport.receive(wait, want_write=blocked)
        if data is None:
            self._on_timer()
        elif data:
            self.protocol.timers.heard_from_peer()
            self._handle(data, block)
        else:
            self.eof = True
            return False
        return self._flush_now()

    def _flush_now(self) -> bool:
        """Write what the socket takes now; return whether bytes still wait for it."""
        progress = self.transport.try_flush()
        return progress is BLOCKED or progress is BUSY

    def _unsent_pongs(self) -> int:
        """Forget the pongs written since the last look; return how many are left."""
        written = self.transport.written_offset
        pongs = self.protocol.pongs
        sent = 0
        while sent < len(pongs) and pongs[sent] <= written:
            sent += 1
        del pongs[:sent]
        return len(pongs)

    def read_directly(self, deadline: Deadline) -> bool:
        """Read once on the calling thread if the turn is free; return whether it was.

        Called by ``get_message`` when no message is queued (see :mod:`._readturns`).
        """
        turns = self.turns
        if self.protocol.paused or self.protocol.streaming:
            # A message over max_message_size: its chunks are the reader thread's to put.
            self.hand_over()
            return False
        if not turns.try_take(not deadline.expired()):
            return False
        if self.queue.has_items():
            # The reader thread queued a message after the caller looked, then lent
            # the turn: the caller takes the message, it does not wait for the socket.
            if turns.give_back(False):
                self.queue.wake()
            return True
        pending = True
        try:
            timer = self._next_timer()
            wait = deadline.remaining()
            if timer is not None:
                wait = timer if wait is None else min(wait, timer)
            pending = self._read_step(wait, block=False)
        finally:
            finished = self.input_done or self.eof
            if turns.give_back(finished):
                self.queue.wake()
            if finished and not pending and self.thread is None:
                self._after_last_direct_read()
            elif finished or pending:
                # The reader thread ends the connection, or waits for the socket to
                # take the rest.
                self.hand_over()
        return True

    def _after_last_direct_read(self) -> None:
        """Act after a caller's read ended the input of a connection with no reader thread."""
        if not self.protocol.is_client and self.protocol.close_record.complete:
            # RFC 6455, section 7.1.1: the server closes TCP first. Do it now, not
            # after the reader thread has started, so the client is not kept waiting.
            self.transport.shutdown_write()
        if self.input_done:
            # The close reason is known and get_message raises it: the handler's
            # close() ends the connection on its own thread, or the reader thread
            # starts shortly (see start_unless_caller_reads).
            assert self.on_demand  # A client's reader thread starts at once.
            STARTER.check_soon(self)
        else:
            self.hand_over()

    # -- acting on what was received (reading turn) ------------------------------------

    def _handle(self, data: bytes | None, block: bool = True) -> None:
        """Have received bytes parsed, and act on what they held, in frame order."""
        protocol = self.protocol
        if data is None:  # Only what wsproto got with the handshake.
            events, too_big = protocol.parse(None)
        else:
            events, too_big = protocol.parse(protocol.splitter.feed(data))
        self._act_on_parsed(events, too_big, block)

    def _act_on_parsed(self, events: list[Received], too_big: str | None, block: bool) -> None:
        """Act on parsed events; go on parsing past each message over the limit once claimed."""
        protocol = self.protocol
        while True:
            self._act(events, block)
            if too_big is not None and not self.input_done:
                self._fail_after_messages(1009, too_big)
            if self.input_done or (protocol.paused and not self._claimed(block)):
                return
            if not protocol.paused and protocol.rest is None:
                return
            events, too_big = protocol.resume()

    def _act(self, events: list[Received], block: bool) -> None:
        tracing = trace_logger.isEnabledFor(logging.DEBUG)
        for event in events:
            if self.input_done:
                return
            if tracing:
                trace_logger.debug("%s < %s", self, describe(event))
            # A message first, the common case (wsproto's events are ABCs, whose
            # isinstance checks cost a Python call each).
            if isinstance(event, (str, bytes)):
                self._deliver(event, block)
            elif type(event) is Chunk:
                self.intake.chunk_arrived(event, block)
            elif type(event) is Oversize:
                head = self.intake.head_arrived(event)
                if head is not None:
                    self._deliver(head, block)  # type: ignore[arg-type]
            elif isinstance(event, CloseConnection):
                self._on_close_frame(event)
            else:
                # A pong, matched in frame order, after the messages before it are
                # queued: a ping that returns guarantees that they can be read.
                self.protocol.match_pong(event.payload, time.monotonic())  # type: ignore[union-attr]

    def _deliver(self, data: str | bytes, block: bool) -> None:
        """Queue a complete message, unless the application closed the connection.

        Messages that arrive after ``close()`` are discarded, as documented; those
        that arrived before the connection failed or was aborted are kept. (A close
        frame sent otherwise, as an answer or to fail the connection, ends the input.)
        """
        if self.protocol.close_record.sent is not None:
            logger.debug("%s: message discarded, the connection is closing", self)
            return
        self.delivered += 1
        if self.queue.put(data, block):
            # The reader was paused by a full queue: the peer's silence while we were
            # not reading proves nothing, so keepalive starts counting again now.
            self.protocol.timers.waited_for_application(time.monotonic())

    def _claimed(self, block: bool) -> bool:
        """Whether parsing may go on past a message over the limit: claimed or discarded.

        The reader thread waits for the claim; a caller reading does not (it takes the
        head next). A refused head fails the connection with 1009.
        """
        claim = self.intake.claim(block)
        if claim is Claim.REFUSED:
            self._fail(1009, f"message larger than {self.protocol.max_message_size} bytes")
        return claim is Claim.STREAM or claim is Claim.DISCARD

    def _on_close_frame(self, event: CloseConnection) -> None:
        record = self.protocol.answer_close(event)
        if record is None:  # wsproto's report of a protocol error
            if event.code == 1009:
                # Also for a compressed message whose inflated size passed the limit:
                # wsproto says "error in extension" there.
                size = self.protocol.max_message_size
                self._fail_after_messages(1009, f"message larger than {size} bytes")
            else:
                self._fail_after_messages(event.code, event.reason or None)
            return
        self.input_done = True
        logger.debug("%s: close frame received: %s", self, record.reason)
        self._end_stream(record)

    def _fail(self, code: int, reason: str | None) -> None:
        """Fail the connection: send a close frame with ``code``, stop parsing input."""
        record = self.protocol.fail(code, reason)
        self.input_done = True
        logger.debug("%s: failing the connection: %s", self, record.reason)
        self._end_stream(record)

    def _fail_after_messages(self, code: int, reason: str | None) -> None:
        """Fail on a protocol error in the input once the messages before it are read.

        Stops parsing now. Fails at once when no message is left to read and either
        none came before or a caller waits for the next one; otherwise holds the
        failure back (see :mod:`._held_failure`): the application may be answering
        the last message it took.
        """
        self.input_done = True
        if self.protocol.streaming or (
            not self.queue.has_items() and (self.delivered == 0 or self.asked > self.delivered)
        ):
            self._fail(code, reason)
            return
        self.protocol.hold_failure(code, reason)
        held = self.held = HeldFailure(self.protocol, self._name)
        logger.debug("%s: protocol error behind the messages queued: %s %s", self, code, reason)
        self._end_queues(held.error)

    def fail_held(self) -> None:
        """Do the failure held back behind unread messages, if there is one (any thread)."""
        if self.held is not None:
            self.held.fail()

    # -- timers ------------------------------------------------------------------------

    def _next_timer(self) -> float | None:
        """Seconds until the next keepalive or closing deadline, ``None`` for none."""
        return self.protocol.timers.next_wait(time.monotonic)

    def _on_timer(self) -> None:
        """Act on what the timers say is due (see :mod:`._timers`)."""
        now = time.monotonic()
        due = self.protocol.timers.due(now)
        if due is None:
            return
        if due is Due.CLOSE_TIMEOUT:
            self.abort("closing handshake timed out", timed_out=True)
        elif due is Due.PEER_SILENT:
            self._fail(1011, "keepalive ping timeout")
        elif self.protocol.send_keepalive_ping(now):
            self.protocol.timers.ping_sent(now)

    # -- the end -----------------------------------------------------------------------

    def _await_tcp_close(self) -> None:
        """After the close frames: write ours, end TCP (server first), await EOF."""
        protocol = self.protocol
        with protocol.lock:
            timers = protocol.timers
            if timers.close_deadline is None:
                timers.close_deadline = time.monotonic() + self._disconnect_timeout
            deadline = Deadline.at(timers.close_deadline)
            end = self.transport.queue(b"")
        try:
            self.transport.flush(end, deadline)
        except (TimeoutError, TransportError):
            return
        if not protocol.is_client:
            # RFC 6455, section 7.1.1: the server closes the TCP connection first.
            self.transport.shutdown_write()
        while True:
            data = self.transport.receive(deadline.remaining())
            if data == b"" or (data is None and deadline.expired()):
                return

    def _end_stream(self, record: CloseRecord) -> None:
        """No more messages will come: wake pings, end the message queue.

        Called as soon as the close reason is known, so that ``get_message``
        returns what is queued and then raises without waiting for TCP to close.
        ``record`` is the close record then: what ``get_message`` raises says it.
        """
        for ping in self.protocol.take_pings():
            ping.done.set()
        self._end_queues(record.error)

    def _end_queues(self, closed: Callable[[], ConnectionClosed]) -> None:
        """End the message queue and the chunks of the message being streamed."""
        self.intake.end(closed)
        self.queue.end(closed)

    def _finish(self) -> None:
        """Last act of the reader: mark the connection closed and wake everyone."""
        record = self.protocol.finish()
        self._end_stream(record)
        # A caller still reading (after a failure of this thread) wakes up and gives
        # the socket back before it is closed.
        self.transport.abort()
        self.turns.reader_keep_for_good()
        self.transport.close(self._disconnect_timeout)
        if self.on_demand:
            STARTER.ended()
        self.ended.set()
        logger.debug("%s: closed: %s", self, record.reason)

    def after_fork(self) -> None:
        """Become a closed copy of the parent's connection (child process, see :mod:`._fork`)."""
        lock = threading.Lock()
        self.protocol.after_fork(lock)
        self.transport.forsake(lock)
        self.turns.after_fork()
        self.queue = MessageQueue(1, 1)
        self.queue.end(self.protocol.close_record.error)
        self.intake = StreamIntake(self.protocol, self.queue)
        self.ended = Latch()
        self.ended.set()
        self.thread = None
        self.on_demand = False
