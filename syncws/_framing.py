"""The fast path for whole data frames, beside wsproto.

Most frames on a busy connection are whole, uncompressed text or binary messages: one
frame with FIN set and no extension bits. wsproto frames and parses those in Python, one
object and several copies at a time, which costs more than the rest of a small message's
trip (see the performance page). For those frames only, syncws does the work itself:

* :func:`encode_message` frames an outgoing message in one step (and masks it, on the
  client side), and :func:`encode_frame` one frame of a message sent in fragments;
* :class:`FrameSplitter` scans received bytes, decodes the whole data frames itself, and
  passes everything else to wsproto, in order and at frame boundaries: control frames,
  fragmented messages, text frames not yet complete (wsproto checks their UTF-8 as
  they arrive), messages larger than the size limit, and any frame wsproto must
  reject (which it then rejects with the right close code).

wsproto keeps everything that has state: the handshake, the connection state, pings,
fragments, the closing handshake and every protocol error. The fast path is off for the
whole connection when an extension (permessage-deflate) was negotiated.

Masking runs in C in syncws's own extension, :mod:`syncws._speedups`, built at
install where a C compiler is found, unless the environment variable
``SYNCWS_NO_SPEEDUPS`` is set (to anything but an empty string); the pure-Python
fallback gives the same bytes.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from wsproto.events import BytesMessage, Message, TextMessage

__all__ = [
    "FrameSplitter",
    "apply_mask",
    "chunk_is_text",
    "encode_frame",
    "encode_message",
    "masking_key",
    "message_event",
    "speedups",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
_CONTROL = frozenset([0x8, 0x9, 0xA])
#: Messages up to this size go out as one piece (header and payload joined); larger
#: ones as two, so that the payload is not copied.
JOIN_LIMIT = 16 * 1024
#: Below this size the integer method masks faster than the translate tables.
_INT_MASK_LIMIT = 2048

_fast_mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] | None = None
if not os.environ.get("SYNCWS_NO_SPEEDUPS"):
    try:
        from ._speedups import apply_mask as _fast_mask
    except ImportError:  # pragma: no cover - depends on what is installed
        _fast_mask = None

_tables: list[bytes] = []

#: Masking keys, drawn from the operating system's random source 256 at a time: one
#: ``os.urandom`` call per frame costs a system call, during which another thread may
#: take the GIL, several µs in all. ``deque.popleft`` and ``extend`` are atomic, so
#: threads sending at once never get the same key.
_keys: deque[bytes] = deque()


def masking_key() -> bytes:
    """Return a fresh, unpredictable 4-byte masking key (RFC 6455, section 5.3)."""
    try:
        return _keys.popleft()
    except IndexError:
        block = os.urandom(1024)
        _keys.extend(block[i : i + 4] for i in range(4, 1024, 4))
        return block[:4]


def speedups() -> bool:
    """Whether masking runs in C (the extension was built and is not disabled)."""
    return _fast_mask is not None


def _python_mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    size = len(data)
    if size <= _INT_MASK_LIMIT:
        repeated = key * (size >> 2) + key[: size & 3]
        value = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
        return value.to_bytes(size, "little")
    if not _tables:
        _tables.extend(bytes(b ^ k for b in range(256)) for k in range(256))
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_tables[key[i]])
    return bytes(out)


def apply_mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (RFC 6455, section 5.3)."""
    if _fast_mask is not None:
        return _fast_mask(data, key)
    return _python_mask(data, key)


def message_event(message: str | bytes | bytearray | memoryview) -> Message[Any]:
    """Make the wsproto event for a message: text for ``str``, binary for bytes-like."""
    if isinstance(message, str):
        return TextMessage(data=message)
    if isinstance(message, (bytes, bytearray, memoryview)):
        return BytesMessage(data=cast("bytes", message))
    raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")


def encode_message(
    message: str | bytes | bytearray | memoryview, client: bool
) -> tuple[bytes, ...]:
    """Frame a whole message as one frame; return the pieces to write, in order."""
    if isinstance(message, str):
        opcode, payload = 0x80 | OP_TEXT, message.encode("utf-8")
    else:
        # A copy of a mutable buffer: the caller may change it once this returns.
        payload = message if isinstance(message, bytes) else bytes(message)
        opcode = 0x80 | OP_BINARY
    return _frame(opcode, payload, client)


def chunk_is_text(chunk: object) -> bool:
    """Whether a chunk of a message sent in fragments is text (``str``) or bytes-like.

    :raises TypeError: for anything else.
    """
    if isinstance(chunk, str):
        return True
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return False
    raise TypeError(f"a message's chunks must be str or bytes-like, not {type(chunk).__name__}")


def encode_frame(
    opcode: int, fin: bool, chunk: str | bytes | bytearray | memoryview, client: bool
) -> tuple[bytes, ...]:
    """Frame one fragment of a message; return the pieces to write, in order.

    ``opcode`` is the message's (text or binary) for its first frame and
    :data:`OP_CONTINUATION` for the others; ``fin`` is set on the last one only.
    """
    if isinstance(chunk, str):
        payload = chunk.encode("utf-8")
    else:
        # A copy of a mutable buffer, as for a whole message.
        payload = chunk if isinstance(chunk, bytes) else bytes(chunk)
    return _frame((0x80 if fin else 0) | opcode, payload, client)


def _frame(first: int, payload: bytes, client: bool) -> tuple[bytes, ...]:
    """Frame ``payload`` after the first header byte ``first`` (FIN, RSV and opcode)."""
    size = len(payload)
    mask_bit = 0x80 if client else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if client:
        key = masking_key()
        header += key
        payload = apply_mask(payload, key)
    if size <= JOIN_LIMIT:
        return (header + payload,)
    return header, payload


class FrameSplitter:
    """Splits received bytes into whole data frames, decoded here, and bytes for wsproto.

    :meth:`feed` returns, in order, decoded messages (``str`` or ``bytes``) and
    ``memoryview`` pieces to give to wsproto. Pieces always start and end so that
    wsproto sees exactly the frames it is given, as if it had seen all the bytes.

    :param client: whether this is the client side (frames must arrive unmasked).
    :param max_size: frames with a larger payload go to wsproto, which streams them
        (and the connection fails them with 1009).
    :param enabled: False passes every byte to wsproto.
    """

    __slots__ = (
        "_client",
        "_fragmented",
        "_max_size",
        "_need",
        "_off",
        "_pending",
        "_run",
        "_skip",
    )

    def __init__(self, client: bool, max_size: int, enabled: bool = True) -> None:
        self._client = client
        self._max_size = max_size
        self._off = not enabled
        # Bytes owed to wsproto for the frame it is reading.
        self._skip = 0
        # wsproto is inside a fragmented message: data frames must go to it.
        self._fragmented = False
        # The start of a frame that is not complete yet, and its full size (0 while
        # the header itself is incomplete).
        self._pending = bytearray()
        self._need = 0
        # Within feed(): the last piece for wsproto, as (view, start, end), so that the
        # next one joins it when contiguous: many small frames for wsproto (the
        # fragments of a message, pings) make one piece, not one object each.
        self._run: tuple[memoryview, int, int] | None = None

    def prime(self, data: bytes) -> None:
        """Account for bytes that wsproto already has (received with the handshake)."""
        if self._off or not data:
            return
        view = memoryview(data)
        pos = self._pass(view, 0)
        while pos < len(view):
            frame = self._parse_header(view, pos)
            if frame is None:
                # A partial header that wsproto holds: where its frame ends is
                # unknown here, so wsproto keeps this connection's frames.
                self._off = True
                break
            pos = self._to_wsproto(view, pos, frame, [])
        self._run = None

    def feed(self, data: bytes) -> list[str | bytes | memoryview]:
        """Split received bytes; see the class documentation."""
        if self._off:
            return [memoryview(data)]
        out: list[str | bytes | memoryview] = []
        self._split(data, out)
        self._run = None  # It holds the received bytes: not beyond this call.
        return out

    def _split(self, data: bytes, out: list[str | bytes | memoryview]) -> None:
        if self._pending and not self._need:
            # Only a partial header was pending (a few bytes): start over with it.
            data = bytes(self._pending) + data
            self._pending.clear()
        view = memoryview(data)
        pos = self._pass(view, 0, out)
        if self._pending:
            pos = self._complete_pending(view, pos, out)
            if pos < 0:
                return
        while pos < len(view):
            if self._off:
                self._to_engine(out, view, pos, len(view))
                return
            frame = self._parse_header(view, pos)
            if frame is None:
                if self._off:
                    self._to_engine(out, view, pos, len(view))
                else:
                    self._pending += view[pos:]
                    self._need = 0
                return
            opcode, _, size, header_size, key, simple = frame
            end = pos + header_size + size
            if not simple:
                pos = self._to_wsproto(view, pos, frame, out)
                continue
            if end > len(view):
                if opcode == OP_TEXT:
                    # wsproto checks UTF-8 as bytes arrive, failing a bad message
                    # before its end (RFC 6455, section 8.1).
                    pos = self._to_wsproto(view, pos, frame, out)
                    continue
                self._pending += view[pos:]
                self._need = end - pos
                return
            if not self._decode(view[pos:end], header_size, opcode, key, out):
                pos = self._to_wsproto(view, pos, frame, out)
                continue
            pos = end
        return

    # -- inside feed ---------------------------------------------------------------------

    def _pass(
        self, view: memoryview, pos: int, out: list[str | bytes | memoryview] | None = None
    ) -> int:
        """Hand wsproto the rest of the frame it is reading; return the new position."""
        if not self._skip:
            return pos
        take = min(self._skip, len(view) - pos)
        if out is not None and take:
            self._to_engine(out, view, pos, pos + take)
        self._skip -= take
        return pos + take

    def _to_engine(
        self, out: list[str | bytes | memoryview], view: memoryview, start: int, end: int
    ) -> None:
        """Append ``view[start:end]`` for wsproto, joined to the previous piece if contiguous."""
        run = self._run
        if (
            run is not None
            and run[0] is view
            and run[2] == start
            and out
            and isinstance(out[-1], memoryview)
        ):
            start = run[1]
            out[-1] = view[start:end]
        else:
            out.append(view[start:end])
        self._run = (view, start, end)

    def _complete_pending(
        self, view: memoryview, pos: int, out: list[str | bytes | memoryview]
    ) -> int:
        """Add to the pending frame; return where the next frame starts, -1 if not yet."""
        take = min(self._need - len(self._pending), len(view) - pos)
        self._pending += view[pos : pos + take]
        pos += take
        if len(self._pending) < self._need:
            return -1
        frame_bytes = memoryview(bytes(self._pending))
        self._pending.clear()
        self._need = 0
        frame = self._parse_header(frame_bytes, 0)
        assert frame is not None
        opcode, _, _, header_size, key, _ = frame
        if not self._decode(frame_bytes, header_size, opcode, key, out):
            self._to_wsproto(frame_bytes, 0, frame, out)
        return pos

    def _parse_header(
        self, view: memoryview, pos: int
    ) -> tuple[int, bool, int, int, bytes | None, bool] | None:
        """Parse the frame header at ``pos``; ``None`` when it is not all there.

        A header that wsproto must reject turns the fast path off as soon as the bytes
        that prove it are there (wsproto fails it at once, not when the rest arrives);
        ``None`` is returned then too.

        :returns: opcode, FIN, payload size, header size, masking key, and whether
            the frame may take the fast path.
        """
        available = len(view) - pos
        if available < 2:
            return None
        first, second = view[pos], view[pos + 1]
        opcode = first & 0x0F
        fin = bool(first & 0x80)
        masked = bool(second & 0x80)
        size = second & 0x7F
        if (
            first & 0x70
            or masked is self._client
            or not (
                opcode in (OP_CONTINUATION, OP_TEXT, OP_BINARY)
                or (opcode in _CONTROL and fin and size <= 125)
            )
        ):
            self._off = True
            return None
        header_size = 2
        if size == 126:
            if available < 4:
                return None
            size = int.from_bytes(view[pos + 2 : pos + 4], "big")
            header_size = 4
            minimal = size >= 126
        elif size == 127:
            if available < 10:
                return None
            size = int.from_bytes(view[pos + 2 : pos + 10], "big")
            header_size = 10
            minimal = 65536 <= size < 2**63
        else:
            minimal = True
        if not minimal:
            self._off = True
            return None
        key = None
        if masked:
            if available < header_size + 4:
                return None
            key = bytes(view[pos + header_size : pos + header_size + 4])
            header_size += 4
        simple = (
            fin
            and opcode in (OP_TEXT, OP_BINARY)
            and not self._fragmented
            and size <= self._max_size
        )
        return opcode, fin, size, header_size, key, simple

    def _to_wsproto(
        self,
        view: memoryview,
        pos: int,
        frame: tuple[int, bool, int, int, bytes | None, bool],
        out: list[str | bytes | memoryview],
    ) -> int:
        """Give wsproto the frame at ``pos`` (what is there of it); return the new position."""
        opcode, fin, size, header_size, _, _ = frame
        if self._off:
            self._to_engine(out, view, pos, len(view))
            return len(view)
        if opcode in (OP_TEXT, OP_BINARY):
            self._fragmented = not fin
        elif opcode == OP_CONTINUATION and fin:
            self._fragmented = False
        end = min(pos + header_size + size, len(view))
        self._to_engine(out, view, pos, end)
        self._skip = pos + header_size + size - end
        return end

    def _decode(
        self,
        frame: memoryview,
        header_size: int,
        opcode: int,
        key: bytes | None,
        out: list[str | bytes | memoryview],
    ) -> bool:
        """Decode a whole data frame into ``out``; False when it must go to wsproto."""
        payload = frame[header_size:]
        data = apply_mask(payload, key) if key is not None else payload.tobytes()
        if opcode == OP_BINARY:
            out.append(data)
            return True
        try:
            out.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            return False  # wsproto fails the connection with 1007.
        return True
