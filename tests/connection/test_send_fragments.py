"""send_message with an iterable: one message in fragments, a frame per chunk.

Peers: ``websockets`` (its ``recv_streaming()`` yields the fragments as they arrive),
the raw peer (the exact frames: opcodes, FIN, masking, RSV1) and syncws itself.
"""

from __future__ import annotations

import sys
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import SHORT, WAIT, Background, finish, get_close, record_close_handler, wait_for
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    PeerConnection,
    Request,
    response_101,
)
from websockets.sync.client import connect as ws_connect

import syncws
from syncws import ConnectionClosed, _sender
from syncws.testing import connection_pair

TEXT_CHUNKS = ["Hello, ", "wörld", "", " ✓ and more"]
BINARY_CHUNKS = [b"\x00\x01", bytearray(b"\xff" * 200), memoryview(b"xyz" * 30_000), b"end"]


def gated(chunks: list[Any], gate: threading.Event, waiting: threading.Event) -> Iterator[Any]:
    """Yield the first two chunks, then wait for ``gate`` (saying so) before the rest.

    The first two chunks are taken before the first frame goes out: from the third on,
    the message is under way, and its turn held.
    """
    yield from chunks[:2]
    waiting.set()
    assert gate.wait(WAIT)
    yield from chunks[2:]


def failing_after(count: int, error: BaseException) -> Iterator[str]:
    """Yield ``count`` chunks, then raise ``error``."""
    for index in range(count):
        yield f"chunk {index} "
    raise error


def endless(chunk: str) -> Iterator[str]:
    while True:
        yield chunk


def waits_for_turn(thread: threading.Thread) -> bool:
    """Whether ``thread`` waits for a message in fragments to end."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code is _sender.Sender._wait_turn.__code__:
            return True
        frame = frame.f_back
    return False


def data_frames(conn: PeerConnection, timeout: float = WAIT) -> list[Frame]:
    """The frames of the next data message (pings answered, pongs skipped)."""
    frames = [conn.recv_data_frame(timeout)]
    while not frames[-1].fin:
        frames.append(conn.recv_data_frame(timeout))
    return frames


def recording_handler(ws: Any, srv: Any) -> None:
    """A websockets handler: record each message's fragments, then the close."""
    try:
        while True:
            srv.record.put(("fragments", list(ws.recv_streaming())))
    except Exception:
        srv.record.put(("closed", ws.close_code, ws.close_reason))


def deflate_101(request: Request) -> bytes:
    assert "permessage-deflate" in (request.header("Sec-WebSocket-Extensions") or "")
    return response_101(request, extra_headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])


# --------------------------------------------------------------- what goes out


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: list(TEXT_CHUNKS), id="list-of-str"),
        pytest.param(lambda: (chunk for chunk in TEXT_CHUNKS), id="generator-of-str"),
        pytest.param(lambda: tuple(BINARY_CHUNKS), id="tuple-of-bytes-like"),
        pytest.param(lambda: iter(BINARY_CHUNKS), id="iterator-of-bytes-like"),
    ],
)
def test_chunks_arrive_as_the_fragments_of_one_message(websockets_server, make) -> None:
    srv = websockets_server(recording_handler)
    chunks = list(make())
    with syncws.connect(srv.url, disconnect_timeout=WAIT) as ws:
        ws.send_message(make(), timeout=WAIT)
        ws.send_message("after")
    expected = [bytes(chunk) if not isinstance(chunk, str) else chunk for chunk in chunks]
    assert srv.get() == ("fragments", expected)
    assert srv.get() == ("fragments", ["after"])
    assert get_close(srv) == (1000, "")


def test_the_frames_on_the_wire(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        ws.send_message(TEXT_CHUNKS)
        frames = data_frames(conn)
        assert [f.opcode for f in frames] == [OP_TEXT, OP_CONT, OP_CONT, OP_CONT]
        assert [f.fin for f in frames] == [False, False, False, True]
        assert [f.payload for f in frames] == [c.encode() for c in TEXT_CHUNKS]
        assert all(f.masked and f.rsv == 0 for f in frames)
        assert len({f.mask_key for f in frames}) == len(frames)
        # Binary, with a chunk past 64 KiB (a 64-bit length, header and payload apart).
        ws.send_message(iter(BINARY_CHUNKS))
        frames = data_frames(conn)
        assert [f.opcode for f in frames] == [OP_BINARY, OP_CONT, OP_CONT, OP_CONT]
        assert [f.fin for f in frames] == [False, False, False, True]
        assert [f.payload for f in frames] == [bytes(c) for c in BINARY_CHUNKS]
        finish(ws, conn)


def test_one_chunk_makes_an_ordinary_message_and_none_sends_nothing(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        ws.send_message(iter([]))
        ws.send_message([])
        ws.send_message(["only"])
        ws.send_message(chunk for chunk in [b"one"])
        frames = [conn.recv_frame(), conn.recv_frame()]
        assert [(f.opcode, f.fin, f.payload) for f in frames] == [
            (OP_TEXT, True, b"only"),
            (OP_BINARY, True, b"one"),
        ]
        finish(ws, conn)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"a": "b"}, id="dict"),
        pytest.param({"a", "b"}, id="set"),
        pytest.param(frozenset(["a"]), id="frozenset"),
        pytest.param(42, id="int"),
        pytest.param([1, 2], id="ints"),
        pytest.param(["a", b"b"], id="str-then-bytes"),
        pytest.param([b"a", "b", "c"], id="bytes-then-str"),
        pytest.param([None], id="none"),
    ],
)
def test_wrong_types_raise_before_anything_is_sent(raw_peer, message) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        with pytest.raises(TypeError):
            ws.send_message(message)
        assert ws.close_reason is None
        ws.send_message("still open")
        frame = conn.recv_frame()
        assert (frame.opcode, frame.fin, frame.payload) == (OP_TEXT, True, b"still open")
        finish(ws, conn)


def test_a_dict_view_is_an_ordered_iterable(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        ws.send_message({"a": 1, "b": 2}.keys())
        assert [f.payload for f in data_frames(conn)] == [b"a", b"b"]
        finish(ws, conn)


def test_a_server_sends_fragments_to_a_websockets_client(syncws_server) -> None:
    def handler(request: Any, srv: Any) -> None:
        ws = request.accept()
        ws.send_message(chunk for chunk in TEXT_CHUNKS)
        ws.send_message(BINARY_CHUNKS)
        srv.record.put(ws.get_message(timeout=WAIT))

    srv = syncws_server(handler)
    with ws_connect(srv.url, open_timeout=WAIT, max_size=None, compression=None) as client:
        assert list(client.recv_streaming()) == TEXT_CHUNKS
        assert list(client.recv_streaming()) == [bytes(c) for c in BINARY_CHUNKS]
        client.send("done")
        assert srv.get() == "done"


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_syncws_to_syncws_both_ways(compression) -> None:
    with connection_pair(compression=compression, max_message_size=None) as (client, server):
        client.send_message(TEXT_CHUNKS, timeout=WAIT)
        assert server.get_message(timeout=WAIT) == "".join(TEXT_CHUNKS)
        server.send_message(BINARY_CHUNKS, timeout=WAIT)
        assert client.get_message(timeout=WAIT) == b"".join(bytes(c) for c in BINARY_CHUNKS)


# ----------------------------------------------------------------- compression


def test_compressed_with_websockets_both_ways(websockets_server, syncws_server) -> None:
    text = ['{"id": 1, "name": "syncws"}' * 50, "é" * 3000, "", "the end"]
    srv = websockets_server(recording_handler, compression="deflate")
    with syncws.connect(srv.url, compression="deflate", disconnect_timeout=WAIT) as ws:
        assert ws.extensions.startswith("permessage-deflate")
        ws.send_message(text, timeout=WAIT)
        ws.send_message(BINARY_CHUNKS, timeout=WAIT)
        # Each fragment inflates to its own chunk: every frame was flushed.
        assert srv.get() == ("fragments", text)
        assert srv.get() == ("fragments", [bytes(c) for c in BINARY_CHUNKS])

    def handler(request: Any, srv: Any) -> None:
        ws = request.accept()
        ws.send_message(iter(text))
        srv.record.put(ws.get_message(timeout=WAIT))

    server = syncws_server(handler, compression="deflate")
    with ws_connect(server.url, open_timeout=WAIT, max_size=None) as client:
        assert [e.name for e in client.protocol.extensions] == ["permessage-deflate"]
        assert list(client.recv_streaming()) == text
        client.send("done")
        assert server.get() == "done"


def test_compressed_fragments_on_the_wire(raw_peer) -> None:
    """RSV1 on the first frame only; the message inflates as one, each frame on its own."""
    chunks = ["abc" * 1000, "def" * 1000, "abc" * 1000]
    peer = raw_peer(handshake=deflate_101)
    with syncws.connect(peer.url, compression="deflate", disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        ws.send_message(chunks)
        frames = data_frames(conn)
        assert [(f.opcode, f.rsv, f.fin) for f in frames] == [
            (OP_TEXT, 4, False),
            (OP_CONT, 0, False),
            (OP_CONT, 0, True),
        ]
        inflater = zlib.decompressobj(wbits=-15)
        inflated = [inflater.decompress(f.payload) for f in frames[:-1]]
        inflated.append(inflater.decompress(frames[-1].payload + b"\x00\x00\xff\xff"))
        assert inflated == [c.encode() for c in chunks]
        # A whole message afterwards is compressed as before.
        ws.send_message("whole")
        frame = conn.recv_data_frame()
        assert (frame.opcode, frame.rsv, frame.fin) == (OP_TEXT, 4, True)
        assert inflater.decompress(frame.payload + b"\x00\x00\xff\xff") == b"whole"
        finish(ws, conn)


# ----------------------------------------------------------------- other threads


def test_other_messages_wait_for_the_end_of_the_fragmented_one(raw_peer) -> None:
    """Whole messages and a second fragmented one wait; a ping and pongs do not."""
    peer = raw_peer()
    gate, waiting = threading.Event(), threading.Event()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        fragmented = Background(ws.send_message, gated(["a", "b", "c", "d"], gate, waiting))
        assert waiting.wait(WAIT)
        assert conn.recv_frame().payload == b"a"  # Out before the generator waits.
        whole = Background(ws.send_message, "whole", timeout=WAIT)
        other = Background(ws.send_message, ["x", "y"], timeout=WAIT)
        wait_for(lambda: waits_for_turn(whole._thread) and waits_for_turn(other._thread))
        # Control frames go out between the fragments: the peer's ping is answered,
        # our own ping is sent and its pong taken.
        conn.send_ping(b"theirs")
        pong = conn.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"theirs")
        pinger = Background(ws.ping, b"ours", timeout=WAIT)
        ping = conn.recv_frame()
        assert (ping.opcode, ping.payload) == (OP_PING, b"ours")
        conn.send_pong(b"ours")
        assert pinger.result() >= 0
        gate.set()
        fragmented.result()
        frames = [conn.recv_frame() for _ in range(3)]
        assert [(f.opcode, f.fin, f.payload) for f in frames] == [
            (OP_CONT, False, b"b"),
            (OP_CONT, False, b"c"),
            (OP_CONT, True, b"d"),
        ]
        whole.result()
        other.result()
        # Then the two others, each whole, in either order.
        rest = [data_frames(conn), data_frames(conn)]
        assert sorted([f.payload for f in m] for m in rest) == [[b"whole"], [b"x", b"y"]]
        finish(ws, conn)


def test_many_threads_with_fragmented_and_whole_messages(websockets_server) -> None:
    srv = websockets_server(recording_handler)
    threads, per_thread = 4, 25

    def send(thread: int) -> None:
        for index in range(per_thread):
            if index % 2:
                ws.send_message(f"{thread}:{index}:whole", timeout=WAIT)
            else:
                ws.send_message((f"{thread}:{index}:{part}" for part in range(3)), timeout=WAIT)

    with syncws.connect(srv.url, disconnect_timeout=WAIT) as ws:
        for sender in [Background(send, t) for t in range(threads)]:
            sender.result()
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    for _ in range(threads * per_thread):
        kind, fragments = srv.get()
        assert kind == "fragments"
        thread, index, _ = fragments[0].split(":")
        if int(index) % 2:
            assert fragments == [f"{thread}:{index}:whole"]
        else:
            assert fragments == [f"{thread}:{index}:{part}" for part in range(3)]
        seen[int(thread)].append(int(index))
    assert seen == {t: list(range(per_thread)) for t in range(threads)}
    assert get_close(srv) == (1000, "")


def test_a_waiting_sender_obeys_its_own_timeout(raw_peer) -> None:
    peer = raw_peer()
    gate, waiting = threading.Event(), threading.Event()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        fragmented = Background(ws.send_message, gated(["a", "b", "c"], gate, waiting))
        assert waiting.wait(WAIT)
        for message in ("whole", ["x", "y"]):
            with pytest.raises(TimeoutError):
                ws.send_message(message, timeout=SHORT)
        assert ws.close_reason is None  # Nothing was sent: the connection goes on.
        gate.set()
        fragmented.result()
        assert [f.payload for f in data_frames(conn)] == [b"a", b"b", b"c"]
        ws.send_message("next")
        assert conn.recv_frame().payload == b"next"
        finish(ws, conn)


def test_broadcast_waits_for_the_fragmented_message(raw_peer) -> None:
    peer = raw_peer()
    gate, waiting = threading.Event(), threading.Event()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        fragmented = Background(ws.send_message, gated(["a", "b", "c"], gate, waiting))
        assert waiting.wait(WAIT)
        # Within its timeout, the connection is left out, not cut off.
        assert syncws.broadcast([ws], "missed", timeout=SHORT) == [ws]
        assert ws.close_reason is None
        caster = Background(syncws.broadcast, [ws], "cast", timeout=WAIT)
        gate.set()
        fragmented.result()
        assert caster.result() == []
        assert [f.payload for f in data_frames(conn)] == [b"a", b"b", b"c"]
        assert conn.recv_frame().payload == b"cast"
        finish(ws, conn)


def test_close_wakes_senders_waiting_for_their_turn(raw_peer) -> None:
    peer = raw_peer()
    gate, waiting = threading.Event(), threading.Event()
    ws = syncws.connect(peer.url, disconnect_timeout=WAIT)
    try:
        conn = peer.connection()
        fragmented = Background(ws.send_message, gated(["a", "b", "c"], gate, waiting))
        assert waiting.wait(WAIT)
        whole = Background(ws.send_message, "whole")  # No timeout.
        wait_for(lambda: waits_for_turn(whole._thread))
        closer = Background(ws.close)
        assert isinstance(whole.exception(), ConnectionClosed)
        # The close frame went out in the middle of the message; nothing more follows.
        assert conn.recv_frame().payload == b"a"
        close = conn.recv_frame()
        assert (close.opcode, close.close_code) == (OP_CLOSE, 1000)
        gate.set()
        assert isinstance(fragmented.exception(), ConnectionClosed)
        conn.send_close(1000)
        conn.close()  # The server closes TCP first.
        closer.result()
        assert [f.opcode for f in conn.frames] == [OP_TEXT, OP_CLOSE]
        assert ws.close_reason.code == 1000
    finally:
        ws.close()


def test_a_close_from_the_peer_mid_message_stops_it(raw_peer) -> None:
    peer = raw_peer()
    gate, waiting = threading.Event(), threading.Event()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        fragmented = Background(ws.send_message, gated(["a", "b", "c"], gate, waiting))
        assert waiting.wait(WAIT)
        conn.send_close(1001, "bye")
        frames = [conn.recv_frame(), conn.recv_frame()]
        assert [f.opcode for f in frames] == [OP_TEXT, OP_CLOSE]
        assert frames[1].close_code == 1001
        gate.set()
        error = fragmented.exception()
        assert isinstance(error, ConnectionClosed)
        assert error.reason.code == 1001
        conn.close()
    assert ws.close_reason.code == 1001


# ------------------------------------------------------------- failures mid-message


def test_an_exception_from_the_iterable_mid_message_fails_with_1011(websockets_server) -> None:
    srv = websockets_server(record_close_handler)
    with syncws.connect(srv.url, disconnect_timeout=WAIT) as ws:
        with pytest.raises(ValueError, match="boom"):
            ws.send_message(failing_after(3, ValueError("boom")), timeout=WAIT)
        assert ws.close_reason.code == 1011
        with pytest.raises(ConnectionClosed):
            ws.send_message("after")
    assert get_close(srv) == (1011, "message not finished")
    assert ws.close_reason == syncws.CloseReason(1011, "message not finished")


@pytest.mark.parametrize("count", [0, 1])
def test_an_exception_before_the_first_frame_leaves_the_connection_open(
    websockets_server, count
) -> None:
    srv = websockets_server(record_close_handler)
    with syncws.connect(srv.url, disconnect_timeout=WAIT) as ws:
        with pytest.raises(ValueError, match="early"):
            ws.send_message(failing_after(count, ValueError("early")))
        assert ws.close_reason is None
        ws.send_message("after")
    assert srv.get() == ("message", "after")
    assert get_close(srv) == (1000, "")


def test_a_chunk_of_the_other_kind_mid_message_fails_with_1011(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        with pytest.raises(TypeError, match="bytes-like after str"):
            ws.send_message(["a", "b", b"c"])
        # "b" waited for the chunk after it, which ended the message.
        close = conn.close_handshake()
        assert (close.close_code, close.close_reason) == (1011, "message not finished")
        assert [(f.opcode, f.payload) for f in conn.frames[:1]] == [(OP_TEXT, b"a")]
        assert [f.opcode for f in conn.frames] == [OP_TEXT, OP_CLOSE]


def test_sending_from_inside_the_iterable_fails_instead_of_waiting_for_ever(raw_peer) -> None:
    peer = raw_peer()

    def chunks() -> Iterator[str]:
        yield "a"
        yield "b"
        ws.send_message("from inside")
        yield "c"

    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        with pytest.raises(RuntimeError, match="sends one in fragments"):
            ws.send_message(chunks())
        assert conn.close_handshake().close_code == 1011
        assert [f.opcode for f in conn.frames] == [OP_TEXT, OP_CLOSE]


def test_keyboard_interrupt_mid_message_aborts(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        with pytest.raises(KeyboardInterrupt):
            ws.send_message(failing_after(2, KeyboardInterrupt()))
        assert ws.close_reason.code == 1006
        conn.wait_eof()
        assert [f.opcode for f in conn.frames] == [OP_TEXT]  # No close frame.


# ----------------------------------------------------------------------- timeout


def past(start: float, seconds: float) -> None:
    """Wait until ``seconds`` have passed since ``start`` (a ``time.monotonic()``)."""
    wait_for(lambda: time.monotonic() > start + seconds, what=f"{seconds}s to pass")


def test_the_timeout_counts_the_iterables_time(raw_peer) -> None:
    """The frames sent are whole: a close frame says why the message stops."""
    peer = raw_peer()
    gate, waiting = threading.Event(), threading.Event()
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        sender = Background(ws.send_message, gated(["a", "b", "c"], gate, waiting), timeout=SHORT)
        assert waiting.wait(WAIT)
        past(time.monotonic(), SHORT)  # The call's deadline was set before.
        gate.set()
        assert isinstance(sender.exception(), TimeoutError)
        assert ws.close_reason == syncws.CloseReason(1011, "message not finished in time")
        close = conn.close_handshake()
        assert (close.close_code, close.close_reason) == (1011, "message not finished in time")
        assert [f.opcode for f in conn.frames] == [OP_TEXT, OP_CLOSE]


def test_the_timeout_counts_the_first_chunks_too(raw_peer) -> None:
    """Nothing sent yet when the time is up: the connection is untouched."""
    peer = raw_peer()
    gate, waiting = threading.Event(), threading.Event()

    def slow_start() -> Iterator[str]:
        yield "a"
        waiting.set()
        assert gate.wait(WAIT)
        yield "b"

    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        sender = Background(ws.send_message, slow_start(), timeout=SHORT)
        assert waiting.wait(WAIT)
        past(time.monotonic(), SHORT)
        gate.set()
        assert isinstance(sender.exception(), TimeoutError)
        assert ws.close_reason is None
        ws.send_message("next")
        assert conn.recv_frame().payload == b"next"
        finish(ws, conn)


def test_a_peer_that_does_not_read_aborts_a_fragmented_message(raw_peer) -> None:
    """As for a whole message: part of a frame may be on the wire (1006)."""
    peer = raw_peer(rcvbuf=4096)
    with syncws.connect(peer.url, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        with pytest.raises(TimeoutError):
            ws.send_message(endless("y" * 65536), timeout=SHORT)
        assert ws.close_reason.code == 1006
        conn.close()


def test_a_generator_stopped_early_is_closed() -> None:
    """The generator's cleanup runs when syncws stops before its end (here: a bad chunk)."""
    cleaned = threading.Event()

    def chunks() -> Iterator[Any]:
        try:
            yield "text "
            yield "more "
            yield b"bytes do not belong in a text message"
            yield "never taken"
        finally:
            cleaned.set()

    with connection_pair() as (client, server):
        with pytest.raises(TypeError):
            client.send_message(chunks(), timeout=WAIT)
        assert cleaned.is_set()
        with pytest.raises(ConnectionClosed):
            server.get_message(timeout=WAIT)  # The message was cut: 1011.
        assert server.close_reason.code == 1011
