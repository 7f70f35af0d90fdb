"""Hypothesis strategies: hostile upgrade requests, handshake responses and frame streams.

Every strategy starts from something valid and mutates it, or draws bytes at
random. The drawn objects carry ``tags`` naming what was done to them, which the
tests count (see ``tests/fuzz/README.md``) and which make failures readable.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from .support import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, encode

Draw = Callable[[st.SearchStrategy[Any]], Any]

CRLF = b"\r\n"
#: The key of RFC 6455's example handshake; any 16 bytes in base64 will do.
SAMPLE_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def _key(draw: Draw) -> bytes:
    return base64.b64encode(draw(st.binary(min_size=16, max_size=16)))


# ----------------------------------------------------------------- upgrade requests


@dataclass
class UpgradeRequest:
    """An HTTP upgrade request as a structure, rendered to bytes by :meth:`render`.

    ``folds`` maps indices of headers to the number of lines their value is split
    over by obs-fold continuation lines (at most one line per byte of the value);
    ``lf_lines`` are indices of lines (0 = request line) ended by a bare LF.
    ``body`` follows the head. ``cut`` keeps only that many bytes of the rendering
    and ``flip`` replaces one byte of it; ``raw`` replaces everything.
    """

    method: bytes = b"GET"
    target: bytes = b"/chat"
    version: bytes = b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    eol: bytes = CRLF
    folds: dict[int, int] = field(default_factory=dict)
    lf_lines: set[int] = field(default_factory=set)
    body: bytes = b""
    cut: int | None = None
    flip: tuple[int, int] | None = None
    raw: bytes | None = None
    tags: list[str] = field(default_factory=list)

    def head(self) -> bytes:
        """The request line and headers, up to and including the blank line."""
        lines = [b" ".join([self.method, self.target, self.version])]
        for index, (name, _) in enumerate(self.headers):
            first, *continued = self.pieces(index)
            lines.append(name + b": " + first)
            lines.extend(b" " + piece for piece in continued)
        out = bytearray()
        for index, line in enumerate(lines):
            out += line + (b"\n" if index in self.lf_lines else self.eol)
        return bytes(out + self.eol)

    def pieces(self, index: int) -> list[bytes]:
        """The value of header ``index`` as it is split over lines (one piece: not folded)."""
        value = self.headers[index][1]
        count = min(self.folds.get(index, 1), len(value))
        if count <= 1:
            return [value]
        bounds = [len(value) * i // count for i in range(count + 1)]
        return [value[a:b] for a, b in itertools.pairwise(bounds)]

    def render(self) -> bytes:
        if self.raw is not None:
            return self.raw
        data = bytearray(self.head() + self.body)
        if self.flip is not None and data:
            position, value = self.flip
            data[position % len(data)] = value
        if self.cut is not None:
            del data[self.cut :]
        return bytes(data)

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]

    def drop(self, name: bytes) -> None:
        self.headers = [(n, v) for n, v in self.headers if n.lower() != name]

    def replace(self, name: bytes, value: bytes) -> None:
        self.headers = [(n, value if n.lower() == name else v) for n, v in self.headers]


def _pick_header(draw: Draw, req: UpgradeRequest) -> int | None:
    if not req.headers:
        return None
    return int(draw(st.integers(0, len(req.headers) - 1)))


def _m_key(draw: Draw, req: UpgradeRequest) -> str:
    how = draw(st.sampled_from(["drop", "dup-same", "dup-other", "bad", "padded"]))
    if not req.values(b"sec-websocket-key"):
        req.headers.append((b"Sec-WebSocket-Key", _key(draw)))
    if how == "drop":
        req.drop(b"sec-websocket-key")
    elif how == "dup-same":
        req.headers.append((b"Sec-WebSocket-Key", req.values(b"sec-websocket-key")[0]))
    elif how == "dup-other":
        req.headers.append((b"Sec-WebSocket-Key", _key(draw)))
    elif how == "padded":
        # Optional whitespace around a value is not part of it: still a valid key.
        req.replace(b"sec-websocket-key", b"  " + req.values(b"sec-websocket-key")[0] + b"\t")
    else:
        bad = draw(
            st.sampled_from(
                [
                    b"",
                    b"abc",
                    b"!!!!!!!!!!!!!!!!!!!!!!!!",
                    base64.b64encode(b"x" * 15),
                    base64.b64encode(b"x" * 17),
                    b"0123456789abcdef",
                    SAMPLE_KEY[:-2],
                    SAMPLE_KEY + b"==",
                    b"dGhlIHNhbXBsZSBub25j ZQ==",
                ]
            )
        )
        req.replace(b"sec-websocket-key", bad)
    return f"key-{how}"


def _mutate_header(
    draw: Draw,
    req: UpgradeRequest,
    name: bytes,
    *,
    hows: list[str],
    dups: list[bytes],
    values: list[bytes],
) -> str:
    """Drop the header ``name``, add another one (a value of ``dups``) or change its
    value (one of ``values``): ``how`` is drawn from ``hows``, "drop", "dup" or "value"."""
    how = draw(st.sampled_from(hows))
    if how == "drop":
        req.drop(name.lower())
    elif how == "dup":
        req.headers.append((name, draw(st.sampled_from(dups))))
    else:
        req.replace(name.lower(), draw(st.sampled_from(values)))
    return f"{name.lower().removeprefix(b'sec-websocket-').decode()}-{how}"


def _m_version(draw: Draw, req: UpgradeRequest) -> str:
    return _mutate_header(
        draw,
        req,
        b"Sec-WebSocket-Version",
        hows=["value", "drop", "dup"],
        dups=[b"13", b"8"],
        values=[b"0", b"8", b"12", b"14", b"", b"13, 8", b"x", b" 13 "],
    )


def _m_upgrade(draw: Draw, req: UpgradeRequest) -> str:
    return _mutate_header(
        draw,
        req,
        b"Upgrade",
        hows=["drop", "value", "dup"],
        dups=[b"websocket", b"h2c"],
        values=[b"h2c", b"websocket, h2c", b"WebSocket", b"WEBSOCKET", b"", b"web socket"],
    )


def _m_connection(draw: Draw, req: UpgradeRequest) -> str:
    return _mutate_header(
        draw,
        req,
        b"Connection",
        hows=["drop", "value", "dup"],
        dups=[b"keep-alive", b"Upgrade"],
        values=[b"keep-alive", b"close", b"keep-alive, Upgrade", b"upgrade", b"Upgradee", b""],
    )


def _m_host(draw: Draw, req: UpgradeRequest) -> str:
    how = draw(st.sampled_from(["drop", "dup", "empty", "odd"]))
    if how == "drop":
        req.drop(b"host")
    elif how == "dup":
        req.headers.append((b"Host", b"other.example"))
    elif how == "empty":
        req.replace(b"host", b"")
    else:
        odd = draw(st.sampled_from([b"\xe9x.example", b"[::1]:80", b"x" * 300, b"a b", b"-.-"]))
        req.replace(b"host", odd)
    return f"host-{how}"


def _m_method(draw: Draw, req: UpgradeRequest) -> str:
    req.method = draw(
        st.sampled_from(
            [b"POST", b"HEAD", b"PUT", b"get", b"CONNECT", b"OPTIONS", b"PRI", b"G\x01T", b""]
        )
        | st.from_regex(rb"\A[A-Z]{1,12}\Z")
    )
    return "method"


def _m_http_version(draw: Draw, req: UpgradeRequest) -> str:
    req.version = draw(
        st.sampled_from(
            [
                b"HTTP/1.0",
                b"HTTP/1.2",
                b"HTTP/2.0",
                b"HTTP/2",
                b"HTTP/1",
                b"http/1.1",
                b"HTTP/1.1x",
                b"HTTP/0.9",
                b"",
            ]
        )
    )
    return "http-version"


def _m_target(draw: Draw, req: UpgradeRequest) -> str:
    req.target = draw(
        st.sampled_from(
            [
                b"http://127.0.0.1/chat",
                b"ws://127.0.0.1/chat",
                b"https://127.0.0.1:443/chat?x=1",
                b"*",
                b"",
                b"//x",
                b"/a b",
                b"/%00",
                b"/\xe9",
                b"x",
                b"/chat?x=1#frag",
                b"/" + b"a" * 9000,
            ]
        )
    )
    return "target"


def _m_huge_value(draw: Draw, req: UpgradeRequest) -> str:
    size = draw(st.integers(16 * 1024, 60 * 1024))
    req.headers.append((b"X-Big", b"b" * size))
    return "huge-value"


def _m_many_headers(draw: Draw, req: UpgradeRequest) -> str:
    count = draw(st.integers(101, 600))
    width = draw(st.integers(1, 60))
    req.headers.extend((b"X-H%d" % i, b"v" * width) for i in range(count))
    return "many-headers"


_NO_EOL = st.binary(min_size=1, max_size=24).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
)


def _m_bytes_in_value(draw: Draw, req: UpgradeRequest) -> str:
    value = draw(_NO_EOL)
    index = _pick_header(draw, req)
    if index is None or draw(st.booleans()):
        req.headers.append((b"X-Fuzz", value))
    else:
        name, old = req.headers[index]
        req.headers[index] = (name, old + value)
    return "bytes-in-value"


def _m_bytes_in_name(draw: Draw, req: UpgradeRequest) -> str:
    name = draw(_NO_EOL.map(lambda b: b.replace(b":", b"")).filter(bool))
    req.headers.append((name, b"value"))
    return "bytes-in-name"


def _m_nul(draw: Draw, req: UpgradeRequest) -> str:
    index = _pick_header(draw, req)
    if index is None:
        req.headers.append((b"X-Nul", b"a\x00b"))
    else:
        name, value = req.headers[index]
        if draw(st.booleans()):
            req.headers[index] = (name, value + b"\x00")
        else:
            req.headers[index] = (name[:1] + b"\x00" + name[1:], value)
    return "nul"


def _m_cr(draw: Draw, req: UpgradeRequest) -> str:
    req.headers.append((b"X-Cr", b"a\rb"))
    return "bare-cr"


def _m_fold(draw: Draw, req: UpgradeRequest) -> str:
    index = _pick_header(draw, req)
    if index is None or draw(st.booleans()):
        # One field over many lines: the continuation lines count as header lines.
        lines = draw(st.integers(2, 1200))
        req.headers.append((b"X-Folded", b"f" * lines))
        req.folds[len(req.headers) - 1] = lines
        return "obs-fold-lines"
    req.folds[index] = draw(st.integers(2, 4))
    return "obs-fold"


def _m_lf(draw: Draw, req: UpgradeRequest) -> str:
    if draw(st.booleans()):
        req.eol = b"\n"
        return "bare-lf"
    req.lf_lines.add(draw(st.integers(0, len(req.headers))))
    return "mixed-lf"


def _m_space_before_colon(draw: Draw, req: UpgradeRequest) -> str:
    index = _pick_header(draw, req)
    if index is not None:
        name, value = req.headers[index]
        req.headers[index] = (name + b" ", value)
    return "space-before-colon"


def _m_smuggling(draw: Draw, req: UpgradeRequest) -> str:
    how = draw(st.sampled_from(["cl-te", "two-cl", "cl-body", "te-chunked", "te-other", "cl-bad"]))
    body = draw(st.binary(min_size=1, max_size=40))
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    if how == "cl-te":
        req.headers += [(b"Content-Length", b"%d" % len(body)), (b"Transfer-Encoding", b"chunked")]
        req.body = chunked
    elif how == "two-cl":
        other = len(body) + draw(st.integers(0, 3))
        req.headers += [(b"Content-Length", b"%d" % len(body)), (b"Content-Length", b"%d" % other)]
        req.body = body
    elif how == "cl-body":
        req.headers.append((b"Content-Length", b"%d" % len(body)))
        req.body = body
    elif how == "te-chunked":
        req.headers.append((b"Transfer-Encoding", b"chunked"))
        req.body = chunked
    elif how == "te-other":
        req.headers.append((b"Transfer-Encoding", draw(st.sampled_from([b"gzip", b"x, chunked"]))))
    else:
        req.headers.append((b"Content-Length", draw(st.sampled_from([b"-1", b"x", b"1 1"]))))
    return f"smuggling-{how}"


def _m_trailing(draw: Draw, req: UpgradeRequest) -> str:
    how = draw(st.sampled_from(["pipelined", "early-frame", "bytes"]))
    if how == "pipelined":
        second = UpgradeRequest(headers=list(req.headers))
        req.body = second.head() if draw(st.booleans()) else b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    elif how == "early-frame":
        text = draw(st.text(max_size=20)).encode("utf-8")
        req.body = encode(OP_TEXT, text, mask=draw(st.binary(min_size=4, max_size=4)))
    else:
        req.body = draw(st.binary(min_size=1, max_size=40))
    return f"trailing-{how}"


def _m_truncate(draw: Draw, req: UpgradeRequest) -> str:
    req.cut = draw(st.integers(0, len(req.head()) + len(req.body) - 1))
    return "truncated"


def _m_flip(draw: Draw, req: UpgradeRequest) -> str:
    req.flip = (draw(st.integers(0, 1 << 16)), draw(st.integers(0, 255)))
    return "byte-flip"


#: Mutations of a valid request: name -> function(draw, request) -> tag.
REQUEST_MUTATIONS: dict[str, Callable[[Draw, UpgradeRequest], str]] = {
    "key": _m_key,
    "version": _m_version,
    "upgrade": _m_upgrade,
    "connection": _m_connection,
    "host": _m_host,
    "method": _m_method,
    "http-version": _m_http_version,
    "target": _m_target,
    "huge-value": _m_huge_value,
    "many-headers": _m_many_headers,
    "bytes-in-value": _m_bytes_in_value,
    "bytes-in-name": _m_bytes_in_name,
    "nul": _m_nul,
    "bare-cr": _m_cr,
    "obs-fold": _m_fold,
    "lf": _m_lf,
    "space-before-colon": _m_space_before_colon,
    "smuggling": _m_smuggling,
    "trailing": _m_trailing,
    "truncate": _m_truncate,
    "flip": _m_flip,
}


@st.composite
def upgrade_requests(draw: Draw) -> UpgradeRequest:
    """A valid upgrade request with 0 to 3 mutations, or random bytes (about 1 in 10)."""
    if draw(st.integers(0, 9)) == 9:
        if draw(st.booleans()):
            raw = draw(st.binary(max_size=300))
            tag = "random-bytes"
        else:
            lines = draw(st.lists(st.binary(max_size=40), max_size=8))
            raw = CRLF.join(lines) + draw(st.sampled_from([b"", CRLF, CRLF + CRLF]))
            tag = "random-lines"
        return UpgradeRequest(raw=raw, tags=[tag])
    headers = [
        (b"Host", b"127.0.0.1"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", _key(draw)),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    optional = [
        (b"Origin", b"http://127.0.0.1"),
        (b"User-Agent", b"fuzz/1.0"),
        (b"Sec-WebSocket-Protocol", b"chat, superchat"),
        (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits"),
        (b"Content-Length", b"0"),
    ]
    headers += [h for h in optional if draw(st.booleans())]
    req = UpgradeRequest(headers=list(draw(st.permutations(headers))))
    names = draw(st.lists(st.sampled_from(sorted(REQUEST_MUTATIONS)), max_size=3))
    # Truncation and byte flips act on the rendering: apply them last.
    names.sort(key=lambda name: name in ("truncate", "flip"))
    for name in names:
        req.tags.append(REQUEST_MUTATIONS[name](draw, req))
    return req


# ---------------------------------------------------------------- handshake responses

#: Placeholders in a response, replaced once the client's key is known.
ACCEPT = b"<accept>"
WRONG_ACCEPT = b"<wrong-accept>"

#: ``Sec-WebSocket-Extensions`` answers: value -> valid when the client offered
#: permessage-deflate (syncws offers ``client_max_window_bits`` without a value, so
#: any window from 8 to 15 is valid both ways)? ``None`` marks answers RFC 7692
#: leaves open.
EXTENSION_ANSWERS: dict[bytes, bool | None] = {
    b"permessage-deflate": True,
    b"permessage-deflate; server_max_window_bits=10": True,
    b"permessage-deflate; client_max_window_bits=9; server_no_context_takeover": True,
    b"permessage-deflate; client_no_context_takeover": True,
    b"permessage-deflate; server_max_window_bits=15": True,
    b"permessage-deflate; client_max_window_bits=15": True,
    b"permessage-deflate; x=1": False,
    b"permessage-deflate; server_max_window_bits": False,
    b"permessage-deflate; server_no_context_takeover=1": False,
    b"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10": False,
    b"permessage-deflate; client_max_window_bits=8": True,
    b"permessage-deflate; client_max_window_bits": False,
    b"permessage-deflate, permessage-deflate": None,
    b"x-webkit-deflate-frame": False,
    b"foo": False,
    b"": None,
}


@dataclass
class HandshakeResponse:
    """A server's answer to ``syncws.connect``, with placeholders for the accept token.

    ``offer_deflate`` and ``offer_protocols`` are what the client is told to offer.
    After the response the raw server sends ``after`` (frames or garbage) when the
    status is 101, then ends the connection (see the test).
    """

    status_line: bytes = b"HTTP/1.1 101 Switching Protocols"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    eol: bytes = CRLF
    folds: set[int] = field(default_factory=set)
    body: bytes = b""
    cut: int | None = None
    raw: bytes | None = None
    offer_deflate: bool = False
    offer_protocols: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def render(self, accept: bytes, wrong: bytes) -> bytes:
        if self.raw is not None:
            return self.raw
        lines = [self.status_line]
        for index, (name, template) in enumerate(self.headers):
            value = template.replace(ACCEPT, accept).replace(WRONG_ACCEPT, wrong)
            if index in self.folds and len(value) > 1:
                middle = len(value) // 2
                lines += [name + b": " + value[:middle], b" " + value[middle:]]
            else:
                lines.append(name + b": " + value)
        data = self.eol.join(lines) + self.eol + self.eol + self.body
        return data if self.cut is None else data[: self.cut]

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]


def _r_status(draw: Draw, resp: HandshakeResponse) -> str:
    how = draw(st.sampled_from(["code", "line"]))
    if how == "code":
        code = draw(st.sampled_from([100, 200, 204, 301, 302, 400, 401, 403, 404, 426, 500, 503]))
        resp.status_line = b"HTTP/1.1 %d Status" % code
        if draw(st.booleans()):
            body = draw(st.binary(max_size=200))
            framing = draw(st.sampled_from(["length", "chunked", "eof"]))
            if framing == "length":
                resp.headers.append((b"Content-Length", b"%d" % len(body)))
                resp.body = body
            elif framing == "chunked":
                resp.headers.append((b"Transfer-Encoding", b"chunked"))
                resp.body = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
            else:
                resp.body = body
        return f"status-{code // 100}xx"
    resp.status_line = draw(
        st.sampled_from(
            [
                b"HTTP/1.1 101",
                b"HTTP/1.0 101 Switching Protocols",
                b"HTTP/1.1 1O1 Switching Protocols",
                b"HTTP/1.1 999 Odd",
                b"HTTP/2 101 Switching Protocols",
                b"HTTP/1.1  101 Switching Protocols",
                b"101 Switching Protocols",
                b"ICY 200 OK",
                b"",
            ]
        )
    )
    return "status-line"


def _r_accept(draw: Draw, resp: HandshakeResponse) -> str:
    how = draw(st.sampled_from(["drop", "wrong", "dup", "wrong-first", "garbage"]))
    resp.headers = [(n, v) for n, v in resp.headers if n.lower() != b"sec-websocket-accept"]
    if how == "wrong":
        resp.headers.append((b"Sec-WebSocket-Accept", WRONG_ACCEPT))
    elif how == "dup":
        resp.headers += [(b"Sec-WebSocket-Accept", ACCEPT), (b"Sec-WebSocket-Accept", ACCEPT)]
    elif how == "wrong-first":
        resp.headers += [(b"Sec-WebSocket-Accept", WRONG_ACCEPT), (b"Sec-WebSocket-Accept", ACCEPT)]
    elif how == "garbage":
        resp.headers.append((b"Sec-WebSocket-Accept", draw(_NO_EOL)))
    return f"accept-{how}"


def _r_upgrade(draw: Draw, resp: HandshakeResponse) -> str:
    how = draw(
        st.sampled_from(["drop-upgrade", "drop-connection", "bad-upgrade", "bad-connection"])
    )
    name = b"upgrade" if "upgrade" in how else b"connection"
    resp.headers = [(n, v) for n, v in resp.headers if n.lower() != name]
    if how == "bad-upgrade":
        resp.headers.append((b"Upgrade", draw(st.sampled_from([b"h2c", b"", b"websocket2"]))))
    elif how == "bad-connection":
        resp.headers.append((b"Connection", draw(st.sampled_from([b"keep-alive", b"close"]))))
    return how


def _r_extension(draw: Draw, resp: HandshakeResponse) -> str:
    resp.headers.append(
        (b"Sec-WebSocket-Extensions", draw(st.sampled_from(sorted(EXTENSION_ANSWERS))))
    )
    return "extension"


def _r_protocol(draw: Draw, resp: HandshakeResponse) -> str:
    value = draw(st.sampled_from([b"chat", b"other", b"chat, superchat", b""]))
    resp.headers.append((b"Sec-WebSocket-Protocol", value))
    return "protocol"


def _r_huge(draw: Draw, resp: HandshakeResponse) -> str:
    if draw(st.booleans()):
        resp.headers.append((b"X-Big", b"b" * draw(st.integers(16 * 1024, 80 * 1024))))
        return "huge-header"
    resp.headers += [(b"X-H%d" % i, b"v") for i in range(draw(st.integers(101, 500)))]
    return "many-headers"


def _r_bytes(draw: Draw, resp: HandshakeResponse) -> str:
    value = draw(_NO_EOL)
    if resp.headers and draw(st.booleans()):
        index = draw(st.integers(0, len(resp.headers) - 1))
        name, old = resp.headers[index]
        resp.headers[index] = (name, old + value)
    else:
        resp.headers.append((b"X-Fuzz", value))
    return "bytes-in-value"


def _r_fold(draw: Draw, resp: HandshakeResponse) -> str:
    if resp.headers:
        resp.folds.add(draw(st.integers(0, len(resp.headers) - 1)))
    return "obs-fold"


def _r_lf(draw: Draw, resp: HandshakeResponse) -> str:
    resp.eol = b"\n"
    return "bare-lf"


def _r_after(draw: Draw, resp: HandshakeResponse) -> str:
    how = draw(st.sampled_from(["garbage", "frame", "length"]))
    if how == "garbage":
        resp.body = draw(st.binary(min_size=1, max_size=64))
    elif how == "frame":
        resp.body = encode(OP_TEXT, draw(st.text(max_size=20)).encode("utf-8"))
    else:
        # A body announced on a 101: after a 101 the bytes belong to WebSocket.
        resp.headers.append((b"Content-Length", b"5"))
        resp.body = b"hello"
    return f"after-101-{how}"


def _r_continue(draw: Draw, resp: HandshakeResponse) -> str:
    resp.status_line = b"HTTP/1.1 100 Continue" + resp.eol + resp.eol + resp.status_line
    return "100-continue"


RESPONSE_MUTATIONS: dict[str, Callable[[Draw, HandshakeResponse], str]] = {
    "status": _r_status,
    "accept": _r_accept,
    "upgrade": _r_upgrade,
    "extension": _r_extension,
    "protocol": _r_protocol,
    "huge": _r_huge,
    "bytes": _r_bytes,
    "fold": _r_fold,
    "lf": _r_lf,
    "after": _r_after,
    "continue": _r_continue,
}


@st.composite
def handshake_responses(draw: Draw) -> HandshakeResponse:
    """A valid 101 with 0 to 3 mutations, maybe truncated; or random bytes."""
    offer_deflate = draw(st.booleans())
    offer_protocols = draw(st.sampled_from([[], ["chat"], ["chat", "superchat"]]))
    if draw(st.integers(0, 9)) == 9:
        raw = draw(st.binary(max_size=200) | st.just(b"HTTP/1.1 101 Switching Protocols\r\n"))
        return HandshakeResponse(
            raw=raw, offer_deflate=offer_deflate, offer_protocols=offer_protocols, tags=["random"]
        )
    headers = [
        (b"Upgrade", draw(st.sampled_from([b"websocket", b"WebSocket"]))),
        (b"Connection", draw(st.sampled_from([b"Upgrade", b"upgrade", b"keep-alive, Upgrade"]))),
        (b"Sec-WebSocket-Accept", ACCEPT),
    ]
    if draw(st.booleans()):
        headers.append((b"Server", b"fuzz/1.0"))
    resp = HandshakeResponse(
        headers=list(draw(st.permutations(headers))),
        offer_deflate=offer_deflate,
        offer_protocols=offer_protocols,
    )
    for name in draw(st.lists(st.sampled_from(sorted(RESPONSE_MUTATIONS)), max_size=3)):
        resp.tags.append(RESPONSE_MUTATIONS[name](draw, resp))
    if draw(st.integers(0, 7)) == 7:
        full = len(resp.render(b"x" * 28, b"y" * 28))
        resp.cut = draw(st.integers(0, max(full - 1, 0)))
        resp.tags.append("truncated")
    return resp


# ---------------------------------------------------------------------- frame streams


@dataclass
class FrameScript:
    """Bytes one peer sends after the handshake, and how it ends the connection.

    ``finish`` is applied when the stream leaves the connection open (see the
    tests): ``"close"`` sends a close frame with ``close_code`` and ``close_reason``,
    ``"eof"`` ends the TCP stream without one, ``"reset"`` resets it.
    """

    data: bytes
    labels: list[str]
    finish: str
    close_code: int
    close_reason: str
    close_mask: bytes | None

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 200 else self.data[:200] + b"..."
        return (
            f"FrameScript(data={shown!r} ({len(self.data)} bytes), labels={self.labels}, "
            f"finish={self.finish!r}, close_code={self.close_code}, "
            f"close_reason={self.close_reason!r}, close_mask={self.close_mask!r})"
        )


#: Close codes the peer may send, and codes it may not.
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
LATER_CLOSE_CODES = [1012, 1013, 1014]
BAD_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
INVALID_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]


class _Ctx:
    """Draws the pieces of one frame stream; ``masked`` for a client's frames."""

    def __init__(self, draw: Draw, masked: bool, max_size: int) -> None:
        self.draw = draw
        self.masked = masked
        self.max_size = max_size

    def key(self, masked: bool | None = None) -> bytes | None:
        if not (self.masked if masked is None else masked):
            return None
        return bytes(self.draw(st.binary(min_size=4, max_size=4)))

    def frame(self, opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
        masked = kwargs.pop("masked", None)
        return encode(opcode, payload, mask=self.key(masked), **kwargs)

    def control(self) -> bytes:
        op = self.draw(st.sampled_from([OP_PING, OP_PONG]))
        return self.frame(op, self.draw(st.binary(max_size=125)))

    def message(self, opcode: int, payload: bytes, *, max_parts: int = 4) -> bytes:
        """A message in 1 to ``max_parts`` frames, maybe with pings and pongs between."""
        cuts = sorted(self.draw(st.lists(st.integers(0, len(payload)), max_size=max_parts - 1)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        out = bytearray()
        for index, piece in enumerate(pieces):
            if index and self.draw(st.integers(0, 3)) == 0:
                out += self.control()
            last = index == len(pieces) - 1
            out += self.frame(opcode if index == 0 else OP_CONT, piece, fin=last)
        return bytes(out)

    def big_payload(self, size: int, text: bool) -> bytes:
        if text:
            unit = self.draw(st.text(st.characters(max_codepoint=127), min_size=1, max_size=8))
            return (unit.encode("ascii") * (size // len(unit) + 1))[:size]
        unit = self.draw(st.binary(min_size=1, max_size=8))
        return (unit * (size // len(unit) + 1))[:size]


def _f_text(ctx: _Ctx) -> bytes:
    return ctx.message(OP_TEXT, ctx.draw(st.text(max_size=40)).encode("utf-8"))


def _f_binary(ctx: _Ctx) -> bytes:
    return ctx.message(OP_BINARY, ctx.draw(st.binary(max_size=64)))


def _f_big(ctx: _Ctx) -> bytes:
    limit = ctx.max_size
    # Far enough from the limit that a character split across frames cannot blur it.
    size = ctx.draw(st.integers(limit // 2, limit - 16) | st.integers(limit + 16, 2 * limit))
    text = ctx.draw(st.booleans())
    payload = ctx.big_payload(size, text)
    return ctx.message(OP_TEXT if text else OP_BINARY, payload, max_parts=3)


def _f_empty(ctx: _Ctx) -> bytes:
    return ctx.message(ctx.draw(st.sampled_from([OP_TEXT, OP_BINARY])), b"", max_parts=3)


def _f_control(ctx: _Ctx) -> bytes:
    return ctx.control()


def _f_close(ctx: _Ctx) -> bytes:
    how = ctx.draw(
        st.sampled_from(["valid", "later", "bad", "empty", "1-byte", "bad-utf8", "long"])
    )
    reason = ctx.draw(st.text(max_size=20)).encode("utf-8")[:100]
    if how == "valid":
        payload = ctx.draw(st.sampled_from(VALID_CLOSE_CODES)).to_bytes(2, "big") + reason
    elif how == "later":
        payload = ctx.draw(st.sampled_from(LATER_CLOSE_CODES)).to_bytes(2, "big") + reason
    elif how == "bad":
        payload = ctx.draw(st.sampled_from(BAD_CLOSE_CODES)).to_bytes(2, "big") + reason
    elif how == "empty":
        payload = b""
    elif how == "1-byte":
        payload = b"\x03"
    elif how == "bad-utf8":
        payload = b"\x03\xe8" + reason[:10] + ctx.draw(st.sampled_from(INVALID_UTF8))
    else:
        return ctx.frame(OP_CLOSE, b"\x03\xe8" + b"r" * ctx.draw(st.integers(124, 200)))
    return ctx.frame(OP_CLOSE, payload)


def _f_rsv(ctx: _Ctx) -> bytes:
    op = ctx.draw(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE]))
    payload = b"\x03\xe8" if op == OP_CLOSE else b"rsv"
    return ctx.frame(op, payload, rsv=ctx.draw(st.integers(1, 7)))


def _f_reserved_opcode(ctx: _Ctx) -> bytes:
    op = ctx.draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]))
    return ctx.frame(op, ctx.draw(st.binary(max_size=20)), fin=ctx.draw(st.booleans()))


def _f_wrong_mask(ctx: _Ctx) -> bytes:
    op = ctx.draw(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING]))
    return ctx.frame(op, b"mask", masked=not ctx.masked)


def _f_fragmented_control(ctx: _Ctx) -> bytes:
    op = ctx.draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
    payload = b"\x03\xe8" if op == OP_CLOSE else b"frag"
    return ctx.frame(op, payload, fin=False)


def _f_oversized_control(ctx: _Ctx) -> bytes:
    op = ctx.draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
    return ctx.frame(op, b"\x03\xe8" + b"x" * ctx.draw(st.integers(124, 300)))


def _f_top_bit(ctx: _Ctx) -> bytes:
    length = (1 << 63) | ctx.draw(st.integers(0, (1 << 63) - 1))
    op = ctx.draw(st.sampled_from([OP_TEXT, OP_BINARY]))
    return ctx.frame(op, b"top", width=8, length=length)


def _f_non_minimal(ctx: _Ctx) -> bytes:
    width = ctx.draw(st.sampled_from([2, 8]))
    size = ctx.draw(st.integers(0, 125)) if width == 2 else ctx.draw(st.integers(0, 300))
    op = ctx.draw(st.sampled_from([OP_TEXT, OP_BINARY]))
    return ctx.frame(op, b"n" * size, width=width)


def _f_bad_utf8(ctx: _Ctx) -> bytes:
    text = ctx.draw(st.text(max_size=20)).encode("utf-8")
    where = ctx.draw(st.integers(0, len(text)))
    payload = text[:where] + ctx.draw(st.sampled_from(INVALID_UTF8)) + text[where:]
    return ctx.message(OP_TEXT, payload)


def _f_interleaved(ctx: _Ctx) -> bytes:
    first = ctx.frame(ctx.draw(st.sampled_from([OP_TEXT, OP_BINARY])), b"part", fin=False)
    second = ctx.frame(ctx.draw(st.sampled_from([OP_TEXT, OP_BINARY])), b"other")
    return first + second


def _f_lone_continuation(ctx: _Ctx) -> bytes:
    return ctx.frame(OP_CONT, b"cont", fin=ctx.draw(st.booleans()))


def _f_huge_length(ctx: _Ctx) -> bytes:
    length = ctx.draw(st.integers(1 << 20, (1 << 62) - 1))
    return ctx.frame(OP_BINARY, b"", width=8, length=length) + b"some bytes"


def _f_random(ctx: _Ctx) -> bytes:
    return bytes(ctx.draw(st.binary(min_size=1, max_size=64)))


#: Pieces of a frame stream: name -> (weight, builder). Valid pieces weigh more.
FRAME_PIECES: dict[str, tuple[int, Callable[[_Ctx], bytes]]] = {
    "text": (6, _f_text),
    "binary": (6, _f_binary),
    "big": (2, _f_big),
    "empty": (1, _f_empty),
    "control": (4, _f_control),
    "close": (2, _f_close),
    "rsv": (1, _f_rsv),
    "reserved-opcode": (1, _f_reserved_opcode),
    "wrong-mask": (1, _f_wrong_mask),
    "fragmented-control": (1, _f_fragmented_control),
    "oversized-control": (1, _f_oversized_control),
    "top-bit-length": (1, _f_top_bit),
    "non-minimal-length": (1, _f_non_minimal),
    "bad-utf8": (1, _f_bad_utf8),
    "interleaved": (1, _f_interleaved),
    "lone-continuation": (1, _f_lone_continuation),
    "huge-length": (1, _f_huge_length),
    "random": (1, _f_random),
}
_PIECE_NAMES = [name for name, (weight, _) in FRAME_PIECES.items() for _ in range(weight)]


def frame_scripts(
    *, masked: bool, max_size: int, finishes: tuple[str, ...] = ("close", "eof")
) -> st.SearchStrategy[FrameScript]:
    """Frame streams from a client (``masked``) or a server, mostly valid at first.

    About one stream in three is entirely valid; one in eight is cut at a random byte.
    """

    @st.composite
    def build(draw: Draw) -> FrameScript:
        ctx = _Ctx(draw, masked, max_size)
        valid_only = draw(st.integers(0, 2)) == 0
        names = draw(
            st.lists(
                st.sampled_from(
                    ["text", "binary", "big", "empty", "control"] if valid_only else _PIECE_NAMES
                ),
                max_size=8,
            )
        )
        data = b"".join(FRAME_PIECES[name][1](ctx) for name in names)
        labels = list(names)
        if draw(st.integers(0, 7)) == 7:
            data = data[: draw(st.integers(0, len(data)))]
            labels.append("cut")
        return FrameScript(
            data=data,
            labels=labels,
            finish=draw(st.sampled_from(finishes)),
            close_code=draw(st.sampled_from(VALID_CLOSE_CODES)),
            close_reason=draw(st.text(max_size=20)),
            close_mask=ctx.key(),
        )

    return build()
