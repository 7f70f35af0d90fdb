"""The keyword options: one definition, checked at the call, documented from the source."""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any

import pytest
from helpers import ROOT, WAIT, SyncwsServer, echo_once, server_echo, syncws_threads, unused_port
from rawpeer import OP_BINARY, OP_PING, OP_PONG, raw_client

import syncws
from syncws import _options
from syncws.client import ConnectOptions
from syncws.connection import ConnectionOptions
from syncws.request import ServeOptions
from syncws.testing import connection_pair

DOCS = ROOT / "docs"


# ------------------------------------------------------------ one definition


@pytest.mark.parametrize(
    ("typed", "scope"),
    [(ConnectionOptions, "connection"), (ConnectOptions, "client"), (ServeOptions, "server")],
)
def test_the_typed_dicts_name_the_defined_options(typed: Any, scope: Any) -> None:
    assert frozenset(typed.__annotations__) == _options.names(scope)


def test_every_default_passes_its_own_check() -> None:
    for option in _options.OPTIONS.values():
        option.check(option.name, option.default)


def test_the_changed_defaults() -> None:
    # Keepalive on, as websockets: idle connections survive proxies' read timeouts.
    assert _options.OPTIONS["ping_interval"].default == 20.0
    assert _options.OPTIONS["ping_timeout"].default == 20.0
    # A port that accepts and never answers does not hold a script for a minute.
    assert _options.OPTIONS["connect_timeout"].default == 10.0


@pytest.mark.parametrize("page", ["reference/client.rst", "reference/server.rst", "intro.rst"])
def test_the_docs_tables_come_from_the_definition(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    assert ".. syncws-options::" in text
    # No hand-written table or list of the options is left to drift.
    assert not re.search(r"^message_queue_size\s+``", text, re.MULTILINE), page
    assert "(default ``16``)" not in text, page


def _documented(page: str) -> frozenset[str]:
    """The options of the ``syncws-options`` tables of ``page``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    scopes = {
        scope
        for line in re.findall(r"^\.\. syncws-options:: (.+)$", text, re.MULTILINE)
        for scope in line.split()
    }
    return frozenset(name for name, option in _options.OPTIONS.items() if option.scope in scopes)


def test_the_docs_tables_show_every_option_of_each_side() -> None:
    assert _documented("reference/client.rst") == _options.names("client")
    assert _documented("reference/server.rst") == _options.names("server")
    # The intro's table: what both sides take.
    assert _documented("intro.rst") == _options.names("client") & _options.names("server")


def test_connect_timeout_is_an_option_of_the_handshake_not_of_connections() -> None:
    assert "connect_timeout" not in ConnectionOptions.__annotations__
    assert "connect_timeout" in ConnectOptions.__annotations__
    assert "connect_timeout" in ServeOptions.__annotations__
    assert "connect_timeout" not in _options.names("connection")


# ------------------------------------------------------------ checked at the call


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"connect_timeout": 0}, ValueError, "connect_timeout must be a number of seconds > 0"),
        ({"connect_timeout": -1}, ValueError, "connect_timeout"),
        ({"connect_timeout": float("nan")}, ValueError, "finite"),
        ({"connect_timeout": "5"}, TypeError, "connect_timeout must be a number"),
        ({"disconnect_timeout": -0.5}, ValueError, "disconnect_timeout"),
        ({"ping_interval": 0}, ValueError, "ping_interval"),
        ({"ping_timeout": -3}, ValueError, "ping_timeout"),
        ({"max_message_size": 0}, ValueError, "max_message_size"),
        ({"max_message_size": 1.5}, TypeError, "max_message_size must be an integer"),
        ({"message_queue_size": -1}, ValueError, "message_queue_size"),
        ({"message_queue_size": True}, TypeError, "message_queue_size"),
        ({"compression": "gzip"}, ValueError, "compression"),
        ({"subprotocols": "chat"}, TypeError, "subprotocols must be a list"),
        ({"origin": 42}, TypeError, "origin"),
    ],
)
def test_a_bad_client_option_is_refused_before_connecting(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    # Nobody listens on the port: a check made after connecting would raise OSError.
    url = f"ws://127.0.0.1:{unused_port()}/"
    with pytest.raises(error, match=match):
        syncws.connect(url, **options)
    with pytest.raises(error, match=match):
        syncws.CallbackClient(url, **options)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_message_size": -1}, ValueError, "max_message_size"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"origins": "https://example.com"}, TypeError, "origins must be a list"),
        ({"origins": [42]}, TypeError, "origins must hold strings"),
        ({"process_request": "hook"}, TypeError, "process_request must be callable"),
        ({"ping_interval": "20"}, TypeError, "ping_interval"),
    ],
)
def test_a_bad_server_option_is_refused_when_the_server_is_made(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        syncws.WebSocketServer(server_echo, "127.0.0.1", 0, **options)
    with pytest.raises(error, match=match):
        syncws.serve_websocket(server_echo, "127.0.0.1", 0, **options)


def test_a_handler_that_cannot_be_called_is_refused() -> None:
    with pytest.raises(TypeError, match="handler must be callable"):
        syncws.WebSocketServer(None, "127.0.0.1", 0)  # type: ignore[arg-type]


def test_connection_pair_checks_both_sides() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        connection_pair(server_options={"max_message_size": -1})
    with pytest.raises(TypeError, match="did you mean 'extra_headers'"):
        connection_pair(client_options={"headers": {"X": "1"}})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(ValueError, match="connect_timeout"):
        connection_pair(connect_timeout=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        connection_pair(server_options={"connect_timeout": -1})  # type: ignore[typeddict-unknown-key]


def test_connection_pair_takes_connect_timeout() -> None:
    with connection_pair(connect_timeout=WAIT) as (client, server):
        client.send_message("x")
        assert server.get_message(timeout=WAIT) == "x"


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("timeout", "connect_timeout"),
        ("open_timeout", "connect_timeout"),
        ("close_timeout", "disconnect_timeout"),
        ("max_size", "max_message_size"),
        ("max_queue", "message_queue_size"),
        ("additional_headers", "extra_headers"),
        ("mesage_queue_size", "message_queue_size"),
        ("ping_intervall", "ping_interval"),
        ("ssl", "ssl_context"),
    ],
)
def test_a_misspelt_option_names_the_likely_one(name: str, meant: str) -> None:
    url = f"ws://127.0.0.1:{unused_port()}/"
    with pytest.raises(
        TypeError, match=f"unexpected keyword argument '{name}'; did you mean '{meant}'"
    ):
        syncws.connect(url, **{name: 5})


def test_an_unknown_option_with_no_likely_one() -> None:
    with pytest.raises(TypeError) as excinfo:
        syncws.WebSocketServer(server_echo, "127.0.0.1", 0, frobnicate=1)  # type: ignore[call-arg]
    assert str(excinfo.value) == "unexpected keyword argument 'frobnicate'"


# ------------------------------------------------------------ max_message_size=None


def test_max_message_size_none_means_no_limit(syncws_server: Any) -> None:
    big = b"x" * (3 << 20)  # three times the default limit
    server = syncws_server(server_echo, max_message_size=None)
    echo_once(server.url, big, max_message_size=None)


def test_max_message_size_none_with_compression(syncws_server: Any) -> None:
    big = b"y" * (3 << 20)
    server = syncws_server(server_echo, max_message_size=None, compression="deflate")
    echo_once(server.url, big, max_message_size=None, compression="deflate")


# ------------------------------------------------------------ keepalive by default


def test_keepalive_needs_no_reader_thread_while_the_handler_reads(syncws_server: Any) -> None:
    """A server connection with keepalive still costs one thread while its handler waits."""
    waiting = threading.Event()

    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        waiting.set()
        with contextlib.suppress(syncws.ConnectionClosed):
            for _ in ws:
                pass

    server = syncws_server(handler, ping_interval=0.2, ping_timeout=5)
    conn = raw_client(server.port)
    try:
        assert waiting.wait(WAIT)
        pings = 0
        while pings < 3:  # the handler's get_message runs the keepalive timer
            frame = conn.recv_frame(timeout=WAIT)
            if frame.opcode == OP_PING:
                pings += 1
                conn.send_frame(OP_PONG, frame.payload)
        readers = [t.name for t in syncws_threads() if t.name.startswith("syncws-reader")]
        assert readers == []
        conn.send_frame(OP_BINARY, b"still here")
    finally:
        conn.close_handshake()
