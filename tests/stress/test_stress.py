"""Load, churn and broadcast stress tests against a syncws server in a child process.

Slow tests (``pytest -m slow tests/stress``); see tests/stress/README.md for what each
one proves and the figures measured. With ``SYNCWS_STRESS_REPORT=<path>`` in the
environment, each test also writes its figures into that JSON file.
"""

from __future__ import annotations

import json
import os
import random
import resource
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MARGIN, UNIT, WAIT

import syncws

from .server_main import broadcast_message, filler

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024

#: Bound of one blocking call while the server is under load.
LOADED = 3 * WAIT
#: The server's disconnect_timeout, so that its shutdown is always bounded.
SERVER_DISCONNECT = WAIT / 2


# ------------------------------------------------------------------ the server process


class ServerProcess:
    """``python -m tests.stress.server_main`` in a child process.

    The child serves until its standard input is closed; :meth:`stop` closes it,
    waits (bounded), and kills the child if it is still running.
    """

    def __init__(self, mode: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        command = [sys.executable, "-m", "tests.stress.server_main", "--mode", mode]
        command += ["--disconnect-timeout", str(SERVER_DISCONNECT)]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.returncode: int | None = None
        self.stopped = False
        self.errors = ""
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + WAIT
        output = b""
        while b"\n" not in output:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(remaining, 0.0))
            chunk = os.read(fd, 4096) if readable else b""
            if not chunk:
                raise AssertionError(f"the server process did not start: {output!r}")
            output += chunk
        words = output.split(b"\n", 1)[0].split()
        assert words[:1] == [b"PORT"], f"unexpected first line: {output!r}"
        return int(words[1])

    def url(self, resource: str) -> str:
        return f"ws://127.0.0.1:{self.port}{resource}"

    def stats(self) -> dict[str, Any]:
        """The server's current figures (the /stats connection included)."""
        with syncws.connect(
            self.url("/stats"), connect_timeout=LOADED, disconnect_timeout=WAIT
        ) as ws:
            figures: dict[str, Any] = json.loads(ws.get_message(timeout=LOADED))
        return figures

    def settled_stats(self, what: str) -> dict[str, Any]:
        """Figures once only the /stats connection is open and two snapshots agree."""
        key = ("threads", "python_threads", "fds", "connections")
        previous = self.stats()
        deadline = time.monotonic() + WAIT
        while True:
            current = self.stats()
            settled = current["connections"] == 1
            if settled and all(current[k] == previous[k] for k in key):
                return current
            assert time.monotonic() < deadline, f"the server did not settle ({what}): {current}"
            previous = current

    def stats_until(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll /stats (bounded) until ``predicate`` holds; return those figures."""
        deadline = time.monotonic() + LOADED
        while True:
            figures = self.stats()
            if predicate(figures):
                return figures
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {figures}"

    def stop(self) -> None:
        """Close stdin, wait for the exit (bounded), kill if needed; keep stderr."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.returncode = self.proc.wait(WAIT + SERVER_DISCONNECT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.seek(0)
        self.errors = self._stderr.read().decode(errors="replace")
        self._stderr.close()

    def check_clean_exit(self) -> None:
        """After :meth:`stop`: exit status 0 and nothing logged at WARNING or above."""
        assert self.returncode == 0, f"server exit status {self.returncode}: {self.errors}"
        assert self.errors == "", f"the server logged: {self.errors}"


@pytest.fixture
def server_process() -> Iterator[Callable[[str], ServerProcess]]:
    """Factory: ``server_process(mode)`` -> a running :class:`ServerProcess`, stopped after."""
    processes: list[ServerProcess] = []

    def start(mode: str) -> ServerProcess:
        process = ServerProcess(mode)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


@pytest.fixture
def fd_limit() -> Iterator[None]:
    """Raise this process's soft limit on open files to the hard limit during the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def report(name: str, figures: dict[str, Any]) -> None:
    """Write ``figures`` under ``name`` into $SYNCWS_STRESS_REPORT, if set (and print them)."""
    path = os.environ.get("SYNCWS_STRESS_REPORT")
    if not path:
        return
    print(f"\n{name}: {json.dumps(figures)}")
    target = Path(path)
    try:
        everything = json.loads(target.read_text())
    except (OSError, ValueError):
        everything = {}
    everything[name] = figures
    target.write_text(json.dumps(everything, indent=2, sort_keys=True) + "\n")


class Workers:
    """Threads running ``fn(index)``; remembers the first exceptions; joins with a bound."""

    def __init__(self, count: int, fn: Callable[[int], Any], on_error: Callable[[], None]) -> None:
        self.results: list[Any] = [None] * count
        self.errors: list[tuple[int, BaseException]] = []
        self._fn = fn
        self._on_error = on_error
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), name=f"stress-client-{i}")
            for i in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, index: int) -> None:
        try:
            self.results[index] = self._fn(index)
        except BaseException as exc:
            with self._lock:
                self.errors.append((index, exc))
            self._on_error()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        alive = [t.name for t in self.threads if t.is_alive()]
        assert alive == [], f"{len(alive)} client threads still running: {alive[:5]}"

    def check(self) -> None:
        if self.errors:
            # A broken barrier in the other threads is only the echo of the first failure.
            real = [e for e in self.errors if not isinstance(e[1], threading.BrokenBarrierError)]
            index, first = (real or self.errors)[0]
            raise AssertionError(
                f"{len(self.errors)} clients failed; client {index}: {first!r}"
            ) from first


def describe(message: str | bytes) -> str:
    kind = "text" if isinstance(message, str) else "binary"
    return f"{kind} of length {len(message)} starting {message[:16]!r}"


# ------------------------------------------------------------- 1,000 concurrent clients

CLIENTS = 1000
MESSAGES = 100
#: Message sizes in bytes, with their weights: mostly small, every frame-length
#: encoding boundary, some 64 KiB and a few 256 KiB (about 5 KiB on average).
SIZES = [0, 1, 125, 126, 127, 500, 1000, 4096, 16384, 65535, 65536, 262144]
WEIGHTS = [8, 8, 8, 8, 8, 40, 40, 12, 6, 2, 2, 1]
WINDOW = 8  # messages in flight per client, below message_queue_size (16)
END = "end of exchange"
CLIENT_STACK = 256 * 1024


def make_message(rng: random.Random, index: int) -> tuple[str | bytes, int]:
    """The next message of a client and its size in bytes (UTF-8 for text).

    Even messages are binary, odd ones text: ASCII then 3-byte characters, so that
    the UTF-8 encoding is exactly the drawn size.
    """
    size = rng.choices(SIZES, WEIGHTS)[0]
    data = rng.randbytes(size)
    if index % 2 == 0:
        return data, size
    wide = size // 6
    return data.hex()[: size - 3 * wide] + "\u4e2d" * wide, size


def exchange(ws: syncws.WebSocketConnection, client: int) -> int:
    """Send MESSAGES messages with WINDOW in flight, check every echo; return the bytes."""
    rng = random.Random(client)
    pending: deque[tuple[int, str | bytes]] = deque()
    total = 0

    def receive() -> None:
        index, expected = pending.popleft()
        got = ws.get_message(timeout=LOADED)
        assert got == expected, (
            f"message {index}: got {describe(got)}, expected {describe(expected)}"
        )

    for index in range(MESSAGES):
        message, size = make_message(rng, index)
        ws.send_message(message, timeout=LOADED)
        pending.append((index, message))
        total += size
        if len(pending) >= WINDOW:
            receive()
    while pending:
        receive()
    # The server echoes in order: anything duplicated would come before this.
    ws.send_message(END, timeout=LOADED)
    got = ws.get_message(timeout=LOADED)
    assert got == END, f"after the last echo: got {describe(got)} (a duplicate?)"
    return total


@pytest.mark.timeout(180)
def test_thousand_concurrent_clients(
    server_process: Callable[[str], ServerProcess], fd_limit: None
) -> None:
    server = server_process("echo")
    baseline = server.settled_stats("baseline")
    times: dict[str, float] = {}

    def barrier(parties: int, name: str) -> threading.Barrier:
        def mark() -> None:
            times.setdefault(name, time.monotonic())

        return threading.Barrier(parties, action=mark)

    start = barrier(CLIENTS, "start")
    connected = barrier(CLIENTS + 1, "connected")
    held = barrier(CLIENTS + 1, "held")
    go = threading.Event()
    release = threading.Event()

    def on_error() -> None:
        for each in (start, connected, held):
            each.abort()

    def client(index: int) -> int:
        start.wait(LOADED)  # connect all together
        with syncws.connect(
            server.url("/echo"), connect_timeout=6 * WAIT, disconnect_timeout=LOADED
        ) as ws:
            connected.wait(6 * WAIT)  # the test reads /stats: 1,000 idle connections
            assert go.wait(LOADED), "not told to go on"
            times.setdefault("go", time.monotonic())
            total = exchange(ws, index)
            held.wait(12 * WAIT)  # the test reads /stats: 1,000 connections after the load
            release.wait(LOADED)
        return total

    def main_wait(barrier: threading.Barrier, timeout: float) -> bool:
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            return False
        return True

    old_stack = threading.stack_size(CLIENT_STACK)
    workers = None
    idle = hold = None
    try:
        workers = Workers(CLIENTS, client, on_error)
        if main_wait(connected, 6 * WAIT):
            idle = server.stats()
            go.set()
            if main_wait(held, 12 * WAIT):
                hold = server.stats()
        go.set()
        release.set()
        workers.join(3 * LOADED)
        workers.check()
        assert idle is not None, "the clients did not connect in time"
        assert hold is not None, "the clients did not finish their exchange in time"
        wall = times["held"] - times["go"]
        after = server.stats_until(
            lambda f: f["connections"] == 1 and f["threads"] == baseline["threads"],
            "every connection to end",
        )
    finally:
        threading.stack_size(old_stack)
        on_error()
        go.set()
        release.set()
        server.stop()
        if workers is not None:
            workers.join(3 * LOADED)
    server.check_clean_exit()

    for figures in (idle, hold):
        opened = figures["connections"] - baseline["connections"]
        assert opened == CLIENTS, f"only {opened} connections open at once: {figures}"
    threads_per_connection = (hold["threads"] - baseline["threads"]) / CLIENTS
    # One handler thread and one reader thread per connection.
    assert threads_per_connection <= 2, hold
    assert after["fds"] == baseline["fds"], (baseline, after)
    volume = sum(workers.results)
    figures = {
        "clients": CLIENTS,
        "messages_per_client": MESSAGES,
        "messages_each_way": CLIENTS * MESSAGES,
        "bytes_each_way": volume,
        "connect_seconds": round(times["connected"] - times["start"], 2),
        "exchange_seconds": round(wall, 2),
        "messages_per_second_each_way": round(CLIENTS * MESSAGES / wall),
        "megabytes_per_second_each_way": round(volume / wall / MIB, 1),
        "server_baseline_rss_mib": round(baseline["rss"] / MIB, 1),
        "server_rss_idle_mib": round(idle["rss"] / MIB, 1),
        "server_rss_idle_per_connection_kib": round(
            (idle["rss"] - baseline["rss"]) / CLIENTS / 1024, 1
        ),
        "server_rss_all_open_mib": round(hold["rss"] / MIB, 1),
        "server_peak_rss_mib": round(hold["hwm"] / MIB, 1),
        "server_peak_rss_per_connection_kib": round(
            (hold["hwm"] - baseline["rss"]) / CLIENTS / 1024, 1
        ),
        "server_rss_all_open_per_connection_kib": round(
            (hold["rss"] - baseline["rss"]) / CLIENTS / 1024, 1
        ),
        "server_baseline_threads": baseline["threads"],
        "server_threads_all_open": hold["threads"],
        "server_threads_per_connection": threads_per_connection,
        "server_fds_all_open": hold["fds"],
        "server_rss_after_mib": round(after["rss"] / MIB, 1),
    }
    report("thousand_concurrent_clients", figures)


# ------------------------------------------------------------ 10,000 connection cycles

CYCLES = 10_000
WARMUP = 300
CYCLE_MESSAGES: tuple[str | bytes, ...] = ("hello", b"\x00\x01\x02", "x" * 200)


def cycle(url: str) -> None:
    with syncws.connect(url, connect_timeout=LOADED, disconnect_timeout=LOADED) as ws:
        for message in CYCLE_MESSAGES:
            ws.send_message(message, timeout=LOADED)
            got = ws.get_message(timeout=LOADED)
            assert got == message, f"got {describe(got)}, expected {describe(message)}"


@pytest.mark.timeout(150)
def test_ten_thousand_connection_cycles(server_process: Callable[[str], ServerProcess]) -> None:
    server = server_process("echo")
    url = server.url("/echo")
    try:
        for _ in range(WARMUP):
            cycle(url)
        before = server.settled_stats("after the warm-up")
        started = time.monotonic()
        for index in range(CYCLES):
            try:
                cycle(url)
            except Exception as exc:
                raise AssertionError(f"cycle {index} failed: {exc!r}") from exc
        wall = time.monotonic() - started
        after = server.stats_until(
            lambda f: all(f[k] == before[k] for k in ("threads", "fds", "connections")),
            f"the thread and fd counts to come back to {before}",
        )
    finally:
        server.stop()
    server.check_clean_exit()

    assert after["python_threads"] == before["python_threads"], (before, after)
    growth = (after["rss"] - before["rss"]) / before["rss"]
    assert growth < 0.05, f"RSS grew by {growth:.1%}: {before} -> {after}"
    figures = {
        "cycles": CYCLES,
        "warmup_cycles": WARMUP,
        "messages_per_cycle": len(CYCLE_MESSAGES),
        "wall_seconds": round(wall, 2),
        "cycles_per_second": round(CYCLES / wall),
        "server_threads_before_after": [before["threads"], after["threads"]],
        "server_fds_before_after": [before["fds"], after["fds"]],
        "server_rss_before_mib": round(before["rss"] / MIB, 2),
        "server_rss_after_mib": round(after["rss"] / MIB, 2),
        "server_rss_growth_percent": round(100 * growth, 2),
    }
    report("ten_thousand_connection_cycles", figures)


# ------------------------------------------------------- broadcast with non-readers

SUBSCRIBERS = 200
NON_READERS = 10
BROADCAST_MESSAGES = 10_000
BROADCAST_SIZE = 2048
#: syncws.broadcast's timeout: how long a peer that does not read may hold it up.
CUT_OFF_AFTER = 2 * UNIT
NON_READER_RCVBUF = 4096
#: Bound on the server's memory growth during the broadcast.
MAX_GROWTH = 200 * MIB


def read_numbered(ws: syncws.WebSocketConnection, limit: int) -> tuple[int, int | None]:
    """Read numbered broadcast messages until the close; check each one.

    :returns: how many messages arrived (each the next number, whole), and the close code.
    """
    tail = filler(BROADCAST_SIZE)
    expected = 0
    try:
        while True:
            got = ws.get_message(timeout=LOADED)
            assert expected < limit, f"more than {limit} messages"
            assert isinstance(got, bytes), f"message {expected}: {describe(got)}"
            assert got == broadcast_message(expected, BROADCAST_SIZE, tail), (
                f"message {expected}: got {describe(got)}"
            )
            expected += 1
    except syncws.ConnectionClosed as exc:
        return expected, exc.reason.code


def non_reader(port: int, name: str) -> syncws.WebSocketConnection:
    """A subscriber that never reads: a small receive buffer and message queue."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NON_READER_RCVBUF)
        sock.settimeout(LOADED)
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return syncws.wrap_client_socket(
        sock,
        f"127.0.0.1:{port}",
        f"/subscribe?id={name}",
        message_queue_size=1,
        connect_timeout=LOADED,
        disconnect_timeout=WAIT,
    )


@pytest.mark.timeout(240)
def test_broadcast_with_non_readers(server_process: Callable[[str], ServerProcess]) -> None:
    server = server_process("broadcast")
    readers: list[syncws.WebSocketConnection] = []
    stuck: list[syncws.WebSocketConnection] = []
    workers = None
    finished: list[float] = []
    try:
        for index in range(SUBSCRIBERS - NON_READERS):
            readers.append(
                syncws.connect(
                    server.url(f"/subscribe?id=reader-{index}"),
                    connect_timeout=LOADED,
                    disconnect_timeout=WAIT,
                )
            )
        for index in range(NON_READERS):
            stuck.append(non_reader(server.port, f"stuck-{index}"))

        def reader(index: int) -> tuple[int, int | None]:
            outcome = read_numbered(readers[index], BROADCAST_MESSAGES)
            finished.append(time.monotonic())
            return outcome

        workers = Workers(len(readers), reader, lambda: None)
        query = (
            f"count={BROADCAST_MESSAGES}&size={BROADCAST_SIZE}"
            f"&timeout={CUT_OFF_AFTER}&subscribers={SUBSCRIBERS}"
        )
        started = time.monotonic()
        with syncws.connect(
            server.url(f"/start-broadcast?{query}"),
            connect_timeout=LOADED,
            disconnect_timeout=WAIT,
        ) as control:
            summary = json.loads(control.get_message(timeout=12 * WAIT))
        assert "error" not in summary, summary
        workers.join(LOADED)
        workers.check()
        wall = max(finished) - started
        # The non-readers now read what was left for them: a prefix, then the end.
        left = [read_numbered(ws, BROADCAST_MESSAGES) for ws in stuck]
        after = server.settled_stats("after the broadcast")
    finally:
        server.stop()  # first: its shutdown (or death) ends every client connection
        for ws in readers + stuck:
            ws.close()
        if workers is not None:
            workers.join(LOADED)
    server.check_clean_exit()

    readers_outcome = set(workers.results)
    assert readers_outcome == {(BROADCAST_MESSAGES, 1000)}, readers_outcome
    cut = {entry["id"]: entry for entry in summary["cut_off"]}
    assert sorted(cut) == sorted(f"stuck-{i}" for i in range(NON_READERS)), summary["cut_off"]
    assert {entry["code"] for entry in cut.values()} == {1006}, summary["cut_off"]
    assert summary["closed"] == SUBSCRIBERS - NON_READERS
    for index, (count, code) in enumerate(left):
        assert code == 1006, f"stuck-{index} saw close code {code}"
        assert count <= cut[f"stuck-{index}"]["index"], (index, count, cut)
    # Readers are held up only by the calls that wait for a peer that does not read,
    # never for longer than the timeout: each non-reader holds up at most the call that
    # cuts it off, and at most one call whose message its kernel buffer took late but
    # in time ("squeezed through": the buffer grows while a peer's window is closed).
    # A call that waited for the socket's writable signal alone used to squeeze
    # through only at the deadline, every time (see
    # test_broadcast.py::test_a_full_socket_that_takes_bytes_again_is_not_waited_for).
    calls = summary["cutting_calls"]
    squeezed = summary["slow_clean_calls"]
    assert summary["slowest_clean_call"] < CUT_OFF_AFTER + MARGIN, json.dumps(summary)
    assert all(call["seconds"] < CUT_OFF_AFTER + MARGIN for call in calls), calls
    assert len(calls) <= NON_READERS, calls
    assert len(squeezed) <= NON_READERS, squeezed
    stalled = sum(call["seconds"] for call in calls + squeezed)
    reader_limited = summary["seconds"] - stalled
    memory = summary["memory"]
    growth = memory["peak"] - memory["before"]
    assert memory["peak_reset"], "could not reset the peak RSS (/proc/self/clear_refs)"
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB: {memory}"
    delivered = (SUBSCRIBERS - NON_READERS) * BROADCAST_MESSAGES
    figures = {
        "subscribers": SUBSCRIBERS,
        "non_readers": NON_READERS,
        "messages": BROADCAST_MESSAGES,
        "message_size": BROADCAST_SIZE,
        "cut_off_timeout": CUT_OFF_AFTER,
        "wall_seconds": round(wall, 2),
        "broadcast_seconds": round(summary["seconds"], 2),
        "reader_limited_seconds": round(reader_limited, 2),
        "cutting_calls": len(calls),
        "squeezed_through_calls": len(squeezed),
        "stalled_seconds": round(stalled, 2),
        "cut_off_at_message": sorted({entry["index"] for entry in cut.values()}),
        "squeezed_through_at_message": [call["index"] for call in squeezed],
        "slowest_clean_call_seconds": round(summary["slowest_clean_call"], 3),
        "closing_seconds": round(summary["closing_seconds"], 2),
        "messages_delivered": delivered,
        "messages_per_second_delivered": round(delivered / wall),
        "megabytes_per_second_delivered": round(delivered * BROADCAST_SIZE / wall / MIB, 1),
        "server_rss_before_mib": round(memory["before"] / MIB, 1),
        "server_peak_rss_mib": round(memory["peak"] / MIB, 1),
        "server_rss_after_broadcast_mib": round(memory["after"] / MIB, 1),
        "server_peak_growth_mib": round(growth / MIB, 1),
        "server_rss_settled_mib": round(after["rss"] / MIB, 1),
        "non_reader_messages_before_end": [count for count, _ in left],
    }
    report("broadcast_with_non_readers", figures)
