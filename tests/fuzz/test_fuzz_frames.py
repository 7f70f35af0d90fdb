"""Fuzz the frame layer of a syncws server and of a syncws client with hostile streams.

After a valid opening handshake, the peer (a raw socket driven by this test)
sends a stream drawn by :func:`fuzz.strategies.frame_scripts`: valid messages,
fragments, pings, pongs and close frames mixed with protocol violations, bad
UTF-8, messages over ``max_message_size``, truncated frames and random bytes.
:func:`fuzz.support.expect`, a model of RFC 6455's receiving rules, says what the
syncws side must do with it. The properties:

* server: what it sends is a valid frame stream (unmasked, no RSV bits, control
  frames whole) made of echoes of the complete valid messages (all of them, in
  order, when the whole stream was valid), a pong for each ping, then at most one
  close frame with a code the RFC allows (1002, 1007, 1009, or the echo of the
  peer's valid code; never 1005 or 1006), then the end of the TCP stream;
* client: ``get_message`` returns every valid message received before the
  fault, in order, then raises ``ConnectionClosed`` with the documented code;
  never another exception; what it sends is masked, answers each ping, and ends
  with the close frame of that code;
* both: everything within a bound, no WARNING/ERROR log, no thread or socket left.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, server_echo
from rawpeer import parse_request, raw_client, response_101

import syncws

from .strategies import FrameScript, frame_scripts
from .support import (
    GENERIC_CODES,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    Expectation,
    Figures,
    Output,
    Pump,
    ScriptedServer,
    draining,
    encode,
    expect,
    fuzz_test,
    parse_output,
    read_head,
)

#: max_message_size of the syncws side.
LIMIT = 64 * 1024
#: Every exchange must be over within this.
BOUND = WAIT


def close_follows(data: bytes, exp: Expectation, *, masked: bool) -> tuple[int | None, str] | None:
    """The peer's valid close frame that ends ``data``, past the failure if any.

    The two known bugs below need it: syncws acts on the events of a read only
    after wsproto parsed the whole read, so a close frame in the same read as a
    ping (or as a message over the limit) already changed wsproto's state.
    """
    if exp.end == "close":
        return exp.peer_close
    if exp.why != "message too big":
        return None
    return expect(data, masked=masked, max_size=1 << 62).peer_close


def check_pongs(pongs: list[bytes], exp: Expectation, *, closed: bool) -> bool:
    """Whether ``pongs`` answer the pings of ``exp`` as they must.

    Every ping before the end gets its pong, in order, when the syncws side sent a
    close frame (its output was flushed); otherwise a prefix of them.
    """
    if pongs == exp.pings:
        return True
    return pongs == exp.pings[: len(pongs)] and not closed


def allowed_codes(exp: Expectation) -> frozenset[int | None]:
    """The close codes the syncws side may send for a stream that ended in ``exp``."""
    return exp.codes if exp.exact else exp.codes | GENERIC_CODES


def close_payload(code: int, reason: str) -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")


def describe(script: FrameScript, exp: Expectation, received: bytes) -> str:
    return (
        f"pieces: {script.labels}, finish: {script.finish}\n"
        f"model: end={exp.end} why={exp.why!r} codes={sorted(exp.codes, key=str)} "
        f"messages={len(exp.messages)} pings={len(exp.pings)} exact={exp.exact}\n"
        f"sent: {script.data[:300]!r}\nreceived: {received[:300]!r}"
    )


def note(figures: Figures, script: FrameScript, exp: Expectation, code: Any) -> None:
    figures.examples += 1
    figures.note(
        f"stream ends: {exp.end}",
        f"why: {exp.why}",
        f"close code: {code}",
        *(f"piece: {label}" for label in script.labels),
    )
    if not exp.exact:
        figures.note("model not exact")


# ---------------------------------------------------------------------- syncws server


def check_server(port: int, script: FrameScript, figures: Figures) -> None:
    exp = expect(script.data, masked=True, max_size=LIMIT)
    conn = raw_client(port, "/fuzz", timeout=WAIT)
    try:
        pump = Pump(conn.sock, BOUND)
        pump.received += conn.buf
        pump.send(script.data)
        finish = "none"
        if exp.end == "open":
            finish = script.finish
            # All echoes and pongs first: a close would discard messages still queued.
            pump.wait_until(lambda r: caught_up(r, exp), "waiting for the echoes")
            if finish == "close":
                payload = close_payload(script.close_code, script.close_reason)
                pump.send(encode(OP_CLOSE, payload, mask=script.close_mask))
            else:
                pump.shutdown_write()
        elif exp.end == "partial":
            finish = "eof"
            pump.shutdown_write()
        pump.read_to_eof("waiting for the server to close")
    finally:
        conn.sock.close()
    received = bytes(pump.received)
    out = parse_output(received, masked=False)
    context = describe(script, exp, received) + f"\ndecoded: {out}"
    assert not out.problems, context
    assert not out.truncated or out.close is None, context
    if exp.end == "open":
        assert out.messages == exp.messages, context
        assert out.pongs == exp.pings, context
        if finish == "close":
            assert out.close is not None and out.close[0] == script.close_code, context
        else:
            assert out.close is None, context
    else:
        assert out.messages == exp.messages[: len(out.messages)], context
        if out.close is None:
            assert exp.end == "partial", f"no close frame\n{context}"
        else:
            assert out.close[0] in allowed_codes(exp), context
        closed = out.close is not None
        assert check_pongs(out.pongs, exp, closed=closed), context
    note(figures, script, exp, out.close[0] if out.close else "none")


def caught_up(received: bytes, exp: Expectation) -> bool:
    out = parse_output(received, masked=False)
    return len(out.messages) >= len(exp.messages) and len(out.pongs) >= len(exp.pings)


@pytest.fixture
def echo_server(syncws_server) -> Iterator[SyncwsServer]:
    """One echo server for all the examples of a test; drained at the end."""
    with draining(syncws_server(server_echo, max_message_size=LIMIT)) as srv:
        yield srv


_CLIENT_STREAMS = frame_scripts(masked=True, max_size=LIMIT)
_SERVER_STREAMS = frame_scripts(masked=False, max_size=LIMIT, finishes=("close", "eof", "reset"))

# ----------------------------------------------------- bug classes, tried on every run

_MASK = b"\x01\x02\x03\x04"


def _script(data: bytes, label: str, *, masked: bool) -> FrameScript:
    """A stream for an explicit example; it ends the connection itself (a close frame)."""
    return FrameScript(
        data=data,
        labels=[label],
        finish="close",
        close_code=1000,
        close_reason="",
        close_mask=_MASK if masked else None,
    )


def _ping_then_close(mask: bytes | None) -> bytes:
    return encode(OP_PING, b"ping", mask=mask) + encode(OP_CLOSE, b"\x03\xe8", mask=mask)


#: Every kind of stream the fuzzing found mishandled, tried first on every run
#: (hypothesis' explicit examples). Each was fixed; the comment names the test that
#: pins the fix down.
SERVER_BUG_EXAMPLES = [
    # A ping read together with the close frame got no pong
    # (test_ping_just_before_close_is_answered).
    {"script": _script(_ping_then_close(_MASK), "ping then close", masked=True)},
    # A message over max_message_size read together with the close frame got no close
    # frame (test_message_too_big_then_close_gets_a_close_frame).
    {
        "script": _script(
            encode(OP_BINARY, b"x" * (LIMIT + 1), mask=_MASK)
            + encode(OP_CLOSE, b"\x03\xe8", mask=_MASK),
            "too big then close",
            masked=True,
        )
    },
]
CLIENT_BUG_EXAMPLES = [
    # The same ping, from a server (test_client_answers_ping_just_before_close).
    {"script": _script(_ping_then_close(None), "ping then close", masked=False)},
]


#: The property of the server's frame layer, in its default and its long version.
server_frames = functools.partial(
    fuzz_test, 150, 5000, bugs=SERVER_BUG_EXAMPLES, script=_CLIENT_STREAMS
)


@server_frames(slow=False)
def test_fuzz_server_frames(
    echo_server: SyncwsServer, figures: Figures, script: FrameScript
) -> None:
    check_server(echo_server.port, script, figures)


@server_frames(slow=True)
def test_fuzz_server_frames_long(
    echo_server: SyncwsServer, figures: Figures, script: FrameScript
) -> None:
    check_server(echo_server.port, script, figures)


# ---------------------------------------------------------------------- syncws client


def serve_script(script: FrameScript, exp: Expectation) -> Any:
    """The raw server's job: a correct 101, the stream, its end, the client's answer."""

    def job(sock: socket.socket) -> tuple[bytes, str]:
        pump = Pump(sock, BOUND)
        pump.wait_until(lambda r: read_head(r) is not None, "waiting for the request")
        split = read_head(bytes(pump.received))
        assert split is not None
        pump.received = bytearray(split[1])
        pump.send(response_101(parse_request(split[0] + b"\r\n\r\n")))
        pump.send(script.data)
        finish = "none"
        if exp.end in ("open", "partial"):
            finish = script.finish
            if exp.end == "partial" and finish == "close":
                finish = "eof"
            if finish == "close":
                # The pongs first: a ping read together with a close frame is not
                # answered (see test_client_answers_ping_just_before_close).
                pump.wait_until(
                    lambda r: len(parse_output(r, masked=True).pongs) >= len(exp.pings),
                    "waiting for the pongs",
                )
                pump.send(encode(OP_CLOSE, close_payload(script.close_code, script.close_reason)))
            elif finish == "eof":
                pump.shutdown_write()
            else:
                # The job's caller closes the socket: with SO_LINGER 0, a reset.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return bytes(pump.received), finish
        pump.wait_until(
            lambda r: parse_output(r, masked=True).close is not None,
            "waiting for the client's close frame",
        )
        return bytes(pump.received), finish

    return job


def check_client(server: ScriptedServer, script: FrameScript, figures: Figures) -> None:
    exp = expect(script.data, masked=False, max_size=LIMIT)
    server.serve(serve_script(script, exp))
    ws = syncws.connect(
        server.url, max_message_size=LIMIT, connect_timeout=WAIT, disconnect_timeout=WAIT
    )
    messages: list[str | bytes] = []
    try:
        while True:
            messages.append(ws.get_message(timeout=BOUND))
    except syncws.ConnectionClosed as exc:
        reason = exc.reason
    finally:
        ws.close()
    received, finish = server.result()
    out = parse_output(received, masked=True)
    context = (
        describe(script, exp, received)
        + f"\nfinish: {finish}, reason: {reason}, messages: {len(messages)}\ndecoded: {out}"
    )
    assert ws.close_reason == reason, context
    assert not out.problems and not out.messages, context
    if finish == "reset":
        assert messages == exp.messages[: len(messages)], context
    else:
        assert messages == exp.messages, context
    check_client_close(exp, script, finish=finish, reason=reason, out=out, context=context)
    closed = out.close is not None
    assert check_pongs(out.pongs, exp, closed=closed), context
    note(figures, script, exp, reason.code)


def check_client_close(
    exp: Expectation,
    script: FrameScript,
    *,
    finish: str,
    reason: syncws.CloseReason,
    out: Output,
    context: str,
) -> None:
    sent = out.close[0] if out.close is not None else "none"
    if exp.end == "open" and finish == "close":
        assert reason == syncws.CloseReason(script.close_code, script.close_reason or None), context
        assert sent == script.close_code, context
    elif exp.end in ("open", "partial") and reason.code == 1006:
        assert sent == "none", context
    elif exp.end == "close":
        assert exp.peer_close is not None
        peer_code, peer_reason = exp.peer_close
        if reason.code in (peer_code, 1005):
            # The close frame's code and reason (1005 when it had none), echoed.
            assert reason == syncws.CloseReason(peer_code or 1005, peer_reason or None), context
            assert sent == peer_code, context
        else:
            assert reason.code in allowed_codes(exp), context
            assert sent == reason.code, context
    else:
        # The client failed the connection: the reason is the code it sent, unless
        # the server reset the connection before that frame reached it.
        assert exp.end != "open", context
        assert reason.code in allowed_codes(exp), context
        assert sent == reason.code or (finish == "reset" and sent == "none"), context


#: The property of the client's frame layer, in its default and its long version.
client_frames = functools.partial(
    fuzz_test, 100, 4000, bugs=CLIENT_BUG_EXAMPLES, script=_SERVER_STREAMS
)


@client_frames(slow=False)
def test_fuzz_client_frames(
    raw_server: ScriptedServer, figures: Figures, script: FrameScript
) -> None:
    check_client(raw_server, script, figures)


@client_frames(slow=True)
def test_fuzz_client_frames_long(
    raw_server: ScriptedServer, figures: Figures, script: FrameScript
) -> None:
    check_client(raw_server, script, figures)


# ------------------------------------------------- bugs the fuzzing found (fixed)


def test_ping_just_before_close_is_answered(syncws_server) -> None:
    # RFC 6455, section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send
    # a Pong frame in response, unless it already received a Close frame." The
    # ping comes first. When both arrived in one read, the pong used to be skipped:
    # the reader drained every wsproto event before acting on them, and by then
    # wsproto was past the close frame (REMOTE_CLOSING) and refused the pong.
    srv = syncws_server(server_echo)
    conn = raw_client(srv.port, timeout=WAIT)
    try:
        key = b"\x01\x02\x03\x04"
        conn.send_raw(encode(0x9, b"ping", mask=key) + encode(OP_CLOSE, b"\x03\xe8", mask=key))
        first = conn.recv_frame(WAIT)
        conn.wait_eof(WAIT)
    finally:
        conn.close()
    assert (first.opcode, first.payload) == (0xA, b"ping")


def test_client_answers_ping_just_before_close(raw_server: ScriptedServer) -> None:
    # The same on the client side: a server's ping followed by its close frame.
    def job(sock: socket.socket) -> bytes:
        pump = Pump(sock, BOUND)
        pump.wait_until(lambda r: read_head(r) is not None, "waiting for the request")
        split = read_head(bytes(pump.received))
        assert split is not None
        pump.received = bytearray(split[1])
        pump.send(response_101(parse_request(split[0] + b"\r\n\r\n")))
        pump.send(encode(0x9, b"ping") + encode(OP_CLOSE, b"\x03\xe8"))
        pump.wait_until(lambda r: parse_output(r, masked=True).close is not None, "close")
        return bytes(pump.received)

    raw_server.serve(job)
    with (
        syncws.connect(raw_server.url, disconnect_timeout=WAIT) as ws,
        pytest.raises(syncws.ConnectionClosed),
    ):
        ws.get_message(timeout=WAIT)
    out = parse_output(raw_server.result(), masked=True)
    assert out.pongs == [b"ping"]


def test_message_too_big_then_close_gets_a_close_frame(syncws_server) -> None:
    # A message over max_message_size fails the connection with 1009 (the server's
    # close_reason says so). When the peer's close frame arrived in the same read,
    # syncws used to send no close frame at all: _fail() only queued one while
    # wsproto's state was OPEN, and wsproto had already parsed the close frame.
    srv = syncws_server(server_echo, max_message_size=LIMIT)
    conn = raw_client(srv.port, timeout=WAIT)
    try:
        key = b"\x01\x02\x03\x04"
        big = encode(0x2, b"x" * (LIMIT + 1), mask=key)
        conn.send_raw(big + encode(OP_CLOSE, b"\x03\xe8", mask=key))
        conn.wait_eof(WAIT)
    finally:
        conn.close()
    assert [(f.opcode, f.close_code) for f in conn.frames] == [(OP_CLOSE, 1009)]
