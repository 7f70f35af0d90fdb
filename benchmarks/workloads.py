"""The workloads: each runs one sample for one peer against a fresh server process."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import ROOT, TIMEOUT
from .clients import Conn, Peer, open_conn
from .payloads import TEXT_32, CountingProxy, json_messages
from .servers import ServerProcess
from .sysinfo import process_stats


@dataclass(frozen=True)
class Params:
    """Message and connection counts of one sample."""

    echo: int
    pipelined: int
    bulk_64k: int
    bulk_1m: int
    handshakes: int
    k_100: int  # round trips per connection with 100 connections
    k_500: int
    idle: int
    deflate: int
    repeat: int


FULL = Params(
    echo=5000,
    pipelined=50_000,
    # About half a second per sample at 400-800 MB/s: shorter samples (400 and 40)
    # varied from one run to the next by a factor of two.
    bulk_64k=4000,
    bulk_1m=300,
    handshakes=500,
    k_100=50,
    k_500=10,
    idle=2000,
    deflate=400,
    repeat=5,
)
QUICK = Params(
    echo=1000,
    pipelined=10_000,
    bulk_64k=400,
    bulk_1m=30,
    handshakes=100,
    k_100=10,
    k_500=3,
    idle=200,
    deflate=60,
    repeat=1,
)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    chart: bool = True  # shown in ratios.png


Sample = dict[str, float]


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    metrics: tuple[Metric, ...]
    run: Callable[[Peer, Params], Sample]
    #: A reason to skip a peer, or None.
    skip: Callable[[Peer], str | None] = lambda peer: None


def _server(peer: Peer, compression: bool = False) -> ServerProcess:
    """Start the peer's server process (a syncws worker pool for ``peer.workers`` > 1)."""
    return ServerProcess(peer.server, compression=compression, workers=peer.workers)


@contextlib.contextmanager
def _connection(peer: Peer, port: int, compression: bool = False) -> Iterator[Conn]:
    conn = open_conn(peer.client, port, compression)
    try:
        yield conn
    finally:
        conn.close()


def _echo(conn: Conn, message: str | bytes, count: int) -> None:
    for _ in range(count):
        conn.send(message)
        reply = conn.recv()
        if len(reply) != len(message):
            raise RuntimeError(f"echo of {len(message)} bytes came back as {len(reply)}")


def run_echo(peer: Peer, params: Params) -> Sample:
    with _server(peer) as server, _connection(peer, server.port) as conn:
        _echo(conn, TEXT_32, params.echo // 10)  # warmup
        send, recv, clock = conn.send, conn.recv, time.perf_counter_ns
        latencies = []
        start = clock()
        for _ in range(params.echo):
            t0 = clock()
            send(TEXT_32)
            recv()
            latencies.append(clock() - t0)
        elapsed = (clock() - start) / 1e9
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"rate": params.echo / elapsed, "p50": cuts[49] / 1000, "p99": cuts[98] / 1000}


def _pipeline(conn: Conn, count: int) -> float:
    start = time.perf_counter()
    conn.send(f"count {count}")
    for _ in range(count):
        conn.send(TEXT_32)
    reply = conn.recv()
    elapsed = time.perf_counter() - start
    if reply not in ("done", b"done"):
        raise RuntimeError(f"expected 'done', got {reply!r:.40}")
    return elapsed


def run_pipelined(peer: Peer, params: Params) -> Sample:
    with _server(peer) as server, _connection(peer, server.port) as conn:
        _pipeline(conn, params.pipelined // 10)  # warmup
        return {"rate": params.pipelined / _pipeline(conn, params.pipelined)}


def _bulk(conn: Conn, size: int, count: int) -> float:
    payload = os.urandom(size)
    _echo(conn, payload, max(2, count // 10))  # warmup
    start = time.perf_counter()
    _echo(conn, payload, count)
    return size * count / (time.perf_counter() - start) / 1e6


def run_bulk(peer: Peer, params: Params) -> Sample:
    with _server(peer) as server, _connection(peer, server.port) as conn:
        return {
            "mb_64k": _bulk(conn, 65536, params.bulk_64k),
            "mb_1m": _bulk(conn, 2**20, params.bulk_1m),
        }


def run_handshake(peer: Peer, params: Params) -> Sample:
    with _server(peer) as server:
        for _ in range(params.handshakes // 10):  # warmup
            open_conn(peer.client, server.port).close()
        start = time.perf_counter()
        for _ in range(params.handshakes):
            open_conn(peer.client, server.port).close()
        return {"rate": params.handshakes / (time.perf_counter() - start)}


def _concurrent(peer: Peer, connections: int, k: int) -> float:
    """Total round trips/s of ``connections`` threads, each doing ``k`` round trips."""
    with _server(peer) as server:
        conns: list[Conn] = []
        try:
            for _ in range(connections):
                conns.append(open_conn(peer.client, server.port))
            barrier = threading.Barrier(connections + 1, timeout=TIMEOUT)
            finished = [0.0] * connections
            errors: list[BaseException] = []

            def worker(index: int) -> None:
                try:
                    barrier.wait()
                    _echo(conns[index], TEXT_32, k)
                    finished[index] = time.perf_counter()
                except BaseException as exc:
                    errors.append(exc)

            threads = [
                threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)
            ]
            for thread in threads:
                thread.start()
            barrier.wait()
            start = time.perf_counter()
            deadline = start + TIMEOUT * 2
            for thread in threads:
                thread.join(max(0.0, deadline - time.perf_counter()))
            if errors:
                raise errors[0]
            if any(thread.is_alive() for thread in threads):
                raise TimeoutError("round trips did not finish in time")
            return connections * k / (max(finished) - start)
        finally:
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.close()


def run_concurrency(peer: Peer, params: Params) -> Sample:
    return {
        "c100": _concurrent(peer, 100, params.k_100),
        "c500": _concurrent(peer, 500, params.k_500),
    }


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """A line of the child's standard output ("" at its end), waiting at most ``timeout``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no answer from the child process within {timeout} s")
    return proc.stdout.readline()


def settled_stats(pid: int) -> dict[str, int]:
    """The process's stats once its thread and fd counts stop changing (at most ~10 s)."""
    stats = process_stats(pid)
    for _ in range(30):
        time.sleep(0.3)
        previous, stats = stats, process_stats(pid)
        if (stats["threads"], stats["fds"]) == (previous["threads"], previous["fds"]):
            break
    return stats


def run_idle(peer: Peer, params: Params) -> Sample:
    count = params.idle
    with _server(peer) as server:
        with _connection(peer, server.port) as conn:  # warm the server up
            _echo(conn, TEXT_32, 10)
        before = settled_stats(server.pid)
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.clients", peer.client, str(server.port), str(count)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = read_line(child, TIMEOUT * 4)
            if not line:
                raise RuntimeError(f"the {peer.client} client process failed")
            client = json.loads(line)
            after = settled_stats(server.pid)  # the server may lag behind the client
        finally:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
            assert child.stdout is not None
            child.stdout.close()
    return {
        "server_rss": (after["rss"] - before["rss"]) / count / 1024,
        "server_threads": (after["threads"] - before["threads"]) / count,
        "server_fds": (after["fds"] - before["fds"]) / count,
        "client_rss": client["rss"] / 1024,
        "client_threads": client["threads"],
    }


def run_deflate(peer: Peer, params: Params) -> Sample:
    messages = json_messages(max(100, params.deflate))
    probe = messages[:50]
    with _server(peer, compression=True) as server:
        # Bytes on the wire: through a byte-counting forwarder, after a warmup.
        with (
            CountingProxy(server.port) as proxy,
            _connection(peer, proxy.port, compression=True) as conn,
        ):
            for message in messages[-10:]:
                _echo(conn, message, 1)
            up, down = proxy.to_server, proxy.to_client
            for message in probe:
                _echo(conn, message, 1)
            up, down = proxy.to_server - up, proxy.to_client - down
        # Throughput: directly connected.
        with _connection(peer, server.port, compression=True) as conn:
            for message in messages[-10:]:
                _echo(conn, message, 1)
            payload = 0
            start = time.perf_counter()
            for i in range(params.deflate):
                message = messages[i % len(messages)]
                _echo(conn, message, 1)
                payload += len(message)
            elapsed = time.perf_counter() - start
    raw = sum(len(message) for message in probe)
    return {
        "mb": payload / elapsed / 1e6,
        "wire_up": up / len(probe),
        "wire_down": down / len(probe),
        "ratio": raw / up,
    }


def _deflate_skip(peer: Peer) -> str | None:
    reasons = {
        "simple-websocket": "its client cannot offer permessage-deflate",
        "websocket-client": "no permessage-deflate support",
        "raw-tcp": "not WebSocket",
    }
    return reasons.get(peer.client)


def _idle_skip(peer: Peer) -> str | None:
    if peer.workers > 1:
        return "measures one server process"
    if peer.server not in (peer.client, "syncws"):
        return "same client as websocket-client, same server as websockets"
    return None


WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "echo",
            "32-byte text echo, one connection, sequential round trips",
            (
                Metric("rate", "echo 32 B", "round trips/s"),
                Metric("p50", "echo 32 B p50 latency", "µs", higher_is_better=False),
                Metric("p99", "echo 32 B p99 latency", "µs", higher_is_better=False, chart=False),
            ),
            run_echo,
        ),
        Workload(
            "pipelined",
            "pipelined one-way 32-byte messages, one reply at the end",
            (Metric("rate", "pipelined 32 B", "messages/s"),),
            run_pipelined,
        ),
        Workload(
            "bulk",
            "binary echo, payload MB/s (10^6 bytes, one direction counted)",
            (Metric("mb_64k", "echo 64 KiB", "MB/s"), Metric("mb_1m", "echo 1 MiB", "MB/s")),
            run_bulk,
        ),
        Workload(
            "handshake",
            "open + close, sequential, one client thread",
            (Metric("rate", "handshakes", "open+close/s"),),
            run_handshake,
        ),
        Workload(
            "concurrency",
            "concurrent connections echoing 32 B, one client thread each; total round trips/s",
            (
                Metric("c100", "100 connections", "round trips/s"),
                Metric("c500", "500 connections", "round trips/s"),
            ),
            run_concurrency,
        ),
        Workload(
            "idle",
            "idle connections: cost per connection (server: its process; client: a child process)",
            (
                Metric("server_rss", "server RSS/conn", "KiB", higher_is_better=False),
                Metric("server_threads", "server threads/conn", "", False, chart=False),
                Metric("server_fds", "server fds/conn", "", False, chart=False),
                Metric("client_rss", "client RSS/conn", "KiB", higher_is_better=False),
                Metric("client_threads", "client threads/conn", "", False, chart=False),
            ),
            run_idle,
            _idle_skip,
        ),
        Workload(
            "deflate",
            "permessage-deflate, 16 KiB JSON text echo (wire bytes counted by a forwarder)",
            (
                Metric("mb", "deflate 16 KiB JSON", "MB/s"),
                Metric("wire_up", "wire bytes/msg, client->server", "B", False, chart=False),
                Metric("wire_down", "wire bytes/msg, server->client", "B", False, chart=False),
                Metric("ratio", "compression ratio (client->server)", "x", chart=False),
            ),
            run_deflate,
            _deflate_skip,
        ),
    )
}
