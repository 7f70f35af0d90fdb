"""The reader's side of messages over ``max_message_size``: their heads and chunks.

The thread whose turn it is to read hands each :class:`~._streams.Oversize` and
:class:`~._streams.Chunk` that the protocol yields to the connection's
:class:`StreamIntake`, which queues the head in the message queue, waits for its claim,
and queues the chunks in the head's own bounded queue (see :mod:`._streams`). Reading
turn only, apart from :meth:`StreamIntake.release`; no lock of its own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._streams import Chunk, Claim, Oversize, StreamHead

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._messages import MessageQueue
    from ._protocol import Protocol
    from .exceptions import ConnectionClosed

__all__ = ["StreamIntake"]


class StreamIntake:
    """Queues the heads and chunks of messages over ``max_message_size`` (see the module).

    :param protocol: the connection's protocol state.
    :param queue: its message queue.
    """

    __slots__ = ("head", "protocol", "queue")

    def __init__(self, protocol: Protocol, queue: MessageQueue) -> None:
        self.protocol = protocol
        self.queue = queue
        #: The head of the last message over the limit, or ``None``.
        self.head: StreamHead | None = None

    def head_arrived(self, event: Oversize) -> StreamHead | None:
        """Make the head of a message over the limit; ``None`` when it is discarded.

        The caller queues it. It is discarded when the application closed the
        connection (messages arriving after ``close()`` are), or the queue was released.
        """
        head = self.head = StreamHead(
            event.data, event.text, self.protocol.max_message_size, self.queue
        )
        if self.protocol.close_record.sent is not None or self.queue.released:
            head.settle(Claim.DISCARD)
            return None
        return head

    def chunk_arrived(self, chunk: Chunk, block: bool) -> None:
        """Queue a further piece of the message being streamed, unless it is discarded.

        ``block``: wait while the head's queue is full (the reader thread only).
        """
        head = self.head
        assert head is not None
        if head.claim is Claim.DISCARD or self.protocol.close_record.sent is not None:
            return
        block = block and not self.queue.released
        if chunk.data and head.chunks.put(chunk.data, block):
            # The reader waited for the application: silence proves nothing meanwhile.
            self.protocol.timers.waited_for_application(time.monotonic())
        if chunk.last:
            head.chunks.put(chunk.data[:0], False)  # The end of the message.

    def claim(self, block: bool) -> Claim:
        """Return the claim of the last head, first waiting for it when ``block`` is set.

        :attr:`~._streams.Claim.PENDING` only without ``block``. A wait that the
        release of the queue ends (the connection closes) discards the head.
        """
        head = self.head
        assert head is not None
        if head.claim is Claim.PENDING and block:
            self.queue.wait_until(lambda: head.claim is not Claim.PENDING)
            head.settle(Claim.DISCARD)  # Still pending: the queue was released.
            self.protocol.timers.waited_for_application(time.monotonic())
        return head.claim

    def release(self) -> None:
        """Never again wait for the application to take chunks (any thread)."""
        head = self.head
        if head is not None:
            head.chunks.release()

    def end(self, closed: Callable[[], ConnectionClosed]) -> None:
        """End the chunks of the message being streamed: the connection ended."""
        if self.head is not None:
            self.head.chunks.end(closed)
