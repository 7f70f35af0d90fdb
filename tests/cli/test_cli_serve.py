"""``python -m syncws serve``: echo, broadcast and command servers talked to by syncws."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from clihelpers import LISTENING, Cli, ServeCli, Terminal, no_traceback
from helpers import MARGIN, WAIT, echo_once, wait_for
from rawpeer import read_http_response, upgrade_request

import syncws
from syncws import ConnectionClosed

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def stop(server: Cli, signum: int = signal.SIGINT) -> None:
    """Interrupt the server; it must exit 0 without a traceback."""
    server.proc.send_signal(signum)
    assert server.wait() == 0, server.errors
    no_traceback(server)


def test_echo_is_the_default_and_sigterm_stops_it() -> None:
    with ServeCli("serve", "--port", "0") as server:
        assert server.url.startswith("ws://127.0.0.1:")
        with syncws.connect(server.url, disconnect_timeout=WAIT) as ws:
            ws.send_message("ping")
            assert ws.get_message(WAIT) == "ping"
            ws.send_message(b"\x01\x02")
            assert ws.get_message(WAIT) == b"\x01\x02"
            stop(server, signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as caught:
                ws.get_message(WAIT)
            assert caught.value.reason.code == 1001


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# A second SIGTERM: tests/server/test_server_signals.py, by default; here under -m slow.
@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_second_interrupt_exits_at_once_with_130(signum: int) -> None:
    # The handler waits for a command that sleeps: the first interrupt says what the
    # server waits for, the second one ends the wait, kills the command and exits 130.
    command = "echo command $$ >&2; exec sleep 60"
    with (
        ServeCli("serve", "--port", "0", "--exec", command, "--exec-timeout", "120") as server,
        syncws.connect(server.url) as ws,
    ):
        ws.send_message("sleep")
        pid = server.wait_number(r"^command (\d+)$")
        server.proc.send_signal(signum)
        server.wait_line(r"waiting up to 5 s for 1 handler; .* again to exit now$")
        started = time.monotonic()
        server.proc.send_signal(signum)
        assert server.wait() == 130, server.errors
        elapsed = time.monotonic() - started
    assert elapsed < 2 * MARGIN, f"exited {elapsed:.2f}s after the second interrupt"
    assert "interrupted again: stopped waiting" in server.errors
    no_traceback(server)
    wait_for(lambda: process_gone(pid), what="the command to be killed")


def test_echo_server_is_an_alias_of_serve_echo() -> None:
    with ServeCli("echo-server", "--port", "0") as server:
        echo_once(server.url, "old name")
        stop(server)


def test_broadcast_reaches_every_client() -> None:
    with ServeCli("serve", "--port", "0", "--broadcast") as server:
        with syncws.connect(server.url) as alice, syncws.connect(server.url) as bob:
            # Alice's first message comes back to her once both are in the room.
            server.wait_line(r"joined \(2 connected\)")
            alice.send_message("hi all")
            assert alice.get_message(WAIT) == "hi all"
            assert bob.get_message(WAIT) == "hi all"
            bob.send_message(b"\xff")
            assert alice.get_message(WAIT) == b"\xff"
            assert bob.get_message(WAIT) == b"\xff"
        stop(server)


def test_exec_pipes_each_message_through_the_command() -> None:
    command = 'printf "%s " "$SYNCWS_PATH"; tr a-z A-Z'
    with ServeCli("serve", "--port", "0", "--exec", command) as server:
        with syncws.connect(server.url + "room") as ws:
            ws.send_message("hello")
            assert ws.get_message(WAIT) == "/room HELLO"
            ws.send_message(b"abc")
            assert ws.get_message(WAIT) == b"/room ABC"
        stop(server)


def test_exec_kills_a_command_that_hangs() -> None:
    command = 'read line; [ "$line" = hang ] && sleep 60; echo "done $line"'
    with ServeCli("serve", "--port", "0", "--exec", command, "--exec-timeout", "0.2") as server:
        with syncws.connect(server.url) as ws:
            ws.send_message("hang")
            server.wait_line("command killed after 0.2s")
            ws.send_message("fast")  # The connection goes on.
            assert ws.get_message(WAIT) == "done fast"
        stop(server)


def test_exec_is_exclusive_with_echo() -> None:
    with Cli("serve", "--echo", "--exec", "cat") as child:
        assert child.wait() == 2
    assert "not allowed with" in child.errors


def test_exec_is_refused_with_workers() -> None:
    # A worker's commands would outlive it: nothing would stop them.
    with Cli("serve", "--port", "0", "--workers", "2", "--exec", "cat") as child:
        assert child.wait() == 2
    assert "error: argument --workers: not allowed with argument --exec" in child.errors
    no_traceback(child)


@pytest.mark.parametrize("separate_key", [True, False])
def test_tls(
    separate_key: bool, tls_ca: Any, tls_client_context: ssl.SSLContext, tmp_path: Path
) -> None:
    cert = tls_ca.issue_cert("127.0.0.1")
    if separate_key:
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        files = ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")]
    else:
        cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
        files = ["--tls-cert", str(tmp_path / "both.pem")]
    with ServeCli("serve", "--port", "0", *files) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        echo_once(server.url, "over tls", ssl_context=tls_client_context)
        stop(server)


def test_missing_certificate_file(tmp_path: Path) -> None:
    # A bad argument: the usage, one error line, status 2 (it was 1).
    with Cli("serve", "--port", "0", "--tls-cert", str(tmp_path / "missing.pem")) as child:
        assert child.wait() == 2
    assert child.errors.startswith("usage: ")
    assert "error: argument --tls-cert: cannot read" in child.errors
    no_traceback(child)


def test_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with Cli("serve", "--port", str(port)) as child:
            assert child.wait() == 1
    assert f"error: cannot serve on 127.0.0.1:{port}" in child.errors
    assert len(child.errors.splitlines()) == 1, child.errors


def test_listening_line_is_the_only_output_on_stdout() -> None:
    with ServeCli("serve", "--port", "0") as server:
        stop(server)
    lines = server.output.splitlines()
    assert len(lines) == 1
    assert __import__("re").match(LISTENING, lines[0])


@pytest.mark.parametrize("mode", ["--echo", "--broadcast"])
def test_log_lines_on_a_terminal_escape_what_clients_send(mode: str) -> None:
    with Terminal("serve", "--port", "0", mode) as term:
        url = term.expect(r"listening on (ws://127\.0\.0\.1:\d+/)").group(1)
        with syncws.connect(url) as ws:
            ws.close(1000, "\x1b]0;pwned\x07\x1b[2J\x9b")
        term.expect(r"\\x1b\]0;pwned\\x07\\x1b\[2J\\x9b")
        term.proc.send_signal(signal.SIGINT)
        assert term.wait() == 0, term.output
    for raw in ("\x1b]0;", "\x07", "\x1b[2J", "\x9b"):
        assert raw not in term.output


# ------------------------------------------------------------ library options


def extensions_answered(port: int, offer: str) -> str | None:
    """Offer ``offer`` in an upgrade request; return the server's extensions header."""
    with socket.create_connection(("127.0.0.1", port), WAIT) as sock:
        sock.sendall(
            upgrade_request(f"127.0.0.1:{port}", headers=[("Sec-WebSocket-Extensions", offer)])
        )
        response = read_http_response(sock, WAIT, until_eof=False)
    assert response.status == 101, response
    return response.header("Sec-WebSocket-Extensions")


@pytest.mark.parametrize("value", ["deflate", "none"])
def test_compression(value: str) -> None:
    with ServeCli("serve", "--port", "0", "--compression", value) as server:
        port = int(server.url.rsplit(":", 1)[1].rstrip("/"))
        answer = extensions_answered(port, "permessage-deflate; client_max_window_bits")
        if value == "deflate":
            assert answer is not None and answer.startswith("permessage-deflate"), answer
        else:
            assert answer is None
        # And messages still go through, compressed or not.
        echo_once(server.url, "squeeze me " * 100, compression="deflate")
        stop(server)


def test_origins() -> None:
    with ServeCli("serve", "--port", "0", "--origin", "https://example.com") as server:
        echo_once(server.url, "allowed", origin="https://example.com")
        for origin in ("https://evil.example", None):
            with pytest.raises(syncws.ConnectionRejected) as caught:
                syncws.connect(server.url, origin=origin)
            assert caught.value.status_code == 403
        stop(server)
    with ServeCli(
        "serve", "--port", "0", "--origin", "https://example.com", "--origin", "none"
    ) as server:
        with syncws.connect(server.url) as ws:  # No Origin header: admitted now.
            ws.send_message("no origin")
            assert ws.get_message(WAIT) == "no origin"
        with pytest.raises(syncws.ConnectionRejected):
            syncws.connect(server.url, origin="https://evil.example")
        stop(server)
