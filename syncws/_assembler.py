"""Joining the frames of a fragmented message, within the connection's bounds.

wsproto hands a data message over in pieces, one per frame (or part of a frame). A
:class:`MessageAssembler` joins them into one buffer, whatever the number of frames,
and watches the two bounds a peer could otherwise push on: the message's size
(``max_message_size``, counted in bytes of UTF-8 for text: past it, the message is
handed over as it is so far, to be read as a stream or refused, see :mod:`._streams`)
and its number of frames (:data:`MAX_FRAGMENTS`, which bounds the work spent on empty
continuation frames). It
does no I/O and takes no lock: only the thread whose turn it is to read uses it.
"""

from __future__ import annotations

__all__ = ["MAX_FRAGMENTS", "MessageAssembler", "MessageOversize", "MessageTooBig", "utf8_size"]

#: The most frames a fragmented message may have (close code 1009 beyond it): the
#: parts of a message are joined as they come, so this bounds the time spent on a
#: message that never ends, not its memory.
MAX_FRAGMENTS = 65536


class MessageTooBig(Exception):
    """The message passed a bound; the connection closes with 1009 and this reason."""


class MessageOversize(Exception):
    """The message grew past ``max_size``: it can only be read as a stream.

    :param data: the message so far (``str`` for text), the piece that made it too
        big included.
    """

    def __init__(self, data: str | bytes) -> None:
        super().__init__("message larger than the limit")
        self.data = data


def utf8_size(text: str) -> int:
    """Return the size of ``text`` in UTF-8, in bytes."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class MessageAssembler:
    """The message being received, joined from its frames.

    :param max_size: the largest message, in bytes (UTF-8 for text).
    """

    __slots__ = ("_fragments", "_parts", "_size", "max_size")

    def __init__(self, max_size: int) -> None:
        #: The largest message, in bytes.
        self.max_size = max_size
        # The message so far, as UTF-8 for text: one buffer, whatever the number of frames.
        self._parts = bytearray()
        self._size = 0
        self._fragments = 0

    def add(
        self, data: str | bytes | bytearray, message_finished: bool, frame_finished: bool
    ) -> str | bytes | None:
        """Add the next piece of the message; return the message once it is whole.

        :param data: the piece, as wsproto gives it (``str`` for text).
        :param message_finished: the piece ends the message.
        :param frame_finished: the piece ends a frame.
        :returns: the whole message (``str`` for text), or ``None`` until it is.
        :raises MessageOversize: when the message passes ``max_size``, with what was
            joined so far (the message is then read as a stream, or refused).
        :raises MessageTooBig: when it passes :data:`MAX_FRAGMENTS`; what was joined so
            far is dropped.
        """
        self._size += utf8_size(data) if isinstance(data, str) else len(data)
        if self._size > self.max_size:
            so_far = self._join(data)
            self.clear()
            raise MessageOversize(so_far)
        if not message_finished:
            self._parts += data.encode("utf-8") if isinstance(data, str) else data
            if frame_finished:
                self._fragments += 1
                if self._fragments >= MAX_FRAGMENTS:
                    self.clear()
                    raise MessageTooBig(f"message in more than {MAX_FRAGMENTS} frames")
            return None
        self._size = 0
        self._fragments = 0
        return self._join(data)

    def _join(self, data: str | bytes | bytearray) -> str | bytes:
        """Return the parts so far and ``data`` as one message, and forget the parts."""
        if not self._parts:
            return data if isinstance(data, (str, bytes)) else bytes(data)
        parts = self._parts
        if isinstance(data, str):
            parts += data.encode("utf-8")
            message: str | bytes = parts.decode("utf-8")
        else:
            parts += data
            message = bytes(parts)
        parts.clear()
        return message

    def clear(self) -> None:
        """Drop the message received so far."""
        self._parts.clear()
        self._size = 0
        self._fragments = 0
