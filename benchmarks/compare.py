"""``python -m benchmarks.compare --baseline REF [--runs N] [benchmark options]``.

Measures the syncws of an older commit (``REF``) and of the working tree side by side:
the same benchmark code (this tree's ``benchmarks/``) runs the suite alternately in a
copy of ``REF``'s ``syncws/`` and in the working tree, ``--runs`` times each, the order
swapped every run so that drifting load on the machine falls on both. It then prints, per
metric, syncws's median before and after (all samples of all runs pooled) and each peer's
ratio to syncws before and after, as a markdown table. Other options (``--only``,
``--libs``, ``--repeat``, ``--quick``) go to ``python -m benchmarks`` unchanged.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from . import ROOT
from .clients import PEERS
from .report import REFERENCE, fmt


def export(ref: str, into: Path) -> str:
    """Put ``ref``'s ``syncws/`` and this tree's ``benchmarks/`` in ``into``; return the commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "syncws"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    shutil.copytree(
        ROOT / "benchmarks",
        into / "benchmarks",
        ignore=shutil.ignore_patterns("results", "__pycache__"),
    )
    return commit


def run_suite(tree: Path, out: Path, options: list[str]) -> dict[str, Any]:
    """Run ``python -m benchmarks`` in ``tree`` (on its ``syncws/``); return the results."""
    subprocess.run(
        [sys.executable, "-m", "benchmarks", "--out", str(out), *options], cwd=tree, check=True
    )
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    return results


def pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the samples of several runs of the suite, workload by workload."""
    merged: dict[str, Any] = {}
    for results in runs:
        for name, workload in results["workloads"].items():
            into = merged.setdefault(name, {"metrics": workload["metrics"], "samples": {}})
            for peer, samples in workload["samples"].items():
                into["samples"].setdefault(peer, []).extend(samples)
    return merged


def medians(workload: dict[str, Any], key: str) -> dict[str, float]:
    """Each peer's median of metric ``key``."""
    found = {}
    for peer, samples in workload["samples"].items():
        values = [sample[key] for sample in samples if sample.get(key) is not None]
        if values:
            found[peer] = statistics.median(values)
    return found


def table(before: dict[str, Any], after: dict[str, Any], commit: str) -> str:
    """The side-by-side markdown table."""
    present = {peer for runs in (before, after) for w in runs.values() for peer in w["samples"]}
    peers = [peer for peer in PEERS if peer != REFERENCE and peer in present]
    head = ["metric", f"syncws {commit}", "syncws now", "now/before"]
    for peer in peers:
        head += [f"{peer} ratio {commit}", f"{peer} ratio now"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, workload in after.items():
        if name not in before:
            continue
        for metric in workload["metrics"]:
            key = metric["key"]
            old, new = medians(before[name], key), medians(workload, key)
            if REFERENCE not in old or REFERENCE not in new:
                continue
            arrow = "↑" if metric["higher_is_better"] else "↓"
            row = [
                f"{metric['label']} ({metric['unit']}) {arrow}",
                fmt(old[REFERENCE]),
                fmt(new[REFERENCE]),
                f"{new[REFERENCE] / old[REFERENCE]:.2f}x",
            ]
            for peer in peers:
                for figures in (old, new):
                    ratio = figures.get(peer)
                    row.append(f"{ratio / figures[REFERENCE]:.2f}x" if ratio else "")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Benchmark an older syncws commit and the working tree side by side.",
    )
    parser.add_argument("--baseline", required=True, help="the older commit (any git ref)")
    parser.add_argument("--runs", type=int, default=2, help="suite runs per tree (default 2)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "compare",
        help="output directory",
    )
    args, options = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="syncws-baseline-") as scratch:
        baseline = Path(scratch)
        commit = export(args.baseline, baseline)
        trees = {"before": baseline, "now": ROOT}
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
        for index in range(args.runs):
            order = ["before", "now"] if index % 2 == 0 else ["now", "before"]
            for which in order:
                sys.stderr.write(f"== run {index + 1}/{args.runs}: {which} ==\n")
                out = args.out / f"{which}-{index + 1}"
                runs[which].append(run_suite(trees[which], out, options))
    text = table(pool(runs["before"]), pool(runs["now"]), commit)
    (args.out / "compare.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
