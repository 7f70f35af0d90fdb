"""syncws.wsgi under real WSGI servers: examples/flask_chat.py run by werkzeug's development
server and by gunicorn (gthread and sync workers) in child processes, driven by syncws
clients, raw sockets and http.client; and accept() refusing a server it does not support
(wsgiref, in-process).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wsgiref.simple_server
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import ROOT, WAIT, ChildProcess, unused_port
from rawpeer import encode_frame

import syncws
import syncws.wsgi

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals, gunicorn")

#: Lines of a WSGI server's output that mean something went wrong.
TROUBLE = re.compile(r"traceback|error|exception|critical", re.IGNORECASE)


def _gunicorn_control_flags() -> list[str]:
    """Gunicorn 23 and later open a control socket in ~/.gunicorn unless told not to."""
    from gunicorn.config import KNOWN_SETTINGS

    names = {setting.name for setting in KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def _command(server: str, port: int) -> tuple[list[str], str]:
    """The child's arguments and the line it prints once it listens."""
    if server == "werkzeug":
        script = str(ROOT / "examples" / "flask_chat.py")
        return [script, "--port", str(port)], r"Running on http://127\.0\.0\.1:"
    workers = {"gthread": ["--threads", "16"], "sync": ["--timeout", "0"]}[server]
    args = [
        "-m",
        "gunicorn",
        "--worker-class",
        server,
        "--workers",
        "1",
        *workers,
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "--chdir",
        str(ROOT),
        *_gunicorn_control_flags(),
        "examples.flask_chat:app",
    ]
    return args, r"Listening at: http://127\.0\.0\.1:"


class Server:
    """The example app in a WSGI server child process."""

    def __init__(self, server: str) -> None:
        self.port = unused_port()
        args, listening = _command(server, self.port)
        self.child = ChildProcess("", *args)
        self.child.wait_line(listening)
        self._wait_open()

    def _wait_open(self) -> None:
        """Connect until the port takes connections (bounded), as the line said it would."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=WAIT).close()
                return
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
            # Paces the loop, and fails at once when the child died.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.child.proc.wait(0.05)
                raise AssertionError(f"the server exited with {code}: {self.child.errors}")

    def url(self, path: str = "/chat") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self) -> str:
        """Stop the server with SIGTERM (kill after a bounded wait); return its stderr."""
        if self.child.proc.poll() is None:
            self.child.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.proc.wait(WAIT)
        self.child.stop()
        return self.child.errors


# syncws.wsgi takes both gunicorn workers' sockets the same way (gunicorn.socket): the
# gthread worker runs the tests of threaded_server by default, these under -m slow.
@pytest.fixture(params=["werkzeug", pytest.param("gthread", marks=pytest.mark.slow), "sync"])
def any_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from _serve(request.param)


@pytest.fixture(params=["werkzeug", "gthread"])
def threaded_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from _serve(request.param)


def _serve(name: str) -> Iterator[Server]:
    server = Server(name)
    try:
        yield server
    finally:
        errors = server.stop()
    trouble = [line for line in errors.splitlines() if TROUBLE.search(line)]
    assert not trouble, errors


def _http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def join(url: str, **options: Any) -> syncws.WebSocketConnection:
    """Connect to the chat and wait for its welcome: the handler has the client in the room."""
    ws = syncws.connect(url, **options)
    try:
        welcome = ws.get_message(timeout=WAIT)
        assert isinstance(welcome, str) and welcome.startswith(f"welcome, {ws.local} ("), welcome
    except BaseException:
        ws.close()
        raise
    return ws


def test_chat_relays_messages_and_close_codes(threaded_server: Server) -> None:
    url = threaded_server.url()
    with join(url) as alice, join(url) as bob:
        assert alice.get_message(timeout=WAIT) == f"{bob.local} joined"
        carol = join(url)
        assert alice.get_message(timeout=WAIT) == f"{carol.local} joined"
        assert bob.get_message(timeout=WAIT) == f"{carol.local} joined"
        bob.send_message("hello")
        assert alice.get_message(timeout=WAIT) == f"{bob.local}: hello"
        assert carol.get_message(timeout=WAIT) == f"{bob.local}: hello"
        # The server closes: /bye gets close code 4000.
        carol.send_message("/bye")
        with pytest.raises(syncws.ConnectionClosedError):
            carol.get_message(timeout=WAIT)
        assert carol.close_reason is not None
        assert (carol.close_reason.code, carol.close_reason.reason) == (4000, "bye")
        assert alice.get_message(timeout=WAIT) == f"{carol.local} left (4000)"
        # The client closes with its own code, which the server sees.
        bob.close(4001)
        assert alice.get_message(timeout=WAIT) == f"{bob.local} left (4001)"
        alice.close()
        assert alice.close_reason is not None and alice.close_reason.code == 1000


def test_frames_sent_with_the_request_are_not_lost(threaded_server: Server) -> None:
    """A client that sends a frame right behind its request, in the same packet."""
    port = threaded_server.port
    with (
        join(threaded_server.url()) as alice,
        socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
    ):
        request = (
            f"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        frame = encode_frame(0x1, b"early bird", mask=b"\x01\x02\x03\x04")
        raw.sendall(request + frame)
        name = f"ws://127.0.0.1:{raw.getsockname()[1]}"
        assert alice.get_message(timeout=WAIT) == f"{name} joined"
        assert alice.get_message(timeout=WAIT) == f"{name}: early bird"
        raw.sendall(encode_frame(0x8, b"\x03\xe8", mask=b"\x01\x02\x03\x04"))
        assert alice.get_message(timeout=WAIT) == f"{name} left (1000)"


def test_plain_http_routes(any_server: Server) -> None:
    status, _, body = _http_get(any_server.port, "/")
    assert status == 200 and b"<title>syncws Flask chat</title>" in body
    # A plain request to the WebSocket route gets what syncws's server answers.
    status, headers, body = _http_get(any_server.port, "/chat")
    assert status == 426 and headers["Upgrade"] == "websocket", body


def test_origin_refused_and_allowed(any_server: Server) -> None:
    with pytest.raises(syncws.ConnectionRejected) as refused:
        syncws.connect(any_server.url(), origin="https://evil.example")
    assert refused.value.status_code == 403
    # The page's own origin is allowed (the server checks it against Host).
    with join(any_server.url(), origin=f"http://127.0.0.1:{any_server.port}") as ws:
        ws.send_message("/bye")
        with pytest.raises(syncws.ConnectionClosedError):
            ws.get_message(timeout=WAIT)
        assert ws.close_reason is not None and ws.close_reason.code == 4000


# Negotiated by syncws.wsgi once it has the socket, whichever server: werkzeug by
# default (the other tests take the gunicorn workers' sockets), both workers -m slow.
@pytest.mark.parametrize(
    "any_server",
    [
        "werkzeug",
        pytest.param("gthread", marks=pytest.mark.slow),
        pytest.param("sync", marks=pytest.mark.slow),
    ],
    indirect=True,
)
def test_subprotocol_negotiation(any_server: Server) -> None:
    with syncws.connect(any_server.url(), subprotocols=["chat.v2", "chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
    with syncws.connect(any_server.url(), subprotocols=["chat.v2"]) as ws:
        assert ws.subprotocol is None
    with syncws.connect(any_server.url()) as ws:
        assert ws.subprotocol is None
        ws.close(4001)
    assert ws.close_reason is not None and ws.close_reason.code == 4001


# -- in-process: unsupported servers and bad options ------------------------------------


def test_unsupported_server_is_named_and_gets_nothing_from_syncws() -> None:
    """wsgiref gives no socket: accept() raises, and the app answers as it likes."""
    caught: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            syncws.wsgi.accept(environ)
        except syncws.wsgi.UnsupportedServer as exc:
            caught.append(exc)
        start_response("501 Not Implemented", [("Content-Type", "text/plain")])
        return [b"no WebSocket here\n"]

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, name="wsgiref-test")
    thread.start()
    try:
        with pytest.raises(syncws.ConnectionRejected) as rejected:
            syncws.connect(f"ws://127.0.0.1:{server.server_port}/", connect_timeout=WAIT)
        assert rejected.value.status_code == 501
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
    assert len(caught) == 1
    message = str(caught[0])
    assert isinstance(caught[0], RuntimeError)
    assert "werkzeug" in message and "gunicorn" in message and "WSGIServer" in message


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_connections": 4}, TypeError),
        ({"subprotocols": "chat.v1"}, TypeError),
        ({"max_size": 10}, TypeError),
        ({"origins": ["bad origin"]}, ValueError),
        ({"ping_interval": -1}, ValueError),
    ],
)
def test_options_are_checked_first(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        syncws.wsgi.accept({"REQUEST_METHOD": "GET"}, **options)


def test_response_refuses_to_be_a_body() -> None:
    """What the view returns makes the server give up before it writes a byte."""
    taken_over = syncws.wsgi.response({})
    with pytest.raises(BrokenPipeError):
        next(iter(taken_over))
    taken_over.close()


# -- in-process: a plain WSGI application under werkzeug's server in a thread -----------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_plain_wsgi_app_under_werkzeug_in_process() -> None:
    """No Flask: process_request, options, and a view that returns with the socket open."""
    from werkzeug.serving import make_server

    refusals: list[int | None] = []

    def hook(request: syncws.WebSocketRequest) -> None:
        if request.header("Authorization") != "Bearer sesame":
            request.reject(401, body="401 who are you?\n")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] not in ("/echo", "/leave-open"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not here\n"]
        try:
            ws = syncws.wsgi.accept(environ, process_request=hook, max_message_size=1000)
        except syncws.wsgi.RequestRefused as exc:
            refusals.append(exc.status_code)
            return syncws.wsgi.response(environ)
        if environ["PATH_INFO"] == "/echo":
            with contextlib.suppress(syncws.ConnectionClosed):
                for message in ws:
                    ws.send_message(message)
        # /leave-open: response() closes the connection (1000).
        return syncws.wsgi.response(environ)

    records = _Records()
    werkzeug_log = logging.getLogger("werkzeug")
    werkzeug_log.addHandler(records)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="werkzeug-test")
    thread.start()
    base = f"ws://127.0.0.1:{server.server_port}"
    auth = {"Authorization": "Bearer sesame"}
    try:
        with pytest.raises(syncws.ConnectionRejected) as rejected:
            syncws.connect(f"{base}/echo")
        assert rejected.value.status_code == 401 and rejected.value.body == b"401 who are you?\n"
        with syncws.connect(f"{base}/echo", extra_headers=auth) as ws:
            ws.send_message("hello")
            assert ws.get_message(timeout=WAIT) == "hello"
            ws.send_message(b"x" * 2000)  # Over max_message_size: 1009.
            with pytest.raises(syncws.ConnectionClosedError):
                ws.get_message(timeout=WAIT)
        assert ws.close_reason is not None and ws.close_reason.code == 1009
        with (
            syncws.connect(f"{base}/leave-open", extra_headers=auth) as ws,
            pytest.raises(syncws.ConnectionClosedOK),
        ):
            ws.get_message(timeout=WAIT)
        assert ws.close_reason is not None and ws.close_reason.code == 1000
        status, _, _ = _http_get(server.server_port, "/elsewhere")
        assert status == 404
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
        werkzeug_log.removeHandler(records)
    assert refusals == [None]
    assert not records.records, [record.getMessage() for record in records.records]
