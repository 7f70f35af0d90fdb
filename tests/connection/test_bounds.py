"""What a hostile peer can make a connection hold: pongs, fragments, decoded text.

Each test plays the attack against syncws on a real socket and checks the bound the
documentation states (``docs/topics/security.rst``): the peer is held back by TCP flow
control, or the connection is failed, long before memory grows.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import tracemalloc

import pytest
from helpers import WAIT, server_echo
from rawpeer import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PeerConnection,
    Pusher,
    encode_frame,
    raw_client,
)

import syncws
from syncws import ConnectionClosed

#: Bytes of pings the attacker tries to push: far more than the socket buffers hold.
FLOOD = 48 << 20
#: A sender that could not write a byte for this long is held back (seconds).
STALL = 1.0


def ping_flood(masked: bool) -> bytes:
    """Pings of 125 bytes, as many as fill :data:`FLOOD` bytes."""
    mask = b"\x01\x02\x03\x04" if masked else None
    frame = encode_frame(OP_PING, b"p" * 125, mask=mask)
    return frame * (FLOOD // len(frame))


def hold_back(pusher: Pusher, what: str) -> int:
    """Wait until the attacker is held back; return how many bytes it got through."""
    deadline = time.monotonic() + WAIT * 2
    while not (pusher.stalled.is_set() or pusher.done.is_set()) and time.monotonic() < deadline:
        pusher.stalled.wait(0.1)
    assert not pusher.done.is_set(), f"all of the {what} went through: nothing held it back"
    assert pusher.stalled.is_set(), f"the {what} neither stalled nor finished in time"
    assert pusher.sent_at_stall is not None
    return pusher.sent_at_stall


def drain_pongs(conn: PeerConnection, expected: int) -> int:
    """Read the pongs the attacker was sent; return their count."""
    pongs = 0
    while pongs < expected:
        frame = conn.recv_frame(timeout=WAIT)
        assert frame.opcode == OP_PONG, frame
        pongs += 1
    return pongs


# Floods and memory measurement: seconds each, run with -m slow (CI runs them).
@pytest.mark.slow
def test_a_ping_flood_from_a_server_that_never_reads_is_held_back(raw_peer) -> None:
    peer = raw_peer(rcvbuf=4096)
    with syncws.connect(peer.url, disconnect_timeout=2) as ws:
        conn = peer.connection()
        pusher = Pusher(conn.sock, ping_flood(masked=False), stall_after=STALL)
        try:
            sent = hold_back(pusher, "pings")
            # The socket buffers on both sides hold a few MiB at most: past them, the
            # client stopped reading because its pongs were not read.
            assert sent < 16 << 20, sent
            # Messages still flow once the peer reads again.
            pusher.join()
        finally:
            pusher.stop.set()
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        conn.close()  # A reset: the flood ended mid-frame.
        with pytest.raises(ConnectionClosed):
            while True:
                ws.get_message(timeout=WAIT)
        assert ws.close_reason is not None
        assert ws.close_reason.code == 1006


# Floods and memory measurement: seconds each, run with -m slow (CI runs them).
@pytest.mark.slow
def test_the_client_answers_pings_again_once_the_peer_reads(raw_peer) -> None:
    peer = raw_peer(rcvbuf=4096)
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        count = 100_000  # 12 MiB of pings: more than the socket buffers hold
        frame = encode_frame(OP_PING, b"p" * 125)
        pusher = Pusher(conn.sock, frame * count, stall_after=STALL)
        try:
            hold_back(pusher, "pings")
            # The peer reads again: every ping gets its pong, none is lost.
            reader = threading.Thread(target=lambda: drain_pongs(conn, count))
            reader.start()
            assert pusher.done.wait(WAIT * 3), "the rest of the pings never went through"
            reader.join(WAIT * 3)
            assert not reader.is_alive()
        finally:
            pusher.join()
        conn.send_text("after the flood")
        assert ws.get_message(timeout=WAIT) == "after the flood"
        closer = threading.Thread(target=ws.close)
        closer.start()
        conn.close_handshake()
        closer.join(WAIT)


# Floods and memory measurement: seconds each, run with -m slow (CI runs them).
@pytest.mark.slow
def test_a_ping_flood_from_a_client_that_never_reads_is_held_back(syncws_server) -> None:
    server = syncws_server(server_echo)
    attacker = raw_client(server.port, rcvbuf=4096)
    pusher = Pusher(attacker.sock, ping_flood(masked=True), stall_after=STALL)
    try:
        sent = hold_back(pusher, "pings")
        assert sent < 16 << 20, sent
        # Other clients are served normally meanwhile.
        with syncws.connect(server.url) as ws:
            for i in range(20):
                ws.send_message(f"m{i}")
                assert ws.get_message(timeout=WAIT) == f"m{i}"
    finally:
        pusher.join()
        attacker.abort()


# ------------------------------------------------------------------ fragments


# The bound itself: tests/connection/test_assembler.py; a message too big closing with
# 1009: the conformance suite (9.2.x). End to end, 65,546 frames, under -m slow.
@pytest.mark.slow
def test_endless_empty_continuation_frames_close_with_1009(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        frames = encode_frame(OP_TEXT, b"", fin=False)
        frames += encode_frame(OP_CONT, b"", fin=False) * (syncws_max_fragments() + 10)
        pusher = Pusher(conn.sock, frames, stall_after=STALL)
        try:
            close = conn.expect_close(timeout=WAIT)
        finally:
            pusher.join()
        assert close.close_code == 1009
        assert "frames" in close.close_reason
        conn.abort()
        with pytest.raises(ConnectionClosed) as excinfo:
            ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1009


def syncws_max_fragments() -> int:
    """The documented bound on the frames of one message."""
    return 65536


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_a_message_in_tiny_fragments_arrives_whole(raw_peer, opcode: int) -> None:
    text = "déjà vu, 𝄞 " * 500  # multi-byte characters split across frames
    payload = text.encode("utf-8")
    peer = raw_peer()
    with syncws.connect(peer.url) as ws:
        conn = peer.connection()
        frames = [
            encode_frame(opcode if i == 0 else OP_CONT, payload[i : i + 3], fin=False)
            for i in range(0, len(payload), 3)
        ]
        frames.append(encode_frame(OP_CONT, b"", fin=True))
        conn.send_raw(b"".join(frames))
        expected = text if opcode == OP_TEXT else payload
        assert ws.get_message(timeout=WAIT) == expected
        closer = threading.Thread(target=ws.close)
        closer.start()
        conn.close_handshake()
        closer.join(WAIT)


# Floods and memory measurement: seconds each, run with -m slow (CI runs them).
@pytest.mark.slow
def test_the_fragments_of_a_message_cost_no_more_than_its_bytes(raw_peer) -> None:
    """Many small frames of one message: bookkeeping does not grow with their number."""
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=4 << 20) as ws:
        conn = peer.connection()
        frame = encode_frame(OP_CONT, b"x", fin=False)
        count = syncws_max_fragments() - 2
        data = encode_frame(OP_BINARY, b"x", fin=False) + frame * count
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            conn.send_raw(data)
            conn.send_frame(OP_CONT, b"!", fin=True)
            message = ws.get_message(timeout=WAIT * 3)
            held = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert message == b"x" * (count + 1) + b"!"
        # A list of one object per frame would take more than 4 MiB here.
        assert held < 1 << 20, held
        closer = threading.Thread(target=ws.close)
        closer.start()
        conn.close_handshake()
        closer.join(WAIT)


# ------------------------------------------------------------ decoded text


def test_queued_text_is_bounded_by_its_size_in_memory(raw_peer) -> None:
    """Text with one astral character takes 4 bytes per character once decoded."""
    limit = 64 * 1024
    queue_size = 16
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=limit, message_queue_size=queue_size) as ws:
        conn = peer.connection()
        message = "a" * (limit - 8) + "😀"  # 64 KiB of UTF-8, 256 KiB as a str
        frame = encode_frame(OP_TEXT, message.encode("utf-8"))
        count = 200  # 13 MiB: more than the socket buffers hold
        data = frame * count
        gc.collect()
        tracemalloc.start()
        pusher = Pusher(conn.sock, data, stall_after=STALL)
        try:
            try:
                before = tracemalloc.get_traced_memory()[0]
                hold_back(pusher, "messages")
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            # The documented bound: message_queue_size * max_message_size bytes as
            # stored, plus one read of the socket (256 KiB) and its messages waiting
            # to enter the queue, up to 4 times that once decoded, plus a frame not
            # complete yet; plus some slack.
            read = 256 * 1024
            bound = queue_size * limit + 5 * read + limit + 256 * 1024
            assert held <= bound, (held, bound)
            # Nothing is lost: every message comes out, in order.
            for _ in range(count):
                assert ws.get_message(timeout=WAIT) == message
            assert pusher.done.wait(WAIT)
        finally:
            pusher.join()
        closer = threading.Thread(target=ws.close)
        closer.start()
        conn.close_handshake()
        closer.join(WAIT)
