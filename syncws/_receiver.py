"""Receiving on one connection: messages from the queue, read first when it is our turn.

:class:`Receiver` runs on the caller's thread (``get_message``). It takes the next
message from the connection's message queue; when none is queued and nobody else reads
the socket, it reads the socket itself (:meth:`~syncws._reader.Reader.read_directly`,
see :mod:`._readturns`), so that the message it waits for never crosses threads. On the
main thread it never reads: Ctrl-C may interrupt any step there, and an interrupted
read could lose bytes; it waits for the reader thread's messages instead.

A message over ``max_message_size`` waits in the queue as a stream's head
(:mod:`._streams`): :meth:`Receiver.stream` claims it, :meth:`Receiver.message` refuses it.

It counts the calls that ask for a message (:attr:`~syncws._reader.Reader.asked`),
which tells the reader whether a protocol error may fail the connection at once (see
:mod:`._held_failure`).

No lock of its own: the queue and the reading turns take theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._streams import Claim, MessageStream, StreamHead, claim_stream

if TYPE_CHECKING:
    from ._deadline import Deadline
    from ._reader import Reader

__all__ = ["Receiver"]


class Receiver:
    """Returns a connection's messages to its callers (see the module docstring).

    :param reader: the connection's reader, which holds the message queue.
    """

    __slots__ = ("_reader",)

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def message(self, deadline: Deadline, guarded: bool) -> str | bytes:
        """Return the next message (:meth:`get` or :meth:`get_guarded`).

        A message over ``max_message_size`` is refused: the connection fails with 1009.
        """
        while True:
            item = self.get_guarded(deadline) if guarded else self.get(deadline)
            if not isinstance(item, StreamHead):
                return item
            item.settle(Claim.REFUSED)  # The next call raises, with 1009.

    def stream(
        self, deadline: Deadline, guarded: bool, timeout: float | None, decode: bool | None
    ) -> MessageStream:
        """Return the next message as a :class:`~._streams.MessageStream`."""
        while True:
            item = self.get_guarded(deadline) if guarded else self.get(deadline)
            if claim_stream(item):
                break
        if type(item) is StreamHead:
            self._reader.hand_over()  # The reader thread puts the chunks.
        return MessageStream(item, timeout=timeout, decode=decode, guard=guarded)

    def get(self, deadline: Deadline) -> str | bytes | StreamHead:
        """Return the next item, reading the socket here when it is this thread's turn.

        :raises TimeoutError: when ``deadline`` passed first.
        :raises ConnectionClosed: after the last message, once the connection closed.
        """
        reader = self._reader
        reader.asked += 1
        try:
            return self._get(deadline)
        except TimeoutError:
            reader.asked -= 1  # This call ended without asking past anything.
            raise
        finally:
            if reader.thread is None and not reader.turns.input_ended:
                # The caller stops reading: unless it reads again soon, the reader
                # thread must take the socket back after the caller window.
                reader.start_later()

    def _get(self, deadline: Deadline) -> str | bytes | StreamHead:
        reader = self._reader
        queue = reader.queue
        while True:
            message = queue.take()
            if message is not None:
                return message
            if reader.read_directly(deadline):
                if deadline.expired():
                    message = queue.take()
                    if message is None:
                        raise TimeoutError("no message received in time")
                    return message
                continue
            # Another thread reads: wait for what it queues, or for the turn.
            message = queue.get(deadline.remaining())
            if message is not None:
                return message

    def get_guarded(self, deadline: Deadline) -> str | bytes | StreamHead:
        """Return the next message on the main thread, where Ctrl-C may interrupt any step.

        The main thread never reads the socket itself: an interrupt in the middle of
        a read could drop bytes already taken from the socket, or leave the
        protocol engine half-way. It waits for the reader thread's messages, and
        takes each one so that an interrupt leaves it queued (see
        :meth:`~syncws._messages.MessageQueue.get`); no step follows the take but the
        return.
        """
        reader = self._reader
        reader.asked += 1
        try:
            return self._get_guarded(reader, deadline)
        except TimeoutError:
            reader.asked -= 1  # This call ended without asking past anything.
            raise

    def _get_guarded(self, reader: Reader, deadline: Deadline) -> str | bytes | StreamHead:
        queue = reader.queue
        message = queue.take(guard=True)
        if message is not None:
            return message
        if not reader.start():
            # No reader thread can start (the system is out of threads): read here
            # rather than wait for nothing.
            return self._get(deadline)
        reader.turns.hand_to_reader()
        while True:
            message = queue.get(deadline.remaining(), guard=True)
            if message is not None:
                return message
