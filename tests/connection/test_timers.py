"""Unit tests of a connection's deadlines (``syncws/_timers.py``): made-up times, no sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from syncws._timers import Due, Timers

T0 = 1000.0


def clock(now: float) -> Callable[[], float]:
    """A clock that says ``now``."""
    return lambda: now


def test_without_keepalive_nothing_is_ever_due() -> None:
    timers = Timers(None, None, T0)
    assert timers.next_wait(clock(T0 + 1e6)) is None
    assert timers.due(T0 + 1e6) is None


def test_the_clock_is_not_read_when_nothing_is_scheduled() -> None:
    def no_clock() -> float:
        raise AssertionError("the clock was read")

    assert Timers(None, None, T0).next_wait(no_clock) is None


def test_a_ping_is_due_every_interval() -> None:
    timers = Timers(20.0, None, T0)
    assert timers.next_wait(clock(T0)) == 20.0
    assert timers.due(T0 + 19.9) is None
    assert timers.due(T0 + 20.0) is Due.PING
    assert timers.due(T0 + 20.0) is None  # Once per interval.
    assert timers.next_wait(clock(T0 + 20.0)) == 20.0


def test_an_unanswered_ping_makes_the_peer_silent_after_the_timeout() -> None:
    timers = Timers(20.0, 5.0, T0)
    assert timers.due(T0 + 20.0) is Due.PING
    timers.ping_sent(T0 + 20.0)
    assert timers.next_wait(clock(T0 + 20.0)) == 5.0
    assert timers.due(T0 + 24.9) is None
    assert timers.due(T0 + 25.0) is Due.PEER_SILENT


def test_the_timeout_defaults_to_the_interval() -> None:
    timers = Timers(20.0, None, T0)
    assert timers.due(T0 + 20.0) is Due.PING
    timers.ping_sent(T0 + 20.0)
    assert timers.due(T0 + 39.9) is None
    assert timers.due(T0 + 40.0) is Due.PEER_SILENT


def test_bytes_from_the_peer_end_its_silence() -> None:
    timers = Timers(20.0, 5.0, T0)
    timers.due(T0 + 20.0)
    timers.ping_sent(T0 + 20.0)
    timers.heard_from_peer()
    assert timers.due(T0 + 30.0) is None
    assert timers.next_wait(clock(T0 + 30.0)) == 10.0  # The next ping.


def test_a_second_ping_does_not_restart_the_silence() -> None:
    timers = Timers(4.0, 10.0, T0)
    timers.due(T0 + 4.0)
    timers.ping_sent(T0 + 4.0)
    assert timers.due(T0 + 8.0) is Due.PING
    timers.ping_sent(T0 + 8.0)
    assert timers.due(T0 + 14.0) is Due.PEER_SILENT


def test_waiting_for_the_application_is_not_silence() -> None:
    timers = Timers(100.0, 5.0, T0)
    timers.due(T0 + 100.0)
    timers.ping_sent(T0 + 100.0)
    # The queue was full from 100 to 150: the peer's silence counts from 150.
    timers.waited_for_application(T0 + 150.0)
    assert timers.due(T0 + 154.9) is None
    assert timers.due(T0 + 155.0) is Due.PEER_SILENT


def test_waiting_for_the_application_without_a_ping_changes_nothing() -> None:
    timers = Timers(20.0, 5.0, T0)
    timers.waited_for_application(T0 + 10.0)
    assert timers.due(T0 + 19.0) is None
    assert timers.due(T0 + 20.0) is Due.PING


def test_the_closing_deadline_comes_first() -> None:
    timers = Timers(20.0, 5.0, T0)
    timers.close_deadline = T0 + 3.0
    assert timers.next_wait(clock(T0)) == 3.0
    timers.due(T0 + 20.0)  # Overdue too; the close comes first.
    timers.close_deadline = T0 + 1.0
    assert timers.due(T0 + 30.0) is Due.CLOSE_TIMEOUT


def test_a_closing_deadline_without_keepalive() -> None:
    timers = Timers(None, None, T0)
    timers.close_deadline = T0 + 2.0
    assert timers.next_wait(clock(T0 + 1.5)) == pytest.approx(0.5)
    assert timers.next_wait(clock(T0 + 9.0)) == 0.0  # Overdue: at once.
    assert timers.due(T0 + 2.0) is Due.CLOSE_TIMEOUT
