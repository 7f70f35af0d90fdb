"""Unit tests of whose turn it is to read (``syncws/_readturns.py``): no sockets, no sleeps.

A fake clock drives the caller window; the few tests that need the reader thread's
waits run it in a thread and synchronise with the object's own state and events.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from helpers import WAIT, wait_for

from syncws._readturns import TRANSITIONS, Event, ReadTurns, Timing, Turn

TIMING = Timing(longest=1.0, shortest=0.02, factor=8.0, decay=0.5)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def server_turns(clock: FakeClock) -> ReadTurns:
    """A server connection's turns: free from the start, a caller may read first."""
    return ReadTurns(reader_starts_now=False, timing=TIMING, clock=clock)


def client_turns(clock: FakeClock) -> ReadTurns:
    """A client connection's turns: the reader thread reads from the start."""
    return ReadTurns(timing=TIMING, clock=clock)


# -- the table --------------------------------------------------------------------------


def test_every_move_outside_the_table_is_refused(clock: FakeClock) -> None:
    for turn, event in itertools.product(Turn, Event):
        turns = client_turns(clock)
        turns._turn = turn  # The state under test.
        with turns._lock:
            if (turn, event) in TRANSITIONS:
                turns._move(event)
                assert turns.turn is TRANSITIONS[turn, event]
            else:
                with pytest.raises(RuntimeError, match=f"{event.value} is not allowed"):
                    turns._move(event)
                assert turns.turn is turn


def test_a_caller_cannot_give_back_a_turn_it_does_not_have(clock: FakeClock) -> None:
    turns = client_turns(clock)
    with pytest.raises(RuntimeError, match="caller_gives_back is not allowed in reader"):
        turns.give_back(False)


# -- callers ----------------------------------------------------------------------------


def test_a_server_connection_starts_free_and_a_caller_reads_first(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.turn is Turn.FREE
    assert turns.try_take()
    assert turns.turn is Turn.CALLER
    assert not turns.give_back(False)
    assert turns.turn is Turn.FREE


def test_a_caller_that_finds_the_reader_reading_asks_for_the_turn(clock: FakeClock) -> None:
    turns = client_turns(clock)
    assert not turns.try_take()
    assert turns.caller_asked
    assert turns.reader_hand_over_if_asked()
    assert turns.turn is Turn.FREE
    assert not turns.caller_asked
    assert not turns.reader_hand_over_if_asked()  # Not asked twice.


def test_a_caller_that_will_not_wait_does_not_ask(clock: FakeClock) -> None:
    turns = client_turns(clock)
    assert not turns.try_take(ask=False)
    assert not turns.caller_asked
    assert not turns.reader_hand_over_if_asked()
    assert turns.turn is Turn.READER


def test_a_second_caller_that_asked_is_told_when_the_first_gives_back(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    assert not turns.try_take()  # Another caller: it waits for a message, and asks.
    assert turns.give_back(False)  # The first is told to wake it.
    assert not turns.caller_asked


def test_no_caller_reads_once_the_input_ended(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    turns.give_back(True)
    assert turns.input_ended
    assert not turns.try_take()
    assert not turns.caller_asked
    take, _ = turns.reader_should_take(None)
    assert take


# -- the caller window ------------------------------------------------------------------


def test_the_window_starts_at_its_shortest(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.window() == TIMING.shortest
    assert turns.reader_should_take(None) == (False, pytest.approx(TIMING.shortest))
    clock.advance(TIMING.shortest)
    assert turns.reader_should_take(None) == (True, 0.0)


def test_the_window_follows_the_longest_recent_gap_between_reads(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    turns.give_back(False)
    clock.advance(0.01)  # A gap of 10 ms before the next read: a window of 80 ms.
    assert turns.try_take()
    turns.give_back(False)
    assert turns.window() == pytest.approx(0.08)
    assert turns.reader_should_take(None) == (False, pytest.approx(0.08))
    clock.advance(0.0)  # Back at once: the gap is forgotten by half (decay 0.5).
    assert turns.try_take()
    turns.give_back(False)
    assert turns.window() == pytest.approx(0.04)


def test_the_window_is_never_longer_than_the_longest(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    turns.give_back(False)
    clock.advance(60.0)
    assert turns.try_take()
    turns.give_back(False)
    assert turns.window() == TIMING.longest


def test_a_timer_that_is_due_ends_the_window(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.reader_should_take(0.005) == (False, 0.005)
    assert turns.reader_should_take(0.0) == (True, 0.0)


def test_handing_to_the_reader_ends_the_window_at_once(clock: FakeClock) -> None:
    turns = server_turns(clock)
    turns.hand_to_reader()
    assert turns.reader_should_take(None) == (True, 0.0)


# -- starting the reader thread ---------------------------------------------------------


def test_the_reader_thread_is_started_once(clock: FakeClock) -> None:
    turns = server_turns(clock)
    started: list[int] = []
    turns.start_reader_once(lambda: started.append(1))
    turns.start_reader_once(lambda: started.append(2))
    assert started == [1]


def test_a_start_that_fails_can_be_tried_again(clock: FakeClock) -> None:
    turns = server_turns(clock)

    def cannot_start() -> None:
        raise RuntimeError("can't start new thread")

    with pytest.raises(RuntimeError):
        turns.start_reader_once(cannot_start)
    started: list[int] = []
    turns.start_reader_once(lambda: started.append(1))
    assert started == [1]


def test_the_servers_check_leaves_a_reading_caller_alone(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    started: list[int] = []
    turns.start_reader_once(lambda: started.append(1), unless_caller_reads=True)
    assert started == []
    turns.give_back(False)
    # A caller has read: the reader thread waits out the window once it starts.
    turns.start_reader_once(lambda: started.append(1), unless_caller_reads=True)
    assert started == [1]
    assert turns.reader_should_take(None)[0] is False


def test_a_reader_started_before_any_caller_read_reads_at_once(clock: FakeClock) -> None:
    turns = server_turns(clock)
    turns.start_reader_once(lambda: None, unless_caller_reads=True)
    assert turns.reader_should_take(None) == (True, 0.0)


def test_the_closing_thread_runs_the_loop_of_a_reader_that_never_started(
    clock: FakeClock,
) -> None:
    turns = server_turns(clock)
    assert turns.take_for_closing()
    assert turns.turn is Turn.READER
    assert not turns.take_for_closing()  # Once.
    started: list[int] = []
    turns.start_reader_once(lambda: started.append(1))
    assert started == []  # The loop runs already: no reader thread.


def test_the_closing_thread_does_not_take_a_callers_turn(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    assert not turns.take_for_closing()
    assert not turns.take_for_closing_after_caller(0.0)
    turns.give_back(False)
    assert turns.take_for_closing_after_caller(0.0)


def test_after_fork_nobody_reads(clock: FakeClock) -> None:
    for make in (server_turns, client_turns):
        turns = make(clock)
        turns.after_fork()
        assert turns.turn is Turn.READER
        assert turns.input_ended
        assert not turns.try_take()
        assert not turns.take_for_closing()


# -- the reader thread's waits (a real thread, synchronised on the object's state) -------


def run_in_thread(target: object) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append(target()),  # type: ignore[operator]
        name="test-readturns",
    )
    thread.start()
    return thread, result


def test_the_reader_waits_while_a_caller_reads_and_takes_over_when_handed(
    clock: FakeClock,
) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    thread, result = run_in_thread(lambda: turns.reader_wait_turn(lambda: None))
    try:
        wait_for(lambda: turns._reader_sleeping or not thread.is_alive(), what="the reader")
        assert result == []
        turns.give_back(False)
        turns.hand_to_reader()
    finally:
        thread.join(WAIT)
    assert result == [True]
    assert turns.turn is Turn.READER


def test_the_reader_keeps_the_turn_for_good_once_the_caller_is_done(clock: FakeClock) -> None:
    turns = server_turns(clock)
    assert turns.try_take()
    thread, result = run_in_thread(turns.reader_keep_for_good)
    try:
        wait_for(lambda: turns._reader_sleeping, what="the reader to wait for the caller")
        assert turns.turn is Turn.CALLER
        turns.give_back(False)
    finally:
        thread.join(WAIT)
    assert not thread.is_alive()
    assert turns.turn is Turn.READER
    assert turns.input_ended
    thread, result = run_in_thread(lambda: turns.reader_wait_turn(lambda: None))
    thread.join(WAIT)
    assert result == [False]  # The input ended: the loop ends.
