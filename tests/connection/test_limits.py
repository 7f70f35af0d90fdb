"""max_message_size, protocol errors (1002) and invalid UTF-8 (1007)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from helpers import WAIT, WsServer, finish
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PeerConnection,
    encode_frame,
)
from websockets.exceptions import ConnectionClosed as WsClosed

import syncws
from syncws import ConnectionClosed

LIMIT = 1000


def expect_failure(ws, conn: PeerConnection, code: int, before: tuple[str, ...] = ()) -> None:
    """The client fails the connection with ``code``; the peer completes the handshake.

    The messages ``before`` the failure are returned first (the failure waits for
    them to be read: see syncws/_held_failure.py), then the close.
    """
    for message in before:
        assert ws.get_message(timeout=WAIT) == message
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason.code == code
    frame = conn.close_handshake()
    assert frame.masked
    assert frame.close_code == code, frame
    assert ws.is_closed
    assert ws.close_reason.code == code


# -------------------------------------------------------------- max_message_size


def test_message_over_limit_closes_with_1009(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_binary(b"x" * (LIMIT + 1))
        expect_failure(ws, conn, 1009)
        assert ws.close_reason.name == "MESSAGE_TOO_BIG"


def test_text_over_limit_closes_with_1009(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_text("é" * (LIMIT // 2 + 1))  # 1002 bytes, 501 characters
        expect_failure(ws, conn, 1009)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_message_exactly_at_limit_is_accepted(raw_peer, opcode: int) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_frame(opcode, b"y" * LIMIT)
        expected = "y" * LIMIT if opcode == OP_TEXT else b"y" * LIMIT
        assert ws.get_message(timeout=WAIT) == expected
        assert not ws.is_closed
        conn.send_text("next")
        assert ws.get_message(timeout=WAIT) == "next"
        finish(ws, conn)


def test_fragmented_message_over_limit_closes_with_1009(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, b"a" * 400, fin=False)
        conn.send_frame(OP_CONT, b"b" * 400, fin=False)
        conn.send_frame(OP_CONT, b"c" * 400, fin=True)
        expect_failure(ws, conn, 1009)


def test_fragmented_message_at_limit_is_accepted(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, b"a" * 500, fin=False)
        conn.send_frame(OP_CONT, b"b" * 500, fin=True)
        assert ws.get_message(timeout=WAIT) == b"a" * 500 + b"b" * 500
        finish(ws, conn)


def test_limit_is_per_message(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        for i in range(5):
            conn.send_binary(bytes([i]) * LIMIT)
        for i in range(5):
            assert ws.get_message(timeout=WAIT) == bytes([i]) * LIMIT
        finish(ws, conn)


def test_oversized_frame_fails_before_its_payload_arrives(raw_peer) -> None:
    """A frame announcing 100 MiB fails as soon as the limit is passed, not at its end."""
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_raw(encode_frame(OP_BINARY, length=100 * 2**20) + b"z" * (2 * LIMIT))
        expect_failure(ws, conn, 1009)


def test_messages_before_the_oversized_one_are_still_returned(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_text("small")
        conn.send_binary(b"x" * (LIMIT * 3))
        expect_failure(ws, conn, 1009, before=("small",))


def test_default_limit_is_one_mebibyte(websockets_server) -> None:
    def handler(ws, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        ws.send(b"k" * 2**20)
        ws.send(b"k" * (2**20 + 1))
        with contextlib.suppress(WsClosed):
            for _ in ws:
                pass
        srv.record.put(ws.close_code)

    srv = websockets_server(handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        assert ws.get_message(timeout=WAIT) == b"k" * 2**20
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1009
    assert srv.get() == 1009


def test_failure_code_kept_when_peer_drops_the_connection(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT) as ws:
        conn = peer.connection()
        conn.send_binary(b"x" * (LIMIT + 1))
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)  # It meets the message: the connection fails.
        assert excinfo.value.reason.code == 1009
        assert conn.expect_close().close_code == 1009
        conn.close()  # no close frame back
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1009


# ----------------------------------------------------------------- protocol errors

PROTOCOL_ERRORS = {
    "reserved-data-opcode-3": encode_frame(0x3, b"?"),
    "reserved-data-opcode-7": encode_frame(0x7, b"?"),
    "reserved-control-opcode-b": encode_frame(0xB, b"?"),
    "reserved-control-opcode-f": encode_frame(0xF, b""),
    "rsv1-without-extension": encode_frame(OP_TEXT, b"hi", rsv=4),
    "rsv2": encode_frame(OP_TEXT, b"hi", rsv=2),
    "rsv3": encode_frame(OP_BINARY, b"hi", rsv=1),
    "fragmented-ping": encode_frame(OP_PING, b"p", fin=False),
    "ping-over-125-bytes": encode_frame(OP_PING, b"p" * 126),
    "pong-over-125-bytes": encode_frame(OP_PONG, b"p" * 126),
    "continuation-without-start": encode_frame(OP_CONT, b"orphan"),
    "new-message-inside-fragmented-one": (
        encode_frame(OP_TEXT, b"part", fin=False) + encode_frame(OP_TEXT, b"other")
    ),
    "masked-frame-from-server": encode_frame(OP_TEXT, b"masked", mask=b"\x01\x02\x03\x04"),
    "close-one-byte-payload": encode_frame(OP_CLOSE, b"\x03"),
    "close-code-999": encode_frame(OP_CLOSE, struct.pack("!H", 999)),
    "close-code-1005-on-wire": encode_frame(OP_CLOSE, struct.pack("!H", 1005)),
    "close-code-1006-on-wire": encode_frame(OP_CLOSE, struct.pack("!H", 1006)),
    "close-code-5000": encode_frame(OP_CLOSE, struct.pack("!H", 5000)),
}


@pytest.mark.parametrize("data", PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
def test_protocol_error_closes_with_1002(raw_peer, data: bytes) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_raw(data)
        expect_failure(ws, conn, 1002)
        assert ws.close_reason.name == "PROTOCOL_ERROR"


def test_protocol_error_after_valid_messages_keeps_them(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_text("valid")
        conn.send_raw(encode_frame(0x3, b"bad"))
        expect_failure(ws, conn, 1002, before=("valid",))


# -------------------------------------------------------------------- bad UTF-8

INVALID_UTF8 = {
    "lone-continuation-byte": [(OP_TEXT, b"abc\x80def", True)],
    "overlong-encoding": [(OP_TEXT, b"\xc0\xaf", True)],
    "surrogate": [(OP_TEXT, b"\xed\xa0\x80", True)],
    "truncated-at-message-end": [(OP_TEXT, "é".encode()[:1], True)],
    "invalid-in-second-fragment": [(OP_TEXT, b"valid ", False), (OP_CONT, b"\xff", True)],
    "truncated-across-fragments": [
        (OP_TEXT, "ok ☃".encode()[:-1], False),
        (OP_CONT, b"", True),
    ],
    "close-reason": [(OP_CLOSE, struct.pack("!H", 1000) + b"\xff\xfe", True)],
}


@pytest.mark.parametrize("frames", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_invalid_utf8_closes_with_1007(raw_peer, frames) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        for opcode, payload, fin in frames:
            conn.send_frame(opcode, payload, fin=fin)
        expect_failure(ws, conn, 1007)
        assert ws.close_reason.name == "INVALID_FRAME_PAYLOAD_DATA"


def test_utf8_split_across_fragments_is_valid(raw_peer) -> None:
    peer = raw_peer()
    snowman = "☃".encode()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_frame(OP_TEXT, b"a" + snowman[:1], fin=False)
        conn.send_frame(OP_CONT, snowman[1:2], fin=False)
        conn.send_frame(OP_CONT, snowman[2:] + b"z", fin=True)
        assert ws.get_message(timeout=WAIT) == "a☃z"
        finish(ws, conn)
