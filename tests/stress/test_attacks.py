"""Attacks on a syncws server in a child process, with the bound each one holds.

Slow tests (``pytest -m slow tests/stress``): ping floods from clients that never read,
floods of empty continuation frames, and signal storms in a client process (Ctrl-C while
receiving, close() from a signal handler). Each prints its figures; with
``SYNCWS_STRESS_REPORT=<path>`` they also go into that JSON file.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator

import pytest
from connection.test_interrupt_storm import CLOSER, STORM
from helpers import WAIT, ChildProcess
from rawpeer import OP_CONT, OP_PING, OP_TEXT, Pusher, encode_frame, raw_client

import syncws

from .process import LOADED, ServerProcess
from .test_stress import MIB, report

pytestmark = pytest.mark.slow

ATTACKERS = 20
#: Bytes each attacker tries to push.
FLOOD = 32 * MIB
#: An attacker that could not write for this long is held back (seconds).
STALL = 2.0


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = ServerProcess("echo")
    try:
        yield process
    finally:
        process.stop()
    process.check_clean_exit()


def attacker(port: int) -> socket.socket:
    """A raw client of /echo with a tiny receive buffer that it never reads."""
    return raw_client(port, "/echo", timeout=LOADED, rcvbuf=4096).sock


def flood(server: ServerProcess, frames: bytes) -> tuple[list[Pusher], list[socket.socket]]:
    socks = [attacker(server.port) for _ in range(ATTACKERS)]
    pushers = [Pusher(sock, frames, stall_after=STALL) for sock in socks]
    return pushers, socks


def stop(pushers: list[Pusher], socks: list[socket.socket]) -> None:
    for pusher in pushers:
        pusher.join()
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()


def echo_once(server: ServerProcess) -> float:
    start = time.monotonic()
    with syncws.connect(server.url("/echo"), connect_timeout=LOADED) as ws:
        ws.send_message("still serving")
        assert ws.get_message(timeout=LOADED) == "still serving"
    return time.monotonic() - start


@pytest.mark.timeout(180)
def test_ping_floods_from_clients_that_never_read(server: ServerProcess) -> None:
    before = server.settled_stats("before")
    frame = encode_frame(OP_PING, b"p" * 125, mask=b"\x01\x02\x03\x04")
    pushers, socks = flood(server, frame * (FLOOD // len(frame)))
    try:
        deadline = time.monotonic() + LOADED * 3
        for pusher in pushers:
            while not (pusher.stalled.is_set() or pusher.done.is_set()):
                assert time.monotonic() < deadline, "an attacker was never held back"
                pusher.stalled.wait(0.1)
        assert not any(p.done.is_set() for p in pushers), "a flood went through entirely"
        during = server.stats()
        echo_seconds = echo_once(server)
        sent = [p.sent_at_stall or 0 for p in pushers]
    finally:
        stop(pushers, socks)
    after = server.stats_until(lambda s: s["connections"] == 1, "the attackers to be gone")
    growth = (during["rss"] - before["rss"]) / ATTACKERS
    figures = {
        "attackers": ATTACKERS,
        "bytes pushed each before being held back (MiB, max)": round(max(sent) / MIB, 1),
        "server RSS growth per attacker (MiB)": round(growth / MIB, 2),
        "server RSS before, during, after (MiB)": [
            round(s["rss"] / MIB, 1) for s in (before, during, after)
        ],
        "another client's echo during the floods (s)": round(echo_seconds, 3),
    }
    report("ping_floods", figures)
    print(figures)
    # Each attacker holds the server's unsent pongs (at most 128, plus those of one
    # read) and socket buffers, not the flood.
    assert growth < 4 * MIB, figures


@pytest.mark.timeout(180)
def test_floods_of_empty_continuation_frames(server: ServerProcess) -> None:
    before = server.settled_stats("before")
    frames = encode_frame(OP_TEXT, b"", fin=False, mask=b"\1\2\3\4")
    frames += encode_frame(OP_CONT, b"", fin=False, mask=b"\1\2\3\4") * (FLOOD // 6)
    start = time.monotonic()
    pushers, socks = flood(server, frames)
    codes = []
    try:
        for sock in socks:
            codes.append(read_close_code(sock))
        seconds = time.monotonic() - start
        during = server.stats()
        echo_seconds = echo_once(server)
    finally:
        stop(pushers, socks)
    growth = (during["rss"] - before["rss"]) / ATTACKERS
    figures = {
        "attackers": ATTACKERS,
        "close codes": sorted(set(codes)),
        "time until every attacker got its close frame (s)": round(seconds, 2),
        "server RSS growth per attacker (MiB)": round(growth / MIB, 2),
        "another client's echo afterwards (s)": round(echo_seconds, 3),
    }
    report("empty_fragment_floods", figures)
    print(figures)
    assert codes == [1009] * ATTACKERS, figures
    assert growth < 2 * MIB, figures


def read_close_code(sock: socket.socket) -> int | None:
    """Read what the server sends until its close frame; return the close code."""
    deadline = time.monotonic() + LOADED
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        # Server frames are unmasked: opcode 0x8, then the length, then the code.
        at = data.find(b"\x88")
        if at >= 0 and len(data) >= at + 4:
            return int.from_bytes(data[at + 2 : at + 4], "big")
    return None


# ------------------------------------------------------------ signal storms


def run_child(code: str, *args: str, timeout: float) -> ChildProcess:
    with ChildProcess(code, *args) as child:
        status = child.wait(timeout)
    assert status == 0, child.errors
    return child


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.timeout(240)
def test_a_long_storm_of_interrupts(server: ServerProcess) -> None:
    count = 200_000
    start = time.monotonic()
    child = run_child(STORM, server.url("/numbers"), str(count), timeout=200)
    match = re.search(r"interrupts (\d+) lost (\d+) duplicated (\d+) in-order (\w+)", child.output)
    assert match, child.output
    figures = {
        "messages": count,
        "interrupts": int(match[1]),
        "lost": int(match[2]),
        "duplicated": int(match[3]),
        "in order": match[4] == "True",
        "seconds": round(time.monotonic() - start, 1),
    }
    report("interrupt_storm", figures)
    print(figures)
    assert figures["duplicated"] == 0
    if sys.version_info >= (3, 11):
        assert figures["lost"] == 0 and figures["in order"], figures


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.timeout(300)
def test_many_closes_from_a_signal_handler(server: ServerProcess) -> None:
    count = 1500
    start = time.monotonic()
    child = run_child(CLOSER, server.url("/echo"), str(count), timeout=280)
    assert "HANG" not in child.output, child.errors
    assert f"ended {count} of {count} syncws threads []" in child.output, child.output
    figures = {
        "connections closed from a SIGALRM handler": count,
        "deadlocks": 0,
        "seconds": round(time.monotonic() - start, 1),
    }
    report("signal_handler_closes", figures)
    print(figures)


def test_the_numbers_resource_exists(server: ServerProcess) -> None:
    """The storm child asks /numbers for N numbered messages."""
    with syncws.connect(server.url("/numbers"), connect_timeout=WAIT) as ws:
        ws.send_message("3")
        assert [ws.get_message(timeout=WAIT) for _ in range(3)] == ["0", "1", "2"]
