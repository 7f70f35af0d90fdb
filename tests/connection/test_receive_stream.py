"""Reading a message as a stream of chunks (get_message_stream), and get_message(decode=...).

A message larger than ``max_message_size`` can be read with ``get_message_stream``
only: ``get_message`` fails the connection with 1009 when it meets one. Peers: syncws
itself (a socket pair, and a server whose handler reads), ``websockets``
(``send(iterable)``) and the raw peer (exact frames: pings between fragments, a message
cut short, a peer that stops half-way).
"""

from __future__ import annotations

import itertools
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, finish, wait_for
from rawpeer import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Request, response_101
from websockets.sync.client import connect as ws_connect

import syncws
from syncws import ConnectionClosed, ConnectionClosedError, MessageStream
from syncws.testing import connection_pair

LIMIT = 64 * 1024


def pieces(total: int, size: int = 16 * 1024, text: bool = False) -> Iterator[Any]:
    """``total`` bytes of a recognisable payload, ``size`` at a time (ASCII for text)."""
    line = b"0123456789abcdef" * (size // 16)
    sent = 0
    while sent < total:
        piece = line[: min(size, total - sent)]
        sent += len(piece)
        yield piece.decode() if text else piece


def joined(stream: MessageStream) -> tuple[int, int, int]:
    """Read ``stream`` to its end: (bytes, chunks, crc32)."""
    size = count = crc = 0
    for chunk in stream:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        size += len(data)
        count += 1
        crc = zlib.crc32(data, crc)
    return size, count, crc


def crc_of(chunks: Iterator[Any]) -> int:
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk.encode() if isinstance(chunk, str) else chunk, crc)
    return crc


@pytest.mark.parametrize("compression", [None, "deflate"])
@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_a_message_over_the_limit_streams_in_chunks(compression, text) -> None:
    total = 40 * LIMIT  # 2.5 MiB against a 64 KiB limit
    with connection_pair(max_message_size=LIMIT, compression=compression) as (client, server):
        sender = threading.Thread(target=client.send_message, args=(pieces(total, text=text),))
        sender.start()
        with server.get_message_stream(timeout=WAIT) as stream:
            assert stream.text is text
            size, count, crc = joined(stream)
        sender.join(WAIT)
        assert size == total
        assert crc == crc_of(pieces(total))
        assert count > 1
        # The connection goes on: the next message is an ordinary one.
        client.send_message("after")
        assert server.get_message(timeout=WAIT) == "after"


def test_chunks_are_bounded_and_the_reader_waits_for_the_application() -> None:
    """No chunk holds more than the limit plus one read; unread chunks hold the reader."""
    total = 200 * LIMIT
    with connection_pair(max_message_size=LIMIT) as (client, server):
        sender = threading.Thread(target=client.send_message, args=(pieces(total),))
        sender.start()
        stream = server.get_message_stream(timeout=WAIT)
        biggest = 0
        for chunk in stream:
            biggest = max(biggest, len(chunk))
        sender.join(WAIT)
        assert biggest <= LIMIT + 256 * 1024


def test_a_message_within_the_limit_is_one_chunk() -> None:
    with connection_pair(max_message_size=LIMIT) as (client, server):
        client.send_message(["fragments ", "of ", "text"])
        stream = server.get_message_stream(timeout=WAIT)
        assert stream.text
        assert list(stream) == ["fragments of text"]
        assert list(stream) == []  # Exhausted.
        client.send_message(b"\x00\x01")
        stream = server.get_message_stream(timeout=WAIT)
        assert not stream.text
        assert list(stream) == [b"\x00\x01"]


def test_get_message_refuses_a_message_over_the_limit_with_1009() -> None:
    with connection_pair(max_message_size=LIMIT) as (client, server):
        client.send_message("first")
        client.send_message(b"x" * (LIMIT + 1))
        client.send_message("never read")
        assert server.get_message(timeout=WAIT) == "first"
        with pytest.raises(ConnectionClosedError) as caught:
            server.get_message(timeout=WAIT)
        assert caught.value.reason.code == 1009
        with pytest.raises(ConnectionClosed):
            client.get_message(timeout=WAIT)
        assert client.close_reason.code == 1009


def test_closing_a_stream_early_drops_the_rest_of_the_message() -> None:
    with connection_pair(max_message_size=LIMIT) as (client, server):
        sender = threading.Thread(
            target=lambda: (client.send_message(pieces(30 * LIMIT)), client.send_message("next"))
        )
        sender.start()
        with server.get_message_stream(timeout=WAIT) as stream:
            first = next(stream)
            assert first
        assert list(stream) == []  # Closed.
        assert server.get_message(timeout=WAIT) == "next"
        sender.join(WAIT)


def test_a_stream_of_a_handler_on_a_server(syncws_server) -> None:
    """A handler reads itself until the stream starts; the reader thread puts the chunks."""

    def handler(request: Any, srv: Any) -> None:
        with request.accept() as ws:
            for _ in range(2):
                srv.record.put(joined(ws.get_message_stream(timeout=WAIT)))
            ws.send_message(ws.get_message(timeout=WAIT))

    srv = syncws_server(handler, max_message_size=LIMIT)
    total = 20 * LIMIT + 5
    with syncws.connect(srv.url, disconnect_timeout=WAIT) as ws:
        ws.send_message("short")  # Read by the handler's stream, as one chunk.
        assert srv.get() == (5, 1, zlib.crc32(b"short"))
        ws.send_message(pieces(total))
        ws.send_message("echo")
        assert ws.get_message(timeout=WAIT) == "echo"
    size, _, crc = srv.get()
    assert (size, crc) == (total, crc_of(pieces(total)))


def test_each_chunk_has_its_own_timeout_and_the_stream_stays_usable(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=1024, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, b"a" * 2000, fin=False)
        stream = ws.get_message_stream(timeout=0.2)
        assert next(stream) == b"a" * 2000
        with pytest.raises(TimeoutError):
            next(stream)
        conn.send_frame(OP_CONT, b"b" * 10, fin=True)
        assert list(stream) == [b"b" * 10]
        finish(ws, conn)


def test_pings_between_fragments_are_answered_while_streaming(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=1024, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        conn.send_frame(OP_TEXT, "é".encode() * 600, fin=False)  # 1,200 bytes: over
        for index in range(5):
            conn.send_frame(OP_PING, b"p%d" % index)
            conn.send_frame(OP_CONT, b"x" * 700, fin=index == 4)
        stream = ws.get_message_stream(timeout=WAIT)
        assert stream.text
        text = "".join(stream)
        assert text == "é" * 600 + "x" * 3500
        for index in range(5):
            frame = conn.recv_frame()
            assert (frame.opcode, frame.payload) == (OP_PONG, b"p%d" % index)
        finish(ws, conn)


def test_a_connection_lost_mid_stream_raises_connection_closed(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=1024, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, b"a" * 2000, fin=False)
        stream = ws.get_message_stream(timeout=WAIT)
        assert next(stream) == b"a" * 2000
        conn.abort()
        with pytest.raises(ConnectionClosed):
            next(stream)
        assert ws.close_reason.code == 1006


def test_invalid_utf8_in_a_text_stream_fails_with_1007(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=1024, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        conn.send_frame(OP_TEXT, b"a" * 2000, fin=False)
        conn.send_frame(OP_CONT, b"\xff\xfe", fin=True)
        stream = ws.get_message_stream(timeout=WAIT)
        assert next(stream) == "a" * 2000
        with pytest.raises(ConnectionClosedError) as caught:
            next(stream)
        assert caught.value.reason.code == 1007
        assert conn.close_handshake().close_code == 1007


def test_close_while_a_message_over_the_limit_waits_is_prompt(raw_peer) -> None:
    """Nobody took the head: close() does not wait for the application, it discards it."""
    peer = raw_peer()
    ws = syncws.connect(peer.url, max_message_size=1024, disconnect_timeout=WAIT)
    conn = peer.connection()
    conn.send_frame(OP_BINARY, b"a" * 5000, fin=False)
    conn.send_frame(OP_CONT, b"b" * 5000, fin=True)
    wait_for(lambda: ws._reader.intake.head is not None, what="the head queued")
    finish(ws, conn)
    assert ws.close_reason.code == 1000


def test_websockets_sends_a_message_larger_than_the_limit(syncws_server) -> None:
    def handler(request: Any, srv: Any) -> None:
        with request.accept() as ws:
            srv.record.put(joined(ws.get_message_stream(timeout=WAIT)))

    srv = syncws_server(handler, max_message_size=LIMIT, compression="deflate")
    total = 4 * 2**20
    with ws_connect(srv.url, compression="deflate", max_size=None) as ws:
        ws.send(pieces(total, size=64 * 1024, text=True))
    size, _, crc = srv.get()
    assert (size, crc) == (total, crc_of(pieces(total)))


# -------------------------------------------------------------------------- decode


def test_get_message_decode() -> None:
    with connection_pair() as (client, server):
        client.send_message("héllo")
        assert server.get_message(timeout=WAIT, decode=False) == "héllo".encode()
        client.send_message("héllo".encode())
        assert server.get_message(timeout=WAIT, decode=True) == "héllo"
        client.send_message("kept")
        assert server.get_message(timeout=WAIT, decode=True) == "kept"
        client.send_message(b"\xff")
        with pytest.raises(UnicodeDecodeError):
            server.get_message(timeout=WAIT, decode=True)
        client.send_message(b"bytes")
        assert server.get_message(timeout=WAIT, decode=False) == b"bytes"


def test_stream_decode_across_chunks(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=1024, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        payload = "✓".encode() * 1000  # 3,000 bytes, a character split between frames
        conn.send_frame(OP_BINARY, payload[:1501], fin=False)
        conn.send_frame(OP_CONT, payload[1501:], fin=True)
        assert "".join(ws.get_message_stream(timeout=WAIT, decode=True)) == "✓" * 1000
        conn.send_frame(OP_TEXT, payload[:1500], fin=False)
        conn.send_frame(OP_CONT, payload[1500:], fin=True)
        chunks = list(ws.get_message_stream(timeout=WAIT, decode=False))
        assert all(isinstance(chunk, bytes) for chunk in chunks)
        assert b"".join(chunks) == payload
        finish(ws, conn)


def deflate_101(request: Request) -> bytes:
    return response_101(request, extra_headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])


def test_a_compressed_bomb_streams_in_bounded_chunks(raw_peer) -> None:
    """64 MiB of zeros in 64 KiB on the wire: read as a stream, no chunk over MAX_INFLATE."""
    from syncws._deflate import MAX_INFLATE

    compressor = zlib.compressobj(wbits=-15)
    bomb = compressor.compress(b"\x00" * 64 * 2**20) + compressor.flush(zlib.Z_SYNC_FLUSH)
    peer = raw_peer(handshake=deflate_101)
    with syncws.connect(
        peer.url, compression="deflate", max_message_size=LIMIT, disconnect_timeout=WAIT
    ) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, bomb[:-4], rsv=4)
        size = biggest = 0
        for chunk in ws.get_message_stream(timeout=WAIT):
            size += len(chunk)
            biggest = max(biggest, len(chunk))
            assert not chunk.strip(b"\x00")
        assert size == 64 * 2**20
        assert biggest <= LIMIT + MAX_INFLATE
        finish(ws, conn)


def test_several_senders_and_a_streaming_receiver_keep_each_message_whole() -> None:
    """Three threads send big fragmented and small messages; each arrives whole, in order."""
    senders, rounds = 3, 4

    def sender(client: syncws.WebSocketConnection, number: int) -> None:
        for index in range(rounds):
            tag = f"{number}:{index}:"
            if index % 2:
                client.send_message(tag, timeout=WAIT)
            else:
                body = itertools.chain([tag], pieces(3 * LIMIT, text=True))
                client.send_message(body, timeout=WAIT)

    with connection_pair(max_message_size=LIMIT) as (client, server):
        threads = [threading.Thread(target=sender, args=(client, n)) for n in range(senders)]
        for thread in threads:
            thread.start()
        seen: dict[str, list[int]] = {str(n): [] for n in range(senders)}
        for _ in range(senders * rounds):
            with server.get_message_stream(timeout=WAIT) as stream:
                text = "".join(stream)
            number, index, rest = text.split(":", 2)
            assert rest == ("" if int(index) % 2 else "".join(pieces(3 * LIMIT, text=True)))
            seen[number].append(int(index))
        for thread in threads:
            thread.join(WAIT)
        assert seen == {str(n): list(range(rounds)) for n in range(senders)}


def test_get_message_on_another_thread_waits_for_the_stream_to_end() -> None:
    with connection_pair(max_message_size=LIMIT) as (client, server):
        sender = threading.Thread(
            target=lambda: (
                client.send_message(pieces(10 * LIMIT), timeout=WAIT),
                client.send_message("after the stream", timeout=WAIT),
            )
        )
        sender.start()
        stream = server.get_message_stream(timeout=WAIT)
        first = next(stream)
        other = threading.Thread(target=lambda: got.append(server.get_message(timeout=WAIT)))
        got: list[str | bytes] = []
        other.start()
        size = len(first) + sum(len(chunk) for chunk in stream)
        other.join(WAIT)
        sender.join(WAIT)
        assert size == 10 * LIMIT
        assert got == ["after the stream"]


def test_close_from_another_thread_wakes_a_stream_waiting_for_a_chunk(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=1024, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, b"a" * 2000, fin=False)
        stream = ws.get_message_stream()  # No timeout: only close() ends the wait.
        assert next(stream) == b"a" * 2000
        outcome: list[BaseException] = []

        def wait_for_a_chunk() -> None:
            try:
                next(stream)
            except BaseException as exc:
                outcome.append(exc)

        waiting = threading.Thread(target=wait_for_a_chunk)
        waiting.start()
        finish(ws, conn)
        waiting.join(WAIT)
        assert not waiting.is_alive()
        assert isinstance(outcome[0], ConnectionClosed)
