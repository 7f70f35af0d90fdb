"""Messages read as a stream of chunks, and messages larger than ``max_message_size``.

A message is joined into one ``str`` or ``bytes`` while it is received, up to
``max_message_size``. One that grows past that size is not joined any further: the
reader queues a :class:`StreamHead` in its place, with what was joined so far as its
first chunk, and stops reading until a caller takes the head from the message queue:

* ``get_message_stream()`` claims it (:attr:`Claim.STREAM`): the reader goes on, and
  puts each further piece of the message, as it arrives, into the head's own bounded
  queue of chunks, which the caller's :class:`MessageStream` reads;
* ``get_message()`` refuses it (:attr:`Claim.REFUSED`): the reader fails the
  connection with code 1009, as for any message over the limit;
* a connection that closes or aborts first discards it (:attr:`Claim.DISCARD`), as
  does a :class:`MessageStream` closed before the message's end: the reader reads the
  rest of the message and drops it.

A message of at most ``max_message_size`` read with ``get_message_stream()`` comes
whole, as a single chunk. No lock but the head's own, a leaf taken to settle the claim.
"""

from __future__ import annotations

import codecs
import enum
import threading
from typing import TYPE_CHECKING

from ._messages import MessageQueue

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "MAX_QUEUED_CHUNKS",
    "Chunk",
    "Claim",
    "MessageStream",
    "Oversize",
    "StreamHead",
    "claim_stream",
    "convert",
]

#: The most chunks of one streamed message that may wait for the application (the
#: bytes they hold are bounded too, by ``max_message_size``).
MAX_QUEUED_CHUNKS = 64


class Oversize:
    """What the protocol yields when a message grows past ``max_message_size``.

    The protocol stops parsing there until the reader has its head claimed.
    """

    __slots__ = ("data", "text")

    def __init__(self, data: str | bytes, text: bool) -> None:
        #: The message so far (at least one byte).
        self.data = data
        self.text = text


class Chunk:
    """A further piece of the message being streamed, as the protocol yields it."""

    __slots__ = ("data", "last")

    def __init__(self, data: str | bytes, last: bool) -> None:
        self.data = data
        #: Whether it ends the message.
        self.last = last


class Claim(enum.Enum):
    """What became of a :class:`StreamHead`."""

    #: Nobody took it yet; the reader waits.
    PENDING = "pending"
    #: A :class:`MessageStream` reads it.
    STREAM = "stream"
    #: ``get_message`` took it: the connection fails with 1009.
    REFUSED = "refused"
    #: Its chunks are dropped (the stream was closed early, or the connection closes).
    DISCARD = "discard"


class StreamHead:
    """A message over ``max_message_size``, in the message queue in its place.

    :param first: the message so far, its first chunk.
    :param text: whether it is a text message.
    :param max_bytes: the most bytes of chunks that may wait for the application.
    :param queue: the connection's message queue, whose putter (the reader) waits
        for the claim: settling the claim wakes it.
    """

    __slots__ = ("_lock", "_queue", "chunks", "claim", "text")

    def __init__(self, first: str | bytes, text: bool, max_bytes: int, queue: MessageQueue) -> None:
        self.text = text
        #: The chunks not read yet; the empty chunk (``""`` or ``b""``) ends the message.
        self.chunks = MessageQueue(MAX_QUEUED_CHUNKS, max_bytes)
        self.chunks.put(first, block=False)
        self.claim = Claim.PENDING
        self._queue = queue
        self._lock = threading.Lock()

    def settle(self, claim: Claim) -> bool:
        """Decide the claim unless it is decided; return whether this call decided it."""
        return self._decide(claim, Claim.PENDING)

    def discard(self) -> None:
        """Drop the rest of the message, also after a stream claimed it (closed early)."""
        if not self._decide(Claim.DISCARD, Claim.PENDING):
            self._decide(Claim.DISCARD, Claim.STREAM)

    def _decide(self, claim: Claim, expected: Claim) -> bool:
        with self._lock:
            if self.claim is not expected:
                return False
            self.claim = claim
        if claim is Claim.DISCARD:
            self.chunks.release()  # The reader's wait for room ends; it drops the rest.
        self._queue.wake_putter()
        return True


class MessageStream:
    """One received message, read as a stream of chunks as they arrive.

    Made by :meth:`~syncws.WebSocketConnection.get_message_stream`. Iterate over it
    for the chunks: ``str`` for a text message, ``bytes`` for a binary one (unless
    ``decode`` said otherwise). Each chunk waits at most :attr:`timeout` seconds;
    when that passes, :exc:`TimeoutError` is raised and the stream stays usable: the
    next ``next()`` goes on where it stopped. A :class:`~syncws.ConnectionClosed` says
    the connection closed before the message's end.

    Read it to its end or :meth:`close` it (a ``with`` block does): until then, the
    connection delivers no other message. Not meant to be read from several threads
    at once.
    """

    __slots__ = ("_decoder", "_done", "_encode", "_guard", "_head", "_whole", "text", "timeout")

    def __init__(
        self,
        item: str | bytes | StreamHead,
        *,
        timeout: float | None,
        decode: bool | None,
        guard: bool,
    ) -> None:
        #: Whether the message is a text message (chunks are then ``str`` by default).
        self.text: bool = isinstance(item, str) or (isinstance(item, StreamHead) and item.text)
        #: How long each chunk may take, in seconds (``None``: no limit); may be changed.
        self.timeout = timeout
        self._guard = guard
        self._head = item if isinstance(item, StreamHead) else None
        self._whole = None if isinstance(item, StreamHead) else item
        self._done = False
        self._encode = self.text and decode is False
        self._decoder: codecs.IncrementalDecoder | None = None
        if not self.text and decode:
            self._decoder = codecs.getincrementaldecoder("utf-8")()

    def __iter__(self) -> MessageStream:
        return self

    def __next__(self) -> str | bytes:
        """Return the next chunk.

        :raises StopIteration: after the last chunk.
        :raises TimeoutError: when no chunk arrived within the stream's timeout.
        :raises ConnectionClosed: when the connection closed before the message's end.
        :raises UnicodeDecodeError: for ``decode=True`` on a binary message that is not
            UTF-8.
        """
        if self._done:
            raise StopIteration
        if self._whole is not None:
            chunk: str | bytes | None = self._whole
            self._whole = None
            self._done = True
            return self._convert(chunk, final=True)  # type: ignore[arg-type]
        assert self._head is not None
        while True:
            chunk = self._head.chunks.get(self.timeout, self._guard)  # type: ignore[assignment]
            if chunk is not None:
                break
        if not chunk:
            self._done = True
            if self._decoder is not None:
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    return tail
            raise StopIteration
        return self._convert(chunk, final=False)

    def _convert(self, chunk: str | bytes, final: bool) -> str | bytes:
        if self._encode:
            return chunk.encode("utf-8")  # type: ignore[union-attr]
        if self._decoder is not None:
            return self._decoder.decode(chunk, final=final)  # type: ignore[arg-type]
        return chunk

    def close(self) -> None:
        """Stop reading: the rest of the message is dropped as it arrives. Idempotent."""
        if not self._done:
            self._done = True
            if self._head is not None:
                self._head.discard()

    def __enter__(self) -> MessageStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def convert(message: str | bytes, decode: bool | None) -> str | bytes:
    """Apply ``get_message``'s ``decode`` to a whole message.

    :raises UnicodeDecodeError: for ``decode=True`` on a binary message not in UTF-8.
    """
    if decode is None:
        return message
    if isinstance(message, str):
        return message if decode else message.encode("utf-8")
    return message.decode("utf-8") if decode else message


def claim_stream(item: str | bytes | StreamHead) -> bool:
    """Claim ``item``, just taken from the message queue, for a stream.

    :returns: False for a head discarded already (the connection closes): skip it.
    """
    return not isinstance(item, StreamHead) or item.settle(Claim.STREAM)
