"""permessage-deflate (RFC 7692) with a bound on how much one piece may inflate to.

wsproto's :class:`~wsproto.extensions.PerMessageDeflate` inflates each frame in one
call with no output limit, so a small compressed frame can expand to gigabytes
before anyone can count it (a decompression bomb). syncws hands received bytes to
wsproto :data:`INFLATE_SLICE` at a time, and :class:`BoundedDeflate` inflates each
piece with ``max_length``: a piece never produces more than :data:`MAX_INFLATE`
bytes (deflate's largest ratio, 1,032 to 1, times the slice), so the message's size
is counted (against ``max_message_size``, see :mod:`._assembler`) before it can grow
any further. A piece that would inflate further fails the connection with 1009.

As a client, syncws offers ``permessage-deflate; client_max_window_bits``, as browsers
do, and takes every answer RFC 7692 allows for it. It inflates with the window the
server announced and compresses with its own small window (:data:`WINDOW_BITS`), or
with the smaller one the server asked for.

The private state of wsproto's class that this needs is reached through
:class:`._wsproto.DeflateBase`, which keeps every use of wsproto's internals.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from wsproto.events import RejectConnection
from wsproto.utilities import RemoteProtocolError

from ._options import COMPRESSION_CHOICES
from ._wsproto import CloseReason, DeflateBase, Opcode

if TYPE_CHECKING:
    from wsproto.extensions import Extension

    from ._wsproto import FrameDecoder, FrameProtocol, RsvBits
    from .connection import ConnectionOptions

__all__ = [
    "INFLATE_SLICE",
    "MAX_INFLATE",
    "BoundedDeflate",
    "deflate_extensions",
    "parse_parameters",
]

_TAIL = b"\x00\x00\xff\xff"
#: Received bytes reach wsproto this many at a time on a connection with compression.
INFLATE_SLICE = 4096
#: The most one piece of a compressed frame may inflate to: deflate's largest ratio
#: (1,032 to 1) times :data:`INFLATE_SLICE`, about 4 MiB.
MAX_INFLATE = 1032 * INFLATE_SLICE
#: Window bits (log2 of the LZ77 window) and zlib memory level used by default.
#: Measured on 16 KiB JSON-like messages: 12/5 compresses 6.4:1 and keeps about
#: 52 KiB per connection, where zlib's 15/8 compresses 6.5:1 and keeps 304 KiB.
WINDOW_BITS = 12
MEM_LEVEL = 5
_MAX_BITS = 15
_MIN_BITS = 8
#: The client's offer, after the extension's name: the server may choose any window
#: for the client, and keeps its own (RFC 7692, section 7.1.2.2).
OFFER = "client_max_window_bits"
_PARAMETERS = frozenset(
    [
        "client_no_context_takeover",
        "server_no_context_takeover",
        "client_max_window_bits",
        "server_max_window_bits",
    ]
)


class BoundedDeflate(DeflateBase):
    """permessage-deflate that inflates no piece past :data:`MAX_INFLATE` bytes."""

    def __init__(self) -> None:
        super().__init__(client_max_window_bits=WINDOW_BITS, server_max_window_bits=WINDOW_BITS)
        #: The ``Sec-WebSocket-Extensions`` value agreed on, once negotiated.
        self.negotiated = ""
        # The compressor's window bits and zlib strategy, set by the negotiation.
        self._send_bits = WINDOW_BITS
        self._strategy = zlib.Z_DEFAULT_STRATEGY

    def offer(self) -> str:
        """Return the client's offer: :data:`OFFER`, as browsers make it."""
        return OFFER

    def accept(self, offer: str) -> bool | str | None:
        """Answer a client's offer (server side); ``None`` declines it.

        Offers with unknown, repeated or out-of-range parameters are declined
        (RFC 7692, section 7). Our own window stays at most :data:`WINDOW_BITS`; the
        client's is narrowed too when its offer allows it (``client_max_window_bits``),
        otherwise it may use 15 bits and our inflater follows.
        """
        params = parse_parameters(offer)
        if params is None or params.get("server_max_window_bits", _MAX_BITS) == _MIN_BITS:
            return None  # zlib cannot keep a raw deflate window of 8 bits
        server_bits = min(params.get("server_max_window_bits") or _MAX_BITS, WINDOW_BITS)
        answer = [f"server_max_window_bits={server_bits}"]
        if "client_max_window_bits" in params:
            client_bits = min(params["client_max_window_bits"] or _MAX_BITS, WINDOW_BITS)
            answer.append(f"client_max_window_bits={client_bits}")
        else:
            client_bits = _MAX_BITS
        if "server_no_context_takeover" in params:
            answer.append("server_no_context_takeover")
        if "client_no_context_takeover" in params:
            answer.append("client_no_context_takeover")
        self.server_max_window_bits = server_bits
        self._send_bits = server_bits
        # An 8-bit client window is inflated with 9 bits, which reads it as well.
        self.client_max_window_bits = max(client_bits, _MIN_BITS + 1)
        self.server_no_context_takeover = "server_no_context_takeover" in params
        self.client_no_context_takeover = "client_no_context_takeover" in params
        self.enable()
        self.negotiated = "; ".join([self.name, *answer])
        return "; ".join(answer)

    def finalize(self, offer: str) -> None:
        """Take the server's answer to our offer (client side), or fail the handshake.

        Every answer RFC 7692 allows for :data:`OFFER` is taken: either window absent
        (15 bits) or from 8 to 15, either takeover flag present or not. The inflater
        uses the server's window (9 bits for 8, which reads an 8-bit stream). The
        compressor keeps :data:`WINDOW_BITS` when the answer allows that much, else the
        window answered; for 8 bits, which zlib cannot keep, it makes back-references
        of one byte only (zlib's ``Z_RLE`` strategy), valid in any window.

        :raises RemoteProtocolError: for unknown, repeated, malformed or out-of-range
            parameters, or ``client_max_window_bits`` without a value (section 7.1.2.2).
        """
        params = parse_parameters(offer)
        # A window parameter in an answer always has a value; only an offer may omit it.
        if params is None or params.get("client_max_window_bits", _MAX_BITS) is None:
            raise RemoteProtocolError(
                f"invalid permessage-deflate answer: {offer!r}", event_hint=RejectConnection()
            )
        server_bits = params.get("server_max_window_bits") or _MAX_BITS
        client_bits = params.get("client_max_window_bits") or _MAX_BITS
        self.server_max_window_bits = max(server_bits, _MIN_BITS + 1)
        self.client_max_window_bits = max(client_bits, _MIN_BITS + 1)
        if client_bits > _MIN_BITS:
            self._send_bits = min(client_bits, WINDOW_BITS)
        else:
            self._send_bits, self._strategy = _MIN_BITS + 1, zlib.Z_RLE
        self.server_no_context_takeover = "server_no_context_takeover" in params
        self.client_no_context_takeover = "client_no_context_takeover" in params
        self.enable()
        self.negotiated = offer.strip()  # The server's answer, name included.

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        """Compress an outgoing frame, creating the compressor with a small memory level.

        wsproto drops the compressor after each message when our side has no
        context takeover, so the next message starts a fresh one here. A frame
        that does not end its message (one sent in fragments) is flushed with
        ``Z_SYNC_FLUSH`` too, as the last one is: it then carries all of its data,
        which the peer can inflate as soon as it arrives, where wsproto would leave
        part of it in the compressor until a later frame (or send an empty one).
        """
        if self.compressor is None and opcode in (Opcode.TEXT, Opcode.BINARY):
            self.compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION,
                zlib.DEFLATED,
                -self._send_bits,
                MEM_LEVEL,
                self._strategy,
            )
        rsv, data = super().frame_outbound(proto, opcode, rsv, data, fin)
        if not fin and self.compressor is not None:
            # Only data frames may leave FIN unset; the flush marker stays (RFC 7692,
            # section 7.2.1 removes it at the end of the message only).
            data += self.compressor.flush(zlib.Z_SYNC_FLUSH)
        return rsv, data

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self.decompressor
        assert decompressor is not None
        try:
            out = decompressor.decompress(data, MAX_INFLATE)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if decompressor.unconsumed_tail:
            # Only for bytes wsproto got with the handshake, which are not sliced.
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
        saved = self.message_compressed
        result = super().frame_inbound_header(proto, opcode, rsv, payload_length)
        if opcode.iscontrol():
            # A ping between the fragments of a compressed message is not part of it.
            self.message_compressed = saved
        return result

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        """Inflate a piece of a compressed frame, up to :data:`MAX_INFLATE` bytes."""
        if not self.message_compressed or not self.frame_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        """Finish a compressed message: inflate the implicit tail."""
        if not self.frame_compressible or not fin:
            return None  # A control frame, or a fragment before the last one.
        if not self.message_compressed:
            self.message_compressed = None
            return None
        out = self._inflate(_TAIL)
        if isinstance(out, CloseReason):
            return out
        no_context_takeover = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if no_context_takeover:
            self.decompressor = None
        self.message_compressed = None
        return out


def parse_parameters(header: str) -> dict[str, int | None] | None:
    """Parse ``permessage-deflate; name=value; ...`` strictly; ``None`` if invalid.

    Takes the four parameters of RFC 7692, each at most once; the takeover flags
    without a value, the window sizes with a value from 8 to 15 (quoted or not),
    ``client_max_window_bits`` also without one (``None``).
    """
    params: dict[str, int | None] = {}
    for part in header.split(";")[1:]:
        name, equals, value = (item.strip() for item in part.partition("="))
        name = name.lower()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name not in _PARAMETERS or name in params:
            return None
        if name.endswith("_no_context_takeover"):
            if equals:
                return None
            params[name] = None
        elif not equals and name == "client_max_window_bits":
            params[name] = None
        elif value.isdigit() and _MIN_BITS <= int(value) <= _MAX_BITS and value[0] != "0":
            params[name] = int(value)
        else:
            return None
    return params


def deflate_extensions(options: ConnectionOptions) -> list[Extension]:
    """Build the wsproto extensions to offer or accept for the connection ``options``.

    :raises ValueError: for a ``compression`` value other than ``None`` or ``"deflate"``.
    """
    compression = options.get("compression")
    if compression not in COMPRESSION_CHOICES:
        raise ValueError(f"compression must be None or 'deflate', not {compression!r}")
    if compression is None:
        return []
    return [BoundedDeflate()]
