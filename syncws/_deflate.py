"""permessage-deflate (RFC 7692) with a bound on how much one message may inflate to.

wsproto's :class:`~wsproto.extensions.PerMessageDeflate` inflates each frame in one
call with no output limit, so a small compressed frame can expand to gigabytes
before anyone can count it (a decompression bomb). :class:`BoundedDeflate` inflates
with ``max_length`` instead and fails the connection with 1009 (message too big) as
soon as a message would inflate past ``max_message_size``; it never produces more
than the limit plus one byte.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode

if TYPE_CHECKING:
    from wsproto.frame_protocol import FrameDecoder, FrameProtocol, RsvBits

__all__ = ["COMPRESSION_CHOICES", "BoundedDeflate", "deflate_extensions"]

#: The values of the ``compression`` option.
COMPRESSION_CHOICES = (None, "deflate")

_TAIL = b"\x00\x00\xff\xff"
#: Window bits (log2 of the LZ77 window) and zlib memory level used by default.
#: Measured on 16 KiB JSON-like messages: 12/5 compresses 6.4:1 and keeps about
#: 52 KiB per connection, where zlib's 15/8 compresses 6.5:1 and keeps 304 KiB.
WINDOW_BITS = 12
MEM_LEVEL = 5
_MAX_BITS = 15


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that refuses to inflate a message past ``max_size`` bytes.

    :param max_size: the largest inflated message, in bytes.
    """

    def __init__(self, max_size: int) -> None:
        super().__init__(client_max_window_bits=WINDOW_BITS, server_max_window_bits=WINDOW_BITS)
        self._max_size = max_size
        self._inflated = 0  # bytes inflated so far for the current message

    def accept(self, offer: str) -> bool | str | None:
        """Answer a client's offer (server side), keeping our own window small.

        The client's window can only be limited when its offer allows it (a
        ``client_max_window_bits`` parameter); otherwise it may use 15 bits and our
        inflater must too. Our own compressor may always use a smaller window than
        the client allows.
        """
        allows_client_limit = "client_max_window_bits" in offer
        answer = super().accept(offer)
        if not allows_client_limit:
            self.client_max_window_bits = _MAX_BITS
        self.server_max_window_bits = min(self.server_max_window_bits, WINDOW_BITS)
        return answer

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        """Compress an outgoing frame, creating the compressor with a small memory level."""
        if self._compressor is None and opcode in (Opcode.TEXT, Opcode.BINARY):
            bits = self.client_max_window_bits if proto.client else self.server_max_window_bits
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, MEM_LEVEL
            )
        return super().frame_outbound(proto, opcode, rsv, data, fin)

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        assert decompressor is not None
        budget = self._max_size - self._inflated
        try:
            out = decompressor.decompress(data, budget + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self._max_size or decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        """Check a frame header; control frames leave the message's state alone."""
        saved = self._inbound_compressed
        result = super().frame_inbound_header(proto, opcode, rsv, payload_length)
        if opcode.iscontrol():
            # A ping between the fragments of a compressed message is not part of it.
            self._inbound_compressed = saved
        return result

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        """Inflate a piece of a compressed frame, within the message's budget."""
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        """Finish a compressed message: inflate the implicit tail, reset the budget."""
        if not self._inbound_is_compressible or not fin:
            return None  # A control frame, or a fragment before the last one.
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        out = self._inflate(_TAIL)
        self._inflated = 0
        if isinstance(out, CloseReason):
            return out
        no_context_takeover = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return out


def deflate_extensions(compression: str | None, max_size: int) -> list[Extension]:
    """Build the wsproto extensions to offer or accept for a ``compression`` value."""
    if compression not in COMPRESSION_CHOICES:
        raise ValueError(f"compression must be None or 'deflate', not {compression!r}")
    return [] if compression is None else [BoundedDeflate(max_size)]
