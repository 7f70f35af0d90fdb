"""The conformance cases, by Autobahn|Testsuite category, written from RFC 6455.

Every case runs twice: against a syncws echo *server* (the raw peer is a masking
client) and against a syncws echo *client* (the raw peer is the server). A case is
a list of steps (:class:`harness.Send`, :class:`harness.Expect`) and an ending:
:class:`harness.Fail` (the syncws side must fail the connection with the given
close code) or :class:`harness.PeerClose` (the raw peer closes; syncws must answer).
Every ending also checks the TCP teardown: the server closes TCP first.

Behaviour syncws chooses where RFC 6455 leaves a choice (cite these in the docs):

* **Messages received before a protocol error** are handed to the application, and
  the connection fails only when it asks past them (or after
  ``FAIL_AFTER_MESSAGES_TIMEOUT``): its answers to them go out before the close
  frame (the cases ``*.1`` after 3.2 to 5.15, 6.9.1, 9.9.1, 12.5.10, 12.5.11 send the
  valid message and the violation together and expect the echo, then the close).
  A message sent together with a valid close frame may or may not be echoed
  (``may_echo``, 7.3.1): the close is answered at once.
* **Empty close frame** (no status code): syncws answers with an empty close frame
  (RFC 6455, section 5.5.1: echo the status code received, here none) and reports
  ``close_reason.code == 1005`` (NO_STATUS_RCVD) (7.1.3). Answering 1000 would be
  RFC-valid too; the case pins down what syncws does.
* **Close reason text** is echoed back with the code.
* **UTF-8 is validated incrementally** (fail fast): a text fragment that cannot be
  the start of valid UTF-8 fails the connection with 1007 at once, without waiting
  for the final fragment (cases 6.6.x), even inside a frame whose payload has not
  fully arrived (6.6.7, 6.6.8); an incomplete sequence at the end of a
  non-final fragment is fine (6.3.x), at the end of the message it is 1007.
* **Data after a close frame** is ignored: no echo, no pong (7.4.x).
* **Pongs** that answer no ping are ignored (2.7, 2.8).
* **Oversized messages** fail with 1009 as soon as the running size of a message
  passes ``max_message_size``, before the message is complete (9.2.x).
* **Sending:** syncws sends every message as one frame (no auto-fragmentation),
  with a 7, 16 or 64-bit length as the size requires (10.x).
* **Length encoding:** a non-minimal 16 or 64-bit length, or a 64-bit length with its
  most significant bit set, fails the connection with 1002 (1.4.x).
* **Close codes registered after RFC 6455:** 1012, 1013 and 1014 (Bad Gateway) are
  accepted, echoed and reported (7.6.11 to 7.6.13). wsproto does not know 1014:
  ``syncws._wsproto`` teaches it at import.
* **TCP teardown:** as a server, syncws half-closes TCP (shutdown of its write side)
  as soon as its close frame is out, then reads until the client's EOF; as a client
  it keeps the connection open until the server closes it (RFC 6455, section 7.1.1).
  The client-side cases check that the syncws reader is still running when the raw
  server closes.
* **permessage-deflate** (categories 12, 13; RFC 7692): syncws compresses every
  message it sends (RSV1 on the first frame only); RSV1 on a continuation or
  control frame, or RSV2/RSV3, fails with 1002; deflate data that does not inflate
  fails with 1007; ``max_message_size`` bounds the *inflated* size (1009). A
  syncws server answers every parameter it was offered within the offered values.
  A syncws client offers ``client_max_window_bits`` without a value, as browsers do,
  and takes every answer RFC 7692 allows for that offer (13.3), no other (13.4).
* **Masking:** a server rejects an unmasked client frame, a client a masked server
  frame, with 1002 (1.9, 1.10).
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from rawpeer import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, close_payload

from .harness import (
    ZB,
    ZT,
    B,
    C,
    Expect,
    ExpectWhole,
    ExpectZ,
    F,
    Fail,
    Msg,
    PeerClose,
    Pong,
    Raw,
    Send,
    T,
    fragments,
)

#: max_message_size of the syncws side in every case.
LIMIT = 2**17

SIDES = ("server", "client")


@dataclass(frozen=True)
class Neg:
    """permessage-deflate for a case: the raw client's offer (server side) or the raw
    server's answer to syncws's offer (client side)."""

    offer: str = "permessage-deflate; client_max_window_bits"
    #: The plainest answer to syncws's offer (the browsers' one): 15 bits both ways.
    response: str = "permessage-deflate"
    #: client side: syncws must refuse the answer (HandshakeError)
    fails: bool = False
    #: server side: syncws must accept the connection without the extension
    declined: bool = False


@dataclass
class Case:
    id: str  # "5.15"
    slug: str
    steps: list[Any]
    end: Any = field(default_factory=PeerClose)
    sides: tuple[str, ...] = SIDES
    #: side -> reason: a known syncws deviation, marked xfail(strict=True)
    xfail: dict[str, str] = field(default_factory=dict)
    #: permessage-deflate negotiated for this case (None: no extension offered)
    deflate: Neg | None = None

    @property
    def category(self) -> int:
        return int(self.id.split(".")[0])


CASES: list[Case] = []


def case(id: str, slug: str, *steps: Any, end: Any = None, **kw: Any) -> None:
    CASES.append(Case(id, slug, list(steps), end if end is not None else PeerClose(), **kw))


def echo(frame_or_frames: Any, msg: Msg, chop: int | None = None) -> list[Any]:
    frames = frame_or_frames if isinstance(frame_or_frames, list) else [frame_or_frames]
    return [Send(*frames, chop=chop), Expect(msg)]


P1002 = Fail((1002,))
U1007 = Fail((1007,))
BIG1009 = Fail((1009,))


def payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def text_of(n: int) -> str:
    return "".join(chr(0x61 + (i % 26)) for i in range(n))


# ------------------------------------------------------------------ 1 framing

_n = 0
for kind in ("text", "binary"):
    for size in (0, 125, 126, 127, 65535, 65536, 100_000):
        _n += 1
        if kind == "text":
            frame, msg = T(text_of(size)), Msg.text(text_of(size))
        else:
            frame, msg = B(payload(size)), Msg.binary(payload(size))
        case(f"1.1.{_n}", f"{kind}-{size}", *echo(frame, msg))
# Length encodings at their boundaries, delivered in pieces.
case("1.2.1", "text-125-byte-by-byte", *echo(T(text_of(125)), Msg.text(text_of(125)), chop=1))
case("1.2.2", "binary-126-byte-by-byte", *echo(B(payload(126)), Msg.binary(payload(126)), chop=1))
case(
    "1.2.3",
    "binary-65536-chopped-997",
    *echo(B(payload(65536)), Msg.binary(payload(65536)), chop=997),
)
case("1.2.4", "binary-0-byte-by-byte", *echo(B(b""), Msg.binary(b""), chop=1))
case(
    "1.3.1",
    "many-messages-one-write",
    Send(*[B(payload(i, i)) for i in range(50)]),
    Expect(*[Msg.binary(payload(i, i)) for i in range(50)]),
)
case(
    "1.3.2",
    "many-messages-byte-by-byte",
    Send(*[T(f"message {i}") for i in range(10)], chop=1),
    Expect(*[Msg.text(f"message {i}") for i in range(10)]),
)
# Length encodings written by hand: non-minimal forms (RFC 6455 section 5.2: "the
# minimal number of bytes MUST be used") and a 64-bit length with its top bit set.
case(
    "1.4.1",
    "non-minimal-16-bit-length",
    Send(Raw(0x82, b"\x7e" + struct.pack("!H", 5), b"hello")),
    end=P1002,
)
case(
    "1.4.2",
    "non-minimal-64-bit-length",
    Send(Raw(0x82, b"\x7f" + struct.pack("!Q", 200), payload(200))),
    end=P1002,
)
case(
    "1.4.3",
    "64-bit-length-top-bit-set",
    Send(Raw(0x82, b"\x7f" + struct.pack("!Q", 1 << 63), b"")),
    end=Fail((1002,)),
)
case(
    "1.9", "unmasked-frame-from-client", Send(T("hello", mask=False)), end=P1002, sides=("server",)
)
case("1.10", "masked-frame-from-server", Send(T("hello", mask=True)), end=P1002, sides=("client",))
case(
    "1.11",
    "unmasked-ping-from-client",
    Send(F(OP_PING, b"x", mask=False)),
    end=P1002,
    sides=("server",),
)

# ------------------------------------------------------------------ 2 pings and pongs

case("2.1", "ping-empty", Send(F(OP_PING)), Expect(Pong(b"")))
case("2.2", "ping-text-payload", Send(F(OP_PING, b"Hello, world!")), Expect(Pong(b"Hello, world!")))
case(
    "2.3",
    "ping-binary-payload",
    Send(F(OP_PING, bytes(range(0x80, 0x88)))),
    Expect(Pong(bytes(range(0x80, 0x88)))),
)
case("2.4", "ping-125-bytes", Send(F(OP_PING, payload(125))), Expect(Pong(payload(125))))
case("2.5", "ping-126-bytes", Send(F(OP_PING, payload(126))), end=P1002)
case(
    "2.6",
    "ping-125-byte-by-byte",
    Send(F(OP_PING, payload(125)), chop=1),
    Expect(Pong(payload(125))),
)
case(
    "2.7",
    "unsolicited-pong-empty",
    Send(F(OP_PONG)),
    Send(T("after pong")),
    Expect(Msg.text("after pong")),
)
case(
    "2.8",
    "unsolicited-pong-payload",
    Send(F(OP_PONG, b"unsolicited")),
    Send(T("after pong")),
    Expect(Msg.text("after pong")),
)
case(
    "2.9",
    "unsolicited-pong-then-ping",
    Send(F(OP_PONG, b"unsolicited"), F(OP_PING, b"solicited")),
    Expect(Pong(b"solicited")),
)
case(
    "2.10",
    "ten-pings",
    Send(*[F(OP_PING, f"ping {i}".encode()) for i in range(10)]),
    Expect(*[Pong(f"ping {i}".encode()) for i in range(10)]),
)
case(
    "2.11",
    "ten-pings-byte-by-byte",
    Send(*[F(OP_PING, f"ping {i}".encode()) for i in range(10)], chop=1),
    Expect(*[Pong(f"ping {i}".encode()) for i in range(10)]),
)
case(
    "2.12",
    "pings-interleaved-with-messages",
    Send(*[f for i in range(10) for f in (T(f"msg {i}"), F(OP_PING, f"ping {i}".encode()))]),
    Expect(*[x for i in range(10) for x in (Msg.text(f"msg {i}"), Pong(f"ping {i}".encode()))]),
)

# ------------------------------------------------------------------ 3 reserved bits

case("3.1", "rsv1-text", Send(T("hello", rsv=4)), end=P1002)
case(
    "3.2",
    "rsv2-text-after-valid",
    *echo(T("valid"), Msg.text("valid")),
    Send(T("hello", rsv=2)),
    end=P1002,
)
case(
    "3.3",
    "rsv3-text-byte-by-byte",
    *echo(T("valid"), Msg.text("valid")),
    Send(T("hello", rsv=1), chop=1),
    end=P1002,
)
case("3.4", "rsv1-rsv2-binary", Send(B(payload(10), rsv=6)), end=P1002)
case("3.5", "rsv-all-binary", Send(B(payload(10), rsv=7)), end=P1002)
case("3.6", "rsv2-ping", Send(F(OP_PING, b"ping", rsv=2)), end=P1002)
case("3.7", "rsv1-rsv3-close", Send(F(OP_CLOSE, close_payload(1000), rsv=5)), end=P1002)
case("3.8", "rsv3-continuation", Send(T("frag", fin=False), C("ment", rsv=1)), end=P1002)

# ------------------------------------------------------------------ 4 opcodes

for i, op in enumerate((3, 4, 5, 6, 7), 1):
    case(f"4.1.{i}", f"reserved-data-opcode-{op}", Send(F(op, b"data")), end=P1002)
case(
    "4.1.6",
    "reserved-data-opcode-3-after-valid",
    *echo(T("valid"), Msg.text("valid")),
    Send(F(3)),
    end=P1002,
)
case(
    "4.1.7",
    "reserved-data-opcode-inside-message",
    Send(T("frag", fin=False), F(5, b"x")),
    end=P1002,
)
for i, op in enumerate((11, 12, 13, 14, 15), 1):
    case(f"4.2.{i}", f"reserved-control-opcode-{op}", Send(F(op, b"ctrl")), end=P1002)
case(
    "4.2.6",
    "reserved-control-opcode-11-after-valid",
    *echo(T("valid"), Msg.text("valid")),
    Send(F(11)),
    end=P1002,
)
case(
    "4.2.7", "reserved-control-opcode-inside-message", Send(B(b"frag", fin=False), F(12)), end=P1002
)

# ----------------------------------- a valid message and a violation in one write
#
# Autobahn's 3.2-3.4, 4.1.3-4.1.5, 4.2.3, 4.2.4 and 5.15: the valid message, the bad
# frame and a ping come together (in one write, or in chops without waiting for the
# echo). Strict behaviour: the message is echoed, then the connection fails with
# 1002; the ping behind the violation is not answered.


def in_order(id: str, slug: str, bad: F, chop: int | None = None, frames: bool = False) -> None:
    sent = [T("Hello"), bad, F(OP_PING, b"")]
    steps = [Send(f) for f in sent] if frames else [Send(*sent, chop=chop)]
    case(id, slug, *steps, Expect(Msg.text("Hello")), end=P1002)


in_order("3.2.1", "valid-then-rsv2-in-one-write", T("Hello", rsv=2))
in_order("3.3.1", "valid-then-rsv3-frame-wise", T("Hello", rsv=1), frames=True)
in_order("3.4.1", "valid-then-rsv1-byte-by-byte", T("Hello", rsv=4), chop=1)
in_order("4.1.3.1", "valid-then-opcode-5-in-one-write", F(5))
in_order("4.1.4.1", "valid-then-opcode-6-in-one-write", F(6, b"Hello"))
in_order("4.1.5.1", "valid-then-opcode-7-byte-by-byte", F(7, b"Hello"), chop=1)
in_order("4.2.3.1", "valid-then-opcode-13-in-one-write", F(13))
in_order("4.2.4.1", "valid-then-opcode-14-in-one-write", F(14, b"Hello"))
case(
    "5.15.1",
    "valid-fragmented-then-continuation-without-start",
    Send(
        T("fragment1", fin=False),
        C("fragment2"),
        C("fragment3", fin=False),
        T("fragment4"),
    ),
    Expect(Msg.text("fragment1fragment2")),
    end=P1002,
)
case(
    "5.15.2",
    "two-valid-then-violation-and-a-message-behind-it",
    Send(T("one"), B(b"two"), F(3), T("never")),
    Expect(Msg.text("one"), Msg.binary(b"two")),
    end=P1002,
)
case(
    "9.9.1",
    "valid-then-too-big-in-one-write",
    Send(T("Hello"), B(payload(LIMIT + 1))),
    Expect(Msg.text("Hello")),
    end=BIG1009,
)
case(
    "6.9.1",
    "valid-then-invalid-utf8-in-one-write",
    Send(T("Hello"), T(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")),
    Expect(Msg.text("Hello")),
    end=U1007,
)

# ------------------------------------------------------------------ 5 fragmentation

case("5.1", "fragmented-ping", Send(F(OP_PING, b"frag", fin=False), C("ment")), end=P1002)
case("5.2", "fragmented-pong", Send(F(OP_PONG, b"frag", fin=False), C("ment")), end=P1002)
case("5.3", "text-two-fragments", *echo([T("frag", fin=False), C("ment")], Msg.text("fragment")))
case(
    "5.4",
    "text-two-fragments-byte-by-byte",
    *echo([T("frag", fin=False), C("ment")], Msg.text("fragment"), chop=1),
)
case(
    "5.5",
    "ping-between-fragments",
    Send(T("frag", fin=False), F(OP_PING, b"between"), C("ment")),
    Expect(Pong(b"between"), Msg.text("fragment")),
)
case(
    "5.6",
    "ping-between-fragments-byte-by-byte",
    Send(T("frag", fin=False), F(OP_PING, b"between"), C("ment"), chop=1),
    Expect(Pong(b"between"), Msg.text("fragment")),
)
case(
    "5.7",
    "pong-between-fragments",
    Send(B(b"frag", fin=False), F(OP_PONG, b"unsolicited"), C(b"ment")),
    Expect(Msg.binary(b"fragment")),
)
case(
    "5.8",
    "binary-with-empty-fragments",
    *echo(
        [B(b"", fin=False), C(b"a", fin=False), C(b"", fin=False), C(b"b", fin=False), C(b"")],
        Msg.binary(b"ab"),
    ),
)
case("5.9", "continuation-without-start", Send(C("orphan")), end=P1002)
case("5.10", "continuation-without-start-not-final", Send(C("orphan", fin=False)), end=P1002)
case(
    "5.11",
    "continuation-after-complete-message",
    *echo(T("whole"), Msg.text("whole")),
    Send(C("orphan")),
    end=P1002,
)
case(
    "5.12",
    "continuation-without-start-byte-by-byte",
    Send(C("orphan", fin=False), chop=1),
    end=P1002,
)
case("5.13", "text-in-fragmented-text", Send(T("frag", fin=False), T("new")), end=P1002)
case("5.14", "binary-in-fragmented-text", Send(T("frag", fin=False), B(b"new")), end=P1002)
case("5.15", "text-in-fragmented-binary", Send(B(b"frag", fin=False), T("new")), end=P1002)
case(
    "5.16",
    "binary-in-fragmented-binary-not-final",
    Send(B(b"frag", fin=False), B(b"new", fin=False)),
    end=P1002,
)
case(
    "5.17", "fragmented-close", Send(F(OP_CLOSE, close_payload(1000), fin=False), C(b"")), end=P1002
)
case(
    "5.18",
    "ten-fragmented-messages",
    Send(*[f for i in range(10) for f in fragments(OP_TEXT, f"message number {i}".encode(), 3)]),
    Expect(*[Msg.text(f"message number {i}") for i in range(10)]),
)
case(
    "5.19",
    "pings-between-every-fragment",
    Send(
        *[
            f
            for i, frag in enumerate(fragments(OP_BINARY, payload(40), 4))
            for f in (frag, F(OP_PING, f"p{i}".encode()))
        ]
    ),
    Expect(Msg.binary(payload(40)), *[Pong(f"p{i}".encode()) for i in range(10)]),
)
case(
    "5.20",
    "close-between-fragments",
    Send(T("frag", fin=False)),
    end=PeerClose(),
)

# ------------------------------------------------------------------ 6 UTF-8

VALID_TEXTS = {
    "empty": "",
    "greek-kosme": "κόσμε",
    "mixed-latin": "Hello-µ@ßöäüàá-UTF-8!!",
    "boundaries": "\x00\x7f\x80\u07ff\u0800\uffff\U00010000\U0010ffff",
    "replacement-char": "\ufffd",
    "emoji": "😀 🎉 👍",
    "cjk": "日本語のテキスト",
    "bom-and-nonchars": "\ufeff\ufdd0\ufffe",
}
for i, (slug, text) in enumerate(VALID_TEXTS.items(), 1):
    case(f"6.1.{i}", f"valid-{slug}", *echo(T(text), Msg.text(text)))
KOSME = "κόσμε".encode()
case("6.2.1", "valid-one-byte-fragments", *echo(fragments(OP_TEXT, KOSME, 1), Msg.text(KOSME)))
case(
    "6.2.2",
    "valid-one-byte-fragments-byte-by-byte",
    *echo(fragments(OP_TEXT, KOSME, 1), Msg.text(KOSME), chop=1),
)
for n in range(1, len(KOSME)):
    # a valid text split at every position, incomplete sequences at fragment ends included
    case(
        f"6.3.{n}",
        f"valid-split-at-{n}",
        *echo([T(KOSME[:n], fin=False), C(KOSME[n:])], Msg.text(KOSME)),
    )

INVALID = {
    "lone-continuation-80": b"\x80",
    "lone-continuation-bf": b"\xbf",
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-nul": b"\xc0\x80",
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa1\x8c\xed\xbe\xb4",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f5-lead": b"\xf5\x80\x80\x80",
    "fe": b"\xfe",
    "ff": b"\xff",
    "truncated-2-at-end": b"\xce",
    "truncated-3-at-end": b"\xe1\xbd",
    "truncated-4-at-end": b"\xf0\x9f\x98",
    "start-then-ascii": b"\xce\x41",
}
for i, (slug, bad) in enumerate(INVALID.items(), 1):
    case(
        f"6.4.{i}",
        f"invalid-{slug}",
        Send(T(b"ok" + bad + b"ok" if not slug.startswith("truncated") else b"ok" + bad)),
        end=U1007,
    )
# Invalid UTF-8 (a surrogate in the middle of valid text) split across two fragments
# at every position: the connection fails with 1007 whatever the split.
BAD_TEXT = KOSME + b"\xed\xa0\x80" + b"edited"
for n in range(0, len(BAD_TEXT) + 1):
    case(
        f"6.5.{n + 1}",
        f"invalid-split-at-{n}",
        Send(T(BAD_TEXT[:n], fin=False), C(BAD_TEXT[n:])),
        end=U1007,
    )
# Fail fast: only the bad (non-final) fragment is sent; 1007 must come without the rest.
case("6.6.1", "fail-fast-first-fragment", Send(T(KOSME + b"\xed\xa0\x80", fin=False)), end=U1007)
case(
    "6.6.2",
    "fail-fast-second-fragment",
    Send(T(KOSME, fin=False), C(b"\xff", fin=False)),
    end=U1007,
)
case(
    "6.6.3",
    "fail-fast-lone-continuation",
    Send(T(b"abc", fin=False), C(b"\x80abc", fin=False)),
    end=U1007,
)
case("6.6.4", "fail-fast-overlong-split", Send(T(b"\xc0", fin=False)), end=U1007)
case(
    "6.6.5",
    "fail-fast-byte-by-byte",
    Send(T(b"a", fin=False), C(b"b" + b"\xf4\x90\x80\x80", fin=False), chop=1),
    end=U1007,
)
case(
    "6.6.6",
    "fail-fast-after-valid-message",
    *echo(T("valid"), Msg.text("valid")),
    Send(T(b"\xed\xa0\x80", fin=False)),
    end=U1007,
)
# Fail fast inside one frame: a text frame announcing 100 bytes, of which only the
# first 4 (with an invalid byte) are sent.
case(
    "6.6.7",
    "fail-fast-inside-incomplete-frame",
    Send(F(OP_TEXT, b"ab\xffc", length=100)),
    end=U1007,
)
case(
    "6.6.8",
    "fail-fast-inside-incomplete-frame-byte-by-byte",
    Send(F(OP_TEXT, KOSME + b"\xed\xa0\x80", fin=False, length=1000), chop=1),
    end=U1007,
)
case(
    "6.7.1", "truncated-at-message-end-fragmented", Send(T(KOSME, fin=False), C(b"\xce")), end=U1007
)
case(
    "6.7.2",
    "truncated-at-message-end-empty-final",
    Send(T(b"\xe1\xbd", fin=False), C(b"")),
    end=U1007,
)

# ------------------------------------------------------------------ 7 close handling

case("7.1.1", "close-1000", end=PeerClose())
case(
    "7.1.2",
    "close-after-messages",
    *echo(T("hello"), Msg.text("hello")),
    *echo(B(b"bytes"), Msg.binary(b"bytes")),
)
case(
    "7.1.3",
    "close-empty",
    end=PeerClose(payload=b"", echo=(None,), reason=(1005,)),
)
case(
    "7.1.4",
    "close-with-reason",
    end=PeerClose(payload=close_payload(1000, "bye now"), echo=(1000,), reason=(1000,)),
)
case(
    "7.1.5",
    "close-reason-123-bytes",
    end=PeerClose(payload=close_payload(1000, "r" * 123), echo=(1000,), reason=(1000,)),
)
case(
    "7.1.6",
    "close-reason-multibyte",
    end=PeerClose(payload=close_payload(1001, "κόσμε 😀"), echo=(1001,), reason=(1001,)),
)
case("7.1.7", "close-after-ping", Send(F(OP_PING, b"x")), Expect(Pong(b"x")), end=PeerClose())
case("7.2.1", "close-1-byte-payload", Send(F(OP_CLOSE, b"\x03")), end=P1002)
case(
    "7.2.2", "close-payload-126-bytes", Send(F(OP_CLOSE, close_payload(1000, "r" * 124))), end=P1002
)
case(
    "7.2.3",
    "close-reason-invalid-utf8",
    Send(F(OP_CLOSE, close_payload(1000) + b"\xce\xba\xed\xa0\x80")),
    end=U1007,
)
INVALID_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
for i, code in enumerate(INVALID_CODES, 1):
    case(
        f"7.5.{i}", f"close-invalid-code-{code}", Send(F(OP_CLOSE, close_payload(code))), end=P1002
    )
#: 1012, 1013 and 1014 were registered in the IANA "WebSocket Close Code Number
#: Registry" after RFC 6455.
VALID_CODES = (
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    3000,
    3999,
    4000,
    4999,
)
for i, code in enumerate(VALID_CODES, 1):
    case(
        f"7.6.{i}",
        f"close-valid-code-{code}",
        end=PeerClose(payload=close_payload(code), echo=(code,), reason=(code,)),
    )
# A message sent together with the close frame: syncws may or may not echo it first.
case(
    "7.3.1",
    "text-then-close",
    Send(T("last words")),
    end=PeerClose(may_echo=(Msg.text("last words"),)),
)
case("7.4.1", "text-after-close-ignored", end=PeerClose(then=(T("ignored"),)))
case("7.4.2", "ping-after-close-ignored", end=PeerClose(then=(F(OP_PING, b"ignored"),)))
case(
    "7.4.3",
    "garbage-after-close-ignored",
    end=PeerClose(then=(F(5, b"reserved opcode"), T(b"\xff"), F(OP_CLOSE, b"\x01"))),
)
case("7.4.4", "fragment-start-after-close-ignored", end=PeerClose(then=(B(b"x", fin=False),)))

# ------------------------------------------------------------------ 9 limits

case("9.1.1", "binary-at-limit", *echo(B(payload(LIMIT)), Msg.binary(payload(LIMIT))))
case("9.1.2", "text-at-limit", *echo(T(text_of(LIMIT)), Msg.text(text_of(LIMIT))))
case("9.1.3", "text-multibyte-at-limit", *echo(T("é" * (LIMIT // 2)), Msg.text("é" * (LIMIT // 2))))
case(
    "9.1.4",
    "binary-at-limit-chopped",
    *echo(B(payload(LIMIT)), Msg.binary(payload(LIMIT)), chop=4093),
)
case("9.2.1", "binary-over-limit", Send(B(payload(LIMIT + 1))), end=BIG1009)
case("9.2.2", "text-over-limit", Send(T(text_of(LIMIT + 1))), end=BIG1009)
case(
    "9.2.3",
    "fragmented-over-limit",
    Send(*fragments(OP_BINARY, payload(LIMIT + 1), 4096)),
    end=BIG1009,
)
case(
    "9.2.4",
    "over-limit-fails-before-final-fragment",
    Send(*fragments(OP_BINARY, payload(LIMIT + 1), 4096)[:-1], C(b"xx", fin=False)),
    end=BIG1009,
)
for i, (size, frag) in enumerate(((LIMIT, 64), (LIMIT, 4096), (65536, 1024), (4096, 1)), 1):
    case(
        f"9.3.{i}",
        f"binary-{size}-in-{frag}-byte-fragments",
        *echo(fragments(OP_BINARY, payload(size), frag), Msg.binary(payload(size))),
    )
case(
    "9.3.5",
    "text-multibyte-in-7-byte-fragments",
    *echo(fragments(OP_TEXT, ("κόσμε😀" * 500).encode(), 7), Msg.text("κόσμε😀" * 500)),
)
case(
    "9.4.1",
    "many-messages",
    Send(*[B(payload(1000, i)) for i in range(200)]),
    Expect(*[Msg.binary(payload(1000, i)) for i in range(200)]),
)

# ------------------------------------------------------------------ 10 sending large messages

for i, size in enumerate((125, 126, 65535, 65536, LIMIT), 1):
    case(
        f"10.1.{i}",
        f"echo-binary-{size}-whole",
        Send(*fragments(OP_BINARY, payload(size), 1000)),
        ExpectWhole(Msg.binary(payload(size))),
    )
case(
    "10.2.1",
    "echo-text-multibyte-large-whole",
    Send(*fragments(OP_TEXT, ("日本語" * 10000).encode(), 4096)),
    ExpectWhole(Msg.text("日本語" * 10000)),
)


# ------------------------------------------------------------------ 12 permessage-deflate

DEFLATE = Neg()


def rnd(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def rnd_text(n: int, seed: int = 0) -> str:
    r = random.Random(seed)
    return "".join(r.choice("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789") for _ in range(n))


def zcase(id: str, slug: str, *steps: Any, neg: Neg = DEFLATE, **kw: Any) -> None:
    case(id, slug, *steps, deflate=neg, **kw)


def zecho(z: Any, msg: Msg, chop: int | None = None) -> list[Any]:
    return [Send(z, chop=chop), ExpectZ(msg)]


_n = 0
for kind in ("text", "binary"):
    for flavour in ("random", "repetitive"):
        for size in (0, 1, 125, 1000, 65536):
            _n += 1
            if kind == "text":
                data = rnd_text(size) if flavour == "random" else text_of(size)
                z, msg = ZT(data), Msg.text(data)
            else:
                data = rnd(size) if flavour == "random" else payload(size)
                z, msg = ZB(data), Msg.binary(data)
            zcase(f"12.1.{_n}", f"{kind}-{flavour}-{size}", *zecho(z, msg))
zcase(
    "12.2.1",
    "binary-4096-in-64-byte-fragments",
    *zecho(ZB(rnd(4096), frag=64), Msg.binary(rnd(4096))),
)
zcase(
    "12.2.2",
    "text-1000-in-1-byte-fragments",
    *zecho(ZT(rnd_text(1000), frag=1), Msg.text(rnd_text(1000))),
)
zcase("12.2.3", "binary-1000-byte-by-byte", *zecho(ZB(rnd(1000)), Msg.binary(rnd(1000)), chop=1))
zcase(
    "12.2.4",
    "text-65536-fragmented-chopped",
    *zecho(
        ZT(text_of(65536) + rnd_text(5000), frag=7),
        Msg.text(text_of(65536) + rnd_text(5000)),
        chop=13,
    ),
)
zcase(
    "12.3.1",
    "uncompressed-mixed-with-compressed",
    Send(B(payload(300)), ZT("compressed " * 30), T("plain"), ZB(payload(300)), B(b"")),
    Expect(
        Msg.binary(payload(300)),
        Msg.text("compressed " * 30),
        Msg.text("plain"),
        Msg.binary(payload(300)),
        Msg.binary(b""),
    ),
)
zcase(
    "12.3.2",
    "uncompressed-fragmented-between-compressed",
    Send(ZT("one " * 50), *fragments(OP_TEXT, b"two " * 50, 16), ZT("one " * 50)),
    Expect(Msg.text("one " * 50), Msg.text("two " * 50), Msg.text("one " * 50)),
)
zcase(
    "12.3.3",
    "ping-between-compressed-fragments",
    Send(ZB(rnd(2000), frag=100, ping=b"mid")),
    Expect(Msg.binary(rnd(2000)), Pong(b"mid")),
)
zcase("12.4.1", "rsv1-on-continuation", Send(ZB(rnd(500), frag=100, cont_rsv=4)), end=P1002)
zcase(
    "12.4.2",
    "rsv1-on-uncompressed-continuation",
    Send(T("ab", fin=False), C("cd", rsv=4)),
    end=P1002,
)
zcase("12.4.3", "rsv1-on-ping", Send(F(OP_PING, b"x", rsv=4)), end=P1002)
zcase("12.4.4", "rsv1-on-pong", Send(F(OP_PONG, b"x", rsv=4)), end=P1002)
zcase("12.4.5", "rsv1-on-close", Send(F(OP_CLOSE, close_payload(1000), rsv=4)), end=P1002)
for i, rsv in enumerate((2, 1, 6, 5, 7), 1):
    zcase(f"12.4.{5 + i}", f"rsv{rsv}-with-compressed", Send(ZT("hello " * 20, rsv=rsv)), end=P1002)
zcase("12.5.1", "corrupt-deflate-data", Send(ZB(b"", raw=b"\xff\xff\xff\xff")), end=U1007)
zcase(
    "12.5.10",
    "compressed-valid-then-rsv2-in-one-write",
    Send(ZT("Hello " * 20), T("Hello", rsv=2), F(OP_PING, b"")),
    ExpectZ(Msg.text("Hello " * 20)),
    end=P1002,
)
zcase(
    "12.5.11",
    "compressed-valid-then-corrupt-in-one-write",
    Send(ZB(rnd(300)), ZB(b"", raw=b"\xff\xff\xff\xff")),
    ExpectZ(Msg.binary(rnd(300))),
    end=U1007,
)


def _deflated(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


_GOOD = _deflated(rnd(100))  # valid as the first message of a connection
zcase(
    "12.5.2",
    "corrupt-deflate-in-second-fragment",
    Send(ZB(b"", raw=_GOOD + b"\xff" * 8, frag=len(_GOOD))),
    end=U1007,
)
zcase("12.5.3", "compressed-text-invalid-utf8", Send(ZT(b"valid \xce\xba\xff\xfe")), end=U1007)
zcase("12.6.1", "bomb-limit-plus-one", Send(ZB(bytes(LIMIT + 1))), end=BIG1009)
zcase("12.6.2", "bomb-16-mib", Send(ZB(bytes(1 << 24))), end=BIG1009)
zcase("12.6.3", "bomb-in-fragments", Send(ZT(b"a" * (LIMIT * 4), frag=16)), end=BIG1009)
zcase("12.6.4", "exactly-limit-after-inflation", *zecho(ZB(bytes(LIMIT)), Msg.binary(bytes(LIMIT))))
zcase(
    "12.6.5",
    "text-exactly-limit-after-inflation",
    *zecho(ZT(text_of(LIMIT)), Msg.text(text_of(LIMIT))),
)

# ------------------------------------------------------------------ 13 deflate negotiation


def flow() -> list[Any]:
    """Several messages each way, repeated so that context takeover matters."""
    text = "permessage-deflate " * 40
    block = rnd(3000, 7)
    steps: list[Any] = []
    for _ in range(3):
        steps += zecho(ZT(text), Msg.text(text))
    for _ in range(2):
        steps += zecho(ZB(block * 4), Msg.binary(block * 4))
    steps += [
        Send(ZT(text), ZB(block), ZT(text)),
        ExpectZ(Msg.text(text), Msg.binary(block), Msg.text(text)),
    ]
    return steps


PMD = "permessage-deflate"
SERVER_OFFERS = [
    ("bare", PMD),
    ("client-max-window-bits", f"{PMD}; client_max_window_bits"),
    ("server-no-context-takeover", f"{PMD}; server_no_context_takeover"),
    ("client-no-context-takeover", f"{PMD}; client_no_context_takeover"),
    ("both-no-context-takeover", f"{PMD}; server_no_context_takeover; client_no_context_takeover"),
    *[(f"server-max-window-bits-{n}", f"{PMD}; server_max_window_bits={n}") for n in range(9, 16)],
    *[(f"client-max-window-bits-{n}", f"{PMD}; client_max_window_bits={n}") for n in range(9, 16)],
    (
        "all-9",
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits=9",
    ),
    (
        "all-15",
        f"{PMD}; client_no_context_takeover; server_no_context_takeover; "
        "client_max_window_bits=15; server_max_window_bits=15",
    ),
    (
        "server-10-client-takeover-off",
        f"{PMD}; server_max_window_bits=10; client_no_context_takeover; client_max_window_bits",
    ),
    (
        "client-11-server-takeover-off",
        f"{PMD}; client_max_window_bits=11; server_no_context_takeover",
    ),
    ("quoted-value", f'{PMD}; client_max_window_bits="10"'),
]
for i, (slug, offer) in enumerate(SERVER_OFFERS, 1):
    zcase(
        f"13.1.{i}",
        f"offer-{slug}",
        *flow(),
        neg=Neg(offer=offer),
        sides=("server",),
    )
for i, (slug, offer) in enumerate(
    (
        ("server-max-window-bits-8", f"{PMD}; server_max_window_bits=8"),
        ("server-max-window-bits-16", f"{PMD}; server_max_window_bits=16"),
        ("client-max-window-bits-16", f"{PMD}; client_max_window_bits=16"),
        ("unknown-parameter", f"{PMD}; foo=1"),
    ),
    1,
):
    zcase(
        f"13.2.{i}",
        f"invalid-offer-{slug}-declined",
        *echo(T("plain"), Msg.text("plain")),
        neg=Neg(offer=offer, declined=True),
        sides=("server",),
    )

# syncws offers "permessage-deflate; client_max_window_bits", as browsers do: any window
# from 8 to 15 (or none, 15) for either side is a valid answer, with or without either
# takeover flag. 8 bits: syncws inflates with 9, and compresses with one-byte references.
CLIENT_ANSWERS = [
    ("bare", PMD),
    *[(f"server-max-window-bits-{n}", f"{PMD}; server_max_window_bits={n}") for n in range(8, 16)],
    *[(f"client-max-window-bits-{n}", f"{PMD}; client_max_window_bits={n}") for n in range(8, 16)],
    ("server-no-context-takeover", f"{PMD}; server_no_context_takeover"),
    ("client-no-context-takeover", f"{PMD}; client_no_context_takeover"),
    ("both-no-context-takeover", f"{PMD}; server_no_context_takeover; client_no_context_takeover"),
    (
        "all-8",
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=8; client_max_window_bits=8",
    ),
    (
        "all-15",
        f"{PMD}; client_no_context_takeover; server_no_context_takeover; "
        "client_max_window_bits=15; server_max_window_bits=15",
    ),
    (
        "server-10-client-takeover-off",
        f"{PMD}; server_max_window_bits=10; client_no_context_takeover",
    ),
    (
        "client-11-server-takeover-off",
        f"{PMD}; server_max_window_bits=11; client_max_window_bits=11; server_no_context_takeover",
    ),
    ("websockets-default", f"{PMD}; server_max_window_bits=12; client_max_window_bits=12"),
    ("quoted-value", f'{PMD}; server_max_window_bits="9"; client_max_window_bits="13"'),
]
for i, (slug, answer) in enumerate(CLIENT_ANSWERS, 1):
    zcase(f"13.3.{i}", f"answer-{slug}", *flow(), neg=Neg(response=answer), sides=("client",))

for i, (slug, answer) in enumerate(
    (
        ("unoffered-extension", "x-unoffered"),
        ("client-max-window-bits-7", f"{PMD}; client_max_window_bits=7"),
        ("client-max-window-bits-16", f"{PMD}; client_max_window_bits=16"),
        ("client-max-window-bits-without-value", f"{PMD}; client_max_window_bits"),
        ("server-max-window-bits-7", f"{PMD}; server_max_window_bits=7"),
        ("server-max-window-bits-16", f"{PMD}; server_max_window_bits=16"),
        ("server-max-window-bits-not-a-number", f"{PMD}; server_max_window_bits=x"),
        ("server-max-window-bits-without-value", f"{PMD}; server_max_window_bits"),
        ("takeover-flag-with-value", f"{PMD}; server_no_context_takeover=1"),
        ("unknown-parameter", f"{PMD}; server_max_window_bits=12; foo=1"),
        (
            "repeated-parameter",
            f"{PMD}; server_no_context_takeover; server_max_window_bits=12; "
            "server_no_context_takeover",
        ),
    ),
    1,
):
    zcase(
        f"13.4.{i}",
        f"answer-{slug}-fails",
        neg=Neg(response=answer, fails=True),
        sides=("client",),
    )


def _check_unique() -> None:
    seen: set[str] = set()
    for c in CASES:
        assert c.id not in seen, c.id
        seen.add(c.id)


_check_unique()
