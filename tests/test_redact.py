"""No password of a URL in any message: exceptions, logs, reprs, the command line, examples.

Each password is made of distinctive pieces joined by a character that may break the
URL (``#``, ``?``, ``/``, ``@``, ``:``, a space, ...). A test fails if any piece shows
up in what the user can see. Name resolution is faked: a host name resolves to
127.0.0.1 (port 1 refuses connections), and no DNS query leaves the machine.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from clihelpers import Cli, no_traceback
from helpers import WAIT, SyncwsServer, server_echo
from rawpeer import SILENT, RawPeer
from test_examples import run_example

import syncws
from syncws.cli import main
from syncws.client import redact_url

# Distinctive pieces: finding one in the output cannot be a coincidence.
PIECES = ("Qx7wvTe", "Lm3kzRo")
# Digits a parser may take for a port (below the ephemeral range: nothing listens there).
DIGITS = ("27182", "81828")
SEPARATORS = ["#", "?", "/", "@", ":", "%40", "%23", "%2F", " ", "\uff20", "\u00e4", "@@"]

PASSWORDS = [
    *(sep.join(PIECES) for sep in SEPARATORS),
    *(sep.join(DIGITS) for sep in ("#", "?", "/")),
    PIECES[0],
    f"{PIECES[0]}#",  # ends with the special character
    f"?{PIECES[0]}",  # starts with it
]

SHAPES = [
    "ws://alice:{pw}@127.0.0.1:1/",
    "wss://alice:{pw}@127.0.0.1:1/path?q=1",
    "WS://alice:{pw}@127.0.0.1:1/",
    "ws://alice:{pw}@[::1]:1/",
    "ws://alice:{pw}@name.test:1/",
    "ws://:{pw}@127.0.0.1:1/",
    "ws://al%40ice:{pw}@127.0.0.1:1/",
    "ws://alice:{pw}@127.0.0.1:1/users/@me",
    "alice:{pw}@127.0.0.1:1/",
    "//alice:{pw}@127.0.0.1:1/",
    "http://alice:{pw}@127.0.0.1:1/",
    "ws:/alice:{pw}@127.0.0.1:1/",
    "ws://alice:{pw}@127.0.0.1:99999/",
    "ws://alice:{pw}@127.0.0.1:port/",
    "ws://alice:{pw}@127.0.0.1:0/",
    "ws://alice:{pw}@127.0.0.1:1/#fragment",
    "ws://alice:{pw}@/",
    "ws://alice:{pw}@[::1/",
    "ws://alice:{pw}@127.0.0.1:1/a b",
    " ws://alice:{pw}@127.0.0.1:1/",
    "ws://alice:{pw}@127.0.0.1:1/\n",
    "ws://alice:{pw}@h\u00e9llo.test:1/",
]


def secrets_of(password: str) -> list[str]:
    """The pieces of ``password`` that must never be shown."""
    return [piece for piece in (*PIECES, *DIGITS) if piece in password]


def assert_hidden(text: str, password: str, where: str = "") -> None:
    for piece in secrets_of(password):
        assert piece not in text, f"{piece!r} of {password!r} shown {where}: {text!r}"


def slow_but(keep: Iterable[object], values: Iterable[object]) -> list[Any]:
    """``values`` as parameters: those in ``keep`` by default, the others under -m slow."""
    kept = list(keep)
    return [
        value if value in kept else pytest.param(value, marks=pytest.mark.slow) for value in values
    ]


def urls(password: str) -> Iterator[str]:
    for shape in SHAPES:
        yield shape.format(pw=password)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name resolves to 127.0.0.1; IP literals as usual; no DNS query."""
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, family: int = 0, type: int = 0, *args: Any) -> Any:
        try:
            return real(host, port, family, type, 0, socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError):
            return real("127.0.0.1", port, family, type, 0, socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def exception_text(exc: BaseException) -> str:
    """Everything an exception may show: message, repr, arguments, chained exceptions.

    Not the source lines of a traceback: the test's own lines hold the URL.
    """
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(seen.args)]
        texts += traceback.format_exception_only(type(seen), seen)
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


# ------------------------------------------------------------------- redact_url


@pytest.mark.parametrize("password", PASSWORDS)
def test_redact_url_hides_every_password(password: str) -> None:
    for url in urls(password):
        shown = redact_url(url)
        assert_hidden(shown, password, f"by redact_url({url!r})")
        assert "***" in shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://alice:s3cret@host/", "ws://alice:***@host/"),
        ("ws://alice:1234#5678@127.0.0.1:1/", "ws://alice:***@127.0.0.1:1/"),
        ("wss://alice:a/b?c@host:8443/p?q", "wss://alice:***@host:8443/p?q"),
        ("ws://:pw@host/", "ws://:***@host/"),
        ("ws://alice:@host/", "ws://alice:***@host/"),
        ("alice:pw@host/", "***@host/"),
        ("ws://corp/alice:pw@host/", "ws://***@host/"),
        # No password: unchanged.
        ("ws://alice@host/", "ws://alice@host/"),
        ("ws://host:8080/path", "ws://host:8080/path"),
        ("ws://[::1]:8080/", "ws://[::1]:8080/"),
        ("", ""),
        # An "@" in the path cannot be told from a password with a "/": over-redacted.
        ("wss://host:9443/ws/btc@trade", "wss://host:***@trade"),
    ],
)
def test_redact_url_examples(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# ------------------------------------------------------------- client functions


def client_calls(url: str) -> dict[str, Callable[[], object]]:
    def open_url() -> None:
        with syncws.open_websocket_url(url, connect_timeout=WAIT):
            pass

    def callback_client() -> None:
        syncws.CallbackClient(url, connect_timeout=WAIT).run_forever()

    return {
        "connect": lambda: syncws.connect(url, connect_timeout=WAIT),
        "connect_websocket_url": lambda: syncws.connect_websocket_url(url, connect_timeout=WAIT),
        "open_websocket_url": open_url,
        "CallbackClient": callback_client,
    }


@pytest.mark.parametrize("password", PASSWORDS)
def test_client_errors_and_logs_never_show_the_password(
    password: str, resolver: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="syncws")
    for url in urls(password):
        for name, call in client_calls(url).items():
            with pytest.raises((OSError, ValueError, syncws.WebSocketError)) as excinfo:
                call()
            assert_hidden(exception_text(excinfo.value), password, f"by {name}({url!r})")
        client = syncws.CallbackClient(url)
        assert_hidden(repr(client), password, "in the repr of CallbackClient")
    assert_hidden(caplog.text, password, "in the logs")


def test_the_example_of_the_report() -> None:
    with pytest.raises(ValueError) as excinfo:
        syncws.connect("ws://alice:1234#5678@127.0.0.1:1/")
    assert "alice:***@" in str(excinfo.value)
    assert "1234" not in exception_text(excinfo.value)
    assert "5678" not in exception_text(excinfo.value)


PASSWORD = f"{PIECES[0]}#{PIECES[1]}"
ENCODED = f"{PIECES[0]}%23{PIECES[1]}"  # The same password, percent-encoded: valid.


@pytest.fixture
def auth_echo(syncws_server: Callable[..., SyncwsServer]) -> SyncwsServer:
    return syncws_server(
        server_echo, process_request=syncws.basic_auth(credentials=("alice", PASSWORD))
    )


def test_connections_and_refusals_never_show_the_password(
    auth_echo: SyncwsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    with syncws.connect(auth_echo.url.replace("ws://", f"ws://alice:{ENCODED}@")) as ws:
        ws.send_message("hi")
        assert ws.get_message(timeout=WAIT) == "hi"
        texts += [repr(ws), str(ws), str(ws.remote), str(ws.local)]
    wrong = auth_echo.url.replace("ws://", f"ws://alice:{PIECES[1]}{PIECES[0]}@")
    with pytest.raises(syncws.ConnectionRejected) as excinfo:
        syncws.connect(wrong)
    texts.append(exception_text(excinfo.value))
    everything = "\n".join([*texts, caplog.text])
    assert_hidden(everything, PASSWORD)
    assert base64.b64encode(f"alice:{PASSWORD}".encode()).decode() not in everything


def test_timeouts_and_tls_errors_never_show_the_password(
    raw_peer: Callable[..., RawPeer],
    syncws_server: Callable[..., SyncwsServer],
    tls_server_context: ssl.SSLContext,
) -> None:
    peer = raw_peer(handshake=SILENT)
    with pytest.raises(syncws.ConnectionTimeout) as timeout:
        syncws.connect(f"ws://alice:{ENCODED}@127.0.0.1:{peer.port}/", connect_timeout=0.2)
    assert_hidden(exception_text(timeout.value), PASSWORD)
    srv = syncws_server(server_echo, ssl_context=tls_server_context)
    with pytest.raises(ssl.SSLCertVerificationError) as untrusted:
        syncws.connect(f"wss://alice:{ENCODED}@127.0.0.1:{srv.port}/")
    assert_hidden(exception_text(untrusted.value), PASSWORD)


# --------------------------------------------------------------- command line


def cli_runs(url: str) -> list[list[str]]:
    """Every command, given ``url`` where it takes one and where it does not."""
    return [
        ["connect", url, "--timeout", "5"],
        ["bench", url, "--timeout", "5"],
        [url],  # The command left out.
        ["connect", url, url],
        ["connect", "--timeout", url, "ws://127.0.0.1:1/"],
        [f"--timeout={url}"],
        ["bench", f"--count={url}", "ws://127.0.0.1:1/"],
        ["serve", "--port", url],
        ["echo-server", "--port", url],
        ["demo", url],
    ]


# Every password by default for redact_url and the client; for the command line (about
# 0.2 s each), a few that break a URL in different ways; the others under -m slow.
CLI_PASSWORDS = [
    f"{PIECES[0]}#{PIECES[1]}",
    f"{PIECES[0]}@{PIECES[1]}",
    f"{PIECES[0]} {PIECES[1]}",
    f"{PIECES[0]}%23{PIECES[1]}",
    f"{DIGITS[0]}#{DIGITS[1]}",
    f"?{PIECES[0]}",
]


@pytest.mark.parametrize("password", slow_but(CLI_PASSWORDS, PASSWORDS))
def test_cli_never_shows_the_password(
    password: str, resolver: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in urls(password):
        # The runs that reach the client, and the two ways argparse quotes arguments
        # (the child-process test below runs every command).
        for argv in [run for run in cli_runs(url) if run[0] in ("connect", "bench", url)]:
            assert main(argv) in (1, 2), argv
            out, err = capsys.readouterr()
            assert_hidden(out + err, password, f"by syncws {argv}")


CHILD_URL = f"ws://alice:{DIGITS[0]}#{PIECES[0]}/{PIECES[1]}@127.0.0.1:1/"
# By default: connect, and the runs that test_cli_never_shows_the_password does not make
# in-process (the --timeout= option, serve, echo-server, demo); the others under -m slow.
CHILD_RUNS = [
    run
    for run in cli_runs(CHILD_URL)
    if run[0] not in ("connect", "bench", CHILD_URL) or run == cli_runs(CHILD_URL)[0]
]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
@pytest.mark.parametrize("argv", slow_but(CHILD_RUNS, cli_runs(CHILD_URL)))
def test_every_command_in_a_child_process(argv: list[str]) -> None:
    with Cli(*argv) as child:
        assert child.wait() in (1, 2)
    password = f"{DIGITS[0]}#{PIECES[0]}/{PIECES[1]}"
    assert_hidden(child.output + child.errors, password, f"by syncws {argv}")
    assert "***" in child.errors
    no_traceback(child)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
@pytest.mark.parametrize("command", ["connect", "bench"])
def test_connected_line_and_summary_hide_the_password(command: str, auth_echo: Any) -> None:
    url = auth_echo.url.replace("ws://", f"ws://alice:{ENCODED}@")
    args = ["--wait", "0"] if command == "connect" else ["--count", "3", "--throughput-count", "0"]
    with Cli(command, url, *args) as child:
        child.close_stdin()
        assert child.wait() == 0, child.errors
    assert_hidden(child.output + child.errors, PASSWORD)
    assert "alice:***@" in child.output + child.errors
    no_traceback(child)


# -------------------------------------------------------------------- examples


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
@pytest.mark.parametrize("script", ["echo_client.py", "callback_client.py", "gui_client.py"])
def test_examples_never_show_the_password(script: str) -> None:
    if script == "gui_client.py":
        pytest.importorskip("tkinter", reason="the GUI client needs tkinter")
    args = ["--attempts", "1"] if script == "callback_client.py" else []
    with run_example(script, f"ws://alice:{PASSWORD}@127.0.0.1:1/", *args) as child:
        assert child.wait(WAIT) == 1, child.errors
    assert_hidden(child.output + child.errors, PASSWORD)
    assert "alice:***@" in child.errors


def test_callback_example_connected_line(auth_echo: SyncwsServer) -> None:
    url = auth_echo.url.replace("ws://", f"ws://alice:{ENCODED}@")
    with run_example("callback_client.py", url, "one", "--count", "1") as child:
        assert child.wait(WAIT) == 0, child.errors
    assert "connected to ws://alice:***@" in child.errors
    assert_hidden(child.output + child.errors, PASSWORD)
