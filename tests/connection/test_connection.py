"""Messages: types, sizes, fragmentation, ordering, iteration and get_message timeouts."""

from __future__ import annotations

import array
import itertools
import threading
import time

import pytest
from helpers import MARGIN, SHORT, WAIT, Background, WsServer, echo_handler, echo_once
from hypothesis import given, settings
from hypothesis import strategies as st
from rawpeer import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT

import syncws
from syncws import ConnectionClosed

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 2**20]


def send_on_go_handler(messages, close_code=1000, close_reason=""):
    """A handler that waits for "go", sends ``messages``, then closes with the given code."""

    def handler(ws, srv: WsServer) -> None:
        assert ws.recv(timeout=WAIT) == "go"
        for message in messages:
            ws.send(message)
        ws.close(close_code, close_reason)
        srv.record.put("closed")

    return handler


# ---------------------------------------------------------------- message types


def test_text_message_is_str_and_binary_is_bytes(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        ws.send_message("text")
        ws.send_message(b"binary")
        first = ws.get_message(timeout=WAIT)
        second = ws.get_message(timeout=WAIT)
    assert (type(first), first) == (str, "text")
    assert (type(second), second) == (bytes, b"binary")


def test_str_sent_as_text_frame_and_bytes_like_as_binary(raw_peer) -> None:
    peer = raw_peer()
    numbers = array.array("H", [1, 2, 0xFFFF])
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        ws.send_message("héllo")
        ws.send_message(b"raw")
        ws.send_message(bytearray(b"array"))
        ws.send_message(memoryview(b"hello world")[6:])
        ws.send_message(memoryview(numbers))
        assert conn.recv_message() == (OP_TEXT, "héllo".encode())
        assert conn.recv_message() == (OP_BINARY, b"raw")
        assert conn.recv_message() == (OP_BINARY, b"array")
        assert conn.recv_message() == (OP_BINARY, b"world")
        assert conn.recv_message() == (OP_BINARY, numbers.tobytes())
        closer = Background(ws.close)
        conn.close_handshake()
        closer.result()


@pytest.mark.parametrize(
    "value", [42, 1.5, None, [1], {"a": 1}, object()], ids=lambda v: type(v).__name__
)
def test_other_message_types_raise_type_error(websockets_server, value) -> None:
    # A list of str or bytes is a message in fragments (see test_send_fragments.py).
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        with pytest.raises(TypeError):
            ws.send_message(value)
        ws.send_message("still usable")
        assert ws.get_message(timeout=WAIT) == "still usable"


def test_unicode_text_roundtrip(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    text = "ascii, é, ☃, 漢字, 🎉 and a NUL \x00 too"
    echo_once(srv.url, text)


# ------------------------------------------------------------------------ sizes


@pytest.mark.parametrize("size", SIZES)
def test_binary_sizes_roundtrip_websockets(websockets_server, size: int) -> None:
    srv = websockets_server(echo_handler)
    payload = bytes(i % 251 for i in range(size))
    echo_once(srv.url, payload)


@pytest.mark.parametrize("size", SIZES)
def test_text_sizes_roundtrip_websockets(websockets_server, size: int) -> None:
    srv = websockets_server(echo_handler)
    text = "".join(chr(ord("a") + i % 26) for i in range(size))
    echo_once(srv.url, text)


@pytest.mark.parametrize("size", SIZES)
def test_sizes_on_the_wire(raw_peer, size: int) -> None:
    """The raw peer decodes 7/16/64-bit lengths; its echo uses each length form too."""
    peer = raw_peer(auto=True, echo=True)
    payload = bytes((i * 7) % 256 for i in range(size))
    with syncws.connect(peer.url) as ws:
        ws.send_message(payload)
        frame = peer.next_frame()
        assert frame.opcode == OP_BINARY
        assert frame.fin
        assert frame.masked
        assert frame.payload == payload
        assert ws.get_message(timeout=WAIT) == payload


def test_client_frames_are_masked_with_varying_keys(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url) as ws:
        for i in range(10):
            ws.send_message(f"message {i}")
        frames = [peer.next_frame() for _ in range(10)]
    assert all(frame.masked for frame in frames)
    assert [frame.payload for frame in frames] == [f"message {i}".encode() for i in range(10)]
    assert len({frame.mask_key for frame in frames}) > 1
    close = peer.next_frame()
    assert close.masked


# ------------------------------------------------------------------ fragmentation


def test_fragmented_text_reassembled(websockets_server) -> None:
    srv = websockets_server(send_on_go_handler([["frag-1 ", "frag-2 ", "frag-3"]]))
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        assert ws.get_message(timeout=WAIT) == "frag-1 frag-2 frag-3"


def test_fragmented_binary_reassembled(websockets_server) -> None:
    parts = [bytes([i]) * 70000 for i in range(5)]
    srv = websockets_server(send_on_go_handler([parts, b"after"]))
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        assert ws.get_message(timeout=WAIT) == b"".join(parts)
        assert ws.get_message(timeout=WAIT) == b"after"


def test_fragments_with_pings_in_between(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_frame(OP_TEXT, b"Hel", fin=False)
        conn.send_ping(b"p1")
        conn.send_frame(OP_CONT, b"lo, ", fin=False)
        conn.send_ping(b"p2")
        conn.send_frame(OP_CONT, "wörld".encode(), fin=True)
        assert ws.get_message(timeout=WAIT) == "Hello, wörld"
        pongs = [conn.recv_frame(), conn.recv_frame()]
        assert [(f.opcode, f.payload) for f in pongs] == [(OP_PONG, b"p1"), (OP_PONG, b"p2")]
        closer = Background(ws.close)
        conn.close_handshake()
        closer.result()


def test_empty_fragments_reassembled(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, b"", fin=False)
        conn.send_frame(OP_CONT, b"x", fin=False)
        conn.send_frame(OP_CONT, b"", fin=True)
        assert ws.get_message(timeout=WAIT) == b"x"
        closer = Background(ws.close)
        conn.close_handshake()
        closer.result()


# ------------------------------------------------------------------------- order


def test_order_preserved(websockets_server) -> None:
    messages = [f"#{i}" if i % 2 else f"#{i}".encode() for i in range(200)]
    srv = websockets_server(send_on_go_handler(messages))
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        received = [ws.get_message(timeout=WAIT) for _ in messages]
    assert received == messages


def test_echo_order_preserved(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url, message_queue_size=4) as ws:
        for i in range(50):
            ws.send_message(str(i))
        assert [ws.get_message(timeout=WAIT) for _ in range(50)] == [str(i) for i in range(50)]


# --------------------------------------------------------------------- iteration


@pytest.mark.parametrize("code", [1000, 1001])
def test_iteration_ends_quietly_on_normal_close(websockets_server, code: int) -> None:
    messages = ["one", b"two", "three"]
    srv = websockets_server(send_on_go_handler(messages, code, "done"))
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        received = list(ws)
        assert received == messages
        assert ws.close_reason is not None
        assert ws.close_reason.code == code


@pytest.mark.parametrize("code", [1011, 1008, 4000])
def test_iteration_raises_on_other_close_codes(websockets_server, code: int) -> None:
    srv = websockets_server(send_on_go_handler(["a", "b"], code, "oops"))
    received = []
    with syncws.connect(srv.url) as ws:
        ws.send_message("go")
        with pytest.raises(ConnectionClosed) as excinfo:
            for message in ws:
                received.append(message)
    assert received == ["a", "b"]
    assert excinfo.value.reason.code == code
    assert excinfo.value.reason.reason == "oops"


# ------------------------------------------------------------------- get_message


def test_get_message_timeout_zero_raises_at_once(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=0)
        assert time.monotonic() - start < 0.5 * MARGIN


def test_get_message_timeout_zero_returns_queued_messages(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_text("a")
        conn.send_binary(b"b")
        # The pong is sent after both messages: once ping() returns, both are queued.
        pinger = Background(ws.ping)
        ping = conn.recv_frame()
        assert ping.opcode == OP_PING
        conn.send_pong(ping.payload)
        pinger.result()
        assert ws.get_message(timeout=0) == "a"
        assert ws.get_message(timeout=0) == b"b"
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=0)
        closer = Background(ws.close)
        conn.close_handshake()
        closer.result()


# From either side against syncws: test_server_both_sides.py (test_get_message_timeout),
# by default; against websockets, under -m slow.
@pytest.mark.slow
def test_get_message_timeout_raises_timeout_error(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=SHORT)
        elapsed = time.monotonic() - start
        assert SHORT * 0.9 <= elapsed < SHORT + MARGIN
        # The connection is still usable after a receive timeout.
        ws.send_message("after timeout")
        assert ws.get_message(timeout=WAIT) == "after timeout"


def test_get_message_timeout_is_not_a_websocket_error(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws, pytest.raises(TimeoutError) as excinfo:
        ws.get_message(timeout=0.01)
    assert not isinstance(excinfo.value, syncws.ConnectionClosed)


def test_several_threads_get_distinct_messages_exactly_once(websockets_server) -> None:
    count = 300
    messages = [f"m{i:04d}" for i in range(count)]
    srv = websockets_server(send_on_go_handler(messages))
    results: dict[int, list[str]] = {}
    endings: dict[int, BaseException] = {}
    ready = threading.Barrier(5)

    def consume(index: int) -> None:
        got: list[str] = []
        results[index] = got
        ready.wait(WAIT)
        while True:
            try:
                got.append(ws.get_message(timeout=WAIT))
            except ConnectionClosed as exc:
                endings[index] = exc
                return

    with syncws.connect(srv.url) as ws:
        consumers = [Background(consume, i) for i in range(4)]
        ready.wait(WAIT)
        ws.send_message("go")
        for consumer in consumers:
            consumer.result()
    everything = [m for got in results.values() for m in got]
    assert sorted(everything) == messages
    assert len(set(everything)) == count
    for got in results.values():
        assert got == sorted(got), "a thread saw messages out of order"
    assert len(endings) == 4
    assert all(exc.reason.code == 1000 for exc in endings.values())


# ------------------------------------------------------------------- properties


def test_roundtrip_property(websockets_server) -> None:
    srv = websockets_server(echo_handler)
    with syncws.connect(srv.url) as ws:

        @settings(max_examples=60, deadline=None, database=None)
        @given(st.one_of(st.text(max_size=3000), st.binary(max_size=3000)))
        def check(message: str | bytes) -> None:
            ws.send_message(message)
            assert ws.get_message(timeout=WAIT) == message

        check()


def test_random_fragmentation_property(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()

        @settings(max_examples=60, deadline=None, database=None)
        @given(
            message=st.one_of(st.text(max_size=500), st.binary(max_size=500)),
            cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=6),
            pings=st.lists(st.booleans(), min_size=7, max_size=7),
        )
        def check(message: str | bytes, cuts: list[int], pings: list[bool]) -> None:
            data = message.encode() if isinstance(message, str) else message
            bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
            pieces = [data[a:b] for a, b in itertools.pairwise(bounds)] or [b""]
            sent_pings = []
            for i, piece in enumerate(pieces):
                first, last = i == 0, i == len(pieces) - 1
                opcode = (OP_TEXT if isinstance(message, str) else OP_BINARY) if first else OP_CONT
                conn.send_frame(opcode, piece, fin=last)
                if pings[i] and not last:
                    payload = f"p{i}".encode()
                    conn.send_ping(payload)
                    sent_pings.append(payload)
            assert ws.get_message(timeout=WAIT) == message
            answered = [conn.recv_frame() for _ in sent_pings]
            assert [(f.opcode, f.payload) for f in answered] == [(OP_PONG, p) for p in sent_pings]

        check()
        closer = Background(ws.close)
        conn.close_handshake()
        closer.result()
