"""permessage-deflate (RFC 7692): negotiation, interoperability and the bomb limit."""

from __future__ import annotations

import threading
import zlib

import pytest
from helpers import WAIT, finish
from rawpeer import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Request, response_101
from websockets.sync.client import connect as ws_connect

import syncws
from syncws import ConnectionClosed
from syncws.testing import connection_pair

JSONISH = '{"id": 17, "name": "syncws", "tags": ["alpha", "beta"], "ratio": 0.25}' * 200


def deflate(data: bytes, compressor: zlib._Compress | None = None) -> bytes:
    """One compressed message as RFC 7692 puts it on the wire (sync flush, tail removed)."""
    compressor = compressor or zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def deflate_101(request: Request) -> bytes:
    offer = request.header("Sec-WebSocket-Extensions") or ""
    assert "permessage-deflate" in offer
    return response_101(request, extra_headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])


def deflate_connect(url: str, **options) -> syncws.WebSocketConnection:
    """A syncws client offering compression, with bounded waits."""
    return syncws.connect(
        url, compression="deflate", connect_timeout=WAIT, disconnect_timeout=WAIT, **options
    )


def answer_failure(conn, code: int) -> None:
    """The client failed the connection with ``code``: answer its close, drop TCP."""
    frame = conn.close_handshake()
    assert frame.close_code == code, frame


def echo(request: syncws.WebSocketRequest) -> None:
    ws = request.accept()
    for message in ws:
        ws.send_message(message)


@pytest.fixture
def deflate_server():
    with syncws.WebSocketServer(
        echo, "127.0.0.1", 0, compression="deflate", disconnect_timeout=WAIT
    ) as server:
        yield server


def test_syncws_client_and_server_agree_and_echo(deflate_server) -> None:
    url = f"ws://127.0.0.1:{deflate_server.port}/"
    with deflate_connect(url) as ws:
        for message in (JSONISH, JSONISH.encode(), "", b"", "é" * 1000):
            ws.send_message(message)
            assert ws.get_message(timeout=WAIT) == message


def test_websockets_client_compresses_with_our_server(deflate_server) -> None:
    with ws_connect(f"ws://127.0.0.1:{deflate_server.port}/", open_timeout=WAIT) as client:
        assert [ext.name for ext in client.protocol.extensions] == ["permessage-deflate"]
        for _ in range(3):  # context takeover: later messages reuse the window
            client.send(JSONISH)
            assert client.recv(timeout=WAIT) == JSONISH


def test_our_client_compresses_with_websockets_server(websockets_server) -> None:
    def handler(ws, server) -> None:
        server.record.put([ext.name for ext in ws.protocol.extensions])
        for message in ws:
            ws.send(message)

    srv = websockets_server(handler, compression="deflate")
    with deflate_connect(srv.url) as ws:
        for _ in range(3):
            ws.send_message(JSONISH)
            assert ws.get_message(timeout=WAIT) == JSONISH
    assert srv.get() == ["permessage-deflate"]


def test_no_compression_is_offered_by_default(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url, connect_timeout=WAIT):
        pass
    assert peer.wait_request().header("Sec-WebSocket-Extensions") is None


def test_server_without_compression_ignores_the_offer() -> None:
    server = syncws.WebSocketServer(echo, "127.0.0.1", 0, disconnect_timeout=WAIT)
    with server, ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=WAIT) as client:
        assert client.protocol.extensions == []
        client.send("plain")
        assert client.recv(timeout=WAIT) == "plain"


def test_compressed_fragments_with_a_ping_between(raw_peer) -> None:
    """A ping between the fragments of a compressed message does not disturb it."""
    peer = raw_peer(handshake=deflate_101)
    with deflate_connect(peer.url) as ws:
        conn = peer.connection()
        data = deflate(JSONISH.encode())
        half = len(data) // 2
        conn.send_frame(OP_TEXT, data[:half], fin=False, rsv=4)
        conn.send_frame(OP_PING, b"mid")
        conn.send_frame(OP_CONT, data[half:], fin=True)
        assert ws.get_message(timeout=WAIT) == JSONISH
        pong = conn.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"mid")
        # An uncompressed message afterwards is read as is.
        conn.send_frame(OP_BINARY, b"raw bytes")
        assert ws.get_message(timeout=WAIT) == b"raw bytes"
        finish(ws, conn)


def test_compressed_control_frame_is_a_protocol_error(raw_peer) -> None:
    peer = raw_peer(handshake=deflate_101)
    with deflate_connect(peer.url) as ws:
        conn = peer.connection()
        conn.send_frame(OP_PING, b"x", rsv=4)
        answer_failure(conn, 1002)
        with pytest.raises(ConnectionClosed):
            ws.get_message(timeout=WAIT)
        assert ws.close_reason.code == 1002


@pytest.mark.parametrize("fragments", [1, 7])
def test_decompression_bomb_closes_with_1009_without_inflating(raw_peer, fragments) -> None:
    """A small compressed message that would inflate past the limit fails with 1009.

    Received bytes are inflated a slice at a time, each to at most MAX_INFLATE bytes:
    the size is counted long before the 64 MiB are.
    """
    limit = 64 * 1024
    bomb = deflate(b"\x00" * (64 * 2**20))  # 64 MiB of zeros: about 64 KiB compressed
    peer = raw_peer(handshake=deflate_101)
    with deflate_connect(peer.url, max_message_size=limit) as ws:
        conn = peer.connection()
        size = -(-len(bomb) // fragments)
        pieces = [bomb[i : i + size] for i in range(0, len(bomb), size)]
        for index, piece in enumerate(pieces):
            conn.send_frame(
                OP_TEXT if index == 0 else OP_CONT,
                piece,
                fin=index == len(pieces) - 1,
                rsv=4 if index == 0 else 0,
            )
        # get_message meets a message over the limit: the connection fails.
        with pytest.raises(ConnectionClosed):
            ws.get_message(timeout=WAIT)
        answer_failure(conn, 1009)
        assert ws.close_reason.code == 1009


def test_message_at_the_limit_inflates(raw_peer) -> None:
    limit = 64 * 1024
    peer = raw_peer(handshake=deflate_101)
    with deflate_connect(peer.url, max_message_size=limit) as ws:
        conn = peer.connection()
        conn.send_frame(OP_BINARY, deflate(b"\x01" * limit), rsv=4)
        assert ws.get_message(timeout=WAIT) == b"\x01" * limit
        finish(ws, conn)


def test_invalid_compression_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="compression"):
        syncws.connect("ws://127.0.0.1:9/", compression="gzip")
    with pytest.raises(ValueError, match="compression"):
        syncws.WebSocketServer(echo, "127.0.0.1", 0, compression="br")


def test_many_compressed_messages_from_two_threads(deflate_server) -> None:
    """Compression keeps state across messages: the write order must be the wire order."""
    url = f"ws://127.0.0.1:{deflate_server.port}/"
    with deflate_connect(url) as ws:
        sent = [f"{n}:{JSONISH[: 50 + n]}" for n in range(200)]

        def send(items: list[str]) -> None:
            for item in items:
                ws.send_message(item)

        threads = [threading.Thread(target=send, args=(sent[i::2],)) for i in range(2)]
        for thread in threads:
            thread.start()
        received = [ws.get_message(timeout=WAIT) for _ in sent]
        for thread in threads:
            thread.join(WAIT)
        assert sorted(received) == sorted(sent)


OFFERS = [
    {},
    {"client_no_context_takeover": True},
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True, "server_no_context_takeover": True},
    {"server_max_window_bits": 9},
    {"server_max_window_bits": 15},
    {"client_max_window_bits": True},  # offered without a value: the server picks
    {"client_max_window_bits": 9},
    {"client_max_window_bits": 15, "server_max_window_bits": 10},
    {
        "client_no_context_takeover": True,
        "server_no_context_takeover": True,
        "client_max_window_bits": 11,
        "server_max_window_bits": 13,
    },
]


@pytest.mark.parametrize("offer", OFFERS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_every_negotiation_parameter_offered_by_a_client(deflate_server, offer) -> None:
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    if "client_max_window_bits" not in offer:
        offer = {**offer, "client_max_window_bits": None}  # not offered at all
    factory = ClientPerMessageDeflateFactory(**offer)
    url = f"ws://127.0.0.1:{deflate_server.port}/"
    with ws_connect(url, extensions=[factory], compression=None, open_timeout=WAIT) as client:
        assert [ext.name for ext in client.protocol.extensions] == ["permessage-deflate"]
        for n in range(4):  # several messages: context takeover on or off
            message = f"{n} {JSONISH}"
            client.send(message)
            assert client.recv(timeout=WAIT) == message


def test_the_connection_says_which_extensions_were_agreed() -> None:
    with connection_pair(compression="deflate") as (client, server):
        expected = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        assert client.extensions == server.extensions == expected
    with connection_pair(client_options={"compression": "deflate"}) as (client, server):
        assert client.extensions == server.extensions == ""  # the server declined


def test_a_compressed_message_too_big_closes_like_an_uncompressed_one() -> None:
    for compression in ("deflate", None):
        with connection_pair(compression=compression, max_message_size=1000) as (client, server):
            client.send_message("x" * 5000)
            with pytest.raises(ConnectionClosed) as excinfo:
                server.get_message(timeout=WAIT)
        reason = excinfo.value.reason
        assert (reason.code, reason.reason) == (1009, "message larger than 1000 bytes"), compression


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_a_lone_surrogate_raises_and_the_connection_goes_on(compression) -> None:
    with connection_pair(compression=compression) as (client, server):
        with pytest.raises(UnicodeEncodeError):
            client.send_message("broken \ud800 text")
        client.send_message("fine")
        assert server.get_message(timeout=WAIT) == "fine"
        assert not client.is_closed
