"""Unit tests of the timer that starts server connections' reader threads (``syncws/_starter.py``).

Fake connections record when the timer calls them; no sockets, no sleeps.
"""

from __future__ import annotations

import logging
import queue
import threading

import pytest
from helpers import WAIT

from syncws._starter import ReaderStarter


class FakeConnection:
    """Records each ``start_unless_caller_reads()`` call, with the calling thread's name."""

    def __init__(self, name: str, calls: queue.Queue[tuple[str, str]], fail: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.fail = fail

    def start_unless_caller_reads(self) -> None:
        self.calls.put((self.name, threading.current_thread().name))
        if self.fail:
            raise RuntimeError("check failed")

    def __str__(self) -> str:
        return self.name


def test_a_check_runs_on_the_timers_own_thread() -> None:
    starter = ReaderStarter()
    calls: queue.Queue[tuple[str, str]] = queue.Queue()
    starter.opened()
    starter.check_soon(FakeConnection("a", calls), delay=0)
    assert calls.get(timeout=WAIT) == ("a", "syncws-starter")
    starter.ended()  # The last connection: joins the thread.
    assert not [t for t in threading.enumerate() if t.name == "syncws-starter"]


def test_checks_run_in_order_of_their_due_times() -> None:
    now = [100.0]
    starter = ReaderStarter(clock=lambda: now[0])
    calls: queue.Queue[tuple[str, str]] = queue.Queue()
    starter.opened()
    # Due in the (fake) future, then the clock jumps past both.
    starter.check_soon(FakeConnection("later", calls), delay=2.0)
    starter.check_soon(FakeConnection("sooner", calls), delay=1.0)
    assert starter.pending == 2
    now[0] = 103.0
    starter.check_soon(FakeConnection("now", calls), delay=0)  # Wakes the thread.
    names = [calls.get(timeout=WAIT)[0] for _ in range(3)]
    assert names == ["sooner", "later", "now"]
    starter.ended()


def test_the_thread_ends_with_the_last_connection_and_drops_its_checks() -> None:
    starter = ReaderStarter()
    calls: queue.Queue[tuple[str, str]] = queue.Queue()
    starter.opened()
    starter.opened()
    starter.check_soon(FakeConnection("a", calls), delay=3600.0)
    starter.ended()
    assert starter.pending == 1  # One connection is still open.
    starter.ended()
    assert starter.pending == 0
    assert calls.empty()
    # The timer starts again for the next connection.
    starter.opened()
    starter.check_soon(FakeConnection("b", calls), delay=0)
    assert calls.get(timeout=WAIT)[0] == "b"
    starter.ended()


@pytest.mark.allow_syncws_errors(logging.ERROR)
def test_a_check_that_raises_is_logged_and_the_timer_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    starter = ReaderStarter()
    calls: queue.Queue[tuple[str, str]] = queue.Queue()
    starter.opened()
    with caplog.at_level(logging.ERROR, logger="syncws"):
        starter.check_soon(FakeConnection("bad", calls, fail=True), delay=0)
        assert calls.get(timeout=WAIT)[0] == "bad"
        starter.check_soon(FakeConnection("good", calls), delay=0)
        assert calls.get(timeout=WAIT)[0] == "good"
    assert "bad: starting the reader thread failed" in caplog.text
    starter.ended()


def test_when_no_thread_can_start_the_next_request_tries_again() -> None:
    starter = ReaderStarter()
    calls: queue.Queue[tuple[str, str]] = queue.Queue()
    starter.opened()
    threading.stack_size(2**47)  # Every Thread.start() of the process now fails.
    try:
        starter.check_soon(FakeConnection("a", calls), delay=0)  # No error.
    finally:
        threading.stack_size(0)
    assert calls.empty()
    starter.check_soon(FakeConnection("b", calls), delay=0)
    assert sorted(calls.get(timeout=WAIT)[0] for _ in range(2)) == ["a", "b"]
    starter.ended()


def test_a_stalled_timer_says_so_and_retry_starts_it() -> None:
    """What a server's accept loop relies on when no other request comes."""
    starter = ReaderStarter()
    calls: queue.Queue[tuple[str, str]] = queue.Queue()
    starter.opened()
    assert not starter.stalled  # Nothing waits.
    threading.stack_size(2**47)  # Every Thread.start() of the process now fails.
    try:
        starter.check_soon(FakeConnection("a", calls), delay=0)
        assert starter.stalled
        starter.retry()  # Still no thread: no error, still stalled.
        assert starter.stalled
    finally:
        threading.stack_size(0)
    starter.retry()
    assert calls.get(timeout=WAIT) == ("a", "syncws-starter")
    assert not starter.stalled
    starter.ended()
