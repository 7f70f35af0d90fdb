"""Benchmarks of syncws against other synchronous WebSocket libraries: ``python -m benchmarks``.

See benchmarks/README.md for the workloads, the peers and how they are configured.
"""

from __future__ import annotations

from pathlib import Path

#: The repository root: server and client child processes run from here.
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: The message size limit given to every library (the 1 MiB echo must fit).
MAX_SIZE = 4 * 2**20
#: Bound on every single wait for a message, a handshake or a child process.
TIMEOUT = 30.0
