"""The server process of the stress tests: a syncws server that reports its own figures.

Run from the repository root::

    python -m tests.stress.server_main --mode echo
    python -m tests.stress.server_main --mode broadcast

It serves a :class:`syncws.WebSocketServer` on 127.0.0.1 (port chosen by the OS),
prints ``PORT <n>`` once it is ready, and shuts down (exit status 0) when its
standard input reaches end of file. Warnings and errors go to standard error
(``--log-level INFO`` adds the server's INFO records). It raises its soft limit on
open files to the hard limit, or sets it to ``--max-fds N``.

Each line of standard input is a command, answered with one line on standard output:

``threads off``
    Make :meth:`threading.Thread.start` fail from now on, as under a container's
    memory or pids limit: thread stacks of 256 MiB, and a soft ``RLIMIT_AS`` 64 MiB
    above the process's address space, which leaves the heap room. Answers
    ``threads off`` once a thread start was seen to fail, else ``unavailable: <why>``.
``threads on``
    Lift the limit (back to the hard limit) and the stack size; answers ``threads on``.

Resources:

``/echo``
    Send every message back until the connection closes.
``/stats``
    Send one JSON text message with the process's figures (see :func:`figures`),
    then close. The ``/stats`` connection itself is counted in them.
``/numbers``
    Read one message, a number N; send N text messages ``"0"`` to ``"N-1"`` as fast as
    the client takes them; then read until the connection closes.
``/subscribe?id=<name>`` (broadcast mode)
    Register the connection as a subscriber, then read (and drop) whatever the
    client sends until the connection closes.
``/start-broadcast?count=N&size=S&timeout=T&subscribers=K`` (broadcast mode)
    Wait until ``K`` subscribers are registered, broadcast ``N`` numbered binary
    messages of ``S`` bytes to them with ``syncws.broadcast(..., timeout=T)``
    (dropping the connections it returns), close the remaining subscribers with
    code 1000, and send back one JSON text message: the summary (see
    :meth:`StressServer.run_broadcast`).

A broadcast message is the message number (8 bytes, big-endian) followed by
``S - 8`` bytes of :func:`filler`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import logging
import os
import resource
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import syncws

#: How long /start-broadcast waits for the expected subscribers.
SUBSCRIBE_WAIT = 60.0
#: Threads closing the remaining subscribers at the end of a broadcast.
CLOSERS = 16


def filler(size: int) -> bytes:
    """The constant tail of a broadcast message: ``size`` bytes of a repeating pattern."""
    pattern = bytes(range(256))
    return (pattern * (size // 256 + 1))[:size]


def broadcast_message(index: int, size: int, tail: bytes) -> bytes:
    """Message number ``index``: its number on 8 bytes, then ``tail`` (``size - 8`` bytes)."""
    return index.to_bytes(8, "big") + tail[: size - 8]


def set_fd_limit(limit: int | None) -> None:
    """Set the soft limit on open files to ``limit`` (``None``: the hard limit)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if limit is None else limit, hard))


#: ``threads off``: each thread's stack, and the room left in the address space.
TRAP_STACK = 256 * 1024 * 1024
TRAP_HEADROOM = 64 * 1024 * 1024


def address_space() -> int:
    """VmSize of this process, in bytes, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def threads_off() -> str:
    """Make Thread.start() fail: the ``threads off`` command (see the module docstring)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = address_space() + TRAP_HEADROOM
    if hard != resource.RLIM_INFINITY and limit > hard:
        return f"unavailable: the hard RLIMIT_AS ({hard}) is below {limit}"
    threading.stack_size(TRAP_STACK)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        room = bytearray(TRAP_HEADROOM // 4)  # the heap must still have room
        del room
        probe = threading.Thread(target=lambda: None, name="stress-probe")
        probe.start()
    except MemoryError:
        threads_on()
        return "unavailable: no room left for the heap"
    except RuntimeError:
        return "threads off"
    probe.join()
    threads_on()
    return "unavailable: a thread still started"


def threads_on() -> str:
    """Undo :func:`threads_off`: the ``threads on`` command."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    threading.stack_size(0)
    return "threads on"


COMMANDS = {"threads off": threads_off, "threads on": threads_on}


def memory() -> dict[str, int]:
    """``rss`` and ``hwm`` (peak RSS) of this process, in bytes, from /proc/self/status."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024  # kB
    return {"rss": values["VmRSS"], "hwm": values["VmHWM"]}


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); return whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class StressServer:
    """The handler and state of the stress server (see the module docstring)."""

    def __init__(self, mode: str, disconnect_timeout: float, keepalive: bool = True) -> None:
        self.mode = mode
        self.lock = threading.Condition()
        #: Registered subscribers and their names (guarded by ``lock``).
        self.subscribers: dict[syncws.WebSocketConnection, str] = {}
        extra: dict[str, Any] = {} if keepalive else {"ping_interval": None}
        self.server = syncws.WebSocketServer(
            self.handle, "127.0.0.1", 0, disconnect_timeout=disconnect_timeout, **extra
        )

    def figures(self) -> dict[str, Any]:
        """The process's current figures (the /stats message)."""
        return {
            **memory(),
            "threads": len(os.listdir("/proc/self/task")),
            "python_threads": threading.active_count(),
            "fds": len(os.listdir("/proc/self/fd")),
            "connections": len(self.server.connections),
        }

    def handle(self, request: syncws.WebSocketRequest) -> None:
        url = urlsplit(request.path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        if url.path == "/echo":
            ws = request.accept()
            for message in ws:
                ws.send_message(message)
        elif url.path == "/stats":
            ws = request.accept()
            ws.send_message(json.dumps(self.figures()))
        elif url.path == "/numbers":
            ws = request.accept()
            for i in range(int(ws.get_message())):
                ws.send_message(str(i))
            for _ in ws:
                pass
        elif self.mode == "broadcast" and url.path == "/subscribe":
            self.subscribe(request.accept(), query.get("id", "?"))
        elif self.mode == "broadcast" and url.path == "/start-broadcast":
            ws = request.accept()
            summary = self.run_broadcast(
                count=int(query["count"]),
                size=int(query["size"]),
                timeout=float(query["timeout"]),
                subscribers=int(query["subscribers"]),
            )
            ws.send_message(json.dumps(summary))
        else:
            request.reject(404, body="no such resource\n")

    def subscribe(self, ws: syncws.WebSocketConnection, name: str) -> None:
        with self.lock:
            self.subscribers[ws] = name
            self.lock.notify_all()
        try:
            for _ in ws:
                pass
        finally:
            with self.lock:
                self.subscribers.pop(ws, None)

    def run_broadcast(
        self, count: int, size: int, timeout: float, subscribers: int
    ) -> dict[str, Any]:
        """Broadcast, close the subscribers that are left, return the summary.

        The summary: ``messages``, ``size``, ``subscribers``; ``seconds`` (the
        broadcast calls), ``closing_seconds`` (closing the remaining subscribers);
        ``cut_off`` (one entry per connection a broadcast returned: its ``id``, the
        ``index`` of the message it missed, its close ``code``); ``cutting_calls``
        (the calls that returned connections: ``index``, ``seconds``, ``count``);
        ``slowest_clean_call`` (seconds, among the calls that returned none) and
        ``slow_clean_calls`` (those of them that took a quarter of ``timeout`` or more);
        ``closed`` (subscribers closed with 1000); ``memory``: ``before`` (RSS
        before the first message), ``peak`` (peak RSS during the broadcast and the
        closing, when ``peak_reset`` says the peak could be reset first), ``after``.
        """
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.subscribers) >= subscribers, SUBSCRIBE_WAIT):
                return {"error": f"only {len(self.subscribers)} subscribers"}
            names = dict(self.subscribers)
        live = list(names)
        tail = filler(size)
        peak_reset = reset_peak()
        before = memory()
        cut_off = []
        cutting_calls = []
        slow_clean_calls = []
        slowest_clean = 0.0
        started = time.monotonic()
        for index in range(count):
            call_started = time.monotonic()
            missed = syncws.broadcast(live, broadcast_message(index, size, tail), timeout=timeout)
            seconds = time.monotonic() - call_started
            if not missed:
                slowest_clean = max(slowest_clean, seconds)
                if seconds >= timeout / 4:
                    slow_clean_calls.append({"index": index, "seconds": seconds})
                continue
            cutting_calls.append({"index": index, "seconds": seconds, "count": len(missed)})
            for connection in missed:
                reason = connection.close_reason
                cut_off.append(
                    {
                        "id": names[connection],
                        "index": index,
                        "code": None if reason is None else reason.code,
                    }
                )
            gone = set(missed)
            live = [connection for connection in live if connection not in gone]
        broadcast_seconds = time.monotonic() - started
        closing_started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLOSERS, "stress-closer") as closers:
            list(closers.map(lambda connection: connection.close(1000), live))
        closing_seconds = time.monotonic() - closing_started
        peak = memory()["hwm"]
        return {
            "messages": count,
            "size": size,
            "subscribers": len(names),
            "seconds": broadcast_seconds,
            "closing_seconds": closing_seconds,
            "cut_off": cut_off,
            "cutting_calls": cutting_calls,
            "slowest_clean_call": slowest_clean,
            "slow_clean_calls": slow_clean_calls,
            "closed": len(live),
            "memory": {
                "before": before["rss"],
                "peak": peak,
                "after": memory()["rss"],
                "peak_reset": peak_reset,
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=["echo", "broadcast"], default="echo")
    parser.add_argument(
        "--disconnect-timeout", type=float, default=10.0, help="seconds (default 10)"
    )
    parser.add_argument("--max-fds", type=int, help="soft limit on open files")
    parser.add_argument(
        "--no-keepalive", action="store_true", help="send no pings (default: the library's)"
    )
    parser.add_argument("--log-level", default="WARNING", help="default WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    set_fd_limit(args.max_fds)
    stress = StressServer(args.mode, args.disconnect_timeout, not args.no_keepalive)
    with stress.server:
        print("PORT", stress.server.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            # Serve until the parent closes our standard input (or goes away).
            for line in sys.stdin.buffer:
                command = COMMANDS.get(line.decode(errors="replace").strip())
                print(command() if command else "unknown command", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
