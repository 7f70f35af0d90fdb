"""syncws's own handshake HTTP (``syncws/_upgrade.py``) against wsproto's engine.

For every head that ``_upgrade`` reads, it must decide as wsproto's engine does, and
what it writes must be the bytes wsproto would write. The heads are generated
(hypothesis): the headers of an upgrade in any order and case, extra headers,
subprotocols and extension offers, and mistakes (a header missing, repeated or wrong).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, Request
from wsproto.utilities import RemoteProtocolError

from syncws._deflate import BoundedDeflate
from syncws._http import check_request_head
from syncws._upgrade import (
    accept_token,
    new_key,
    read_request,
    read_switch,
    request_bytes,
    response_bytes,
)

_KEY = re.compile(rb"Sec-WebSocket-Key: ([!-~]+)\r\n")
TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!", min_size=1, max_size=12
)
VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)


def _wsproto_request(request: Request) -> tuple[bytes, bytes]:
    """What wsproto writes for ``request``, and the key it chose."""
    data = WSConnection(ConnectionType.CLIENT).send(request)
    found = _KEY.search(data)
    assert found is not None
    return data, found[1]


@pytest.mark.parametrize(
    "request_",
    [
        Request(host="127.0.0.1:8765", target="/"),
        Request(host="example.com", target="/chat?room=1&x=%20"),
        Request(host="[::1]:80", target="/", subprotocols=["chat", "superchat"]),
        Request(
            host="bücher.example",
            target="/",
            extensions=[BoundedDeflate()],
            extra_headers=[(b"User-Agent", b"syncws/1"), (b"Origin", b"http://a")],
        ),
    ],
)
def test_the_request_is_the_one_wsproto_writes(request_: Request) -> None:
    expected, key = _wsproto_request(request_)
    assert request_bytes(request_, key) == expected


def test_a_new_key_is_16_random_bytes() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(key) == 24 and key.endswith(b"==") for key in keys)
    # RFC 6455, section 1.3's example.
    assert accept_token(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _server_engine(data: bytes) -> tuple[WSConnection, Request]:
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(data)
    (event,) = ws.events()
    assert isinstance(event, Request)
    return ws, event


@pytest.mark.parametrize("subprotocol", [None, "chat"])
@pytest.mark.parametrize("offer", [None, "permessage-deflate; client_max_window_bits"])
@pytest.mark.parametrize("extra", [[], [(b"Server", b"syncws/1"), (b"Set-Cookie", b"a=b")]])
def test_the_101_is_the_one_wsproto_writes(
    subprotocol: str | None, offer: str | None, extra: list[tuple[bytes, bytes]]
) -> None:
    head = [
        b"GET / HTTP/1.1",
        b"Host: h",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: chat, other",
    ]
    if offer is not None:
        head.append(b"Sec-WebSocket-Extensions: " + offer.encode())
    data = b"\r\n".join(head) + b"\r\n\r\n"
    ws, event = _server_engine(data)
    expected = ws.send(
        AcceptConnection(
            subprotocol=subprotocol, extensions=[BoundedDeflate()], extra_headers=extra
        )
    )
    read = read_request(data)
    assert read is not None
    assert read == (event, len(data))
    assert response_bytes(read[0], subprotocol, [BoundedDeflate()], extra) == expected


# -- generated heads -------------------------------------------------------------------


def _case(name: str, draw: Any) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c for c in name)


@st.composite
def requests(draw: Any) -> bytes:
    """A request head: mostly valid upgrades, some with one mistake."""
    headers = [
        ("host", draw(st.sampled_from(["h", "127.0.0.1:8765", "[::1]:1", "Example.COM"]))),
        ("upgrade", draw(st.sampled_from(["websocket", "WebSocket", "h2c"]))),
        ("connection", draw(st.sampled_from(["Upgrade", "keep-alive, upgrade", "close"]))),
        ("sec-websocket-key", draw(st.sampled_from(["dGhlIHNhbXBsZSBub25jZQ==", "short", ""]))),
        ("sec-websocket-version", draw(st.sampled_from(["13", "8", "13, 8"]))),
    ]
    headers += draw(st.lists(st.tuples(TOKEN, VALUE), max_size=4))
    headers += draw(
        st.lists(
            st.tuples(
                st.sampled_from(["sec-websocket-protocol", "sec-websocket-extensions"]),
                st.sampled_from(["chat", "a, b", "permessage-deflate; x=1", "p , q"]),
            ),
            max_size=3,
        )
    )
    headers += draw(st.sampled_from([[], [("content-length", "0")], [("content-length", "5")]]))
    if draw(st.booleans()):
        headers.remove(draw(st.sampled_from(headers)))
    if draw(st.booleans()) and headers:
        headers.append(draw(st.sampled_from(headers)))
    headers = draw(st.permutations(headers))
    target = draw(st.sampled_from(["/", "/a?b=c", "http://h/", "*"]))
    method = draw(st.sampled_from(["GET", "GET", "POST"]))
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [
        f"{_case(name, draw)}:{draw(st.sampled_from([' ', '', '  ']))}{value}"
        for name, value in headers
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + draw(st.sampled_from([b"", b"\x81\x80"]))


#: Examples of each property: a few by default, many more under -m slow.
EXAMPLES = [
    pytest.param(25, id="default"),
    pytest.param(300, id="long", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("examples", EXAMPLES)
def test_read_request_decides_as_wsproto(examples: int) -> None:
    settings(max_examples=examples, deadline=None)(given(requests())(read_request_check))()


def read_request_check(data: bytes) -> None:
    read = read_request(data)
    if read is None:
        return  # wsproto's engine reads it: nothing to compare.
    request, end = read
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(data)
    events = list(ws.events())
    assert events and events[0] == request
    assert data[end:] in (b"", b"\x81\x80")
    # Nor does the server's own check of what wsproto leaves to it refuse it.
    assert check_request_head(data) == (None, end)


@st.composite
def responses(draw: Any) -> tuple[bytes, Request]:
    """A ``101`` head answering a request, mostly right, some with one mistake."""
    offered = draw(st.sampled_from([[], ["chat"], ["chat", "other"]]))
    request = Request(host="h", target="/", subprotocols=offered)
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    headers = [
        ("upgrade", draw(st.sampled_from(["websocket", "WEBSOCKET", "h2c"]))),
        ("connection", draw(st.sampled_from(["Upgrade", "keep-alive, Upgrade", "close"]))),
        (
            "sec-websocket-accept",
            draw(st.sampled_from([accept_token(key).decode(), "wrong", ""])),
        ),
    ]
    headers += draw(st.lists(st.tuples(TOKEN, VALUE), max_size=4))
    headers += draw(
        st.lists(
            st.tuples(
                st.sampled_from(["sec-websocket-protocol", "sec-websocket-extensions"]),
                st.sampled_from(["chat", "other", "unknown", "permessage-deflate"]),
            ),
            max_size=2,
        )
    )
    if draw(st.booleans()):
        headers.remove(draw(st.sampled_from(headers)))
    headers = draw(st.permutations(headers))
    status = draw(
        st.sampled_from(["HTTP/1.1 101 Switching Protocols", "HTTP/1.1 101", "HTTP/1.1 101 OK"])
    )
    lines = [status] + [f"{_case(name, draw)}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), request


@pytest.mark.parametrize("examples", EXAMPLES)
def test_read_switch_decides_as_wsproto(examples: int) -> None:
    settings(max_examples=examples, deadline=None)(given(responses())(read_switch_check))()


def read_switch_check(case: tuple[bytes, Request]) -> None:
    data, request = case
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    ws = WSConnection(ConnectionType.CLIENT)
    ws.send(request)
    ws.handshake._nonce = key
    try:
        ws.receive_data(data)
        events = list(ws.events())
    except RemoteProtocolError as exc:
        expected: Any = str(exc)
    else:
        (event,) = events
        assert isinstance(event, AcceptConnection)
        assert ws.state is ConnectionState.OPEN
        expected = (event.subprotocol, event.extra_headers)
    try:
        switched = read_switch(data, key, request)
    except RemoteProtocolError as exc:
        assert str(exc) == expected
        return
    if switched is not None:
        assert (switched.subprotocol, switched.extra_headers) == expected
