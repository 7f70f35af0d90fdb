"""``python -m benchmarks.deflate_cost [--repeat N] [--quick] [--out DIR]``: what compression costs.

Four configurations, each library on both ends (its client against its server):

* ``syncws off``: syncws with no compression (its default);
* ``syncws deflate``: syncws with ``compression="deflate"`` on both sides;
* ``websockets off``: websockets with ``compression=None`` on both sides;
* ``websockets default``: websockets with no compression argument at all, so that its
  own default applies (permessage-deflate with its default settings).

Everything else is configured as in the rest of the suite (no keepalive pings, a 4 MiB
message size limit). For each configuration and repeat, in a random order within the
repeat:

* CPU per round trip: a fresh server process and one connection echo 32-byte text, then
  2 KiB and 16 KiB JSON-like text (different documents, in turn), sequentially. The
  client's CPU is ``time.process_time()`` of this process around the loop; the server's
  is ``utime + stime`` of its process from ``/proc/PID/stat`` before and after.
* Bytes on the wire: 50 more messages of each size through a byte-counting forwarder;
  the ratio is the payload sent divided by the bytes the client wrote (frame headers
  and the opening handshake excluded, as the count starts after it).
* Memory per idle connection: a fresh server process, and N connections opened by a
  child process (``python -m benchmarks.clients``), measured right after the opening
  handshakes and again after one 16 KiB JSON-like message each way on every connection:
  resident memory of each process minus its baseline before the N connections, per
  connection.

Medians over the repeats, with the min-max range, go to ``deflate_cost.md`` and every
sample to ``deflate_cost.json`` in ``benchmarks/results/`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import ROOT, TIMEOUT
from .clients import COMPRESSION_MODES, Conn, open_conn
from .payloads import TEXT_32, CountingProxy, json_messages
from .report import cell, spread, write_results
from .servers import ServerProcess
from .sysinfo import machine_info, raise_fd_limit
from .workloads import read_line, settled_stats

#: The JSON-like message of the memory measurement, and the larger echo (bytes, about).
LARGE = 16384
SMALL = 2048


@dataclass(frozen=True)
class Config:
    """One measured configuration: a library on both ends, compression on, off or default."""

    name: str
    lib: str
    #: ``False`` off, ``True`` asked for, ``None`` no argument (the library's default).
    compression: bool | None

    @property
    def mode(self) -> str:
        """The ``--compression`` value of the idle child (a key of COMPRESSION_MODES)."""
        return next(key for key, value in COMPRESSION_MODES.items() if value is self.compression)


CONFIGS = (
    Config("syncws off", "syncws", False),
    Config("syncws deflate", "syncws", True),
    Config("websockets off", "websockets", False),
    Config("websockets default", "websockets", None),
)


@dataclass(frozen=True)
class Counts:
    """Round trips per sample for each message size, connections, repeats."""

    echo_32: int
    echo_2k: int
    echo_16k: int
    probe: int  # messages per size through the byte-counting forwarder
    idle: int
    repeat: int


# Enough CPU time per loop that /proc's 10 ms ticks stay below about 2 % of the server's.
FULL = Counts(echo_32=10_000, echo_2k=5_000, echo_16k=2_000, probe=50, idle=200, repeat=3)
QUICK = Counts(echo_32=2_000, echo_2k=1_000, echo_16k=300, probe=20, idle=50, repeat=1)

Sample = dict[str, float]

#: Metric key -> (section, column label, unit). The order of the tables' columns.
METRICS: dict[str, tuple[str, str, str]] = {
    "cpu_client_32": ("cpu", "32 B client", "µs"),
    "cpu_server_32": ("cpu", "32 B server", "µs"),
    "cpu_client_2k": ("cpu", "2 KiB JSON client", "µs"),
    "cpu_server_2k": ("cpu", "2 KiB JSON server", "µs"),
    "cpu_client_16k": ("cpu", "16 KiB JSON client", "µs"),
    "cpu_server_16k": ("cpu", "16 KiB JSON server", "µs"),
    "mem_server_idle": ("memory", "server, idle", "KiB"),
    "mem_server_used": ("memory", "server, after 16 KiB each way", "KiB"),
    "mem_client_idle": ("memory", "client, idle", "KiB"),
    "mem_client_used": ("memory", "client, after 16 KiB each way", "KiB"),
    "ratio_2k": ("wire", "2 KiB JSON ratio", "x"),
    "wire_2k": ("wire", "2 KiB JSON bytes/msg", "B"),
    "ratio_16k": ("wire", "16 KiB JSON ratio", "x"),
    "wire_16k": ("wire", "16 KiB JSON bytes/msg", "B"),
    "ratio_32": ("wire", "32 B ratio", "x"),
}
SECTIONS = {
    "cpu": "CPU per round trip (µs; one message each way)",
    "memory": "Memory per connection (KiB of resident memory)",
    "wire": "Bytes on the wire, client to server (compression ratio: payload / wire bytes)",
}

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and of all its threads, dead or alive."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # After the command name: state is field 3 of proc(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / _TICK


def _echo(conn: Conn, messages: Sequence[str], count: int) -> None:
    send, recv = conn.send, conn.recv
    for i in range(count):
        message = messages[i % len(messages)]
        send(message)
        if len(recv()) != len(message):
            raise RuntimeError(f"the echo of a {len(message)}-character message differs")


def _cpu(conn: Conn, server_pid: int, messages: Sequence[str], count: int) -> tuple[float, ...]:
    """Client and server CPU per round trip (µs), and round trips per second."""
    _echo(conn, messages, max(20, count // 10))  # warmup
    server0, client0, wall0 = process_cpu(server_pid), time.process_time(), time.perf_counter()
    _echo(conn, messages, count)
    wall = time.perf_counter() - wall0
    client = time.process_time() - client0
    server = process_cpu(server_pid) - server0
    return client / count * 1e6, server / count * 1e6, count / wall


def _wire(conn: Conn, proxy: CountingProxy, messages: Sequence[str], count: int) -> float:
    """Bytes the client wrote per message (after a warmup of the same messages)."""
    _echo(conn, messages, min(count, 10))
    before = proxy.to_server
    _echo(conn, messages, count)
    return (proxy.to_server - before) / count


def run_cpu(config: Config, counts: Counts) -> Sample:
    small = [TEXT_32]
    medium = json_messages(100, SMALL)
    large = json_messages(100, LARGE)
    sample: Sample = {}
    with ServerProcess(config.lib, compression=config.compression) as server:
        conn = open_conn(config.lib, server.port, config.compression)
        try:
            for key, messages, count in (
                ("32", small, counts.echo_32),
                ("2k", medium, counts.echo_2k),
                ("16k", large, counts.echo_16k),
            ):
                client, served, rate = _cpu(conn, server.pid, messages, count)
                sample[f"cpu_client_{key}"] = client
                sample[f"cpu_server_{key}"] = served
                sample[f"rate_{key}"] = rate
        finally:
            conn.close()
        with CountingProxy(server.port) as proxy:
            conn = open_conn(config.lib, proxy.port, config.compression)
            try:
                for key, messages in (("32", small), ("2k", medium), ("16k", large)):
                    wire = _wire(conn, proxy, messages, counts.probe)
                    payload = sum(len(messages[i % len(messages)]) for i in range(counts.probe))
                    sample[f"wire_{key}"] = wire
                    sample[f"ratio_{key}"] = payload / counts.probe / wire
            finally:
                conn.close()
    return sample


def _child_line(child: subprocess.Popen[str]) -> dict[str, float]:
    line = read_line(child, TIMEOUT * 4)
    if not line:
        raise RuntimeError("the client process failed")
    result: dict[str, float] = json.loads(line)
    return result


def run_memory(config: Config, counts: Counts) -> Sample:
    count = counts.idle
    message = json_messages(1, LARGE)[0]
    with ServerProcess(config.lib, compression=config.compression) as server:
        conn = open_conn(config.lib, server.port, config.compression)  # warm the server up
        try:
            _echo(conn, [message], 3)
        finally:
            conn.close()
        before = settled_stats(server.pid)
        command = [sys.executable, "-m", "benchmarks.clients", config.lib, str(server.port)]
        command += [str(count), "--compression", config.mode, "--message-size", str(LARGE)]
        child = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            client_idle = _child_line(child)
            server_idle = settled_stats(server.pid)
            child.stdin.write("go\n")
            child.stdin.flush()
            client_used = _child_line(child)
            server_used = settled_stats(server.pid)
        finally:
            with contextlib.suppress(OSError):
                child.stdin.close()
            try:
                child.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
            child.stdout.close()
    return {
        "mem_server_idle": (server_idle["rss"] - before["rss"]) / count / 1024,
        "mem_server_used": (server_used["rss"] - before["rss"]) / count / 1024,
        "mem_client_idle": client_idle["rss"] / 1024,
        "mem_client_used": client_used["rss"] / 1024,
        "threads_server_idle": (server_idle["threads"] - before["threads"]) / count,
        "threads_server_used": (server_used["threads"] - before["threads"]) / count,
        "threads_client_idle": client_idle["threads"],
        "threads_client_used": client_used["threads"],
    }


def summarize(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """Metric key -> median, min and max over the samples."""
    keys = sorted({key for sample in samples for key in sample})
    summary = {}
    for key in keys:
        summary[key] = spread([sample[key] for sample in samples if key in sample])
    return summary


def markdown(results: dict[str, object]) -> str:
    machine = results["machine"]
    config = results["config"]
    summaries = results["summary"]
    assert isinstance(machine, dict) and isinstance(config, dict) and isinstance(summaries, dict)
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    spread = config["repeat"] > 1
    lines = [
        f"Run {machine['date']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['python']}; {versions}. `{config['command']}`: median of "
        f"{config['repeat']} repeat(s)" + (", min-max in parentheses" if spread else "") + ". "
        f"Round trips per sample: 32 B {config['echo_32']:,}, 2 KiB {config['echo_2k']:,}, "
        f"16 KiB {config['echo_16k']:,}; {config['idle']:,} connections for memory.",
    ]
    for section, title in SECTIONS.items():
        keys = [key for key, (where, _, _) in METRICS.items() if where == section]
        lines += [
            "",
            f"{title}:",
            "",
            "| configuration | " + " | ".join(METRICS[key][1] for key in keys) + " |",
            "|---|" + "---:|" * len(keys),
        ]
        for name, summary in summaries.items():
            cells = [cell(summary.get(key), spread) for key in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    errors = results.get("errors")
    if isinstance(errors, dict) and errors:
        lines += ["", "Failed samples:"]
        lines += [f"* {name}: {messages[0]}" for name, messages in errors.items()]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.deflate_cost",
        description="CPU and memory cost of permessage-deflate, syncws against websockets.",
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one repeat (~30 s)")
    parser.add_argument("--repeat", type=int, help="repeats (default: 3, quick: 1)")
    parser.add_argument("--idle", type=int, help="connections for memory (default 200, quick 50)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    counts = QUICK if args.quick else FULL
    if args.repeat is not None:
        counts = dataclasses.replace(counts, repeat=args.repeat)
    if args.idle is not None:
        counts = dataclasses.replace(counts, idle=args.idle)
    raise_fd_limit()
    started = time.perf_counter()
    samples: dict[str, list[Sample]] = {config.name: [] for config in CONFIGS}
    errors: dict[str, list[str]] = {}
    for repeat in range(counts.repeat):
        for config in random.sample(CONFIGS, len(CONFIGS)):
            sys.stderr.write(f"[{repeat + 1}/{counts.repeat}] {config.name}\n")
            try:
                sample = run_cpu(config, counts)
                sample.update(run_memory(config, counts))
            except Exception as exc:
                errors.setdefault(config.name, []).append(f"{type(exc).__name__}: {exc}")
                sys.stderr.write(f"  failed: {type(exc).__name__}: {exc}\n")
                continue
            samples[config.name].append(sample)
    command = "python -m benchmarks.deflate_cost" + "".join(
        f" {arg}" for arg in (argv if argv is not None else sys.argv[1:])
    )
    results: dict[str, object] = {
        "machine": machine_info(),
        "config": {"command": command, **dataclasses.asdict(counts)},
        "elapsed": time.perf_counter() - started,
        "summary": {name: summarize(values) for name, values in samples.items() if values},
        "samples": samples,
        "errors": errors,
    }
    write_results(args.out, "deflate_cost", markdown(results), results)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
