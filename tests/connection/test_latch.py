"""The one-shot event every connection carries (``syncws/_latch.py``)."""

from __future__ import annotations

import threading
import time

from helpers import SHORT, WAIT, Background

from syncws._latch import Latch


def test_a_latch_starts_unset_and_times_out() -> None:
    latch = Latch()
    assert not latch.is_set()
    assert latch.wait(0) is False
    started = time.monotonic()
    assert latch.wait(SHORT / 3) is False
    assert time.monotonic() - started >= SHORT / 3 * 0.9


def test_set_wakes_every_waiter_and_stays_set() -> None:
    latch = Latch()
    waiting = threading.Barrier(5)

    def wait() -> bool:
        waiting.wait(WAIT)
        return latch.wait(WAIT)

    waiters = [Background(wait) for _ in range(4)]
    waiting.wait(WAIT)
    latch.set()
    latch.set()  # A second call does nothing.
    assert [waiter.result() for waiter in waiters] == [True] * 4
    assert latch.is_set()
    assert latch.wait() is True
    assert latch.wait(0) is True


def test_concurrent_sets_do_not_fail() -> None:
    for _ in range(50):
        latch = Latch()
        go = threading.Barrier(3)

        def set_it(latch: Latch = latch, go: threading.Barrier = go) -> None:
            go.wait(WAIT)
            latch.set()

        setters = [Background(set_it) for _ in range(2)]
        go.wait(WAIT)
        for setter in setters:
            setter.result()
        assert latch.wait(0)
