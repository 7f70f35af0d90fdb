"""``python -m benchmarks.workers``: 1 or 2 syncws worker processes, 1 or 2 client processes.

The suite's concurrency workload runs every client thread in the benchmark's own
process, whose GIL lets it use one core at most; a second server worker then has no
client load to take. This measurement runs the client threads in one or two child
processes, against a syncws echo server of one or two workers (``--workers``), and
reports the sum of the client processes' round trips per second, as medians of the
repeats, the four combinations interleaved within each repeat.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from . import ROOT, TIMEOUT
from .servers import ServerProcess

#: The child: open N connections, wait for "go", do K round trips on each from a thread
#: of its own, print the round trips per second.
CLIENT = """
import sys, threading, time
from benchmarks.clients import open_conn
port, n, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
conns = [open_conn("syncws", port) for _ in range(n)]
print("ready", flush=True)
sys.stdin.readline()
finished = []
def run(conn):
    for _ in range(k):
        conn.send("x" * 32)
        conn.recv()
    finished.append(time.perf_counter())
threads = [threading.Thread(target=run, args=(conn,)) for conn in conns]
start = time.perf_counter()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(n * k / (max(finished) - start), flush=True)
for conn in conns:
    conn.close()
"""


def measure(workers: int, clients: int, connections: int, k: int) -> float:
    """Total round trips/s of ``clients`` processes sharing ``connections``."""
    per_process = str(connections // clients)
    with ServerProcess("syncws", workers=workers) as server:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, str(server.port), per_process, str(k)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(clients)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    raise RuntimeError("a client process did not connect")
            for proc in procs:  # All start together.
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            total = 0.0
            for proc in procs:
                assert proc.stdout is not None
                total += float(proc.stdout.readline())
            for proc in procs:
                proc.wait(TIMEOUT)
            return total
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(TIMEOUT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="repeats (default 3)")
    args = parser.parse_args(argv)
    cases = [(w, c) for w in (1, 2) for c in (1, 2)]
    for connections, k in ((100, 200), (500, 40)):
        samples: dict[tuple[int, int], list[float]] = {case: [] for case in cases}
        for _ in range(args.repeat):
            for workers, clients in cases:
                samples[workers, clients].append(measure(workers, clients, connections, k))
        print(f"\n{connections} connections x {k} round trips (median of {args.repeat}, RT/s)")
        for (workers, clients), values in samples.items():
            low, high = min(values), max(values)
            print(
                f"  {workers} worker(s), {clients} client process(es): "
                f"{statistics.median(values):>8,.0f}  ({low:,.0f}-{high:,.0f})"
            )


if __name__ == "__main__":
    main()
