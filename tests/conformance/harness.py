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
    "Expect",
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
        h.send(b"".join(f.encode(h.masked) for f in self.frames), self.chop)


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
        assert frame.rsv == 0, f"RSV bits set without an extension: {frame}"
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
            self._parts.append(frame.payload)
            if frame.fin:
                opcode, payload = self._opcode, b"".join(self._parts)
                self.last_frames = len(self._parts)
                self._opcode, self._parts = None, []
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
