"""Interim (1xx) responses before the 101: skipped, as RFC 9110 (section 15.2) asks.

"A client MUST be able to parse one or more 1xx responses received prior to a final
response, even if the client does not expect one." The client skips at most 8 of them,
all heads together within the bound on the head's size (16 KiB), all within
``connect_timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from helpers import MARGIN, SHORT, WAIT, Background, finish
from rawpeer import OP_BINARY, OP_TEXT, SILENT, RawPeer, Request, encode_frame, response_101

import syncws

#: The documented bounds: at most 8 interim responses, all heads within 16 KiB.
MAX_INTERIM_RESPONSES = 8
MAX_HEAD_SIZE = 16 * 1024

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\r\n"
    b"Link: </style.css>; rel=preload; as=style\r\n"
    b"X-Hint: only in the 103\r\n\r\n"
)
REJECTION = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
    b"X-Why: no entry\r\n\r\nnot you\n"
)


def answer(*interim: bytes, then: bytes = b"") -> Callable[[Request], bytes]:
    """A raw server's answer: ``interim`` responses, a 101 with a header, then ``then``."""

    def handshake(request: Request) -> bytes:
        final = response_101(request, extra_headers=[("X-Final", "101")])
        return b"".join(interim) + final + then

    return handshake


def test_100_and_103_then_101_and_a_frame_in_one_write(raw_peer: Callable[..., RawPeer]) -> None:
    frames = encode_frame(OP_TEXT, b"right behind the 101") + encode_frame(OP_BINARY, b"\x00\x01")
    peer = raw_peer(handshake=answer(CONTINUE, EARLY_HINTS, then=frames))
    ws = syncws.connect(peer.url, connect_timeout=WAIT, disconnect_timeout=WAIT)
    conn = peer.connection(WAIT)
    try:
        # The frames sent with the response reach the connection.
        assert ws.get_message(timeout=WAIT) == "right behind the 101"
        assert ws.get_message(timeout=WAIT) == b"\x00\x01"
        # The headers are those of the 101, not of the interim responses.
        assert (b"x-final", b"101") in ws.handshake_headers
        assert all(name not in (b"link", b"x-hint") for name, _ in ws.handshake_headers)
        ws.send_message("still open")
        assert conn.recv_message(WAIT) == (OP_TEXT, b"still open")
        finish(ws, conn)
    finally:
        ws.close()


def test_as_many_interim_responses_as_allowed(raw_peer: Callable[..., RawPeer]) -> None:
    interim = [CONTINUE, PROCESSING, EARLY_HINTS] * MAX_INTERIM_RESPONSES
    peer = raw_peer(handshake=answer(*interim[:MAX_INTERIM_RESPONSES]), auto=True, echo=True)
    with syncws.connect(peer.url, connect_timeout=WAIT, disconnect_timeout=WAIT) as ws:
        ws.send_message("echo")
        assert ws.get_message(timeout=WAIT) == "echo"


def test_interim_responses_in_separate_writes(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=SILENT)
    call = Background(syncws.connect, peer.url, connect_timeout=WAIT, disconnect_timeout=WAIT)
    request = peer.wait_request()
    conn = peer.conn
    assert conn is not None
    conn.send_raw(CONTINUE)
    conn.send_raw(EARLY_HINTS[:20])
    conn.send_raw(EARLY_HINTS[20:])
    conn.send_raw(response_101(request) + encode_frame(OP_TEXT, b"hello"))
    ws = call.result()
    try:
        assert ws.get_message(timeout=WAIT) == "hello"
        finish(ws, conn)
    finally:
        ws.close()


def test_too_many_interim_responses_fail_the_handshake(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=answer(*[CONTINUE] * (MAX_INTERIM_RESPONSES + 1)))
    with pytest.raises(syncws.HandshakeError) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert not isinstance(excinfo.value, syncws.ConnectionRejected)
    assert f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses" in str(excinfo.value)


def test_the_head_size_bound_covers_the_interim_responses(
    raw_peer: Callable[..., RawPeer],
) -> None:
    # Each head is small enough on its own, not all of them together.
    big = b"HTTP/1.1 103 Early Hints\r\nLink: <" + b"x" * 3000 + b">; rel=preload\r\n\r\n"
    count = MAX_HEAD_SIZE // len(big) + 1
    assert count <= MAX_INTERIM_RESPONSES
    peer = raw_peer(handshake=answer(*[big] * count))
    with pytest.raises(syncws.HandshakeError) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert f"response heads larger than {MAX_HEAD_SIZE} bytes" in str(excinfo.value)


def test_interim_then_rejection(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=lambda request: CONTINUE + EARLY_HINTS + REJECTION)
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    error = excinfo.value
    assert error.status_code == 403
    assert error.body == b"not you\n"
    assert (b"x-why", b"no entry") in [(name.lower(), value) for name, value in error.headers]
    assert "403 Forbidden" in str(error)
    assert "100" not in str(error)


def test_interim_then_nothing_times_out(raw_peer: Callable[..., RawPeer]) -> None:
    # connect_timeout covers the whole response, interim responses included.
    peer = raw_peer(handshake=lambda request: CONTINUE + EARLY_HINTS)
    start = time.monotonic()
    with pytest.raises(syncws.ConnectionTimeout):
        syncws.connect(peer.url, connect_timeout=SHORT)
    assert time.monotonic() - start < SHORT + MARGIN


def test_interim_then_end_of_stream(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(handshake=lambda request: CONTINUE, close_after_handshake=True)
    with pytest.raises(syncws.ConnectionLost) as excinfo:
        syncws.connect(peer.url, connect_timeout=WAIT)
    assert "during its handshake response" in str(excinfo.value)
