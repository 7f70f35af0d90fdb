"""The programs in examples/, run as child processes and driven by syncws clients.

Every server is started with ``--port 0``; the test reads the real port from its
"listening on" line, talks to it, then stops it with Ctrl-C (SIGINT) unless it stops by
itself, and checks that it exited with status 0 and printed no traceback.
"""

from __future__ import annotations

import datetime
import http.client
import random
import re
import signal
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, WAIT, ChildProcess, unused_port
from redisserver import RedisServer
from websockets.exceptions import ConnectionClosed as ConnectionClosedByWebsockets

import syncws
from syncws import ConnectionClosed, ConnectionRejected

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

EXAMPLES = ROOT / "examples"
#: The "listening on" line of each server (the syncws log line or the example's own).
LISTENING = r"listening on (wss?)://127\.0\.0\.1:(\d+)"
#: Every example, and the test below that runs it.
TESTED = {
    "broadcast_server.py": "test_broadcast_server_*",
    "callback_client.py": "test_callback_client_*",
    "chat_server.py": "test_chat_server_relays_to_every_client",
    "echo_client.py": "test_echo_server_and_echo_client",
    "echo_server.py": "test_echo_server_and_echo_client",
    # Under werkzeug's and gunicorn's servers, in tests/test_wsgi.py.
    "flask_chat.py": "test_wsgi.py::*",
    "gui_client.py": "test_gui_client_reports_a_failed_connection",
    "health_check.py": "test_health_check_*",
    "proxy_client.py": "test_proxy_client_*",
    "redis_chat.py": "test_redis_chat_*",
    "secure_server.py": "test_secure_server_*",
    "receive_file.py": "test_receive_file_*",
    "send_file.py": "test_send_file_*",
    "test_with_syncws.py": "test_the_pytest_example_passes",
    "workers.py": "test_workers_example_spreads_clients_and_stops_on_ctrl_c",
}
# Distinctive, so that finding them in the output cannot be a coincidence.
ALICE_PASSWORD = "Tr0ub4dor-alice-7q"
BOB_PASSWORD = "c0rrect-bob-Horse-2x"
WRONG_PASSWORD = "wr0ng-guess-Zk4"


#: Runs the example named by the first argument as ``__main__`` with the other arguments,
#: after restoring Ctrl-C: a child inherits an ignored SIGINT, as when the tests run in
#: the background of a shell without job control (``pytest &``).
RUN_EXAMPLE = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_example(script: str, *args: str) -> ChildProcess:
    """Start ``examples/<script>`` with ``args`` in a child process."""
    return ChildProcess(RUN_EXAMPLE, str(EXAMPLES / script), *args)


class Server:
    """An example server in a child process, and the port it listens on."""

    def __init__(self, script: str, *args: str) -> None:
        self.child = run_example(script, "--port", "0", *args)
        try:
            match = self.child.wait_line(LISTENING)
        except BaseException:
            self.child.stop()
            raise
        self.scheme = match.group(1)
        self.port = int(match.group(2))

    def url(self, userinfo: str = "") -> str:
        return f"{self.scheme}://{userinfo}127.0.0.1:{self.port}/"

    def interrupt(self) -> None:
        """Ctrl-C: the server must exit with status 0."""
        self.child.proc.send_signal(signal.SIGINT)
        self.exited()

    def exited(self) -> None:
        """The server must exit (by itself) with status 0 and no traceback."""
        code = self.child.wait(WAIT)
        assert code == 0, f"exit status {code}; stderr: {self.child.errors}"
        assert "Traceback" not in self.child.errors, self.child.errors


@pytest.fixture
def server() -> Iterator[Any]:
    """Factory: ``server(script, *args)`` -> a started :class:`Server`, killed at teardown."""
    started: list[Server] = []

    def start(script: str, *args: str) -> Server:
        started.append(Server(script, *args))
        return started[-1]

    yield start
    for each in started:
        each.child.stop()


def drain(ws: syncws.WebSocketConnection) -> tuple[list[str | bytes], syncws.CloseReason]:
    """Every message until the connection closes (within WAIT), and the close reason."""
    deadline = time.monotonic() + WAIT
    messages: list[str | bytes] = []
    while True:
        try:
            messages.append(ws.get_message(timeout=max(deadline - time.monotonic(), 0.0)))
        except ConnectionClosed as exc:
            return messages, exc.reason
        except TimeoutError:
            raise AssertionError(f"still open after {WAIT}s, {len(messages)} messages") from None


def test_every_example_is_tested() -> None:
    found = sorted(path.name for path in EXAMPLES.glob("*.py"))
    assert found == sorted(TESTED), "a new example needs a test here (and an entry in TESTED)"


# ---------------------------------------------------------------------- echo


def test_echo_server_and_echo_client(server: Any) -> None:
    echo = server("echo_server.py")
    with run_example("echo_client.py", echo.url(), "hello", "world") as client:
        assert client.wait(WAIT) == 0, client.errors
    assert client.output.splitlines() == ["hello", "world"]
    assert client.errors == ""
    echo.interrupt()


def test_echo_client_without_server() -> None:
    with run_example("echo_client.py", f"ws://127.0.0.1:{unused_port()}/", "x") as client:
        assert client.wait(WAIT) == 1
    assert "error: cannot connect" in client.errors
    assert "Traceback" not in client.errors


# ------------------------------------------------------------------ send file


def record_fragments(ws: Any, srv: Any) -> None:
    """A websockets handler: record the fragments of each message until the close."""
    try:
        while True:
            srv.record.put(list(ws.recv_streaming()))
    except ConnectionClosedByWebsockets:
        srv.record.put(("closed", ws.close_code))


# Several fragments and none by default; exactly one full fragment under -m slow.
@pytest.mark.parametrize("size", [5 * 65536 + 1000, pytest.param(65536, marks=pytest.mark.slow), 0])
def test_send_file_sends_one_message_in_64_kib_fragments(
    websockets_server: Any, tmp_path: Path, size: int
) -> None:
    srv = websockets_server(record_fragments)
    data = random.Random(size).randbytes(size)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with run_example("send_file.py", srv.url, str(path)) as client:
        assert client.wait(WAIT) == 0, client.errors
    frames = max(1, -(-size // 65536))
    plural = "" if frames == 1 else "s"
    assert client.output.splitlines() == [f"sent {size} bytes in {frames} frame{plural}"]
    fragments = srv.get()
    assert [len(fragment) for fragment in fragments[:-1]] == [65536] * (frames - 1)
    assert b"".join(fragments) == data
    assert srv.get() == ("closed", 1000)


def test_send_file_reports_a_missing_file(websockets_server: Any, tmp_path: Path) -> None:
    srv = websockets_server(record_fragments)
    missing = tmp_path / "missing.bin"
    with run_example("send_file.py", srv.url, str(missing)) as client:
        assert client.wait(WAIT) == 1
    assert f"error: {missing}: No such file or directory" in client.errors
    assert "Traceback" not in client.errors


def test_receive_file_saves_uploads_larger_than_the_message_limit(
    server: Any, tmp_path: Path
) -> None:
    """send_file.py uploads 3 MiB to receive_file.py, whose limit on messages is 1 MiB."""
    uploads = tmp_path / "uploads"
    receiver = server("receive_file.py", "--dir", str(uploads))
    data = random.Random(7).randbytes(3 * 2**20 + 5)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with run_example("send_file.py", receiver.url(), str(path)) as client:
        assert client.wait(WAIT) == 0, client.errors
    with syncws.connect(receiver.url()) as ws:
        ws.send_message([b"second ", b"upload"])
        assert ws.get_message(timeout=WAIT) == "saved 13 bytes to upload-2.bin"
        ws.send_message("text")
        messages, reason = drain(ws)
    assert (messages, reason.code) == ([], 1003)
    assert (uploads / "upload-1.bin").read_bytes() == data
    assert (uploads / "upload-2.bin").read_bytes() == b"second upload"
    receiver.interrupt()


# --------------------------------------------------------------------- proxy


def test_proxy_client_through_tinyproxy(server: Any, tinyproxy: Any) -> None:
    echo = server("echo_server.py")
    proxy = tinyproxy([echo.port], credentials=("alice", ALICE_PASSWORD))
    with run_example(
        "proxy_client.py",
        echo.url(),
        "one",
        "two",
        "--proxy",
        proxy.url(f"alice:{ALICE_PASSWORD}@"),
    ) as client:
        assert client.wait(WAIT) == 0, client.errors
    assert client.output.splitlines() == ["one", "two"]
    assert f"CONNECT 127.0.0.1:{echo.port}" in proxy.text()  # tinyproxy's log
    echo.interrupt()


def test_proxy_client_reports_a_refusal(server: Any, tinyproxy: Any) -> None:
    echo = server("echo_server.py")
    proxy = tinyproxy([echo.port], credentials=("alice", ALICE_PASSWORD))
    with run_example(
        "proxy_client.py", echo.url(), "--proxy", proxy.url(f"alice:{WRONG_PASSWORD}@")
    ) as client:
        assert client.wait(WAIT) == 1
    assert f"error: the proxy {proxy.url('alice:***@')} refused" in client.errors
    assert WRONG_PASSWORD not in client.errors
    assert "Traceback" not in client.errors
    echo.interrupt()


def test_proxy_client_from_the_environment(
    server: Any, tinyproxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo = server("echo_server.py")
    proxy = tinyproxy([echo.port])
    monkeypatch.setenv("ws_proxy", proxy.url())
    with run_example("proxy_client.py", echo.url(), "env") as client:
        assert client.wait(WAIT) == 0, client.errors
    assert client.output.splitlines() == ["env"]
    monkeypatch.setenv("ws_proxy", f"http://127.0.0.1:{unused_port()}")  # Nobody there.
    with run_example("proxy_client.py", echo.url(), "direct", "--no-proxy") as client:
        assert client.wait(WAIT) == 0, client.errors
    assert client.output.splitlines() == ["direct"]
    echo.interrupt()


# -------------------------------------------------------------------- pytest


def test_the_pytest_example_passes() -> None:
    # -p: the plugin's entry point exists only where syncws is installed.
    with run_example(
        "test_with_syncws.py", "-p", "syncws.pytest_plugin", "-p", "no:cacheprovider"
    ) as child:
        assert child.wait(3 * WAIT) == 0, child.output + child.errors
    assert re.search(r"\b4 passed\b", child.output), child.output


# ------------------------------------------------------------------ callbacks


def test_callback_client_reconnects_to_a_restarted_server(server: Any) -> None:
    first = server("echo_server.py")
    with run_example("callback_client.py", first.url(), "hello", "world", "--count", "3") as client:
        client.wait_line(r"^world$")  # both echoed by the first server
        first.interrupt()  # going away (1001): the client waits, then tries again
        client.wait_line(r"disconnected: 1001")
        second = server("echo_server.py", "--port", str(first.port))
        assert second.port == first.port
        assert client.wait(WAIT) == 0, client.errors  # "hello" again, the third message
    assert client.output.splitlines() == ["hello", "world", "hello"]
    assert "Traceback" not in client.errors
    second.interrupt()


def test_callback_client_gives_up() -> None:
    url = f"ws://127.0.0.1:{unused_port()}/"
    with run_example("callback_client.py", url, "--attempts", "2") as client:
        assert client.wait(WAIT) == 1
    assert client.errors.count("connection failed, trying again") == 1, client.errors
    assert f"error: cannot connect to {url}" in client.errors
    assert "Traceback" not in client.errors


# ---------------------------------------------------------------------- chat


def test_redis_chat_shares_rooms_between_two_servers(server: Any, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)  # Skips without redis-server.
    try:
        one = server("redis_chat.py", "--redis", redis.url)
        two = server("redis_chat.py", "--redis", redis.url)
        with (
            syncws.connect(one.url() + "lobby", disconnect_timeout=WAIT) as alice,
            syncws.connect(two.url() + "lobby", disconnect_timeout=WAIT) as bob,
            syncws.connect(two.url() + "other", disconnect_timeout=WAIT) as carol,
        ):
            one.child.wait_line(r"joined chat:/lobby \(1 here\)")
            joined = {two.child.wait_line(r"joined chat:/(\w+) \(1 here\)").group(1)}
            joined.add(two.child.wait_line(r"joined chat:/(\w+) \(1 here\)").group(1))
            assert joined == {"lobby", "other"}
            alice.send_message("hi")
            expected = f"{alice.local}: hi"
            assert alice.get_message(timeout=WAIT) == expected
            assert bob.get_message(timeout=WAIT) == expected
            bob.send_message(b"\x00\xff")
            assert alice.get_message(timeout=WAIT) == b"\x00\xff"
            assert bob.get_message(timeout=WAIT) == b"\x00\xff"
            carol.send_message("alone")  # Another room: alice and bob do not get it.
            assert carol.get_message(timeout=WAIT) == f"{carol.local}: alone"
            redis.stop()
            alice.send_message("lost")
            assert alice.get_message(timeout=WAIT).startswith("* not delivered")
        for each in (one, two):
            each.child.proc.send_signal(signal.SIGINT)
            each.exited()
    finally:
        redis.stop()


def test_chat_server_relays_to_every_client(server: Any) -> None:
    chat = server("chat_server.py")
    with syncws.connect(chat.url(), disconnect_timeout=WAIT) as alice:
        with syncws.connect(chat.url(), disconnect_timeout=WAIT) as bob:
            # Both are in the room once the server says so.
            chat.child.wait_line(r"joined \(2 connected\)")
            alice.send_message("hi")
            expected = f"{alice.local}: hi"  # the sender's address as the server sees it
            assert alice.get_message(timeout=WAIT) == expected
            assert bob.get_message(timeout=WAIT) == expected
            bob.send_message(b"\x00\xff")  # binary messages go on unchanged
            assert alice.get_message(timeout=WAIT) == b"\x00\xff"
            assert bob.get_message(timeout=WAIT) == b"\x00\xff"
        chat.child.wait_line(r"left \(1 connected\)")
        # Ctrl-C with a client still connected: it is told the server is going away.
        chat.child.proc.send_signal(signal.SIGINT)
        messages, reason = drain(alice)
    assert messages == []
    assert reason.code == 1001
    chat.exited()


# ----------------------------------------------------------------- broadcast


def test_broadcast_server_sends_count_timestamps_then_closes(server: Any) -> None:
    ticker = server(
        "broadcast_server.py", "--count", "3", "--interval", "0.05", "--wait-clients", "2"
    )
    with (
        syncws.connect(ticker.url(), disconnect_timeout=WAIT) as first,
        syncws.connect(ticker.url(), disconnect_timeout=WAIT) as second,
    ):
        first_messages, first_reason = drain(first)
        second_messages, second_reason = drain(second)
    ticker.exited()  # --count: the server stops by itself
    assert first_reason.code == second_reason.code == 1000
    assert len(first_messages) == 3, first_messages
    assert second_messages == first_messages  # one broadcast, one message for everyone
    times = [datetime.datetime.fromisoformat(str(m)) for m in first_messages]
    assert all(t.tzinfo is not None for t in times), first_messages
    assert times == sorted(times) and len(set(times)) == 3, first_messages


def test_broadcast_server_until_ctrl_c(server: Any) -> None:
    ticker = server("broadcast_server.py", "--interval", "0.05")
    with syncws.connect(ticker.url(), disconnect_timeout=WAIT) as ws:
        ws.send_message("ignored")  # what clients send is read and dropped
        first = ws.get_message(timeout=WAIT)
        ticker.child.proc.send_signal(signal.SIGINT)
        messages, reason = drain(ws)
    assert isinstance(first, str)
    datetime.datetime.fromisoformat(first)
    assert all(isinstance(m, str) for m in messages)
    assert reason.code == 1001
    ticker.exited()


# -------------------------------------------------------------------- secure


def rejection(url: str, **options: Any) -> ConnectionRejected:
    with pytest.raises(ConnectionRejected) as info:
        syncws.connect(url, connect_timeout=WAIT, **options).close()
    return info.value


def test_secure_server_origins_and_basic_auth(server: Any) -> None:
    secure = server(
        "secure_server.py",
        "--user",
        f"alice:{ALICE_PASSWORD}",
        "--user",
        f"bob:{BOB_PASSWORD}",
        "--origin",
        "https://example.com",
    )
    alice = secure.url(f"alice:{ALICE_PASSWORD}@")
    bob = secure.url(f"bob:{BOB_PASSWORD}@")

    # An allowed origin (a browser page) with good credentials.
    with syncws.connect(alice, origin="https://example.com", disconnect_timeout=WAIT) as ws:
        assert ws.get_message(timeout=WAIT) == "hello alice"
        ws.send_message("echo me")
        assert ws.get_message(timeout=WAIT) == "echo me"
    # No Origin header (not a browser), another user.
    with syncws.connect(bob, disconnect_timeout=WAIT) as ws:
        assert ws.get_message(timeout=WAIT) == "hello bob"
        ws.send_message(b"\x01\x02")
        assert ws.get_message(timeout=WAIT) == b"\x01\x02"

    wrong = rejection(secure.url(f"alice:{WRONG_PASSWORD}@"))
    assert wrong.status_code == 401
    challenge = dict(wrong.headers).get(b"www-authenticate", b"")
    assert challenge.startswith(b"Basic realm="), wrong.headers
    assert rejection(secure.url()).status_code == 401  # no credentials
    crossed = rejection(secure.url(f"bob:{ALICE_PASSWORD}@"))  # another user's password
    assert crossed.status_code == 401
    assert rejection(alice, origin="https://evil.example").status_code == 403

    secure.interrupt()
    output = secure.child.output + secure.child.errors
    for secret in (ALICE_PASSWORD, BOB_PASSWORD, WRONG_PASSWORD):
        assert secret not in output, f"a password was printed or logged: {output}"
    assert "refused" in secure.child.errors  # the refusals are logged, without credentials
    # Basic authentication without TLS: the server warns that passwords travel in clear.
    assert "clear text" in secure.child.errors


def test_secure_server_with_tls(
    server: Any, tls_ca: Any, tls_client_context: ssl.SSLContext, tmp_path: Path
) -> None:
    cert = tls_ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    keyfile.write_bytes(cert.private_key_pem.bytes())
    secure = server("secure_server.py", "--certfile", str(certfile), "--keyfile", str(keyfile))
    assert secure.scheme == "wss"
    with syncws.connect(
        secure.url(), ssl_context=tls_client_context, disconnect_timeout=WAIT
    ) as ws:
        assert ws.get_message(timeout=WAIT) == "hello guest"  # no --user: no authentication
        ws.send_message("over TLS")
        assert ws.get_message(timeout=WAIT) == "over TLS"
    secure.interrupt()
    assert "clear text" not in secure.child.errors


def test_secure_server_rejects_a_bad_user_option() -> None:
    with run_example("secure_server.py", "--port", "0", "--user", "alice") as child:
        assert child.wait(WAIT) == 2
    assert "NAME:PASSWORD" in child.errors
    assert "listening" not in child.output


# -------------------------------------------------------------- health check


def http_get(port: int, path: str) -> tuple[int, bytes]:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        client.request("GET", path)
        response = client.getresponse()
        return response.status, response.read()
    finally:
        client.close()


def test_health_check_answers_healthz_and_stops_on_sigterm(server: Any) -> None:
    health = server("health_check.py", "--trusted-proxy", "127.0.0.0/8")
    assert http_get(health.port, "/healthz") == (200, b"ok\n")
    assert http_get(health.port, "/")[0] == 426
    # 127.0.0.1 is a trusted proxy here: its X-Forwarded-For names the client.
    headers = [("X-Forwarded-For", "198.51.100.9")]
    with syncws.connect(health.url(), extra_headers=headers, disconnect_timeout=WAIT) as ws:
        assert ws.get_message(timeout=WAIT) == "hello 198.51.100.9"
        ws.send_message("echo me")
        assert ws.get_message(timeout=WAIT) == "echo me"
        health.child.proc.send_signal(signal.SIGTERM)
        messages, reason = drain(ws)
    assert (messages, reason.code) == ([], 1001)
    health.exited()


def test_health_check_ignores_forwarded_headers_from_untrusted_peers(server: Any) -> None:
    health = server("health_check.py")
    headers = [("X-Forwarded-For", "198.51.100.9")]
    with syncws.connect(health.url(), extra_headers=headers, disconnect_timeout=WAIT) as ws:
        assert ws.get_message(timeout=WAIT) == "hello 127.0.0.1"
    health.interrupt()


def test_health_check_rejects_a_bad_trusted_proxy() -> None:
    with run_example("health_check.py", "--port", "0", "--trusted-proxy", "nginx") as child:
        assert child.wait(WAIT) == 2
    assert "not an IP address" in child.errors
    assert "listening" not in child.errors


# ----------------------------------------------------------------------- GUI


def test_gui_client_reports_a_failed_connection() -> None:
    """Before its window opens, the client connects (the window: test_gui_example.py).

    A refused connection is reported before any window opens, so this runs anywhere
    tkinter is installed, display or not.
    """
    pytest.importorskip("tkinter", reason="the GUI client needs tkinter")
    url = f"ws://127.0.0.1:{unused_port()}/"
    with run_example("gui_client.py", url) as child:
        assert child.wait(WAIT) == 1, child.errors
    assert f"error: cannot connect to {url}" in child.errors
    assert "Traceback" not in child.errors


# ------------------------------------------------------------------- workers


def test_workers_example_spreads_clients_and_stops_on_ctrl_c() -> None:
    with run_example("workers.py", "--port", "0", "--workers", "2") as child:
        # The supervisor's line, once both workers listen (each also logs its own).
        port = child.wait_number(r"2 workers listening on ws://127\.0\.0\.1:(\d+)")
        url = f"ws://127.0.0.1:{port}/"
        workers = set()
        for _ in range(40):  # SO_REUSEPORT hashes each client: all on one worker: 2**-39
            with syncws.connect(url, disconnect_timeout=WAIT) as ws:
                workers.add(ws.get_message(timeout=WAIT))
                ws.send_message("echo me")
                assert ws.get_message(timeout=WAIT) == "echo me"
        assert len(workers) == 2, workers
        with syncws.connect(url, disconnect_timeout=WAIT) as ws:
            ws.get_message(timeout=WAIT)
            child.proc.send_signal(signal.SIGINT)
            messages, reason = drain(ws)
        assert (messages, reason.code) == ([], 1001)
        assert child.wait(WAIT) == 0, child.errors
    assert "Traceback" not in child.errors, child.errors
