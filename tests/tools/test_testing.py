"""syncws.testing and the pytest plugin: connection pairs, the recording handler, fixtures."""

from __future__ import annotations

import configparser
import importlib.metadata
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import HAS_IPV6, ROOT, SHORT, WAIT, checkout_env, echo_once, wait_for
from rawpeer import upgrade_request

import syncws
from syncws import CloseReason, ConnectionClosed
from syncws import testing as syncws_testing
from syncws.testing import (
    TEST_TIMEOUT,
    ConnectionFactory,
    RecordingHandler,
    ServerFactory,
    ServerThread,
    connection_pair,
    echo,
)

# ------------------------------------------------------------------ connection_pair


def test_connection_pair_connects_a_client_and_a_server() -> None:
    with connection_pair() as (client, server):
        assert client.is_client and server.is_server
        assert client.path == server.path == "/"
        assert client.subprotocol is server.subprotocol is None
        client.send_message("to the server")
        assert server.get_message(timeout=WAIT) == "to the server"
        server.send_message(b"to the client")
        assert client.get_message(timeout=WAIT) == b"to the client"
        assert client.ping(timeout=WAIT) >= 0
        assert server.ping(timeout=WAIT) >= 0
    assert client.close_reason == server.close_reason == CloseReason(1000, None)


def test_connection_pair_is_a_tuple_with_a_close_method() -> None:
    pair = connection_pair()
    client, server = pair
    assert (pair.client, pair.server) == (client, server)
    server.close(4000, "from the server")
    with pytest.raises(ConnectionClosed) as excinfo:
        client.get_message(timeout=WAIT)
    assert excinfo.value.reason == CloseReason(4000, "from the server")
    pair.close()  # Idempotent: both are closed already; nothing is left running.
    pair.close()


def test_connection_pair_path_subprotocol_and_headers() -> None:
    with connection_pair(
        path="/chat?room=1",
        subprotocol="chat.v1",
        client_options={"extra_headers": [("X-Token", "t0k3n")]},
    ) as (client, server):
        assert server.path == client.path == "/chat?room=1"
        assert client.subprotocol == server.subprotocol == "chat.v1"
        assert (b"x-token", b"t0k3n") in server.handshake_headers


def test_connection_pair_subprotocol_the_client_does_not_offer_is_not_chosen() -> None:
    with connection_pair(subprotocol="b", client_options={"subprotocols": ["a"]}) as pair:
        assert pair.client.subprotocol is pair.server.subprotocol is None


@pytest.mark.parametrize("sender", ["client", "server"])
def test_connection_pair_options_apply_to_both_sides(sender: str) -> None:
    with connection_pair(max_message_size=100) as pair:
        local = pair.client if sender == "client" else pair.server
        remote = pair.server if sender == "client" else pair.client
        local.send_message(b"x" * 100)
        assert remote.get_message(timeout=WAIT) == b"x" * 100
        local.send_message(b"x" * 101)
        with pytest.raises(ConnectionClosed) as excinfo:
            remote.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1009


def test_connection_pair_options_for_one_side() -> None:
    with connection_pair(server_options={"max_message_size": 100}) as (client, server):
        server.send_message(b"y" * 1000)
        assert client.get_message(timeout=WAIT) == b"y" * 1000
        client.send_message(b"y" * 101)
        with pytest.raises(ConnectionClosed) as excinfo:
            server.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1009


def test_connection_pair_with_compression() -> None:
    text = "compressible " * 10_000
    with connection_pair(compression="deflate") as (client, server):
        client.send_message(text)
        assert server.get_message(timeout=WAIT) == text
        server.send_message(text.encode())
        assert client.get_message(timeout=WAIT) == text.encode()


def test_connection_pair_timeouts_default_to_test_timeout() -> None:
    with connection_pair() as (client, server):
        assert client._disconnect_timeout == server._disconnect_timeout == TEST_TIMEOUT
    with connection_pair(disconnect_timeout=WAIT + 1) as (client, server):
        assert client._disconnect_timeout == server._disconnect_timeout == WAIT + 1


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"bogus": 1}, TypeError),
        ({"client_options": {"bogus": 1}}, TypeError),
        ({"server_options": {"origins": None}}, TypeError),
        ({"compression": "zip"}, ValueError),
        ({"max_message_size": 0}, ValueError),
        ({"client_options": {"max_message_size": 0}}, ValueError),
        ({"server_options": {"max_message_size": 0}}, ValueError),
        ({"path": "no-slash"}, ValueError),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else value.__name__,
)
def test_connection_pair_bad_arguments_leave_nothing_behind(arguments, error) -> None:
    # The no_leaks fixture checks that no thread and no socket is left.
    with pytest.raises(error):
        connection_pair(**arguments)


# ----------------------------------------------------------------- RecordingHandler


def test_recording_handler_records_messages_and_close_reasons(ws_server, ws_connect) -> None:
    handler = RecordingHandler()
    ws = ws_connect(ws_server(handler) + "room?x=1")
    ws.send_message("text")
    ws.send_message(b"bytes")
    assert handler.wait_for_messages(2) == ["text", b"bytes"]
    (connection,) = handler.wait_for_connections()
    assert connection.path == "/room?x=1"
    ws.close(4000, "done")
    assert handler.wait_closed() == [CloseReason(4000, "done")]
    assert handler.messages == ["text", b"bytes"]
    assert handler.close_reasons == [CloseReason(4000, "done")]
    assert handler.connections == [connection]


def test_recording_handler_echo(ws_server, ws_connect) -> None:
    handler = RecordingHandler(echo=True)
    ws = ws_connect(ws_server(handler))
    for message in ["one", b"two", ""]:
        ws.send_message(message)
        assert ws.get_message(timeout=WAIT) == message
    assert handler.messages == ["one", b"two", ""]


def test_recording_handler_reply(ws_server, ws_connect) -> None:
    handler = RecordingHandler(reply=lambda m: None if m == "quiet" else str(m).upper())
    ws = ws_connect(ws_server(handler))
    ws.send_message("quiet")
    ws.send_message("loud")
    assert ws.get_message(timeout=WAIT) == "LOUD"  # nothing came back for "quiet"
    assert handler.messages == ["quiet", "loud"]


def test_recording_handler_subprotocol(ws_server, ws_connect) -> None:
    url = ws_server(RecordingHandler(subprotocol="chat"))
    assert ws_connect(url, subprotocols=["other", "chat"]).subprotocol == "chat"
    assert ws_connect(url, subprotocols=["other"]).subprotocol is None
    assert ws_connect(url).subprotocol is None


def test_recording_handler_several_clients(ws_server, ws_connect) -> None:
    handler = RecordingHandler()
    url = ws_server(handler)
    first, second = ws_connect(url), ws_connect(url)
    first.send_message("first")
    second.send_message("second")
    assert sorted(handler.wait_for_messages(2)) == ["first", "second"]
    assert len(handler.wait_for_connections(2)) == 2
    first.close()
    second.close(1001)
    assert sorted(r.code for r in handler.wait_closed(2)) == [1000, 1001]


@pytest.mark.parametrize("handler", [RecordingHandler(), echo], ids=["recording", "echo"])
def test_a_client_gone_before_the_handshake_is_no_handler_error(ws_server, handler) -> None:
    gone = threading.Event()
    ws_server(handler, process_request=lambda request: gone.wait(WAIT))
    server = ws_server.servers[-1]
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(upgrade_request(f"127.0.0.1:{server.port}"))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    gone.set()  # The handler runs once the client has reset the connection.
    server.stop()
    assert server.errors == []
    if isinstance(handler, RecordingHandler):
        assert handler.connections == []


def test_recording_handler_waits_time_out() -> None:
    handler = RecordingHandler()
    for wait in (handler.wait_for_messages, handler.wait_for_connections, handler.wait_closed):
        with pytest.raises(TimeoutError, match=r"^0 of 1 "):
            wait(1, timeout=0)


def test_recording_handler_echo_or_reply_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        RecordingHandler(echo=True, reply=lambda message: message)


def test_recording_handler_records_the_server_shutdown() -> None:
    handler = RecordingHandler()
    with ServerThread(handler) as server, syncws.connect(server.url) as ws:
        handler.wait_for_connections()
        server.stop()
        with pytest.raises(ConnectionClosed):
            ws.get_message(timeout=WAIT)
    assert handler.close_reasons == [CloseReason(1001, "server shutting down")]


@pytest.mark.allow_syncws_errors
def test_a_failing_reply_closes_with_1011_and_is_collected(caplog) -> None:
    def reply(message: str | bytes) -> str:
        raise ValueError(f"cannot answer {message!r}")

    with ServerThread(RecordingHandler(reply=reply)) as server:
        with syncws.connect(server.url) as ws:
            ws.send_message("question")
            with pytest.raises(ConnectionClosed) as excinfo:
                ws.get_message(timeout=WAIT)
        assert excinfo.value.reason.code == 1011
        wait_for(lambda: bool(server.errors), what="the error to be collected")
    assert [str(e) for e in server.errors] == ["cannot answer 'question'"]
    assert "connection handler failed" in caplog.text


# ---------------------------------------------------------------------- ServerThread


def test_server_thread_serves_until_stopped() -> None:
    before = set(threading.enumerate())
    server = ServerThread(echo)
    assert server.url == f"ws://127.0.0.1:{server.port}/"
    assert server.start() is server
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    echo_once(server.url, "ping")
    server.stop()
    server.stop()  # Idempotent.
    assert set(threading.enumerate()) <= before
    with pytest.raises(OSError):
        syncws.connect(server.url, connect_timeout=WAIT).close()


def test_server_thread_stopped_without_being_started() -> None:
    ServerThread(echo).stop()


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_server_thread_url_with_an_ipv6_address() -> None:
    with ServerThread(echo, "::1") as server:
        assert server.url == f"ws://[::1]:{server.port}/"
        echo_once(server.url, "v6")


def test_server_thread_with_tls(tls_server_context, tls_client_context) -> None:
    with ServerThread(echo, ssl_context=tls_server_context) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        echo_once(server.url, "secret", ssl_context=tls_client_context)


@pytest.mark.allow_syncws_errors(logging.WARNING)
def test_server_thread_reports_a_handler_that_does_not_return(monkeypatch) -> None:
    monkeypatch.setattr(syncws_testing, "THREAD_JOIN_TIMEOUT", 0.05)
    release = threading.Event()
    accepted = threading.Event()

    def stubborn(request: syncws.WebSocketRequest) -> None:
        request.accept()
        accepted.set()
        release.wait(WAIT)  # Ignores its connection closing.

    factory = ServerFactory()
    url = factory(stubborn, disconnect_timeout=SHORT)
    try:
        with syncws.connect(url, disconnect_timeout=WAIT):
            assert accepted.wait(WAIT)
            problems = factory.stop_all()
    finally:
        release.set()
    assert len(problems) == 1, problems
    assert re.search(r"still running after it stopped: \['syncws-handler-\d+'\]", problems[0])


# -------------------------------------------------------------------------- fixtures


def test_ws_echo_server_and_ws_connect(ws_echo_server: str, ws_connect) -> None:
    assert ws_echo_server.startswith("ws://127.0.0.1:")
    ws = ws_connect(ws_echo_server)
    ws.send_message("echo?")
    assert ws.get_message(timeout=WAIT) == "echo?"
    assert ws_connect.connections == [ws]
    # Left open: the fixture closes it.


def test_ws_server_lists_its_servers(ws_server) -> None:
    first, second = ws_server(echo), ws_server(echo, max_connections=1)
    assert [server.url for server in ws_server.servers] == [first, second]
    assert first != second


def test_ws_connect_passes_its_options(ws_server, ws_connect) -> None:
    handler = RecordingHandler()
    ws = ws_connect(ws_server(handler), extra_headers=[("X-Test", "1")], max_message_size=10)
    (connection,) = handler.wait_for_connections()
    assert (b"x-test", b"1") in connection.handshake_headers
    connection.send_message("more than ten bytes")
    with pytest.raises(ConnectionClosed) as excinfo:
        ws.get_message(timeout=WAIT)
    assert excinfo.value.reason.code == 1009


def test_factories_without_pytest() -> None:
    servers, connections = ServerFactory(), ConnectionFactory()
    try:
        ws = connections(servers(echo))
        ws.send_message("plain")
        assert ws.get_message(timeout=WAIT) == "plain"
    finally:
        connections.close_all()
        assert servers.stop_all() == []
    assert ws.close_reason == CloseReason(1000, None)


def test_the_entry_point_is_declared() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = config["options.entry_points"]["pytest11"].split()
    assert declared == ["syncws.pytest_plugin", "=", "syncws.pytest_plugin"]
    try:
        distribution = importlib.metadata.distribution("syncws")
    except importlib.metadata.PackageNotFoundError:
        return  # Not installed: running from the source tree.
    installed = [(ep.name, ep.value) for ep in distribution.entry_points if ep.group == "pytest11"]
    assert installed == [("syncws.pytest_plugin",) * 2], "reinstall syncws: pip install -e ."


INNER_TESTS = """
import pytest
import syncws
from syncws.testing import RecordingHandler

HANDLER = RecordingHandler()


def test_echo(ws_echo_server, ws_connect):
    ws = ws_connect(ws_echo_server)
    ws.send_message("hello")
    assert ws.get_message(timeout=10) == "hello"


def test_leaves_a_connection_open(ws_server, ws_connect):
    ws_connect(ws_server(HANDLER)).send_message("x")
    HANDLER.wait_for_messages(1)


def test_the_client_closed_it_before_the_server_stopped():
    assert [reason.code for reason in HANDLER.close_reasons] == [1000]


def test_a_handler_that_raises(ws_server, ws_connect):
    def handler(request):
        request.accept()
        raise ValueError("boom-4711")

    with pytest.raises(syncws.ConnectionClosed):
        ws_connect(ws_server(handler)).get_message(timeout=10)
"""


def test_the_plugin_in_a_pytest_run(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = checkout_env({k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    # Only this plugin: -p loads it through its entry point if syncws is installed, by
    # importing the module otherwise.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [sys.executable, "-m", "pytest", "-p", "syncws.pytest_plugin"]
    result = subprocess.run(
        [*command, "-p", "no:cacheprovider", "-rA", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=6 * WAIT,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert re.search(r"\b4 passed, 1 error\b", output), output
    assert "ERROR test_inner.py::test_a_handler_that_raises" in output, output
    assert "ValueError: boom-4711" in output, output
