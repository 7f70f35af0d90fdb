"""``python -m syncws bench`` against echo servers, and the command line as a whole."""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import Cli, Terminal, no_traceback
from helpers import WAIT, SyncwsServer, server_echo

from syncws.cli.bench import percentile

Server = Callable[..., SyncwsServer]


def test_bench_prints_a_summary(syncws_server: Server) -> None:
    srv = syncws_server(server_echo)
    with Cli(
        "bench", srv.url, "--count", "20", "--throughput-count", "5", "--throughput-size", "5000"
    ) as child:
        assert child.wait() == 0, child.errors
    out = child.output
    assert "round trips    20 x 32 bytes" in out
    assert "latency p50" in out
    assert "latency p99" in out
    assert "throughput     5 x 5000 bytes" in out
    assert "MB/s" in out
    assert child.errors == ""  # No progress bar when standard error is a pipe.


def test_bench_text_without_throughput(syncws_server: Server) -> None:
    srv = syncws_server(server_echo)
    with Cli("bench", srv.url, "--count", "5", "--text", "--throughput-count", "0") as child:
        assert child.wait() == 0, child.errors
    assert "text messages" in child.output
    assert "throughput" not in child.output


def test_bench_detects_a_server_that_does_not_echo(syncws_server: Server) -> None:
    def wrong(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        for _ in ws:
            ws.send_message("something else")

    srv = syncws_server(wrong)
    with Cli("bench", srv.url, "--count", "3") as child:
        assert child.wait() == 1
    assert "error: the server did not send the message back unchanged" in child.errors
    no_traceback(child)


def test_bench_times_out_when_nothing_comes_back(syncws_server: Server) -> None:
    def silent(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        srv.release.wait(WAIT)
        ws.close()

    srv = syncws_server(silent)
    with Cli("bench", srv.url, "--count", "3", "--timeout", "0.2") as child:
        assert child.wait() == 1
    assert child.errors.startswith("error: ")
    no_traceback(child)


def test_bench_says_which_message_size_limit_tripped(syncws_server: Server) -> None:
    # The server keeps the library's limit, 1 MiB: it closes with 1009. The error used
    # to be "connection closed: 1009" and nothing more.
    srv = syncws_server(server_echo)
    with Cli(
        "bench", srv.url, "--count", "2", "--throughput-count", "2", "--throughput-size", "2000000"
    ) as child:
        assert child.wait() == 1
    assert child.errors.startswith("error: connection closed: 1009"), child.errors
    assert "the server's limit on message size is below the 2000000 bytes of --throughput-size" in (
        child.errors
    )
    assert len(child.errors.splitlines()) == 1, child.errors
    no_traceback(child)


def test_bench_max_size_sets_the_client_limit(syncws_server: Server) -> None:
    # A server that sends back each message doubled: the client's own limit, raised
    # with --max-size, decides whether it takes the answer.
    def doubler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        for message in ws:
            ws.send_message(message * 2)

    srv = syncws_server(doubler, max_message_size=4_000_000)
    args = ("bench", srv.url, "--count", "1", "--size", "1500000", "--throughput-count", "0")
    with Cli(*args) as child:
        assert child.wait() == 1
    # By default the client takes up to the largest message it sends.
    assert "the server sent a message over this client's limit of 1500000 bytes" in child.errors
    with Cli(*args, "--max-size", "3000000") as child:
        assert child.wait() == 1
    # The doubled message came in: the client's limit let it through.
    assert "error: the server did not send the message back unchanged" in child.errors


def test_progress_bar_on_a_terminal_and_ctrl_c(syncws_server: Server) -> None:
    srv = syncws_server(server_echo)
    with Terminal("bench", srv.url, "--count", "10000000") as term:
        # The bar shows up once the run has taken half a second.
        term.expect(r"round trips +\[#*\.+\] +\d+%")
        term.proc.send_signal(signal.SIGINT)
        assert term.wait() == 130, term.output
    assert "Traceback" not in term.output
    assert "latency p50" not in term.output


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


# ----------------------------------------------------------------- the command line itself


def test_help_lists_every_command() -> None:
    with Cli("--help") as child:
        assert child.wait() == 0
    for command in ("connect", "serve", "bench", "demo", "echo-server"):
        assert command in child.output
    assert "python -m syncws" in child.output


def console_script() -> str | None:
    """The ``syncws`` command installed beside this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "syncws"
    return str(beside) if beside.exists() else shutil.which("syncws")


@pytest.mark.skipif(console_script() is None, reason="syncws is not installed")
def test_console_script() -> None:
    program = console_script()
    assert program is not None
    with Cli("--help", program=program) as child:
        assert child.wait() == 0
    assert child.output.startswith("usage: syncws ")


def test_demo_runs_without_a_command() -> None:
    with Cli() as child:
        assert child.wait(3 * WAIT) == 0, child.errors
    assert "server -> client: 'hello'" in child.output
