"""``python -m benchmarks [--quick] [--repeat N] [--only W,..] [--libs L,..] [--out DIR]``."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import gc
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from . import ROOT
from .clients import PEERS, workers_peer
from .report import chart, console_table, markdown
from .sysinfo import machine_info, raise_fd_limit
from .workloads import FULL, QUICK, WORKLOADS


def _names(value: str, choices: dict[str, Any], what: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(choices)}"
        )
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmark syncws against its peers."
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one repeat (~1 min)")
    parser.add_argument("--repeat", type=int, help="repeats per workload (default: 5, quick: 1)")
    parser.add_argument(
        "--only",
        type=lambda v: _names(v, WORKLOADS, "workload"),
        default=list(WORKLOADS),
        help=f"workloads, comma-separated: {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--libs",
        type=lambda v: _names(v, PEERS, "library"),
        default=list(PEERS),
        help=f"peers, comma-separated: {','.join(PEERS)}",
    )
    parser.add_argument(
        "--client-thread",
        action="store_true",
        help="run the clients in a thread other than the main one (as a server's handlers "
        "and most threaded programs do; syncws reads on the caller's thread there)",
    )
    parser.add_argument(
        "--idle",
        type=int,
        help="connections opened by the idle workload (default: 2000, quick: 200)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="also measure a syncws server of N worker processes (peer syncws-workersN), "
        "beside the one-process syncws server",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory"
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.idle is not None and args.idle < 1:
        parser.error("--idle must be at least 1")
    if args.workers is not None and args.workers < 2:
        parser.error("--workers must be at least 2")
    return args


def _log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _run(workload: Any, peer: Any, params: Any, in_thread: bool) -> Any:
    """Run one sample, on the main thread or, with ``in_thread``, on a thread of its own."""
    if not in_thread:
        return workload.run(peer, params)
    with concurrent.futures.ThreadPoolExecutor(1, "bench-client") as pool:
        return pool.submit(workload.run, peer, params).result()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = QUICK if args.quick else FULL
    if args.repeat is not None:
        params = dataclasses.replace(params, repeat=args.repeat)
    if args.idle is not None:
        params = dataclasses.replace(params, idle=args.idle)
    raise_fd_limit()
    known = dict(PEERS)
    peers = list(args.libs)
    if args.workers is not None:
        extra = workers_peer(args.workers)
        known[extra.name] = extra
        peers.append(extra.name)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "command": " ".join(
                ["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)]
            ),
            "quick": args.quick,
            "client_thread": args.client_thread,
            "repeat": params.repeat,
            "params": dataclasses.asdict(params),
            "peers": {
                name: {
                    "client": known[name].client,
                    "server": known[name].server,
                    "workers": known[name].workers,
                }
                for name in peers
            },
        },
        "workloads": {},
    }
    started = time.monotonic()
    for name in args.only:
        workload = WORKLOADS[name]
        record: dict[str, Any] = {
            "title": workload.title,
            "metrics": [dataclasses.asdict(m) for m in workload.metrics],
            "samples": {},
            "errors": {},
            "skipped": {},
        }
        results["workloads"][name] = record
        runnable = []
        for peer_name in peers:
            reason = workload.skip(known[peer_name])
            if reason:
                record["skipped"][peer_name] = reason
            else:
                runnable.append(peer_name)
                record["samples"][peer_name] = []
        for repeat in range(params.repeat):
            for peer_name in random.sample(runnable, len(runnable)):
                gc.collect()
                t0 = time.monotonic()
                try:
                    sample = _run(workload, known[peer_name], params, args.client_thread)
                except Exception as exc:  # a failing peer must not stop the suite
                    record["errors"].setdefault(peer_name, []).append(
                        f"{type(exc).__name__}: {exc}"
                    )
                    _log(f"  {name} #{repeat + 1} {peer_name}: FAILED {type(exc).__name__}: {exc}")
                else:
                    record["samples"][peer_name].append(sample)
                    _log(f"  {name} #{repeat + 1} {peer_name}: {time.monotonic() - t0:.1f} s")
                time.sleep(0.2)  # let the server process go away before the next one starts
        print(console_table(name, record), flush=True)
        print(flush=True)
    results["config"]["seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(markdown(results), encoding="utf-8")
    print(chart(results, args.out / "ratios.png"))
    print(f"wrote {args.out / 'results.json'} and results.md in {results['config']['seconds']} s")


if __name__ == "__main__":
    main()
