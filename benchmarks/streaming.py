"""``python -m benchmarks.streaming [--size N] [--quick] [--repeat N] [--libs A,B] [--out DIR]``.

One message of ``--size`` bytes (default 1 GiB) streamed over one connection, each
library on both ends (its client against its server), client to server and server to
client, with compression off and with permessage-deflate. The sender sends a generator
of 1 MiB chunks, a frame each (syncws ``send_message(iterable)``, websockets
``send(iterable)``); the receiver reads the message as a stream (syncws
``get_message_stream``, websockets ``recv_streaming``), counts its bytes and their
CRC-32, and answers. Both ends run in child processes of their own
(``python -m benchmarks.streamend``), started afresh for each sample, so that each
measures its own memory.

Per sample:

* throughput: the message's size over the sender's time from its first chunk to the
  receiver's answer (MB/s, 10^6 bytes/s);
* the receiver's and the sender's peak RSS growth: each resets its peak (VmHWM, through
  ``/proc/self/clear_refs``) once the connection is open, and reports VmHWM after the
  message minus VmRSS at that reset (MiB).

The payload is a block of seeded pseudo-random bytes with compression off, a repeated
64-byte ASCII pattern with deflate (about 340:1; on random bytes zlib alone would take
40 s per GiB on a 2-core machine); each chunk starts with its index. syncws keeps its
default ``max_message_size`` of 1 MiB (``--max-message-size``), websockets gets
``max_size=None`` (its limit would apply to the whole message); no keepalive pings.

Then the limit sweep (syncws only; ``--limits``, ``--sweep-size``): the receiver's peak
RSS growth for a ``--sweep-size`` message (default 256 MiB) with ``max_message_size`` of
1, 4 and 16 MiB, each direction, compression off and on.

Medians over the repeats with the min-max range go to ``streaming.md``, every sample and
the machine to ``streaming.json``, in ``benchmarks/results/`` unless ``--out`` says
otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import ROOT
from .report import cell, fmt, spread, write_results
from .sysinfo import machine_info
from .workloads import read_line

MIB = 2**20
LIBS = ("syncws", "websockets")
DIRECTIONS = ("client->server", "server->client")
COMPRESSIONS = ("off", "deflate")
#: Bound on each child's run, and on each wait for a line of it.
TIMEOUT = 180.0

Sample = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """One measured configuration."""

    lib: str
    direction: str
    compression: str
    size: int
    max_message_size: int

    @property
    def name(self) -> str:
        return f"{self.lib} {self.direction} {self.compression}"


def parse_size(text: str) -> int:
    """``1073741824``, ``1G``, ``256M`` or ``64K`` (powers of 1024)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def size_text(size: int) -> str:
    for unit, value in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= value and size % value == 0:
            return f"{size // value} {unit}"
    return f"{size:,} bytes"


class End:
    """A ``benchmarks.streamend`` child; ``stop()`` kills it (by PID) if it still runs."""

    def __init__(self, args: list[str], timeout: float, env: dict[str, str] | None) -> None:
        command = [sys.executable, "-m", "benchmarks.streamend", *args]
        self.timeout = timeout
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )

    def line(self, prefix: str) -> str:
        """The rest of the next line that starts with ``prefix``."""
        deadline = time.monotonic() + self.timeout
        while True:
            line = read_line(self.proc, max(deadline - time.monotonic(), 0.0))
            if not line:
                raise RuntimeError(f"the {self.proc.args[3:6]} end exited without {prefix!r}")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def result(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.line("result "))
        code = self.proc.wait(self.timeout)
        if code:
            raise RuntimeError(f"the {self.proc.args[3:6]} end exited with {code}")
        return value

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(self.timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_pair(
    server: tuple[str, str],
    client: tuple[str, str],
    *options: str,
    timeout: float = TIMEOUT,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a server end (LIB, ACTION) and a client end against it: (server's, client's) result.

    ``options`` (``--size``, ``--chunk``...) go to both; ``timeout`` bounds each wait
    for a line and each exit. Every child is gone on return.

    :raises RuntimeError: when an end exits without its result, or with an error.
    """
    ends: list[End] = []
    try:
        ends.append(End([server[0], "server", server[1], *options], timeout, env))
        url = f"ws://127.0.0.1:{ends[0].line('listening ')}/"
        ends.append(End([client[0], "client", client[1], "--url", url, *options], timeout, env))
        client_result = ends[1].result()
        return ends[0].result(), client_result
    finally:
        for end in ends:
            end.stop()


def run(config: Config, chunk: int) -> Sample:
    """Stream one message as ``config`` says; the sample."""
    receiving_server = config.direction == "client->server"
    payload = "pattern" if config.compression == "deflate" else "random"
    options = ["--size", str(config.size), "--chunk", str(chunk), "--payload", payload]
    options += ["--compression", "deflate" if config.compression == "deflate" else "none"]
    options += ["--max-message-size", str(config.max_message_size), "--timeout", str(TIMEOUT)]
    server_action, client_action = ("recv", "send") if receiving_server else ("send", "recv")
    server, client = run_pair((config.lib, server_action), (config.lib, client_action), *options)
    sender, receiver = (client, server) if receiving_server else (server, client)
    if not receiver["bytes"] == sender["bytes"] == config.size:
        raise RuntimeError(f"sent {sender['bytes']} bytes, received {receiver['bytes']}")
    if receiver["crc"] != sender["crc"]:
        raise RuntimeError("the CRC-32 of the received message differs")
    return {
        "mbps": config.size / sender["seconds"] / 1e6,
        "receiver_peak_mib": receiver["peak_growth"] / MIB,
        "sender_peak_mib": sender["peak_growth"] / MIB,
        "receiver_base_mib": receiver["rss_base"] / MIB,
        "sender_base_mib": sender["rss_base"] / MIB,
        "sender_seconds": sender["seconds"],
        "receiver_seconds": receiver["seconds"],
        "receiver_chunks": receiver["chunks"],
    }


def summarize(samples: list[Sample], keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Configuration name -> metric -> median, min, max (and the configuration)."""
    grouped: dict[str, list[Sample]] = {}
    for sample in samples:
        grouped.setdefault(sample["name"], []).append(sample)
    return {
        name: {
            "config": {k: group[0][k] for k in ("lib", "direction", "compression", "size")}
            | {"max_message_size": group[0]["max_message_size"]},
            **{key: spread([s[key] for s in group]) for key in keys},
        }
        for name, group in grouped.items()
    }


def order(sample: Sample) -> tuple[Any, ...]:
    """The tables' order: library, limit, direction, compression."""
    return (
        LIBS.index(sample["lib"]),
        sample["max_message_size"],
        DIRECTIONS.index(sample["direction"]),
        COMPRESSIONS.index(sample["compression"]),
    )


def markdown(results: dict[str, Any]) -> str:
    machine, config = results["machine"], results["config"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    spread = config["repeat"] > 1
    lines = [
        f"Run {machine['date']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['python']}; {versions}. `{config['command']}`: one binary message of "
        f"{size_text(config['size'])} in {size_text(config['chunk'])} chunks, each library on "
        f"both ends, each end in a process of its own; median of {config['repeat']} "
        f"repeat(s)" + (", min-max in parentheses" if spread else "") + ". syncws "
        f"`max_message_size` {size_text(config['max_message_size'])}, websockets "
        "`max_size=None`. Payload: pseudo-random bytes with compression off, a repeated "
        "64-byte pattern (about 340:1) with deflate.",
        "",
        "| library | direction | compression | throughput (MB/s) | receiver peak RSS growth "
        "(MiB) | sender peak RSS growth (MiB) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in results["summary"].values():
        c = row["config"]
        cells = [cell(row.get(k), spread) for k in ("mbps", "receiver_peak_mib", "sender_peak_mib")]
        lines.append(
            f"| {c['lib']} | {c['direction']} | {c['compression']} | " + " | ".join(cells) + " |"
        )
    if results["sweep_summary"]:
        lines += [
            "",
            f"Receiver peak RSS growth against `max_message_size` (syncws, one message of "
            f"{size_text(config['sweep_size'])}):",
            "",
            "| max_message_size | direction | compression | receiver peak RSS growth (MiB) "
            "| growth / max_message_size |",
            "|---:|---|---|---:|---:|",
        ]
        for row in results["sweep_summary"].values():
            c = row["config"]
            limit = c["max_message_size"]
            ratio = row["receiver_peak_mib"]["median"] * MIB / limit
            lines.append(
                f"| {size_text(limit)} | {c['direction']} | {c['compression']} | "
                f"{cell(row['receiver_peak_mib'], spread)} | {fmt(ratio)} |"
            )
    if results["errors"]:
        lines += ["", "Failed samples:"]
        lines += [f"* {name}: {messages[0]}" for name, messages in results["errors"].items()]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.streaming",
        description="One big message streamed: throughput and peak RSS growth of each end.",
    )
    parser.add_argument("--size", type=parse_size, help="message size (default 1G, quick 64M)")
    parser.add_argument("--chunk", type=parse_size, default=MIB, help="chunk size (default 1M)")
    parser.add_argument("--quick", action="store_true", help="64 MiB, one repeat (~20 s)")
    parser.add_argument("--repeat", type=int, help="repeats (default: 3, quick: 1)")
    parser.add_argument("--libs", default=",".join(LIBS), help="comma-separated: syncws,websockets")
    parser.add_argument(
        "--max-message-size", type=parse_size, default=MIB, help="syncws's limit (default 1M)"
    )
    parser.add_argument(
        "--limits", default="1M,4M,16M", help="max_message_size values of the sweep ('' for none)"
    )
    parser.add_argument(
        "--sweep-size", type=parse_size, help="message size of the sweep (default 256M, quick 32M)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory"
    )
    return parser.parse_args(argv)


def measure(
    configs: list[Config], repeat: int, chunk: int, errors: dict[str, list[str]]
) -> list[Sample]:
    samples: list[Sample] = []
    for index in range(repeat):
        for config in random.sample(configs, len(configs)):
            label = f"{config.name} ({size_text(config.max_message_size)} limit)"
            sys.stderr.write(f"[{index + 1}/{repeat}] {label}: ")
            sys.stderr.flush()
            try:
                sample = run(config, chunk)
            except Exception as exc:
                errors.setdefault(config.name, []).append(f"{type(exc).__name__}: {exc}")
                sys.stderr.write(f"failed: {type(exc).__name__}: {exc}\n")
                continue
            sys.stderr.write(
                f"{sample['mbps']:.0f} MB/s, receiver +{sample['receiver_peak_mib']:.1f} MiB, "
                f"sender +{sample['sender_peak_mib']:.1f} MiB\n"
            )
            samples.append({"name": config.name, "repeat": index, **asdict(config), **sample})
    return samples


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    size = args.size or (64 * MIB if args.quick else 2**30)
    sweep_size = args.sweep_size or (32 * MIB if args.quick else 256 * MIB)
    repeat = args.repeat or (1 if args.quick else 3)
    libs = [lib for lib in args.libs.split(",") if lib]
    unknown = set(libs) - set(LIBS)
    if unknown:
        sys.exit(f"unknown libraries: {', '.join(sorted(unknown))} (known: {', '.join(LIBS)})")
    limits = [parse_size(limit) for limit in args.limits.split(",") if limit.strip()]
    started = time.perf_counter()
    errors: dict[str, list[str]] = {}
    configs = [
        Config(lib, direction, compression, size, args.max_message_size)
        for lib in libs
        for direction in DIRECTIONS
        for compression in COMPRESSIONS
    ]
    samples = measure(configs, repeat, args.chunk, errors)
    sweep_configs = [
        Config("syncws", direction, compression, sweep_size, limit)
        for limit in limits
        for direction in DIRECTIONS
        for compression in COMPRESSIONS
    ]
    sweep = measure(sweep_configs, repeat, args.chunk, errors) if "syncws" in libs else []
    for sample in sweep:
        sample["name"] += f" {size_text(sample['max_message_size'])}"
    keys = ("mbps", "receiver_peak_mib", "sender_peak_mib")
    command = "python -m benchmarks.streaming" + "".join(
        f" {arg}" for arg in (argv if argv is not None else sys.argv[1:])
    )
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "command": command,
            "size": size,
            "chunk": args.chunk,
            "repeat": repeat,
            "libs": libs,
            "max_message_size": args.max_message_size,
            "limits": limits,
            "sweep_size": sweep_size,
        },
        "elapsed": time.perf_counter() - started,
        "summary": summarize(sorted(samples, key=order), keys),
        "sweep_summary": summarize(sorted(sweep, key=order), keys),
        "samples": samples,
        "sweep": sweep,
        "errors": errors,
    }
    write_results(args.out, "streaming", markdown(results), results)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
