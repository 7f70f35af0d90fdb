"""Large messages, whole and in frames of chosen sizes (Autobahn category 9), slow.

Text and binary messages of 64 KiB to 16 MiB go between syncws and a ``websockets``
peer, both ways, and must come back byte for byte:

* a syncws client sends each message (one frame, as syncws always does) to a
  ``websockets`` echo server, which sends it back whole or in frames of the size the
  connection's path names, so that syncws receives fragmented messages;
* a ``websockets`` client sends each message whole or in frames of chosen sizes (its
  fragmented ``send``) to a syncws echo server, which sends it back in one frame.

Text messages mix 2 and 3-byte UTF-8 characters, so that most frame boundaries cut a
character in two. 64-byte frames only for messages up to 1 MiB: syncws bounds a
message at 65536 frames, and ``websockets`` ends a fragmented message with an empty
frame of its own. ``max_message_size`` (syncws) and ``max_size`` (``websockets``) are
raised to 16 MiB and beyond.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, WsServer, server_echo
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as websockets_connect
from websockets.sync.connection import Connection

import syncws

KiB = 1024
MiB = 1024 * KiB
#: max_message_size of the syncws ends: the largest message, and some.
LIMIT = 16 * MiB + 64 * KiB
#: Messages sent whole.
SIZES = (64 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB)
#: (message size, frame size) of the fragmented messages.
FRAGMENTED = (
    *((size, 64) for size in (64 * KiB, 256 * KiB, MiB)),
    *((4 * MiB, frame) for frame in (256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB)),
    *((4 * MiB, frame) for frame in (MiB, 4 * MiB)),
    *((16 * MiB, frame) for frame in (4 * KiB, 64 * KiB, MiB, 4 * MiB)),
)
KINDS = ("text", "binary")
#: 20 bytes of UTF-8: 2-byte and 3-byte characters, and ASCII.
_TEXT_PATTERN = "κόσμε€ ascii ".encode()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        "text" not in inspect.signature(Connection.send).parameters,
        reason="websockets sends bytes as text frames from version 14",
    ),
]


@functools.cache
def message(kind: str, size: int) -> bytes:
    """``size`` bytes: valid UTF-8 for ``"text"``, random bytes for ``"binary"``."""
    if kind == "binary":
        return random.Random(size).randbytes(size)
    count, rest = divmod(size, len(_TEXT_PATTERN))
    return _TEXT_PATTERN * count + b"x" * rest


def frames(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes, for a fragmented ``send``."""
    return (data[i : i + size] for i in range(0, len(data), size))


def fragmenting_echo(ws: Any, srv: WsServer) -> None:
    """A ``websockets`` handler: echo each message whole, or in the frame size of the
    path (``/text/4096``; ``0`` for whole), as a text or binary message as the path says."""
    _, kind, frame = ws.request.path.split("/")
    size = int(frame)
    try:
        while True:
            data = ws.recv(decode=False)
            ws.send(frames(data, size) if size else data, text=kind == "text")
    except ConnectionClosed:
        pass


def syncws_round_trips(server: WsServer, kind: str, frame: int, sizes: list[int]) -> None:
    """A syncws client sends messages of ``sizes``; the echo comes in ``frame``-byte frames."""
    url = f"ws://127.0.0.1:{server.port}/{kind}/{frame}"
    with syncws.connect(url, max_message_size=LIMIT, disconnect_timeout=WAIT) as ws:
        for size in sizes:
            data = message(kind, size)
            ws.send_message(data.decode() if kind == "text" else data)
            echo = ws.get_message(timeout=WAIT)
            if kind == "text":
                assert isinstance(echo, str)
                echo = echo.encode()
            assert len(echo) == size
            assert echo == data, f"{size}-byte {kind} message in {frame}-byte frames"


@pytest.mark.parametrize("kind", KINDS)
def test_syncws_client_whole(websockets_server: Any, kind: str) -> None:
    server = websockets_server(fragmenting_echo)
    syncws_round_trips(server, kind, 0, list(SIZES))


@pytest.mark.parametrize("kind", KINDS)
def test_syncws_client_receives_fragmented(websockets_server: Any, kind: str) -> None:
    server = websockets_server(fragmenting_echo)
    by_frame: dict[int, list[int]] = {}
    for size, frame in FRAGMENTED:
        by_frame.setdefault(frame, []).append(size)
    for frame, sizes in by_frame.items():
        syncws_round_trips(server, kind, frame, sizes)


def websockets_round_trips(server: SyncwsServer, kind: str, cases: tuple[Any, ...]) -> None:
    """A ``websockets`` client sends ``(size, frame)`` messages (frame ``0``: whole)."""
    with websockets_connect(
        server.url, max_size=None, compression=None, open_timeout=WAIT, close_timeout=WAIT
    ) as ws:
        for size, frame in cases:
            data = message(kind, size)
            ws.send(frames(data, frame) if frame else data, text=kind == "text")
            echo = ws.recv(timeout=WAIT, decode=False)
            assert len(echo) == size
            assert echo == data, f"{size}-byte {kind} message in {frame}-byte frames"


@pytest.mark.parametrize("kind", KINDS)
def test_syncws_server_whole(syncws_server: Any, kind: str) -> None:
    server = syncws_server(server_echo, max_message_size=LIMIT)
    websockets_round_trips(server, kind, tuple((size, 0) for size in SIZES))


@pytest.mark.parametrize("kind", KINDS)
def test_syncws_server_receives_fragmented(syncws_server: Any, kind: str) -> None:
    server = syncws_server(server_echo, max_message_size=LIMIT)
    websockets_round_trips(server, kind, FRAGMENTED)
