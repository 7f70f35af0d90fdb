"""Both ends of a streamed message, each in a child process, for the tests.

Each end is the streaming benchmark's program, ``python -m benchmarks.streamend LIB SIDE
ACTION [options]`` (its docstring says what it does and prints): syncws or websockets,
server or client, sending a message from a generator of chunks or reading it as a
stream, counting bytes and CRC-32 and measuring its own peak RSS growth. A run that
hangs prints every thread's stack shortly before its waits give up.

:func:`run_pair` (the benchmark's own) runs both ends and stops them by process id.
The payload functions are re-exported for the tests' own checks.
"""

from __future__ import annotations

from benchmarks.streamend import MIB, Counter, chunks, expected_crc
from benchmarks.streaming import run_pair

__all__ = ["MIB", "Counter", "chunks", "expected_crc", "run_pair"]
