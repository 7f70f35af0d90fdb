"""Drive one conformance case from a hand-written raw peer (no wsproto, no syncws).

The raw peer is the *client* when syncws is the echo server (``side="server"``):
its frames are masked. It is the *server* when syncws is the echo client
(``side="client"``): its frames are unmasked. Everything the syncws side sends
is decoded by :mod:`rawpeer` and checked against the RFC: masking as the side
requires, RSV bits clear, control frames unfragmented and at most 125 bytes,
continuation frames only inside a message.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    PeerConnection,
    PeerEOF,
    apply_mask,
    close_payload,
    encode_frame,
)

__all__ = [
    "Deflate",
    "Expect",
    "ExpectZ",
    "F",
    "Fail",
    "Harness",
    "Msg",
    "PeerClose",
    "Pong",
    "Send",
    "close_payload",
]


# ------------------------------------------------------------------------ frame specs


@dataclass(frozen=True)
class F:
    """A frame the raw peer sends. ``mask``: None = as the side requires, else forced."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    mask: bool | None = None
    length: int | None = None  # announce this payload length instead of the real one

    def encode(self, masked_side: bool) -> bytes:
        masked = masked_side if self.mask is None else self.mask
        key = os.urandom(4) if masked else None
        return encode_frame(
            self.opcode, self.payload, fin=self.fin, rsv=self.rsv, mask=key, length=self.length
        )


@dataclass(frozen=True)
class Raw:
    """A frame with a hand-written first byte and length field (masked as the side requires)."""

    first: int
    length_field: bytes  # second byte without the mask bit, then any extended length
    payload: bytes = b""
    mask: bool | None = None

    def encode(self, masked_side: bool) -> bytes:
        masked = masked_side if self.mask is None else self.mask
        second = self.length_field[0] | (0x80 if masked else 0)
        head = bytes([self.first, second]) + self.length_field[1:]
        if not masked:
            return head + self.payload
        key = os.urandom(4)
        return head + key + apply_mask(self.payload, key)


def T(text: str | bytes, fin: bool = True, **kw: Any) -> F:
    payload = text.encode("utf-8") if isinstance(text, str) else text
    return F(OP_TEXT, payload, fin=fin, **kw)


def B(data: bytes, fin: bool = True, **kw: Any) -> F:
    return F(OP_BINARY, data, fin=fin, **kw)


def C(data: str | bytes, fin: bool = True, **kw: Any) -> F:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return F(OP_CONT, payload, fin=fin, **kw)


def fragments(opcode: int, payload: bytes, size: int) -> list[F]:
    """``payload`` as one message of fragments of ``size`` bytes (at least one frame)."""
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    frames = []
    for i, chunk in enumerate(chunks):
        frames.append(F(opcode if i == 0 else OP_CONT, chunk, fin=i == len(chunks) - 1))
    return frames


# ------------------------------------------------------------ permessage-deflate (RFC 7692)

#: The end of every sync-flushed block, left out on the wire (RFC 7692, section 7.2.1).
TAIL = b"\x00\x00\xff\xff"


def ext_params(header: str) -> list[tuple[str, str | None]]:
    """The parameters of one ``permessage-deflate`` element, in order, as (name, value)."""
    parts = [p.strip() for p in header.split(";")]
    assert parts[0] == "permessage-deflate", f"not a permessage-deflate element: {header!r}"
    out = []
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        out.append((name.strip(), value.strip().strip('"') if eq else None))
    return out


class Deflate:
    """The raw peer's own permessage-deflate end, from the agreed response ``params``.

    ``side`` is the syncws side. The raw peer compresses with the window its role
    may use and resets its compressor after each message when its role has
    ``*_no_context_takeover``; it inflates what syncws sends with the window syncws's
    role was given, and with a *fresh* inflater per message when syncws's role must
    not take over context, so that a syncws message referring back fails to inflate.
    """

    def __init__(self, side: str, params: dict[str, str | None]) -> None:
        client = ("client", int(params.get("client_max_window_bits") or 15))
        server = ("server", int(params.get("server_max_window_bits") or 15))
        mine, theirs = (client, server) if side == "server" else (server, client)
        self.send_bits, self.send_reset = mine[1], f"{mine[0]}_no_context_takeover" in params
        self.recv_bits, self.recv_reset = theirs[1], f"{theirs[0]}_no_context_takeover" in params
        self._compressor: Any = None
        self._inflater: Any = None

    def compress(self, data: bytes) -> bytes:
        if self._compressor is None:
            # zlib has no 8-bit raw window: like real servers, use 9 bits for 8.
            self._compressor = zlib.compressobj(wbits=-max(self.send_bits, 9))
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL), out
        if self.send_reset:
            self._compressor = None
        return out[: -len(TAIL)]

    def inflate(self, data: bytes) -> bytes:
        if self._inflater is None:
            self._inflater = zlib.decompressobj(wbits=-max(self.recv_bits, 9))
        try:
            out = self._inflater.decompress(data + TAIL)
        except zlib.error as exc:
            raise AssertionError(
                f"syncws sent deflate data that does not inflate with a "
                f"{'fresh ' if self.recv_reset else ''}{self.recv_bits}-bit inflater: {exc}"
            ) from None
        assert not self._inflater.unconsumed_tail
        if self.recv_reset:
            self._inflater = None
        return out


@dataclass(frozen=True)
class Z:
    """A message the raw peer compresses (with :class:`Deflate`) when it is sent.

    ``frag``: split the compressed bytes in fragments of this size; ``rsv``: the RSV
    bits of the first frame (RSV1 = 4), ``cont_rsv`` those of the continuation
    frames; ``ping``: a ping sent after the first fragment; ``raw``: send these
    bytes as the compressed payload instead of compressing ``payload``.
    """

    opcode: int
    payload: bytes
    frag: int | None = None
    rsv: int = 4
    cont_rsv: int = 0
    ping: bytes | None = None
    raw: bytes | None = None

    def expand(self, h: Harness) -> list[F]:
        assert h.deflate is not None, "no permessage-deflate agreed"
        data = h.deflate.compress(self.payload) if self.raw is None else self.raw
        size = self.frag or max(len(data), 1)
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        frames = []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            if i == 0:
                frames.append(F(self.opcode, chunk, fin=last, rsv=self.rsv))
                if self.ping is not None:
                    frames.append(F(OP_PING, self.ping))
            else:
                frames.append(F(OP_CONT, chunk, fin=last, rsv=self.cont_rsv))
        return frames


def ZT(text: str | bytes, **kw: Any) -> Z:
    return Z(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)


def ZB(data: bytes, **kw: Any) -> Z:
    return Z(OP_BINARY, data, **kw)


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Msg:
    """An expected data message, echoed by the syncws side."""

    opcode: int
    payload: bytes

    @staticmethod
    def text(text: str | bytes) -> Msg:
        return Msg(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    @staticmethod
    def binary(data: bytes) -> Msg:
        return Msg(OP_BINARY, data)


@dataclass(frozen=True)
class Pong:
    payload: bytes = b""


class Send:
    """Send frames; ``chop`` delivers the bytes in writes of that many bytes."""

    def __init__(self, *frames: F, chop: int | None = None) -> None:
        self.frames = frames
        self.chop = chop

    def run(self, h: Harness) -> None:
        frames = [g for f in self.frames for g in (f.expand(h) if isinstance(f, Z) else [f])]
        h.send(b"".join(f.encode(h.masked) for f in frames), self.chop)


class Expect:
    """Expect these messages and pongs.

    Messages must arrive in order, and pongs in order, but the syncws side answers
    pings from its reader thread while the echo comes from the application thread,
    so how the two streams interleave is not specified.
    """

    def __init__(self, *items: Msg | Pong) -> None:
        self.items = items

    def run(self, h: Harness) -> None:
        msgs = deque(i for i in self.items if isinstance(i, Msg))
        pongs = deque(i for i in self.items if isinstance(i, Pong))
        while msgs or pongs:
            kind, value = h.next_event()
            if kind == "msg":
                assert msgs, f"unexpected message {short(value)}"
                want = msgs.popleft()
                assert value == (want.opcode, want.payload), (
                    f"echo mismatch: got {short(value)}, want {short((want.opcode, want.payload))}"
                )
            elif kind == "pong":
                assert pongs, f"unexpected pong {value!r}"
                assert value == pongs.popleft().payload, f"pong payload mismatch: {value!r}"
            else:
                raise AssertionError(f"expected {list(msgs) + list(pongs)}, got {kind} {value!r}")


class ExpectWhole(Expect):
    """Like :class:`Expect`, and each message must come as one unfragmented frame."""

    def run(self, h: Harness) -> None:
        for item in self.items:
            Expect(item).run(h)
            if isinstance(item, Msg):
                assert h.last_frames == 1, f"message sent in {h.last_frames} frames"


class ExpectZ(Expect):
    """Like :class:`Expect`, and each message must come compressed (RSV1 set)."""

    def run(self, h: Harness) -> None:
        for item in self.items:
            Expect(item).run(h)
            if isinstance(item, Msg):
                assert h.last_compressed, "syncws sent the message uncompressed"


@dataclass
class Fail:
    """The syncws side must fail the connection with a close frame whose code is in ``codes``.

    ``may_echo``: messages that may (or may not) be echoed before the close frame.
    """

    codes: tuple[int, ...]
    may_echo: tuple[Msg, ...] = ()

    def run(self, h: Harness) -> None:
        frame = h.expect_close(self.may_echo)
        code = frame.close_code
        assert code in self.codes, f"syncws closed with {code}, want one of {self.codes}"
        # The raw peer answers with a close frame, as RFC 6455 section 5.5.1 asks.
        h.finish(reply=close_payload(code), reason_codes=(code,))


@dataclass
class PeerClose:
    """The raw peer sends a close frame (payload ``payload``, then ``then`` frames).

    The syncws side must answer with a close frame whose code is in ``echo`` (None =
    empty payload); its close_reason code must then be in ``reason``.
    """

    payload: bytes = field(default_factory=lambda: close_payload(1000))
    echo: tuple[int | None, ...] = (1000,)
    reason: tuple[int, ...] = (1000,)
    then: tuple[F, ...] = ()
    may_echo: tuple[Msg, ...] = ()

    def run(self, h: Harness) -> None:
        h.send(
            F(OP_CLOSE, self.payload).encode(h.masked)
            + b"".join(f.encode(h.masked) for f in self.then)
        )
        frame = h.expect_close(self.may_echo)
        assert frame.close_code in self.echo, (
            f"close answered with {frame.close_code}, want one of {self.echo}"
        )
        h.finish(reply=None, reason_codes=self.reason)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 120 else text[:120] + "..."


# ---------------------------------------------------------------------------- harness


class Harness:
    """The raw end of one connection plus a way to learn the syncws side's close reason."""

    def __init__(
        self,
        side: str,
        conn: PeerConnection,
        close_reason: Any,
        timeout: float,
        still_connected: Any = None,
        *,
        deflate: Deflate | None = None,
    ):
        self.side = side
        self.conn = conn
        self.masked = side == "server"  # the raw peer is the client: it masks
        self.close_reason = close_reason  # () -> CloseReason of the syncws side (bounded)
        self.timeout = timeout
        #: client side: () -> bool, whether the syncws client still holds its TCP connection
        self.still_connected = still_connected
        self._parts: list[bytes] = []
        self._opcode: int | None = None
        self.last_frames = 0
        #: the agreed permessage-deflate, None without the extension
        self.deflate = deflate
        self._compressed = False
        self.last_compressed = False
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes, chop: int | None = None) -> None:
        if not chop:
            self.conn.send_raw(data)
            return
        for i in range(0, len(data), chop):
            self.conn.send_raw(data[i : i + chop])

    def recv_frame(self) -> Frame:
        frame = self.conn.recv_frame(self.timeout)
        self.check_frame(frame)
        return frame

    def check_frame(self, frame: Frame) -> None:
        want_mask = self.side == "client"  # syncws is the client: it must mask
        assert frame.masked == want_mask, f"masking wrong for a {self.side}: {frame}"
        if self.deflate is None:
            assert frame.rsv == 0, f"RSV bits set without an extension: {frame}"
        elif frame.opcode in (OP_TEXT, OP_BINARY):
            assert frame.rsv in (0, 4), f"RSV2/RSV3 set: {frame}"
        else:
            assert frame.rsv == 0, f"RSV bits on a control or continuation frame: {frame}"
        assert frame.opcode in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG), frame
        if frame.opcode >= 8:
            assert frame.fin, f"fragmented control frame: {frame}"
            assert len(frame.payload) <= 125, f"control frame too long: {frame}"
        elif frame.opcode == OP_CONT:
            assert self._opcode is not None, f"continuation outside a message: {frame}"
        else:
            assert self._opcode is None, f"new message inside a fragmented one: {frame}"

    def next_event(self) -> tuple[str, Any]:
        """("msg", (opcode, payload)) | ("pong", payload) | ("ping", payload) | ("close", frame)."""
        while True:
            frame = self.recv_frame()
            if frame.opcode == OP_PONG:
                return "pong", frame.payload
            if frame.opcode == OP_PING:
                return "ping", frame.payload
            if frame.opcode == OP_CLOSE:
                return "close", frame
            if frame.opcode != OP_CONT:
                self._opcode = frame.opcode
                self._compressed = bool(frame.rsv & 4)
            self._parts.append(frame.payload)
            if frame.fin:
                opcode, payload = self._opcode, b"".join(self._parts)
                self.last_frames = len(self._parts)
                self.last_compressed = self._compressed
                self._opcode, self._parts = None, []
                if self._compressed:
                    assert self.deflate is not None
                    payload = self.deflate.inflate(payload)
                if opcode == OP_TEXT:
                    payload.decode("utf-8")  # the syncws side must send valid UTF-8
                return "msg", (opcode, payload)

    def expect_close(self, may_echo: tuple[Msg, ...] = ()) -> Frame:
        optional = deque(may_echo)
        while True:
            kind, value = self.next_event()
            if kind == "close":
                assert self._opcode is None, "close frame inside a fragmented message"
                payload = value.payload
                assert len(payload) != 1, f"1-byte close payload: {value}"
                if len(payload) >= 2:
                    value.payload[2:].decode("utf-8")  # reason must be valid UTF-8
                return value
            if kind == "msg" and optional:
                want = optional.popleft()
                if value == (want.opcode, want.payload):
                    continue
            raise AssertionError(f"expected a close frame, got {kind} {short(value)}")

    def finish(self, reply: bytes | None, reason_codes: tuple[int | None, ...]) -> None:
        """After the syncws side's close frame: the TCP teardown, then its close reason.

        ``reply``: a close frame payload the raw peer sends back first (None when the
        raw peer started the closing handshake and already sent its close frame).
        """
        if reply is not None:
            with contextlib.suppress(OSError):
                self.send(F(OP_CLOSE, reply).encode(self.masked))
        if self.side == "server":
            # syncws is the server: it must close TCP first (RFC 6455, section 7.1.1),
            # and send nothing after its close frame.
            extra = []
            try:
                while True:
                    extra.append(self.conn.recv_frame(self.timeout))
            except PeerEOF:
                pass
            assert not extra, f"frames after the close frame: {extra}"
            self.conn.close()
        else:
            # syncws is the client: it should wait for the server to close TCP. Check
            # it has not already (a sound check: it can only catch a real early close).
            assert not _peer_closed(self.conn.sock), "the syncws client closed TCP first"
            assert not self.conn.buf, f"bytes after the close frame: {bytes(self.conn.buf)!r}"
            if self.still_connected is not None:
                assert self.still_connected(), "the syncws client gave up its TCP connection first"
            self.conn.close()
        reason = self.close_reason()
        assert reason is not None, "syncws reported no close reason"
        assert reason.code in reason_codes, (
            f"syncws close_reason {reason}, want a code in {reason_codes}"
        )


def _peer_closed(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# ------------------------------------------------------------ permessage-deflate handshake

_PARAMS = (
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
)


def check_response(offer: str, response: str) -> dict[str, str | None]:
    """Check a server's answer to ``offer`` against RFC 7692 section 7.1; its parameters."""
    assert "," not in response, f"more than one extension accepted: {response!r}"
    offered = dict(ext_params(offer))
    got = ext_params(response)
    names = [name for name, _ in got]
    assert len(set(names)) == len(names), f"repeated parameter: {response!r}"
    params = dict(got)
    for name, value in got:
        assert name in _PARAMS, f"parameter {name!r} is not defined: {response!r}"
        if name.endswith("_no_context_takeover"):
            assert value is None, f"{name} takes no value: {response!r}"
        else:
            assert value is not None and value.isdigit() and value[0] != "0", response
            assert 8 <= int(value) <= 15, f"{name}={value} out of 8..15"
    if "server_no_context_takeover" in offered:
        assert "server_no_context_takeover" in params, f"{offer!r} answered {response!r}"
    if offered.get("server_max_window_bits") is not None:
        value = params.get("server_max_window_bits")
        assert value is not None, f"{offer!r} answered {response!r}"
        assert int(value) <= int(offered["server_max_window_bits"] or 15), response
    if "client_max_window_bits" in params:
        assert "client_max_window_bits" in offered, f"not offered, answered {response!r}"
        assert int(params["client_max_window_bits"] or 15) <= int(
            offered["client_max_window_bits"] or 15
        ), f"{offer!r} answered {response!r}"
    return params
