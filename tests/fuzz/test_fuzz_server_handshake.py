"""Fuzz the opening handshake of a syncws server with hostile HTTP requests.

A ``syncws.WebSocketServer`` with an echo handler receives, over a raw socket,
valid upgrade requests mutated in every way :mod:`fuzz.strategies` knows, and
random bytes. :func:`judge` decides from RFC 6455 (section 4.2.1) and RFC 7230
whether a request is a valid upgrade, certainly not one, or one a server may
take either way. The properties:

* the server answers ``HTTP/1.1 101`` only to a request that may be valid (and
  to every request that certainly is), then runs the closing handshake;
* otherwise it sends a well-formed HTTP error (4xx/5xx, ``Content-Length``
  matching the body, ``Connection: close``) and closes;
* it closes without an answer only when the request head is incomplete;
* it never takes longer than ``connect_timeout`` plus a margin, logs nothing at
  WARNING or above, and leaks no connection, thread or socket.
"""

from __future__ import annotations

import functools
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import MARGIN, UNIT, WAIT, SyncwsServer, server_echo
from hypothesis import strategies as st
from rawpeer import accept_key, read_http_response, upgrade_request

from .strategies import CRLF, SAMPLE_KEY, UpgradeRequest, upgrade_requests
from .support import (
    CONTROL_BYTES,
    HARD_VALUE_BYTES,
    OP_CLOSE,
    OP_TEXT,
    Expectation,
    Figures,
    Pump,
    draining,
    encode,
    expect,
    fuzz_test,
    parse_output,
    read_head,
)

#: connect_timeout of the fuzzed server.
CONNECT_TIMEOUT = 2.0 * UNIT
#: How long a client that did not end its stream waits for an answer before ending it.
QUIET = 0.05 * UNIT

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_KEY = re.compile(rb"[A-Za-z0-9+/]{21}[AQgw]==")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([45][0-9][0-9]) [^\r\n]*")

#: The echo server's max_message_size (syncws' default).
DEFAULT_MAX_MESSAGE_SIZE = 2**20
#: syncws' limits on a request head (syncws/_http.py): beyond them, 431.
MAX_HEAD_SIZE = 16 * 1024
MAX_HEADER_LINES = 128


@dataclass
class Verdict:
    """What a request is, for a server.

    ``kind``: ``"valid"`` (the server must upgrade), ``"invalid"`` (it must not) or
    ``"either"``. ``complete``: the head ended (the server must answer before the
    client ends its stream). ``trailing``: bytes follow the head; ``early``: those
    that can only be frames.
    """

    kind: str
    complete: bool
    trailing: bool = False
    #: The bytes after the head and its body (announced by Content-Length) when they
    #: can only be frames: what an upgraded server must read as the client's first
    #: frames. ``None`` when a byte was flipped or the body is chunked.
    early: bytes | None = None
    hard: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)
    key: bytes | None = None


def _effective_headers(req: UpgradeRequest) -> list[tuple[bytes, bytes]]:
    """Header names and values as an HTTP parser sees them (obs-fold joined, OWS stripped)."""
    headers = []
    for index, (name, _) in enumerate(req.headers):
        first, *continued = req.pieces(index)
        value = b" ".join([first, *(piece.lstrip(b" \t") for piece in continued)])
        headers.append((name, value.strip(b" \t")))
    return headers


def judge(req: UpgradeRequest) -> Verdict:
    """Classify a request by RFC 6455, section 4.2.1, and RFC 7230."""
    data = req.render()
    complete = _BLANK_LINE.search(data) is not None
    if req.raw is not None:
        return Verdict("invalid", complete, hard=["random bytes"])
    head = req.head()
    if req.cut is not None and req.cut < len(head):
        return Verdict("invalid", complete, hard=["truncated head"])
    verdict = Verdict("valid", complete, trailing=len(data) > len(head))
    hard, soft, bugs = verdict.hard, verdict.soft, verdict.bugs
    if req.flip is not None:
        # Any byte may have changed, even into a line end: only the outcome's
        # shape can be checked.
        soft.append("a byte flipped")
        verdict.trailing = True
    if req.eol != CRLF or req.lf_lines:
        soft.append("bare LF line ends")
    # RFC 9112, section 5.2: a server may refuse obs-fold with 400, and syncws does.
    continuation_lines = sum(len(req.pieces(i)) - 1 for i in range(len(req.headers)))
    if continuation_lines:
        hard.append("obs-fold")
    # The request line.
    if req.method != b"GET":
        hard.append("method is not GET")
    version = re.fullmatch(rb"HTTP/([0-9])\.([0-9])", req.version)
    if version is None:
        hard.append("bad HTTP version")
    elif version.groups() < (b"1", b"1"):
        hard.append("HTTP version below 1.1")
    elif version.groups() != (b"1", b"1"):
        soft.append("HTTP version above 1.1")
    target = req.target
    if not re.fullmatch(rb"[\x21-\x7e]+", target):
        hard.append("bad request-target")
    elif re.match(rb"(?i)(http|https|ws|wss)://", target):
        soft.append("absolute-form request-target")
    elif not target.startswith(b"/"):
        hard.append("request-target is not a resource name")
    elif b"#" in target:
        soft.append("fragment in the request-target")
    # The header fields.
    headers = _effective_headers(req)
    for name, value in headers:
        if name[:1] in (b" ", b"\t"):
            hard.append("header line starting with whitespace (obs-fold)")
        elif not _TOKEN.fullmatch(name):
            hard.append("header name is not a token")
        if HARD_VALUE_BYTES.search(value):
            hard.append("NUL, CR, VT or FF in a header value")
        elif CONTROL_BYTES.search(value):
            soft.append("control byte in a header value")

    def values(wanted: bytes) -> list[bytes]:
        return [v for n, v in headers if n.lower() == wanted]

    hosts = values(b"host")
    if len(hosts) != 1:
        hard.append(f"{len(hosts)} Host headers")
    elif not hosts[0] or not re.fullmatch(rb"[\x21-\x7e]+", hosts[0]):
        soft.append("odd Host value")
    upgrades = values(b"upgrade")
    if not upgrades:
        hard.append("no Upgrade")
    elif len(upgrades) > 1:
        soft.append("several Upgrade headers")
    elif upgrades[0].lower() != b"websocket":
        if b"websocket" in [t.strip().lower() for t in upgrades[0].split(b",")]:
            soft.append("Upgrade lists websocket with others")
        else:
            hard.append("Upgrade is not websocket")
    connections = values(b"connection")
    if not connections:
        hard.append("no Connection")
    elif len(connections) > 1:
        soft.append("several Connection headers")
    elif b"upgrade" not in [t.strip().lower() for t in connections[0].split(b",")]:
        hard.append("Connection without upgrade")
    elif not connections[0].isascii():
        soft.append("non-ASCII Connection")
    versions = values(b"sec-websocket-version")
    if not versions or versions[-1] != b"13":
        hard.append("Sec-WebSocket-Version is not 13")
    elif len(versions) > 1:
        hard.append("repeated Sec-WebSocket-Version")
    keys = values(b"sec-websocket-key")
    if not keys:
        hard.append("no Sec-WebSocket-Key")
    elif len(keys) > 1:
        hard.append("repeated Sec-WebSocket-Key")
    elif not _KEY.fullmatch(keys[0]):
        hard.append("malformed Sec-WebSocket-Key")
    elif req.flip is None:
        verdict.key = keys[0]
    for name in (b"sec-websocket-protocol", b"sec-websocket-extensions"):
        if not all(v.isascii() for v in values(name)):
            soft.append(f"non-ASCII {name.decode()}")
    # Message framing: a body on an upgrade request, and request smuggling shapes.
    lengths = values(b"content-length")
    codings = values(b"transfer-encoding")
    if any(not re.fullmatch(rb"[0-9]+", v) for v in lengths):
        hard.append("bad Content-Length")
    elif len(set(lengths)) > 1:
        hard.append("conflicting Content-Length")
    elif len(lengths) > 1:
        soft.append("repeated Content-Length")
    elif lengths and lengths[0] != b"0":
        soft.append("a body")
    if codings:
        if [v.lower() for v in codings] != [b"chunked"]:
            hard.append("unsupported Transfer-Encoding")
        else:
            soft.append("Transfer-Encoding: chunked" + (" with Content-Length" if lengths else ""))
    if req.flip is None and not codings and len(set(lengths)) <= 1:
        # The upgrade takes effect after the whole request, its body included
        # (RFC 9110, section 7.8): the bytes after the body are frames.
        body = int(lengths[0]) if lengths and lengths[0].isdigit() else 0
        if len(data) >= len(head) + body:
            verdict.early = data[len(head) + body :]
    size = len(head) - 2 * len(req.eol)
    if size > MAX_HEAD_SIZE + 64:
        hard.append("head over 16 KiB")
    elif size > MAX_HEAD_SIZE - 64:
        soft.append("head of about 16 KiB")
    lines = len(req.headers) + continuation_lines
    if lines > MAX_HEADER_LINES:
        hard.append(f"more than {MAX_HEADER_LINES} header lines")
    if hard and req.flip is None:
        verdict.kind = "invalid"
    elif hard or soft or bugs:
        verdict.kind = "either"
    return verdict


def check_error_response(data: bytes, head_request: bool = False) -> int:
    """Assert ``data`` is one complete HTTP error response; return its status.

    The answer to a ``HEAD`` request (``head_request``) has no body, and its
    ``Content-Length`` is that of the body a ``GET`` would get (RFC 9110, 9.3.2).
    """
    split = read_head(data)
    assert split is not None, f"incomplete response: {data[:300]!r}"
    head, body = split
    lines = head.split(b"\r\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    assert status is not None, f"bad status line {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon and _TOKEN.fullmatch(name), f"bad header line {line!r}"
        headers.append((name.lower(), value.strip()))
    lengths = [v for n, v in headers if n == b"content-length"]
    if head_request:
        assert body == b"", f"a body after the head of a HEAD response: {body[:100]!r}"
        assert len(lengths) == 1 and lengths[0].isdigit(), f"Content-Length {lengths}"
    else:
        assert lengths == [b"%d" % len(body)], f"Content-Length {lengths} for {len(body)} bytes"
    connection = [v.lower() for n, v in headers if n == b"connection"]
    assert connection == [b"close"], f"Connection: {connection}"
    return int(status.group(1))


# ------------------------------------------------------------------------ the property


def exchange(port: int, req: UpgradeRequest, half_close: bool, figures: Figures) -> None:
    """Send one request; check the answer, the close handshake and the timing."""
    verdict = judge(req)
    data = req.render()
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), WAIT)
    try:
        pump = Pump(sock, CONNECT_TIMEOUT + MARGIN)
        pump.send(data)
        ended = half_close
        if half_close:
            pump.shutdown_write()
        else:
            pump.wait_until(bool, "", timeout=QUIET)
            if not pump.received and not pump.eof:
                # No answer yet: the server is waiting for more (or is slow). End
                # the stream rather than wait for connect_timeout here; the test
                # of incomplete requests below waits for it.
                figures.note("late half-close")
                pump.shutdown_write()
                ended = True
        pump.wait_until(
            lambda r: len(r) >= 13 and (not r.startswith(b"HTTP/1.1 101 ") or b"\r\n\r\n" in r),
            "waiting for the response",
        )
        upgraded = pump.received.startswith(b"HTTP/1.1 101 ")
        early = early_frames(verdict)
        if upgraded and not ended:
            if early is not None and early.end == "open":
                # Whole frames followed the head: the server answers them (echoes,
                # pongs) like any others, then takes our close frame.
                pump.wait_until(
                    lambda r: caught_up(after_head(r), early), "waiting for the early echoes"
                )
                pump.send(encode(OP_CLOSE, b"\x03\xe8", mask=b"\x01\x02\x03\x04"))
            elif verdict.trailing:
                # What followed the head may be an unfinished frame that would
                # swallow a close frame: end the stream instead.
                pump.shutdown_write()
                ended = True
            else:
                pump.send(encode(OP_CLOSE, b"\x03\xe8", mask=b"\x01\x02\x03\x04"))
        pump.read_to_eof("waiting for the server to close")
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    received = bytes(pump.received)
    context = f"{verdict}\nrequest: {data[:500]!r}\nanswer: {received[:500]!r}"
    assert elapsed < CONNECT_TIMEOUT + MARGIN, f"took {elapsed:.2f}s\n{context}"
    if upgraded:
        outcome = "101"
        assert verdict.kind != "invalid", f"upgraded an invalid request\n{context}"
        check_upgrade(received, verdict, ended, context, early)
        figures.note(*(f"known bug: 101 despite {bug}" for bug in verdict.bugs))
    elif received:
        # The server reads the method from the bytes sent (raw bytes may start
        # with "HEAD " whatever the drawn method).
        status = check_error_response(received, head_request=data.startswith(b"HEAD "))
        outcome = str(status)
        assert verdict.kind != "valid", f"refused a valid request\n{context}"
        assert not pump.reset, f"reset after the error response\n{context}"
    else:
        outcome = "closed"
        assert not verdict.complete, f"closed without answering a complete request\n{context}"
    figures.note(f"outcome: {outcome}", f"verdict: {verdict.kind}")
    if len(req.tags) <= 1:
        # One mutation (or none): the answer says how the server treats that shape.
        figures.note(f"{(req.tags or ['valid'])[0]} -> {outcome}")


def early_frames(verdict: Verdict) -> Expectation | None:
    """What a server that upgrades must do with the frames that followed the head."""
    if not verdict.early:
        return None
    return expect(verdict.early, masked=True, max_size=DEFAULT_MAX_MESSAGE_SIZE)


def after_head(received: bytes) -> bytes:
    """What follows the head of the response (nothing while the head is incomplete)."""
    split = read_head(received)
    return b"" if split is None else split[1]


def caught_up(data: bytes, exp: Expectation) -> bool:
    """Whether ``data`` holds an echo of every message of ``exp`` and a pong per ping."""
    out = parse_output(data, masked=False)
    return len(out.messages) >= len(exp.messages) and len(out.pongs) >= len(exp.pings)


def check_upgrade(
    received: bytes, verdict: Verdict, ended: bool, context: str, early: Expectation | None
) -> None:
    split = read_head(received)
    assert split is not None, context
    head, rest = split
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if verdict.key is not None:
        expected = accept_key(verdict.key.decode()).encode()
        assert headers.get(b"sec-websocket-accept") == expected, context
    out = parse_output(rest, masked=False)
    assert not out.problems, f"{out.problems}\n{context}"
    assert not out.truncated or out.close is None, context
    if early is not None and early.end == "open":
        # The frames sent with the request are the client's first frames: each
        # message is echoed and each ping answered, in order.
        if ended:
            assert out.messages == early.messages[: len(out.messages)], context
            assert out.close is None, f"close frame after the client's EOF\n{context}"
        else:
            assert out.messages == early.messages, context
            assert out.pongs == early.pings, context
            assert out.close is not None and out.close[0] == 1000, context
    elif not verdict.trailing:
        assert out.messages == [] and out.pongs == [], context
        if ended:
            assert out.close is None, f"close frame after the client's EOF\n{context}"
        else:
            assert out.close is not None and out.close[0] == 1000, context
    elif out.close is not None:
        # Bytes after the head are dropped or taken as frames: either way the
        # server ends with a code from the RFC.
        assert out.close[0] in (1000, 1002, 1007, 1009), context


@pytest.fixture
def echo_server(syncws_server) -> Iterator[SyncwsServer]:
    """One echo server for all the examples of a test; drained at the end."""
    with draining(syncws_server(server_echo, connect_timeout=CONNECT_TIMEOUT)) as srv:
        yield srv


# ----------------------------------------------------- bug classes, tried on every run


def _valid_request(connection: bytes = b"Upgrade", **fields: Any) -> UpgradeRequest:
    """A valid upgrade request (RFC 6455's sample key), with ``fields`` set and
    ``fields["headers"]`` added to its headers."""
    headers = [
        (b"Host", b"127.0.0.1"),
        (b"Upgrade", b"websocket"),
        (b"Connection", connection),
        (b"Sec-WebSocket-Key", SAMPLE_KEY),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    fields["headers"] = headers + fields.get("headers", [])
    return UpgradeRequest(**fields, tags=["explicit example"])


_EARLY_FRAME = encode(OP_TEXT, b"early", mask=b"\x01\x02\x03\x04")

#: Every kind of request the fuzzing found mishandled, tried first on every run
#: (hypothesis' explicit examples), so that none depends on the luck of the draw.
#: Each was fixed; the comment names the test that pins the fix down.
BUG_EXAMPLES = [
    # HTTP/1.0 was upgraded (test_http_1_0_upgrade_is_refused).
    {"req": _valid_request(version=b"HTTP/1.0"), "half_close": True},
    # A request-target that is not a resource name was upgraded
    # (test_request_target_must_be_a_resource_name).
    {"req": _valid_request(target=b"*"), "half_close": False},
    # A frame sent right behind the request, in the same read, was dropped
    # (test_frame_sent_with_the_request_is_not_lost).
    {"req": _valid_request(body=_EARLY_FRAME), "half_close": False},
    # A request with a body was upgraded, and the frame after the body dropped
    # (tests/server/test_security.py::test_upgrade_with_a_body_gets_400).
    {
        "req": _valid_request(headers=[(b"Content-Length", b"5")], body=b"hello" + _EARLY_FRAME),
        "half_close": False,
    },
    # A control character that str.strip() removes passed for a space: "Upgrade\x1c"
    # (tests/server/test_security.py::
    # test_control_character_that_strip_removes_is_not_taken_for_a_space).
    {"req": _valid_request(connection=b"Upgrade\x1c"), "half_close": True},
    # obs-fold continuation lines escaped the limit of 128 header lines: 128 fields
    # and one continuation line, then 6 fields over 1,128 lines
    # (tests/server/test_security.py::test_continuation_lines_count_as_header_lines).
    {
        "req": _valid_request(headers=[(b"X-H%d" % i, b"vv") for i in range(123)], folds={127: 2}),
        "half_close": True,
    },
    {
        "req": _valid_request(headers=[(b"X-Folded", b"f" * 1123)], folds={5: 1123}),
        "half_close": False,
    },
]


#: The property of the server's handshake, in its default and its long version.
server_handshake = functools.partial(
    fuzz_test, 150, 7000, bugs=BUG_EXAMPLES, req=upgrade_requests(), half_close=st.booleans()
)


@server_handshake(slow=False)
def test_fuzz_server_handshake(
    echo_server: SyncwsServer, figures: Figures, req: UpgradeRequest, half_close: bool
) -> None:
    figures.examples += 1
    exchange(echo_server.port, req, half_close, figures)


@server_handshake(slow=True)
def test_fuzz_server_handshake_long(
    echo_server: SyncwsServer, figures: Figures, req: UpgradeRequest, half_close: bool
) -> None:
    figures.examples += 1
    exchange(echo_server.port, req, half_close, figures)


# ------------------------------------------------------------- incomplete requests

#: connect_timeout of the server that must drop incomplete requests.
DROP_TIMEOUT = 1.0 * UNIT
#: Incomplete requests sent at once in one example.
BATCH = 12


@pytest.fixture
def dropping_server(syncws_server) -> Iterator[SyncwsServer]:
    with draining(syncws_server(server_echo, connect_timeout=DROP_TIMEOUT)) as srv:
        yield srv


def drop_incomplete(port: int, cuts: list[int], figures: Figures) -> None:
    """Send a prefix of a valid request on each of several sockets; wait for the drops."""
    figures.examples += 1
    request = _REQUEST
    socks = []
    try:
        started = time.monotonic()
        for cut in cuts:
            sock = socket.create_connection(("127.0.0.1", port), WAIT)
            socks.append(sock)
            sock.sendall(request[:cut])
        for sock, cut in zip(socks, cuts, strict=True):
            response = read_until_closed(sock, started + DROP_TIMEOUT + MARGIN)
            elapsed = time.monotonic() - started
            assert response == b"", f"answered {request[:cut]!r} with {response!r}"
            assert elapsed >= DROP_TIMEOUT * 0.9, f"dropped after {elapsed:.2f}s"
            figures.note("timeout hit")
    finally:
        for sock in socks:
            sock.close()


_REQUEST = upgrade_request("127.0.0.1", "/chat")
_CUTS = st.lists(st.integers(0, len(_REQUEST) - 1), min_size=BATCH, max_size=BATCH)


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"not closed by connect_timeout + margin (got {data!r})"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


#: The property of incomplete requests, in its default and its long version.
incomplete_requests = functools.partial(fuzz_test, 1, 12, costly=True, timeout=120, cuts=_CUTS)


# Each batch waits out connect_timeout (a second): by default the server's handshake tests
# cover it (test_slowloris_is_dropped_after_connect_timeout and the request sent a byte
# at a time), so the short batch runs under -m slow too, beside the long one.
@pytest.mark.slow
@incomplete_requests(slow=False)
def test_incomplete_requests_are_dropped_after_connect_timeout(
    dropping_server: SyncwsServer, figures: Figures, cuts: list[int]
) -> None:
    drop_incomplete(dropping_server.port, cuts, figures)


@incomplete_requests(slow=True)
def test_incomplete_requests_are_dropped_after_connect_timeout_long(
    dropping_server: SyncwsServer, figures: Figures, cuts: list[int]
) -> None:
    drop_incomplete(dropping_server.port, cuts, figures)


# ----------------------------------------------------- invalid requests syncws accepts


def _ask(port: int, request: bytes) -> int:
    """Send ``request``; return the status of the answer."""
    with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return read_http_response(sock, WAIT).status


def _request(
    key: bytes = b"dGhlIHNhbXBsZSBub25jZQ==",
    *,
    line: bytes = b"GET /chat HTTP/1.1",
    extra: bytes = b"",
) -> bytes:
    return (
        line + b"\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/0.9"])
def test_http_1_0_upgrade_is_refused(syncws_server, version: bytes) -> None:
    # RFC 6455, section 4.1: "The method of the request MUST be GET, and the HTTP
    # version MUST be at least 1.1."
    srv = syncws_server(server_echo)
    assert _ask(srv.port, _request(line=b"GET /chat " + version)) in (400, 426, 505)


@pytest.mark.parametrize("target", [b"*", b"chat"])
def test_request_target_must_be_a_resource_name(syncws_server, target: bytes) -> None:
    # RFC 6455, section 4.1: the Request-URI is a resource name ("/..."), or an
    # absolute http(s) URI.
    srv = syncws_server(server_echo)
    assert _ask(srv.port, _request(line=b"GET " + target + b" HTTP/1.1")) == 400


def test_frame_sent_with_the_request_is_not_lost(syncws_server) -> None:
    # A client that sends its first frame right behind the request (in the same
    # TCP segment) loses it: the server hands the connection only the bytes of
    # later reads. The RFC asks clients to wait for the 101, but the bytes are the
    # client's first frame either way, and whether they get through depends on
    # how TCP segments the stream.
    srv = syncws_server(server_echo)
    key = b"\x01\x02\x03\x04"
    with socket.create_connection(("127.0.0.1", srv.port), WAIT) as sock:
        pump = Pump(sock, WAIT)
        pump.send(_request() + encode(0x1, b"early", mask=key))
        pump.wait_until(lambda r: read_head(r) is not None, "waiting for the 101")
        # Echoes come in order: once "later" is back, "early" was echoed or lost.
        pump.send(encode(0x1, b"later", mask=key))
        pump.wait_until(lambda r: b"later" in r, "waiting for the echo of 'later'")
        pump.send(encode(OP_CLOSE, b"\x03\xe8", mask=key))
        pump.read_to_eof()
    split = read_head(bytes(pump.received))
    assert split is not None and split[0].startswith(b"HTTP/1.1 101")
    assert parse_output(split[1], masked=False).messages == ["early", "later"]
