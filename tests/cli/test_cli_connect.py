"""``python -m syncws connect``, in pipes and on a terminal, against syncws servers."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import ANSI, TIMESTAMP, Cli, Terminal, child_env, no_traceback
from helpers import MARGIN, WAIT, SyncwsServer, server_echo, unused_port
from rawpeer import RawPeer

from syncws.cli._console import escape_controls
from syncws.testing import RecordingHandler, ServerFactory

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")

Server = Callable[..., SyncwsServer]


def reply_then_close(request: Any, srv: SyncwsServer) -> None:
    """Answer two messages with ``reply:`` and a binary message, then close with 1000."""
    ws = request.accept()
    for _ in range(2):
        message = ws.get_message(WAIT)
        srv.record.put(message)
        ws.send_message(f"reply:{message}")
    ws.send_message(b"\x00\xff")
    ws.close()


def test_pipe_sends_lines_and_prints_replies(syncws_server: Server) -> None:
    srv = syncws_server(reply_then_close)
    with Cli("connect", srv.url, "--wait", str(WAIT)) as child:
        child.write("one\ntwo\r\n")
        assert child.wait() == 0, child.errors
    assert [srv.get(), srv.get()] == ["one", "two"]
    # Standard output carries the messages only, unstyled; the rest went to stderr.
    assert child.output == "reply:one\nreply:two\n[binary 2 bytes] 00ff\n"
    assert "connected to" in child.errors
    assert not ANSI.search(child.output + child.errors)
    no_traceback(child)


def test_end_of_input_closes_normally(ws_server: ServerFactory) -> None:
    recorder = RecordingHandler()
    with Cli("connect", ws_server(recorder), "--wait", "0") as child:
        child.write("last words")  # No final newline: still a line.
        child.close_stdin()
        assert child.wait() == 0, child.errors
    assert recorder.wait_closed(timeout=WAIT)[0].code == 1000
    assert recorder.messages == ["last words"]
    no_traceback(child)


@pytest.mark.parametrize("source", ["file", "devnull"])
def test_input_redirected_from_a_file(
    source: str, ws_server: ServerFactory, tmp_path: Path
) -> None:
    recorder = RecordingHandler()
    url = ws_server(recorder)
    path = tmp_path / "input.txt"
    path.write_text("from\nfile\n")
    with open(path if source == "file" else os.devnull) as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "syncws", "connect", url, "--wait", "0"],
            stdin=stdin,
            check=False,
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=WAIT,
        )
    assert result.returncode == 0, result.stderr
    assert recorder.wait_closed(timeout=WAIT)[0].code == 1000
    assert recorder.messages == (["from", "file"] if source == "file" else [])


def test_wait_keeps_receiving_after_the_input_ends(syncws_server: Server) -> None:
    srv = syncws_server(server_echo)
    with Cli("connect", srv.url, "--wait", str(WAIT)) as child:
        child.write("echo me\n")
        child.close_stdin()
        child.wait_line("^echo me$")
        child.proc.send_signal(signal.SIGINT)  # Otherwise it waits the whole --wait.
        assert child.wait() == 130, child.errors
    no_traceback(child)


def test_subprotocols_and_headers(syncws_server: Server) -> None:
    def handler(request: Any, srv: SyncwsServer) -> None:
        srv.record.put((request.proposed_subprotocols, request.header("X-Token")))
        ws = request.accept(subprotocol="chat.v2")
        ws.close()

    srv = syncws_server(handler)
    with Cli(
        "connect",
        srv.url,
        "--subprotocol",
        "chat.v1",
        "--subprotocol",
        "chat.v2",
        "--header",
        "X-Token: s3cret value",
    ) as child:
        assert child.wait() == 0, child.errors
    assert srv.get() == (("chat.v1", "chat.v2"), "s3cret value")
    assert "(subprotocol chat.v2)" in child.errors


@pytest.mark.parametrize("value", ["deflate", "none"])
def test_compression(value: str, raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(auto=True)
    with Cli("connect", peer.url, "--compression", value, "--wait", "0") as child:
        offer = peer.wait_request().header("Sec-WebSocket-Extensions")
        child.close_stdin()
        assert child.wait() == 0, child.errors
    if value == "deflate":
        assert offer is not None and offer.startswith("permessage-deflate"), offer
    else:
        assert offer is None


def test_malformed_header_is_a_usage_error() -> None:
    with Cli("connect", "ws://127.0.0.1:1/", "--header", "no colon") as child:
        assert child.wait() == 2
    assert "Name: value" in child.errors


def test_refused_connection_is_one_line() -> None:
    with Cli("connect", f"ws://127.0.0.1:{unused_port()}/") as child:
        assert child.wait() == 1
    # The library names the address it tried (without the URL, which may hold a password).
    assert child.errors.startswith("error: cannot connect to 127.0.0.1:")
    assert child.errors.rstrip().endswith(": connection refused")
    assert len(child.errors.splitlines()) == 1, child.errors
    assert child.output == ""


def test_rejected_handshake_shows_the_status(syncws_server: Server) -> None:
    srv = syncws_server(lambda request, srv: request.reject(403))
    with Cli("connect", srv.url) as child:
        assert child.wait() == 1
    assert "HTTP 403" in child.errors
    assert len(child.errors.splitlines()) == 1, child.errors


def test_abnormal_close_exits_1(syncws_server: Server) -> None:
    def handler(request: Any, srv: SyncwsServer) -> None:
        request.accept().close(1011, "broken")

    srv = syncws_server(handler)
    with Cli("connect", srv.url) as child:
        assert child.wait() == 1
    assert "error: connection closed: 1011" in child.errors
    no_traceback(child)


def test_ctrl_c_while_sending_closes_the_connection_normally(ws_server: ServerFactory) -> None:
    # The main thread is sending line after line when Ctrl-C comes: the interrupt
    # waits for the send in progress to end, so the connection closes with 1000
    # instead of being aborted (1006) in the middle of a send.
    recorder = RecordingHandler()
    with Cli("connect", ws_server(recorder)) as child:
        child.wait_line("connected to")
        # Less than a pipe's buffer (64 KiB): the write never blocks.
        child.write("".join(f"line {i}\n" for i in range(4000)))
        recorder.wait_for_messages(50, timeout=WAIT)
        child.proc.send_signal(signal.SIGINT)
        assert child.wait() == 130, child.errors
    assert recorder.wait_closed(timeout=WAIT)[0].code == 1000
    messages = recorder.messages
    assert messages == [f"line {i}" for i in range(len(messages))]


def test_ctrl_c_closes_the_connection(ws_server: ServerFactory) -> None:
    recorder = RecordingHandler()
    with Cli("connect", ws_server(recorder)) as child:
        child.wait_line("connected to")
        child.write("before\n")
        assert recorder.wait_for_messages(1, timeout=WAIT) == ["before"]
        child.proc.send_signal(signal.SIGINT)
        assert child.wait() == 130, child.errors
    assert recorder.wait_closed(timeout=WAIT)[0].code == 1000
    no_traceback(child)


def silent_close(peer: RawPeer) -> None:
    """Take the client's close frame and never answer it."""
    conn = peer.connection()
    conn.expect_close(WAIT)


@pytest.mark.parametrize("first", ["ctrl-c", "end of input"])
def test_ctrl_c_during_the_closing_handshake_exits_at_once(
    first: str, raw_peer: Callable[..., RawPeer]
) -> None:
    # The server never answers the close frame: the closing handshake would take the
    # whole --timeout. Ctrl-C then exits at once.
    peer = raw_peer()
    with Cli("connect", peer.url, "--timeout", "60", "--wait", "0") as child:
        child.wait_line("connected to")
        if first == "ctrl-c":
            child.proc.send_signal(signal.SIGINT)
            child.wait_line("press Ctrl-C again to exit now")
        else:
            child.close_stdin()
        silent_close(peer)
        started = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        assert child.wait() == 130, child.errors
        elapsed = time.monotonic() - started
    assert elapsed < 2 * MARGIN, f"exited {elapsed:.2f}s after Ctrl-C"
    assert "interrupted: exiting without waiting for the server to close" in child.errors
    no_traceback(child)


def test_terminal_second_ctrl_c(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer()
    with Terminal("connect", peer.url, "--timeout", "60") as term:
        term.expect(r"> $")
        term.proc.send_signal(signal.SIGINT)
        term.expect("press Ctrl-C again to exit now")
        silent_close(peer)
        term.proc.send_signal(signal.SIGINT)
        assert term.wait() == 130, term.output
    assert "exiting without waiting for the server to close" in term.output
    assert "Traceback" not in term.output


# ---------------------------------------------------------------------------------- TLS


@pytest.fixture
def tls_echo(syncws_server: Server, tls_server_context: ssl.SSLContext) -> SyncwsServer:
    return syncws_server(server_echo, ssl_context=tls_server_context)


def test_tls_with_cafile(tls_echo: SyncwsServer, tls_ca: Any, tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(cafile))
    with Cli("connect", tls_echo.url, "--cafile", str(cafile), "--wait", "0") as child:
        child.write("secret\n")
        child.wait_line("^secret$")
        child.close_stdin()
        assert child.wait() == 0, child.errors


def test_tls_untrusted_then_insecure(tls_echo: SyncwsServer) -> None:
    with Cli("connect", tls_echo.url) as child:
        assert child.wait() == 1
    assert "certificate verification failed" in child.errors
    assert "--insecure" in child.errors
    assert len(child.errors.splitlines()) == 1, child.errors

    with Cli("connect", tls_echo.url, "--insecure", "--wait", "0") as child:
        child.write("anyway\n")
        child.wait_line("^anyway$")
        child.close_stdin()
        assert child.wait() == 0, child.errors


# ------------------------------------------------------------------------------ terminal


def test_terminal_shows_timestamps_colours_and_latency(syncws_server: Server) -> None:
    srv = syncws_server(server_echo)
    with Terminal("connect", srv.url, "--ping", "0.1", "--wait", "0") as term:
        term.expect(r"connected to ws://")
        term.expect(r"> $")  # The prompt.
        term.write(b"hello tty\r")
        # The line typed comes back timestamped, in blue; the echo, in green.
        term.expect(rf"{TIMESTAMP.pattern}\x1b\[0m \x1b\[34m> hello tty")
        term.expect(rf"{TIMESTAMP.pattern}\x1b\[0m \x1b\[32m< hello tty")
        term.expect(r"latency \d+\.\d ms")
        term.write(b"\x04")  # Ctrl-D: end of input.
        assert term.wait() == 0, term.output
    assert "connection closed: 1000" in term.output
    assert "Traceback" not in term.output


def test_terminal_connection_failure() -> None:
    with Terminal("connect", f"ws://127.0.0.1:{unused_port()}/") as term:
        assert term.wait() == 1
    assert "error: cannot connect" in term.output


def test_no_colour_with_no_color(syncws_server: Server) -> None:
    srv = syncws_server(server_echo)
    with Terminal("connect", srv.url, "--wait", "0", env={"NO_COLOR": "1"}) as term:
        term.write(b"plain\r")
        match = term.expect(rf"({TIMESTAMP.pattern}) < plain")
        term.write(b"\x04")
        assert term.wait() == 0, term.output
    assert match
    assert "\x1b[3" not in term.output  # No colour; cursor moves remain.


# -------------------------------------------------------------- control characters

#: Text a hostile server sends: a window title, a clear screen, a C1 CSI, DEL, a
#: carriage return (to overwrite the line), a tab and a line feed.
HOSTILE = "\x1b]0;pwned\x07title \x1b[2Jclear \x9b31mcsi \x7fdel \rcr\ttab\nnext"
HOSTILE_REASON = "\x1b[2Jgone\x9b"


def hostile(request: Any, srv: SyncwsServer) -> None:
    ws = request.accept()
    ws.send_message(HOSTILE)
    ws.send_message(b"\x1b[2J")
    ws.close(1000, HOSTILE_REASON)


def test_escape_controls() -> None:
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)):
        shown = escape_controls(chr(code))
        assert shown.startswith("\\") and shown.isprintable(), (code, shown)
    assert escape_controls("\x1b[0m\x9b\r\n\t") == "\\x1b[0m\\x9b\\r\\n\\t"
    assert escape_controls("a\tb\nc\rd", keep_line_feeds=True) == "a\tb\nc\\rd"
    assert escape_controls("caf\u00e9 \u00a0 \u2028 ok") == "caf\u00e9 \u00a0 \u2028 ok"


def test_terminal_shows_control_characters_escaped(syncws_server: Server) -> None:
    srv = syncws_server(hostile)
    with Terminal("connect", srv.url, "--wait", "inf") as term:
        assert term.wait() == 0, term.output
    output = term.output
    for raw in ("\x1b]0;", "\x07", "\x1b[2J", "\x9b", "\x7f", "\rcr"):
        assert raw not in output, (raw, output)
    assert r"\x1b]0;pwned\x07title \x1b[2Jclear \x9b31mcsi \x7fdel \rcr" + "\ttab" in output
    # A line feed starts a continuation line, indented under the text.
    assert "tab\r\n" + " " * 15 + "next" in output
    assert "[binary 4 bytes] 1b5b324a" in output
    assert r"connection closed: 1000 (NORMAL_CLOSURE): \x1b[2Jgone\x9b" in output


def test_pipe_passes_control_characters_through(syncws_server: Server) -> None:
    srv = syncws_server(hostile)
    result = subprocess.run(
        [sys.executable, "-m", "syncws", "connect", srv.url, "--wait", "inf"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=child_env(),
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Bytes, not text: the carriage return must come through as it is.
    assert result.stdout == (HOSTILE + "\n[binary 4 bytes] 1b5b324a\n").encode()
    assert HOSTILE_REASON.encode() in result.stderr


def test_errors_on_a_terminal_are_escaped_when_output_is_a_pipe(syncws_server: Server) -> None:
    import pty

    srv = syncws_server(hostile)
    master, slave = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "syncws", "connect", srv.url, "--wait", "inf"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=child_env(),
            timeout=WAIT,
            check=False,
        )
        os.close(slave)
        slave = -1
        terminal = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child's side is closed.
                break
            if not data:
                break
            terminal += data
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert result.returncode == 0
    assert result.stdout.decode() == HOSTILE + "\n[binary 4 bytes] 1b5b324a\n"
    text = terminal.decode("utf-8", "replace")
    assert r"\x1b[2Jgone\x9b" in text
    assert "\x1b" not in text
