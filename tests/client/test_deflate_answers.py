"""The client's permessage-deflate offer, and every answer RFC 7692 allows for it.

syncws offers ``permessage-deflate; client_max_window_bits``, as browsers do. A server
may then answer with any window from 8 to 15 bits for either side (or none: 15),
and add either takeover flag. These tests answer each way, from the ``websockets``
library's server and from the raw peer, and exchange compressed messages that need
back-references, several of them so that context takeover matters.

The raw peer inflates what syncws sends with exactly the window it announced, one
output byte per zlib call: zlib then checks every back-reference against the bytes
in its window, so a client that compresses with a larger window than allowed fails
to inflate here (with one large output buffer, zlib lets a reference reach back into
the same call's output, past the window).
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest
from helpers import WAIT, Background, WsServer
from rawpeer import OP_BINARY, OP_TEXT, Request, response_101
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

import syncws

PMD = "permessage-deflate"
#: What syncws offers, as browsers do.
OFFER = f"{PMD}; client_max_window_bits"
#: The window syncws compresses with when the server allows it (syncws._deflate).
LEAN_BITS = 12
TAIL = b"\x00\x00\xff\xff"


def _block(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _messages() -> list[str | bytes]:
    """Messages that compress only with back-references of known distances.

    A random block sent twice in a row needs a reference as far back as the block is
    long: 200 bytes fits an 8-bit window, 400 a 9-bit one, 3000 only a 12-bit one. A
    long run of one byte compresses in any window. Each message comes twice, so the
    second one refers to the first under context takeover.
    """
    text = "".join(random.Random(5).choice("abcdefghij klmnop") for _ in range(200))
    base: list[str | bytes] = [
        text * 3,
        _block(400, 1) * 3,
        b"\x00" * 5000 + _block(100, 2),
        _block(3000, 3) * 2,
        "x",
        b"",
    ]
    return [m for m in base for _ in range(2)]


def _payload(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


def strict_inflate(inflater: Any, data: bytes) -> bytes:
    """Inflate ``data`` one output byte at a time, so every distance is checked."""
    out = bytearray()
    while True:
        chunk = inflater.decompress(data, 1)
        data = inflater.unconsumed_tail
        if not chunk and not data:
            return bytes(out)
        out += chunk


class Inflater:
    """One direction's inflater: ``bits`` exactly, fresh per message when ``reset``."""

    def __init__(self, bits: int, reset: bool) -> None:
        self.bits, self.reset = bits, reset
        self._zlib: Any = None

    def inflate(self, data: bytes) -> bytes:
        if self._zlib is None:
            self._zlib = zlib.decompressobj(-self.bits)
        try:
            out = strict_inflate(self._zlib, data + TAIL)
        except zlib.error as exc:
            raise AssertionError(f"does not inflate with a {self.bits}-bit window: {exc}") from None
        if self.reset:
            self._zlib = None
        return out


class Deflater:
    """The raw server's compressor: ``bits`` (zlib's 9 for 8), fresh per message when ``reset``."""

    def __init__(self, bits: int, reset: bool) -> None:
        self.bits, self.reset = bits, reset
        self._zlib: Any = None

    def deflate(self, data: bytes) -> bytes:
        if self._zlib is None:
            # zlib keeps no 8-bit raw window; its 9-bit one never reaches past 250 bytes.
            self._zlib = zlib.compressobj(wbits=-max(self.bits, 9))
        out = self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        if self.reset:
            self._zlib = None
        return out[: -len(TAIL)]


def test_strict_inflater_catches_a_window_too_large() -> None:
    """The check the raw peer relies on: a 400-byte reference fails in 8 bits, not in 9."""
    data = _block(400, 1) * 3
    compressor = zlib.compressobj(wbits=-12)
    stream = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert strict_inflate(zlib.decompressobj(-9), stream) == data
    with pytest.raises(zlib.error, match="too far back"):
        strict_inflate(zlib.decompressobj(-8), stream)
    # One large output buffer lets it through: the reason for inflating byte by byte.
    assert zlib.decompressobj(-8).decompress(stream) == data


def answer_with(answer: str) -> Any:
    """A raw server handshake answering ``answer``; it checks syncws's offer first."""

    def handshake(request: Request) -> bytes:
        offers = request.header_all("Sec-WebSocket-Extensions")
        assert offers == [OFFER], offers
        return response_101(request, extra_headers=[("Sec-WebSocket-Extensions", answer)])

    return handshake


def deflate_connect(url: str) -> syncws.WebSocketConnection:
    return syncws.connect(url, compression="deflate", connect_timeout=WAIT, disconnect_timeout=WAIT)


def _answer(server: int | None, client: int | None, flags: tuple[str, ...]) -> str:
    params = list(flags)
    if server is not None:
        params.append(f"server_max_window_bits={server}")
    if client is not None:
        params.append(f"client_max_window_bits={client}")
    return "; ".join([PMD, *params])


WINDOWS = (None, 8, 9, 12, 15)
BOTH = ("server_no_context_takeover", "client_no_context_takeover")
ANSWERS = [
    *[(server, client, ()) for server in WINDOWS for client in WINDOWS],
    *[
        (server, client, flags)
        for flags in (BOTH[:1], BOTH[1:], BOTH)
        for server, client in ((None, None), (8, 8), (9, 12), (15, 9), (12, None))
    ],
]


@pytest.mark.parametrize(
    ("server", "client", "flags"),
    ANSWERS,
    ids=[f"s{s}-c{c}{''.join('-' + f.split('_')[0] for f in fl)}" for s, c, fl in ANSWERS],
)
def test_every_legal_answer_from_the_raw_peer(
    raw_peer: Any, server: int | None, client: int | None, flags: tuple[str, ...]
) -> None:
    answer = _answer(server, client, flags)
    peer = raw_peer(handshake=answer_with(answer))
    # What the raw server inflates with: exactly the window it allowed the client.
    inflater = Inflater(client or 15, "client_no_context_takeover" in flags)
    # syncws keeps its lean window whenever allowed: check that one as well.
    lean = Inflater(min(client or 15, LEAN_BITS), "client_no_context_takeover" in flags)
    deflater = Deflater(server or 15, "server_no_context_takeover" in flags)
    with deflate_connect(peer.url) as ws:
        conn = peer.connection(WAIT)
        assert ws.extensions == answer
        for message in _messages():
            payload = _payload(message)
            ws.send_message(message)
            frame = conn.recv_data_frame(WAIT)
            opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
            assert (frame.opcode, frame.fin, frame.rsv) == (opcode, True, 4), frame
            assert inflater.inflate(frame.payload) == payload
            assert lean.inflate(frame.payload) == payload
            if payload == _block(3000, 3) * 2 and (client or 15) >= LEAN_BITS:
                # Only a 12-bit window reaches 3000 bytes back: syncws uses it.
                assert len(frame.payload) < 0.6 * len(payload), len(frame.payload)
            if payload.startswith(b"\x00" * 5000):
                assert len(frame.payload) < 500, len(frame.payload)  # runs, in any window
            conn.send_frame(opcode, deflater.deflate(payload), rsv=4)
            assert ws.get_message(timeout=WAIT) == message
        closer = Background(ws.close)
        conn.close_handshake(WAIT)
        closer.result(WAIT)


@pytest.mark.parametrize(
    "answer",
    [
        f"{PMD}; foo=1",
        f"{PMD}; server_max_window_bits=10; server_max_window_bits=10",
        f"{PMD}; client_no_context_takeover; client_no_context_takeover",
        f"{PMD}; server_max_window_bits=16",
        f"{PMD}; server_max_window_bits=7",
        f"{PMD}; client_max_window_bits=16",
        f"{PMD}; client_max_window_bits=7",
        f"{PMD}; client_max_window_bits",
        f"{PMD}; server_max_window_bits",
        f"{PMD}; server_max_window_bits=012",
        f"{PMD}; server_max_window_bits=x",
        f"{PMD}; server_no_context_takeover=1",
        f"{PMD}; client_no_context_takeover=true",
    ],
)
def test_answers_that_are_refused(raw_peer: Any, answer: str) -> None:
    peer = raw_peer(handshake=answer_with(answer))
    with pytest.raises(syncws.HandshakeError, match="permessage-deflate"):
        deflate_connect(peer.url)


# ---------------------------------------------------------------- the websockets server


class Watched(PerMessageDeflate):
    """websockets's permessage-deflate, noting the RSV1 bit and size of each data frame."""

    seen: list[tuple[bool, int]]

    def decode(self, frame: Any, *, max_size: int | None = None) -> Any:
        if frame.opcode.name in ("TEXT", "BINARY"):
            self.seen.append((frame.rsv1, len(frame.data)))
        return super().decode(frame, max_size=max_size)


class WatchedFactory(ServerPerMessageDeflateFactory):
    """A websockets server factory whose extension notes what the client sends."""

    def process_request_params(self, params: Any, accepted_extensions: Any) -> Any:
        response, ext = super().process_request_params(params, accepted_extensions)
        watched = Watched(
            ext.remote_no_context_takeover,
            ext.local_no_context_takeover,
            ext.remote_max_window_bits,
            ext.local_max_window_bits,
            ext.compress_settings,
        )
        watched.seen = []
        return response, watched


def watched_echo(ws: Any, srv: WsServer) -> None:
    """Echo every message, then report the agreed extension and what the client sent."""
    for message in ws:
        ws.send(message)
    (ext,) = ws.protocol.extensions
    srv.record.put(ext)


WEBSOCKETS_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({}, PMD),
    ({"server_max_window_bits": 9}, f"{PMD}; server_max_window_bits=9"),
    ({"server_max_window_bits": 12}, f"{PMD}; server_max_window_bits=12"),
    ({"server_max_window_bits": 15}, f"{PMD}; server_max_window_bits=15"),
    ({"client_max_window_bits": 8}, f"{PMD}; client_max_window_bits=8"),
    ({"client_max_window_bits": 9}, f"{PMD}; client_max_window_bits=9"),
    ({"client_max_window_bits": 12}, f"{PMD}; client_max_window_bits=12"),
    ({"client_max_window_bits": 15}, f"{PMD}; client_max_window_bits=15"),
    ({"server_no_context_takeover": True}, f"{PMD}; server_no_context_takeover"),
    ({"client_no_context_takeover": True}, f"{PMD}; client_no_context_takeover"),
    (
        {"client_max_window_bits": 10, "require_client_max_window_bits": True},
        f"{PMD}; client_max_window_bits=10",
    ),
    (
        {
            "server_max_window_bits": 10,
            "client_max_window_bits": 8,
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
        },
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=8",
    ),
    (
        {
            "server_max_window_bits": 9,
            "client_max_window_bits": 11,
            "client_no_context_takeover": True,
        },
        f"{PMD}; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11",
    ),
    (
        # websockets's own defaults: 12 bits both ways, memory level 5.
        {
            "server_max_window_bits": 12,
            "client_max_window_bits": 12,
            "compress_settings": {"memLevel": 5},
        },
        f"{PMD}; server_max_window_bits=12; client_max_window_bits=12",
    ),
]


@pytest.mark.parametrize(
    ("settings", "agreed"),
    WEBSOCKETS_SETTINGS,
    ids=["-".join(f"{k}={v}" for k, v in s.items()) or "default" for s, _ in WEBSOCKETS_SETTINGS],
)
def test_websockets_server_settings(
    websockets_server: Any, settings: dict[str, Any], agreed: str
) -> None:
    srv = websockets_server(watched_echo, extensions=[WatchedFactory(**settings)])
    messages = _messages()
    with deflate_connect(srv.url) as ws:
        assert ws.extensions == agreed
        for message in messages:
            ws.send_message(message)
            assert ws.get_message(timeout=WAIT) == message
    ext = srv.get()
    client_bits = settings.get("client_max_window_bits", 15)
    assert ext.remote_max_window_bits == client_bits
    assert ext.local_max_window_bits == settings.get("server_max_window_bits", 15)
    assert ext.remote_no_context_takeover == settings.get("client_no_context_takeover", False)
    assert ext.local_no_context_takeover == settings.get("server_no_context_takeover", False)
    # Every message came compressed, and the compressible ones shrank.
    assert [rsv1 for rsv1, _ in ext.seen] == [True] * len(messages)
    sizes = {len(_payload(m)): size for m, (_, size) in zip(messages, ext.seen, strict=True)}
    assert sizes[5100] < 500  # a run of zeros, whatever the window
    if client_bits >= LEAN_BITS:
        assert sizes[6000] < 0.6 * 6000  # a 3000-byte reference: the 12-bit window
    if client_bits >= 10:
        # A 400-byte reference: zlib's 9-bit window reaches 250 bytes back only.
        assert sizes[1200] < 0.6 * 1200
