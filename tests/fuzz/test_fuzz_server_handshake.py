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

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from helpers import MARGIN, UNIT, WAIT, SyncwsServer, server_echo, syncws_threads, wait_for
from hypothesis import given
from hypothesis import strategies as st
from rawpeer import accept_key, read_http_response, upgrade_request

from .strategies import CRLF, UpgradeRequest, upgrade_requests
from .support import (
    OP_CLOSE,
    Figures,
    Pump,
    encode,
    examples,
    fuzz_settings,
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
_HARD_VALUE_BYTES = re.compile(rb"[\x00\x0b\x0c\r]")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([45][0-9][0-9]) [^\r\n]*")

#: syncws' limits on a request head (syncws/_http.py): beyond them, 431.
MAX_HEAD_SIZE = 16 * 1024
MAX_HEADER_LINES = 128


@dataclass
class Verdict:
    """What a request is, for a server.

    ``kind``: ``"valid"`` (the server must upgrade), ``"invalid"`` (it must not) or
    ``"either"``. ``complete``: the head ended (the server must answer before the
    client ends its stream). ``trailing``: bytes follow the head.
    """

    kind: str
    complete: bool
    trailing: bool = False
    hard: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)
    key: bytes | None = None


def _effective_headers(req: UpgradeRequest) -> list[tuple[bytes, bytes]]:
    """Header names and values as an HTTP parser sees them (obs-fold joined, OWS stripped)."""
    headers = []
    for index, (name, raw) in enumerate(req.headers):
        value = raw
        if index in req.folds and len(raw) > 1:
            middle = len(raw) // 2
            value = raw[:middle] + b" " + raw[middle:].lstrip(b" \t")
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
    if req.folds:
        soft.append("obs-fold")
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
            soft.append("header line starting with whitespace")
        elif not _TOKEN.fullmatch(name):
            hard.append("header name is not a token")
        if _HARD_VALUE_BYTES.search(value):
            hard.append("NUL, CR, VT or FF in a header value")
        elif _CONTROL.search(value):
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
    size = len(head) - 2 * len(req.eol)
    if size > MAX_HEAD_SIZE + 64:
        hard.append("head over 16 KiB")
    elif size > MAX_HEAD_SIZE - 64:
        soft.append("head of about 16 KiB")
    lines = len(req.headers) + sum(
        1 for i in req.folds if i < len(req.headers) and len(req.headers[i][1]) > 1
    )
    if lines > MAX_HEADER_LINES:
        hard.append(f"more than {MAX_HEADER_LINES} header lines")
    if hard and req.flip is None:
        verdict.kind = "invalid"
    elif hard or soft or bugs:
        verdict.kind = "either"
    return verdict


def check_error_response(data: bytes) -> int:
    """Assert ``data`` is one complete HTTP error response; return its status."""
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
        if upgraded and not ended:
            if verdict.trailing:
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
        check_upgrade(received, verdict, ended, context)
        figures.note(*(f"known bug: 101 despite {bug}" for bug in verdict.bugs))
    elif received:
        status = check_error_response(received)
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


def check_upgrade(received: bytes, verdict: Verdict, ended: bool, context: str) -> None:
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
    if not verdict.trailing:
        assert out.messages == [] and out.pongs == [], context
        if ended:
            assert out.close is None, f"close frame after the client's EOF\n{context}"
        else:
            assert out.close is not None and out.close[0] == 1000, context
    elif out.close is not None:
        # Bytes after the head are dropped or taken as frames: either way the
        # server ends with a code from the RFC.
        assert out.close[0] in (1000, 1002, 1007, 1009), context


def drained(srv: SyncwsServer, threads_before: int) -> None:
    """Assert the server has no connection and no client thread left."""
    wait_for(lambda: not srv.server.connections, what="the server's connections to drain")
    wait_for(lambda: len(syncws_threads()) <= threads_before, what="syncws threads to end")


@pytest.fixture
def echo_server(syncws_server) -> Iterator[SyncwsServer]:
    """One echo server for all the examples of a test; drained at the end."""
    srv = syncws_server(server_echo, connect_timeout=CONNECT_TIMEOUT)
    threads_before = len(syncws_threads())
    yield srv
    drained(srv, threads_before)


@fuzz_settings(examples(300, 7000, slow=False))
@given(req=upgrade_requests(), half_close=st.booleans())
def test_fuzz_server_handshake(
    echo_server: SyncwsServer, figures: Figures, req: UpgradeRequest, half_close: bool
) -> None:
    figures.examples += 1
    exchange(echo_server.port, req, half_close, figures)


@pytest.mark.slow
@pytest.mark.timeout(240)
@fuzz_settings(examples(300, 7000, slow=True))
@given(req=upgrade_requests(), half_close=st.booleans())
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
    srv = syncws_server(server_echo, connect_timeout=DROP_TIMEOUT)
    threads_before = len(syncws_threads())
    yield srv
    drained(srv, threads_before)


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


@fuzz_settings(examples(1, 12, slow=False, costly=True))
@given(cuts=_CUTS)
def test_incomplete_requests_are_dropped_after_connect_timeout(
    dropping_server: SyncwsServer, figures: Figures, cuts: list[int]
) -> None:
    drop_incomplete(dropping_server.port, cuts, figures)


@pytest.mark.slow
@pytest.mark.timeout(120)
@fuzz_settings(examples(1, 12, slow=True, costly=True))
@given(cuts=_CUTS)
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
