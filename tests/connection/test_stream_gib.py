"""One message of 1 GiB, streamed: sent from a generator, read with get_message_stream.

Each end runs in a child process of its own (``tests/streampeer.py``), so that the
receiver's peak resident memory is its own: the receiver resets its peak (VmHWM)
once the connection is open and reports how far it rose above that baseline while
the message went through. A syncws receiver must stay within :func:`rss_bound`,
about twice ``max_message_size`` whatever the message's size. The message's bytes are
counted and checked with a CRC-32 on both ends; each chunk starts with its index, so
that a lost or reordered chunk changes the CRC.

Peers: syncws on both ends, and syncws against ``websockets`` (``send(iterable)`` and
``recv_streaming()``), each way, with compression off and on; a raw peer that puts a
ping between every two fragments of a 1 GiB message. All of them are ``slow`` (about
70 seconds in all on 2 cores), except :func:`test_a_small_stream_between_two_processes`,
which takes the same path with 8 MiB (half a second).

With compression the payload is a repeated 64-byte ASCII pattern (about 340:1): on
incompressible bytes, zlib compresses about 25 MB/s on this kind of machine, 40 s for
1 GiB; the pattern keeps deflate at 1 GiB within a few seconds and still takes every
fragment through the compressor and the 4 KiB inflating of syncws.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from helpers import WAIT, Background, checkout_env, finish
from rawpeer import OP_BINARY, OP_CONT, OP_PING, OP_PONG, raw_client
from streampeer import MIB, Counter, chunks, expected_crc, run_pair

import syncws
from syncws._deflate import MAX_INFLATE

GIB = 2**30
#: syncws's own limit in the 1 GiB runs (its default).
LIMIT = MIB
#: Memory a syncws receiver may use beyond its queued chunks: one read of the socket,
#: the frame being parsed, the allocator's slack and what the first stream touches.
SLACK = 8 * MIB
#: Bound on each child's run.
CHILD_TIMEOUT = 90.0


def rss_bound(max_message_size: int, compression: str) -> int:
    """What a syncws receiver's peak resident memory may grow by, whatever the size.

    The chunks waiting for the application hold at most ``max_message_size`` bytes
    (the first chunk up to ``max_message_size`` plus one read), and with compression
    a single chunk may be one inflated piece larger (:data:`MAX_INFLATE`).
    """
    return 2 * max_message_size + (MAX_INFLATE if compression == "deflate" else 0) + SLACK


def stream(
    server: tuple[str, str],
    client: tuple[str, str],
    size: int,
    compression: str = "none",
    max_message_size: int = LIMIT,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stream ``size`` bytes between two children: (sender's result, receiver's result).

    Checks that the receiver got every byte, with the CRC-32 of what was sent, and that
    the sender got the receiver's answer.
    """
    payload = "pattern" if compression == "deflate" else "random"
    options = ["--size", str(size), "--compression", compression, "--payload", payload]
    options += ["--max-message-size", str(max_message_size), "--timeout", str(CHILD_TIMEOUT)]
    server_result, client_result = run_pair(
        server, client, *options, env=checkout_env(), timeout=CHILD_TIMEOUT
    )
    sender, receiver = (
        (server_result, client_result) if server[1] == "send" else (client_result, server_result)
    )
    assert receiver["bytes"] == sender["bytes"] == size
    assert receiver["crc"] == sender["crc"] == expected_crc(size, MIB, payload)
    assert sender["answer"] == f"done {size} {sender['crc']}"
    assert receiver["chunks"] > 1
    return sender, receiver


def check_memory(receiver: dict[str, Any], max_message_size: int, compression: str) -> None:
    growth, bound = receiver["peak_growth"], rss_bound(max_message_size, compression)
    assert growth < bound, f"peak RSS grew {growth / MIB:.1f} MiB, over {bound / MIB:.1f} MiB"


DIRECTIONS = {
    "client-to-server": (("syncws", "recv"), ("syncws", "send")),
    "server-to-client": (("syncws", "send"), ("syncws", "recv")),
}


def test_a_small_stream_between_two_processes() -> None:
    """8 MiB against a 256 KiB limit: the path of the slow tests, in the default run."""
    limit = 256 * 1024
    _, receiver = stream(*DIRECTIONS["client-to-server"], 8 * MIB, max_message_size=limit)
    check_memory(receiver, limit, "none")


@pytest.mark.parametrize("compression", ["none", "deflate"])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.slow
@pytest.mark.timeout(2 * CHILD_TIMEOUT)
def test_a_gib_between_syncws_ends(direction: str, compression: str) -> None:
    _, receiver = stream(*DIRECTIONS[direction], GIB, compression)
    check_memory(receiver, LIMIT, compression)


@pytest.mark.parametrize("compression", ["none", "deflate"])
@pytest.mark.parametrize("action", ["send", "recv"], ids=["syncws-sends", "syncws-receives"])
@pytest.mark.parametrize(
    "syncws_side", ["server", "client"], ids=["syncws-server", "syncws-client"]
)
@pytest.mark.slow
@pytest.mark.timeout(2 * CHILD_TIMEOUT)
def test_a_gib_between_syncws_and_websockets(
    syncws_side: str, action: str, compression: str
) -> None:
    other = "recv" if action == "send" else "send"
    ends = {syncws_side: ("syncws", action)}
    ends["client" if syncws_side == "server" else "server"] = ("websockets", other)
    _, receiver = stream(ends["server"], ends["client"], GIB, compression)
    if action == "recv":
        check_memory(receiver, LIMIT, compression)


# ------------------------------------------------------------- pings between fragments

#: The message with pings: 1,024 fragments of 1 MiB, a ping after each but the last.
PINGED = GIB


def pinged_frames(conn: Any) -> None:
    """Send :data:`PINGED` bytes in 1 MiB fragments on ``conn``, a ping after each one."""
    for index, chunk in enumerate(chunks(PINGED, MIB, "random")):
        last = (index + 1) * MIB >= PINGED
        conn.send_frame(OP_CONT if index else OP_BINARY, chunk, fin=last)
        if not last:
            conn.send_frame(OP_PING, b"p%d" % index)


def expect_pongs(conn: Any) -> None:
    for index in range(PINGED // MIB - 1):
        frame = conn.recv_frame()
        assert (frame.opcode, frame.payload) == (OP_PONG, b"p%d" % index)


def received(stream: syncws.MessageStream) -> tuple[int, int]:
    counter = Counter()
    for chunk in stream:
        assert isinstance(chunk, bytes)
        counter.add(chunk)
    return counter.bytes, counter.crc


@pytest.mark.slow
def test_pings_between_the_fragments_of_a_gib_to_a_client(raw_peer) -> None:
    peer = raw_peer()
    with syncws.connect(peer.url, max_message_size=LIMIT, disconnect_timeout=WAIT) as ws:
        conn = peer.connection()
        sender = Background(pinged_frames, conn)
        with ws.get_message_stream(timeout=WAIT) as stream:
            assert received(stream) == (PINGED, expected_crc(PINGED, MIB, "random"))
        sender.result()
        expect_pongs(conn)
        finish(ws, conn)


@pytest.mark.slow
def test_pings_between_the_fragments_of_a_gib_to_a_server(syncws_server) -> None:
    """The server unmasks: the continuation frames go through wsproto's Python path."""
    done = threading.Event()

    def handler(request: Any, srv: Any) -> None:
        with request.accept() as ws:
            srv.record.put(received(ws.get_message_stream(timeout=WAIT)))
            done.set()
            with contextlib.suppress(syncws.ConnectionClosed):
                ws.get_message(timeout=WAIT)

    srv = syncws_server(handler, max_message_size=LIMIT)
    conn = raw_client(srv.port)
    try:
        pinged_frames(conn)
        assert done.wait(WAIT)
        assert srv.get() == (PINGED, expected_crc(PINGED, MIB, "random"))
        expect_pongs(conn)
        conn.close_handshake()
    finally:
        conn.close()
