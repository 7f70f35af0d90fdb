"""Turn results (the content of results.json) into console tables, results.md and ratios.png."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from .clients import PEERS

REFERENCE = "syncws"
Results = dict[str, Any]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def spread(values: list[float]) -> dict[str, float]:
    """The median, min and max of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def cell(row: dict[str, float] | None, spread: bool) -> str:
    """A table cell: the median, with min-max in parentheses (``spread``) where they differ."""
    if row is None:
        return "error"
    if not spread or fmt(row["min"]) == fmt(row["max"]):
        return fmt(row["median"])
    return f"{fmt(row['median'])} ({fmt(row['min'])}-{fmt(row['max'])})"


def summarize(workload: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """metric key -> peer -> median, min, max, ratio (peer median / syncws median)."""
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    for metric in workload["metrics"]:
        key = metric["key"]
        rows: dict[str, dict[str, float | None]] = {}
        for peer, samples in workload["samples"].items():
            values = [sample[key] for sample in samples]
            if values:
                rows[peer] = dict(spread(values))
        reference = rows.get(REFERENCE, {}).get("median")
        for row in rows.values():
            median = row["median"]
            row["ratio"] = median / reference if reference and median is not None else None
        summary[key] = rows
    return summary


def _label(peer: str) -> str:
    return PEERS[peer].label if peer in PEERS else peer


def _direction(metric: dict[str, Any]) -> str:
    return "higher is better" if metric["higher_is_better"] else "lower is better"


def console_table(name: str, workload: dict[str, Any]) -> str:
    lines = [f"== {name}: {workload['title']}"]
    summary = summarize(workload)
    for metric in workload["metrics"]:
        unit = f"{metric['unit']}, " if metric["unit"] else ""
        lines.append(f"  {metric['label']} ({unit}{_direction(metric)})")
        lines.append(f"    {'library':<44}{'median':>12}  {'min-max':<22}{'/syncws':>8}")
        for peer, row in summary[metric["key"]].items():
            spread = f"{fmt(row['min'])}-{fmt(row['max'])}"
            lines.append(
                f"    {_label(peer):<44}{fmt(row['median']):>12}  {spread:<22}"
                f"{fmt(row['ratio']):>8}"
            )
    for peer, errors in workload["errors"].items():
        lines.append(f"  ! {_label(peer)}: {len(errors)} failed sample(s): {errors[0]}")
    for peer, reason in workload["skipped"].items():
        lines.append(f"  - {_label(peer)}: skipped ({reason})")
    return "\n".join(lines)


def markdown(results: Results) -> str:
    machine = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    config = results["config"]
    peers = config["peers"]
    lines = [
        f"Run {machine['date']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['python']}; {versions}. "
        f"`{config['command']}`: median of {config['repeat']} repeat(s); "
        "in parentheses the ratio to syncws (peer / syncws). Counts per sample: "
        + ", ".join(f"{k} {v:,}" for k, v in config["params"].items() if k != "repeat")
        + ".",
        "",
        "| workload | metric | " + " | ".join(_label(p) for p in peers) + " |",
        "|---|---|" + "---:|" * len(peers),
    ]
    for name, workload in results["workloads"].items():
        summary = summarize(workload)
        for metric in workload["metrics"]:
            arrow = "↑" if metric["higher_is_better"] else "↓"
            unit = f" ({metric['unit']})" if metric["unit"] else ""
            cells = []
            for peer in peers:
                row = summary[metric["key"]].get(peer)
                if row is None:
                    cells.append("error" if peer in workload["errors"] else "n/a")
                elif peer == REFERENCE:
                    cells.append(fmt(row["median"]))
                else:
                    cells.append(f"{fmt(row['median'])} ({fmt(row['ratio'])}x)")
            lines.append(
                f"| {name} | {metric['label']}{unit} {arrow} | " + " | ".join(cells) + " |"
            )
    lines += [
        "",
        "↑ higher is better, ↓ lower is better. n/a: the peer cannot run that workload.",
    ]
    return "\n".join(lines) + "\n"


def chart(results: Results, path: Path) -> str:
    """Write ratios.png; return a message saying what was done."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: ratios.png skipped (pip install matplotlib)"
    labels: list[str] = []
    bars: dict[str, list[float]] = {p: [] for p in results["config"]["peers"] if p != REFERENCE}
    for workload in results["workloads"].values():
        summary = summarize(workload)
        for metric in workload["metrics"]:
            if not metric["chart"]:
                continue
            labels.append(metric["label"])
            for peer, values in bars.items():
                ratio = summary[metric["key"]].get(peer, {}).get("ratio")
                if ratio is not None and ratio > 0 and not metric["higher_is_better"]:
                    ratio = 1 / ratio  # so that above 1 always means "better than syncws"
                values.append(ratio or float("nan"))
    if not labels or not bars:
        return "nothing to chart: ratios.png skipped"
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(labels)), 6.5), layout="constrained")
    width = 0.8 / len(bars)
    for i, (peer, values) in enumerate(bars.items()):
        positions = [x + (i - (len(bars) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(positions, values, width, label=_label(peer))
    ax.axhline(1.0, color="black", linewidth=1, label="syncws = 1")
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("relative to syncws (log scale; above 1: the peer does better)")
    ax.set_title("Peers relative to syncws (latency and memory inverted: syncws / peer)")
    fig.legend(loc="outside lower center", ncol=3, fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


def write_results(out: Path, name: str, table: str, results: dict[str, Any]) -> None:
    """Print ``table``; write it to ``out/NAME.md`` and ``results`` to ``out/NAME.json``."""
    sys.stdout.write(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(table, encoding="utf-8")
    with open(out / f"{name}.json", "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)
        file.write("\n")
    sys.stderr.write(f"wrote {out}/{name}.md and {name}.json\n")
