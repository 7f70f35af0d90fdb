"""Load, churn and broadcast stress tests against a syncws server in a child process.

Slow tests (``pytest -m slow tests/stress``); see tests/stress/README.md for what each
one proves and the figures measured. With ``SYNCWS_STRESS_REPORT=<path>`` in the
environment, each test also writes its figures into that JSON file.
"""

from __future__ import annotations

import collections
import json
import os
import random
import resource
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MARGIN, UNIT, WAIT, made_for_the_test, wait_for
from rawpeer import upgrade_request

import syncws
from syncws.server import ACCEPT_PAUSE_MAX, WARNING_INTERVAL

from .process import LOADED, ServerProcess, cpu_seconds
from .server_main import broadcast_message, filler

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


# ------------------------------------------------------------------ the server process


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``server_process(mode, *options)`` -> a running :class:`ServerProcess`,
    stopped after the test."""
    yield from made_for_the_test(ServerProcess, ServerProcess.stop)


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


# ------------------------------------------------------------- out of file descriptors

#: The server's soft limit on open files, and the clients holding connections: about
#: 55 are served, the others wait in the backlog while accept() fails with EMFILE.
FD_LIMIT = 64
FD_CLIENTS = 100
#: How long the server stays out of descriptors.
FD_EPISODE = 60.0
#: Bounds held meanwhile: CPU (a fraction of one core) and warnings per minute.
FD_MAX_CPU = 0.02
FD_MAX_WARNINGS_PER_MINUTE = 60 / WARNING_INTERVAL + 1


def hold_clients(server: ServerProcess, count: int, *, request: bool) -> list[socket.socket]:
    """``count`` raw clients that stay connected, having sent an upgrade request to /echo
    (``request``) or nothing."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", server.port), LOADED))
            if request:
                socks[-1].sendall(upgrade_request(f"127.0.0.1:{server.port}", "/echo"))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def log_count(server: ServerProcess, prefix: str, text: str) -> int:
    return sum(1 for line in server.log_lines() if line.startswith(prefix) and text in line)


def echo_once(server: ServerProcess) -> None:
    with syncws.connect(server.url("/echo"), connect_timeout=LOADED) as ws:
        ws.send_message("still serving")
        assert ws.get_message(timeout=LOADED) == "still serving"


@pytest.mark.timeout(180)
def test_out_of_file_descriptors_for_a_minute(
    server_process: Callable[..., ServerProcess],
) -> None:
    # Without keepalive: the held clients never answer pings, and the default keepalive
    # would drop them (freeing descriptors) in the middle of the episode.
    server = server_process(
        "echo", "--max-fds", str(FD_LIMIT), "--log-level", "INFO", "--no-keepalive"
    )
    socks = hold_clients(server, FD_CLIENTS, request=True)
    try:
        wait_for(
            lambda: log_count(server, "WARNING", "cannot accept clients"),
            LOADED,
            "the server to run out of descriptors",
        )
        lines_before = len(server.log_lines())
        cpu_before, started = cpu_seconds(server.pid), time.monotonic()
        threading.Event().wait(FD_EPISODE)  # the episode measured
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds(server.pid) - cpu_before) / elapsed
        lines = server.log_lines()[lines_before:]
        warnings = [line for line in lines if line.startswith("WARNING")]
        # Let the clients go: descriptors come free, and a new client is served.
        released = time.monotonic()
        while socks:
            socks.pop().close()
        echo_once(server)
        recovery = time.monotonic() - released
        # Out of descriptors again, then shut down: the accept loop does not hold it up.
        # (These clients send nothing: shutdown wakes handshakes in progress at once,
        # where open connections would wait for close frames they never get.)
        socks = hold_clients(server, FD_CLIENTS, request=False)
        wait_for(
            lambda: (
                log_count(server, "INFO", "accepting clients again") >= 1
                and log_count(server, "WARNING", "cannot accept clients") >= 1 + len(warnings)
            ),
            LOADED,
            "the server to run out of descriptors again",
        )
        stopping = time.monotonic()
        server.stop()
        shutdown = time.monotonic() - stopping
    finally:
        for sock in socks:
            sock.close()
        server.stop()
    assert server.returncode == 0, server.errors
    assert "ERROR" not in server.errors and "Traceback" not in server.errors, server.errors
    per_minute = len(warnings) * 60 / elapsed
    figures = {
        "fd_limit": FD_LIMIT,
        "clients": FD_CLIENTS,
        "episode_seconds": round(elapsed, 1),
        "cpu_percent": round(100 * cpu, 2),
        "cpu_percent_bound": 100 * FD_MAX_CPU,
        "warnings_per_minute": round(per_minute, 1),
        "warnings_per_minute_bound": FD_MAX_WARNINGS_PER_MINUTE,
        "log_lines_during_episode": len(lines),
        "recovery_seconds": round(recovery, 2),
        "shutdown_seconds_while_out_of_fds": round(shutdown, 2),
    }
    print(f"\nout of file descriptors: {json.dumps(figures)}")
    report("out_of_file_descriptors", figures)
    assert cpu < FD_MAX_CPU, figures
    assert per_minute <= FD_MAX_WARNINGS_PER_MINUTE, warnings
    assert len(lines) == len(warnings), lines  # nothing else, at any level
    # The pause grows to ACCEPT_PAUSE_MAX: the backlog is served within it, then the
    # new client.
    assert recovery < ACCEPT_PAUSE_MAX + MARGIN, figures
    assert shutdown < MARGIN, figures


# --------------------------------------------------------------- threads cannot start

#: Client threads, and the connection attempts each makes while threads cannot start
#: in the server, then once they can again.
THREAD_CLIENTS = 50
THREAD_ATTEMPTS = 4


@pytest.mark.timeout(120)
def test_threads_that_cannot_start(server_process: Callable[..., ServerProcess]) -> None:
    server = server_process("echo", "--log-level", "INFO")
    answer = server.command("threads off")
    if answer != "threads off":
        pytest.skip(f"cannot make Thread.start() fail here: {answer}")

    def refused(index: int) -> list[str]:
        outcomes = []
        for _ in range(THREAD_ATTEMPTS):
            started = time.monotonic()
            try:
                syncws.connect(server.url("/echo"), connect_timeout=LOADED).close()
                outcomes.append("connected")
            except syncws.ConnectionRejected as exc:
                outcomes.append(str(exc.status_code))
            except syncws.ConnectionTimeout:
                outcomes.append("timeout")
            except syncws.HandshakeError:
                outcomes.append("closed")
            except OSError:
                outcomes.append("reset")
            assert time.monotonic() - started < MARGIN, outcomes
        return outcomes

    def served(index: int) -> int:
        for _ in range(THREAD_ATTEMPTS):
            echo_once(server)
        return THREAD_ATTEMPTS

    started = time.monotonic()
    refusing = Workers(THREAD_CLIENTS, refused, lambda: None)
    refusing.join(LOADED)
    refusing.check()
    refusal_seconds = time.monotonic() - started
    warnings = log_count(server, "WARNING", "cannot start a thread")
    assert server.command("threads on") == "threads on"
    serving = Workers(THREAD_CLIENTS, served, lambda: None)
    serving.join(LOADED)
    serving.check()
    wait_for(
        lambda: log_count(server, "INFO", "threads start again"),
        LOADED,
        "the server to log that threads start again",
    )
    server.stop()
    assert server.returncode == 0, server.errors
    assert "ERROR" not in server.errors and "Traceback" not in server.errors, server.errors
    outcomes = collections.Counter(o for result in refusing.results for o in result)
    figures = {
        "attempts_while_threads_cannot_start": THREAD_CLIENTS * THREAD_ATTEMPTS,
        "outcomes": dict(outcomes),
        "seconds": round(refusal_seconds, 2),
        "warnings": warnings,
        "served_after_recovery": sum(serving.results),
    }
    print(f"\nthreads that cannot start: {json.dumps(figures)}")
    report("threads_that_cannot_start", figures)
    # Every client got an answer at once: a 503, or (over _MAX_REFUSED answers
    # pending) the end of the connection; none connected, none waited.
    assert set(outcomes) <= {"503", "closed", "reset"}, outcomes
    assert outcomes["503"] > 0, outcomes
    assert warnings <= 1 + refusal_seconds / WARNING_INTERVAL, warnings
    assert sum(serving.results) == THREAD_CLIENTS * THREAD_ATTEMPTS
