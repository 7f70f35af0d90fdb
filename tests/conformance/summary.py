"""Run the conformance suite and print a table: category x side -> outcomes.

Usage (from the repository root)::

    python -m tests.conformance [extra pytest arguments]
    python tests/conformance/summary.py [extra pytest arguments]

The exit status is pytest's.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

CATEGORIES = {
    1: "framing",
    2: "pings and pongs",
    3: "reserved bits",
    4: "opcodes",
    5: "fragmentation",
    6: "UTF-8",
    7: "close handling",
    9: "limits",
    10: "sending large messages",
    12: "deflate: compressed msgs",
    13: "deflate: negotiation",
}
SIDES = ("server", "client")
_ID = re.compile(r"\[(server|client)-(\d+)\.[^\]]*\]$")


class Collector:
    """A pytest plugin recording each conformance test's outcome."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.failures: list[str] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        nodeid = report.nodeid
        previous = self.outcomes.get(nodeid)
        if report.when == "call":
            if hasattr(report, "wasxfail"):
                outcome = "xfailed" if report.skipped else "failed"  # strict: XPASS fails
            else:
                outcome = report.outcome
        elif report.failed:
            outcome = "error"
        elif report.skipped and report.when == "setup":
            outcome = "skipped"
        else:
            return
        if previous in ("failed", "error"):
            return
        self.outcomes[nodeid] = outcome
        if outcome in ("failed", "error"):
            self.failures.append(nodeid)

    def table(self) -> str:
        counts: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
        for nodeid, outcome in self.outcomes.items():
            match = _ID.search(nodeid)
            if match:
                counts[int(match.group(2)), match.group(1)][outcome] += 1
        kinds = ("passed", "failed", "xfailed", "error", "skipped")
        header = f"{'category':<28}" + "".join(f"{side:>34}" for side in SIDES)
        sub = " " * 28 + "".join(f"{'pass / fail / xfail / err / skip':>34}" for _ in SIDES)
        lines = [header, sub, "-" * len(sub)]
        totals = {side: Counter() for side in SIDES}  # type: dict[str, Counter[str]]
        for cat in sorted({c for c, _ in counts}):
            row = f"{cat:>2} {CATEGORIES.get(cat, '?'):<25}"
            for side in SIDES:
                c = counts.get((cat, side), Counter())
                totals[side].update(c)
                row += f"{' / '.join(str(c[k]) for k in kinds):>34}"
            lines.append(row)
        lines.append("-" * len(sub))
        row = f"{'total':<28}"
        for side in SIDES:
            row += f"{' / '.join(str(totals[side][k]) for k in kinds):>34}"
        lines.append(row)
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    collector = Collector()
    args = [
        str(HERE),
        "--rootdir",
        str(ROOT),
        "-p",
        "no:cacheprovider",
        "-q",
        *(sys.argv[1:] if argv is None else argv),
    ]
    status = pytest.main(args, plugins=[collector])
    print()
    print("RFC 6455 conformance of syncws (server: syncws echo server; client: syncws client)")
    print(collector.table())
    if collector.failures:
        print("\nfailed:")
        for nodeid in collector.failures:
            print(f"  {nodeid}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
