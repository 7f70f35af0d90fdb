"""The fast path for whole data frames (``syncws/_framing.py``), checked against wsproto.

Whatever the bytes and however they are split, the fast path plus wsproto must yield
exactly what wsproto alone yields: the same messages, control frames and close code.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from syncws import _framing
from syncws._framing import FrameSplitter, apply_mask, encode_message

#: Examples of the fast-path property: 100 by default, 1,000 under -m slow (a plain
#: number in SYNCWS_FUZZ_EXAMPLES sets both).
EXAMPLES = int(os.environ.get("SYNCWS_FUZZ_EXAMPLES", "100"))
LONG_EXAMPLES = int(os.environ.get("SYNCWS_FUZZ_EXAMPLES", "1000"))


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    masked: bool,
    rsv: int = 0,
    long_header: bool = False,
) -> bytes:
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    first = (0x80 if fin else 0) | rsv | opcode
    if size < 126 and not long_header:
        header = bytes((first, mask_bit | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if masked:
        key = os.urandom(4)
        return header + key + apply_mask(payload, key)
    return header + payload


def normalise(events, state):
    """Turn wsproto events into complete messages and control frames."""
    out = []
    for event in events:
        if isinstance(event, (TextMessage, BytesMessage)):
            state.append(event.data)
            if event.message_finished:
                joined = "".join(state) if isinstance(event, TextMessage) else b"".join(state)
                out.append(("message", joined))
                state.clear()
        elif isinstance(event, Ping):
            out.append(("ping", event.payload))
        elif isinstance(event, Pong):
            out.append(("pong", event.payload))
        elif isinstance(event, CloseConnection):
            out.append(("close", event.code))
    return out


def through_wsproto(chunks, client):
    """What wsproto alone yields: after each chunk, everything so far."""
    conn = Connection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
    out, parts, steps = [], [], []
    for chunk in chunks:
        if not (out and out[-1][0] == "close"):
            conn.receive_data(chunk)
            out += normalise(conn.events(), parts)
        steps.append(list(out))
    return steps


def through_splitter(chunks, client, max_size):
    """What the fast path plus wsproto yield: after each chunk, everything so far."""
    conn = Connection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
    splitter = FrameSplitter(client, max_size)
    out, parts, steps = [], [], []
    for chunk in chunks:
        for item in splitter.feed(chunk):
            if out and out[-1][0] == "close":
                break
            if isinstance(item, (str, bytes)):
                assert not parts
                out.append(("message", item))
            else:
                assert isinstance(item, memoryview)
                conn.receive_data(item)
                out += normalise(conn.events(), parts)
        steps.append(list(out))
    return steps


@st.composite
def streams(draw):
    client = draw(st.booleans())
    masked = not client
    frames = []
    fragmenting = False
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(
            st.sampled_from(
                [
                    "text",
                    "binary",
                    "text",
                    "binary",
                    "fragment",
                    "ping",
                    "pong",
                    "bad-utf8",
                    "big",
                    "long-header",
                    "invalid",
                    "close",
                ]
            )
        )
        if kind in ("text", "bad-utf8") and not fragmenting:
            payload = draw(st.text(max_size=300)).encode() if kind == "text" else b"ok\xff\xfe"
            frames.append(frame(0x1, payload, masked=masked))
        elif kind == "binary" and not fragmenting:
            frames.append(frame(0x2, draw(st.binary(max_size=300)), masked=masked))
        elif kind == "big" and not fragmenting:
            frames.append(frame(0x2, os.urandom(draw(st.integers(126, 70_000))), masked=masked))
        elif kind == "long-header" and not fragmenting:
            frames.append(frame(0x2, b"abc", masked=masked, long_header=True))
        elif kind == "fragment":
            opcode = 0x0 if fragmenting else draw(st.sampled_from([0x1, 0x2]))
            fin = draw(st.booleans())
            frames.append(frame(opcode, b"part", fin=fin, masked=masked))
            fragmenting = not fin
        elif kind == "ping":
            frames.append(frame(0x9, draw(st.binary(max_size=20)), masked=masked))
        elif kind == "pong":
            frames.append(frame(0xA, b"p", masked=masked))
        elif kind == "invalid":
            choice = draw(
                st.sampled_from(
                    ["rsv", "opcode", "mask", "control-fragment", "top-bit", "short-16", "short-64"]
                )
            )
            mask_bit = 0x80 if masked else 0
            if choice == "top-bit":
                frames.append(bytes((0x82, mask_bit | 127)) + b"\x80" + bytes(7))
            elif choice == "short-16":
                frames.append(bytes((0x82, mask_bit | 126)) + b"\x00\x05")
            elif choice == "short-64":
                frames.append(bytes((0x82, mask_bit | 127)) + bytes(7) + b"\x05")
            elif choice == "rsv":
                frames.append(frame(0x2, b"x", masked=masked, rsv=0x40))
            elif choice == "opcode":
                frames.append(frame(0x3, b"x", masked=masked))
            elif choice == "mask":
                frames.append(frame(0x2, b"x", masked=not masked))
            else:
                frames.append(frame(0x9, b"x", fin=False, masked=masked))
        elif kind == "close":
            frames.append(frame(0x8, struct.pack("!H", 1000), masked=masked))
    data = b"".join(frames)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    max_size = draw(st.sampled_from([2**20, 100, 1000]))
    return client, [c for c in chunks if c], max_size


@pytest.mark.parametrize(
    "examples",
    [
        pytest.param(EXAMPLES, id="default"),
        pytest.param(LONG_EXAMPLES, id="long", marks=pytest.mark.slow),
    ],
)
def test_the_fast_path_yields_what_wsproto_yields(examples: int) -> None:
    run = settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    run(given(streams())(fast_path_check))()


def fast_path_check(stream) -> None:
    client, chunks, max_size = stream
    assert through_splitter(chunks, client, max_size) == through_wsproto(chunks, client)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 2047, 2048, 2049, 65535, 65536, 2**20])
def test_python_masking_matches_the_c_function(size) -> None:
    data, key = os.urandom(size), os.urandom(4)
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(data)) if size < 5000 else None
    result = _framing._python_mask(data, key)
    if expected is not None:
        assert result == expected
    if _framing.speedups():
        assert result == apply_mask(data, key)
    assert _framing._python_mask(result, key) == data


@pytest.mark.parametrize("client", [True, False])
@pytest.mark.parametrize("message", ["", "héllo", "x" * 125, "x" * 126, b"", b"\x00" * 70_000])
def test_encoded_frames_parse_back_in_wsproto(client, message) -> None:
    receiver = Connection(ConnectionType.SERVER if client else ConnectionType.CLIENT)
    receiver.receive_data(b"".join(encode_message(message, client)))
    events = list(receiver.events())
    assert len(events) == 1
    assert events[0].data == message
    assert events[0].message_finished


def test_a_partial_header_at_the_end_of_the_handshake_turns_the_fast_path_off() -> None:
    splitter = FrameSplitter(True, 2**20)
    splitter.prime(frame(0x1, b"hi", masked=False)[:1])
    [piece] = splitter.feed(b"x")
    assert isinstance(piece, memoryview)
    assert piece == b"x"


def test_a_disabled_splitter_gives_everything_to_wsproto() -> None:
    splitter = FrameSplitter(True, 2**20, enabled=False)
    [piece] = splitter.feed(frame(0x1, b"hi", masked=False))
    assert isinstance(piece, memoryview)
