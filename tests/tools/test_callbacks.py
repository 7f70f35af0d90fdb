"""CallbackClient and Backoff: callbacks, their threads and order, reconnection."""

from __future__ import annotations

import logging
import queue
import random
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from helpers import MARGIN, WAIT, SyncwsServer, server_echo, unused_port, wait_for

import syncws
from syncws import (
    Backoff,
    CallbackClient,
    CloseReason,
    ConnectionClosed,
    MessageNotifier,
    WebSocketConnection,
)

#: Reconnect at once, deterministically.
FAST = Backoff(initial=0.001, factor=2.0, max_delay=0.01, jitter=0.0)

# ---------------------------------------------------------------------- Backoff


def test_backoff_grows_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, factor=3.0, max_delay=10.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert backoff.delay(10_000) == 10.0  # no overflow


def test_backoff_jitter_stays_in_its_range() -> None:
    rng = random.Random(7)
    full = Backoff(initial=1.0, factor=1.0, jitter=1.0)
    proportional = Backoff(initial=1.0, factor=1.0, jitter=0.2)
    full_delays = [full.delay(1, rng) for _ in range(200)]
    assert all(0.0 <= d <= 1.0 for d in full_delays)
    assert min(full_delays) < 0.2 and max(full_delays) > 0.8  # spread out
    assert all(0.8 <= proportional.delay(1, rng) <= 1.0 for _ in range(200))


@pytest.mark.parametrize(
    "options",
    [{"initial": -1}, {"max_delay": -1}, {"factor": 0.5}, {"jitter": 1.5}, {"max_attempts": 0}],
)
def test_backoff_rejects_bad_values(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Backoff(**options)


# ------------------------------------------------------------ one connection


class Recorder:
    """Callbacks that record what happened, in order, with the thread they ran on."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.log: list[tuple[Any, ...]] = []
        self.threads: set[str] = set()

    def _put(self, *event: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.log.append(event)
        self.events.put(event)

    def on_open(self, ws: WebSocketConnection) -> None:
        self._put("open")

    def on_message(self, ws: WebSocketConnection, message: str | bytes) -> None:
        self._put("message", message)

    def on_close(self, ws: WebSocketConnection, reason: CloseReason) -> None:
        self._put("close", reason.code, reason.reason)

    def on_error(self, error: Exception) -> None:
        self._put("error", error)

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_open": self.on_open,
            "on_message": self.on_message,
            "on_close": self.on_close,
            "on_error": self.on_error,
        }

    def next(self) -> tuple[Any, ...]:
        return self.events.get(timeout=WAIT)


def test_open_message_close_in_order_on_the_calling_thread(syncws_server: Any) -> None:
    srv = syncws_server(server_echo)
    recorder = Recorder()
    client: CallbackClient

    def on_open(ws: WebSocketConnection) -> None:
        recorder.on_open(ws)
        ws.send_message("one")
        client.send_message(b"two")  # the client's own send_message works too

    def on_message(ws: WebSocketConnection, message: str | bytes) -> None:
        recorder.on_message(ws, message)
        if message == b"two":
            client.close(4000, "done")  # from a callback: does not wait for itself

    client = CallbackClient(
        srv.url, on_open=on_open, on_message=on_message, on_close=recorder.on_close
    )
    client.run_forever()
    assert recorder.log == [
        ("open",),
        ("message", "one"),
        ("message", b"two"),
        ("close", 4000, "done"),
    ]
    assert recorder.threads == {threading.current_thread().name}
    assert client.connection is None
    with pytest.raises(RuntimeError, match="closed"):
        client.run_forever()


def test_no_message_is_delivered_after_close(syncws_server: Any) -> None:
    def three_at_once(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        for message in ("one", "two", "three"):
            ws.send_message(message)
        for _ in ws:
            pass

    srv = syncws_server(three_at_once)
    recorder = Recorder()
    client: CallbackClient

    def on_message(ws: WebSocketConnection, message: str | bytes) -> None:
        if message == "one":
            # The others are on their way or queued already: none is delivered.
            with MessageNotifier(ws) as queued:
                assert select.select([queued], [], [], WAIT)[0], "the next message never came"
            client.close()
        recorder.on_message(ws, message)

    client = CallbackClient(srv.url, on_message=on_message, on_close=recorder.on_close)
    client.run_forever()
    assert recorder.log == [("message", "one"), ("close", 1000, None)]


def test_without_reconnect_the_loop_ends_with_the_connection(syncws_server: Any) -> None:
    def greet_and_close(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        ws.send_message("bye")
        ws.close(4001, "server is done")

    srv = syncws_server(greet_and_close)
    recorder = Recorder()
    CallbackClient(srv.url, **recorder.callbacks()).run_forever()
    assert recorder.log == [("open",), ("message", "bye"), ("close", 4001, "server is done")]


def test_send_message_without_a_connection() -> None:
    client = CallbackClient("ws://127.0.0.1:1/")
    with pytest.raises(ConnectionClosed) as info:
        client.send_message("x")
    assert info.value.reason.code == 1006
    with pytest.raises(ValueError):
        client.close(1005)  # may not be sent
    client.close()  # never started: returns at once
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.start()


# -------------------------------------------------------------- reconnection


def test_reconnects_after_the_server_closes(syncws_server: Any) -> None:
    count = iter(range(1, 100))

    def numbered(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        ws.send_message(str(next(count)))
        ws.close(1001)

    srv = syncws_server(numbered)
    recorder = Recorder()
    client: CallbackClient

    def on_message(ws: WebSocketConnection, message: str | bytes) -> None:
        recorder.on_message(ws, message)
        if message == "3":
            client.close()

    client = CallbackClient(
        srv.url,
        on_open=recorder.on_open,
        on_message=on_message,
        on_close=recorder.on_close,
        reconnect=FAST,
        disconnect_timeout=WAIT,
    )
    client.run_forever()
    opens = [event for event in recorder.log if event[0] == "open"]
    closes = [event for event in recorder.log if event[0] == "close"]
    messages = [event[1] for event in recorder.log if event[0] == "message"]
    assert len(opens) == len(closes) == 3
    assert messages == ["1", "2", "3"]


def test_gives_up_after_max_attempts() -> None:
    recorder = Recorder()
    url = f"ws://127.0.0.1:{unused_port()}/"
    client = CallbackClient(
        url, reconnect=Backoff(initial=0.001, jitter=0.0, max_attempts=3), **recorder.callbacks()
    )
    with pytest.raises(ConnectionRefusedError):
        client.run_forever()
    errors = [event[1] for event in recorder.log]
    assert len(errors) == 2 and all(isinstance(e, ConnectionRefusedError) for e in errors)


def test_without_reconnect_a_failure_is_raised_at_once() -> None:
    recorder = Recorder()
    client = CallbackClient(f"ws://127.0.0.1:{unused_port()}/", **recorder.callbacks())
    with pytest.raises(ConnectionRefusedError):
        client.run_forever()
    assert recorder.log == []


def test_a_refusal_is_final(syncws_server: Any) -> None:
    srv = syncws_server(lambda request, srv: request.reject(403))
    client = CallbackClient(srv.url, reconnect=FAST)
    with pytest.raises(syncws.ConnectionRejected) as info:
        client.run_forever()
    assert info.value.status_code == 403


def test_close_interrupts_the_wait_between_attempts() -> None:
    recorder = Recorder()
    client = CallbackClient(
        f"ws://127.0.0.1:{unused_port()}/",
        reconnect=Backoff(initial=60.0, jitter=0.0),
        **recorder.callbacks(),
    )
    client.start()
    assert recorder.next()[0] == "error"  # the first attempt failed: now it waits 60 s
    started = time.monotonic()
    client.close(timeout=WAIT)
    assert time.monotonic() - started < MARGIN


# ---------------------------------------------------------- threads, errors


def test_start_runs_the_loop_in_a_named_thread(syncws_server: Any) -> None:
    srv = syncws_server(server_echo)
    recorder = Recorder()
    with CallbackClient(srv.url, **recorder.callbacks()) as client:
        assert recorder.next() == ("open",)
        client.send_message("hello")
        assert recorder.next() == ("message", "hello")
        with pytest.raises(RuntimeError, match="running"):
            client.start()
        with pytest.raises(RuntimeError, match="running"):
            client.run_forever()
    assert recorder.next() == ("close", 1000, None)
    (name,) = recorder.threads
    assert name.startswith("syncws-app-")
    assert not [t for t in threading.enumerate() if t.name == name]  # joined


def test_a_failing_callback_goes_to_on_error(syncws_server: Any) -> None:
    srv = syncws_server(server_echo)
    recorder = Recorder()
    client: CallbackClient

    def on_message(ws: WebSocketConnection, message: str | bytes) -> None:
        if message == "boom":
            raise ValueError("boom")
        recorder.on_message(ws, message)
        client.close()

    def on_open(ws: WebSocketConnection) -> None:
        ws.send_message("boom")
        ws.send_message("fine")

    client = CallbackClient(
        srv.url, on_open=on_open, on_message=on_message, on_error=recorder.on_error
    )
    client.run_forever()
    assert [event[0] for event in recorder.log] == ["error", "message"]
    assert str(recorder.log[0][1]) == "boom"


@pytest.mark.allow_syncws_errors
def test_without_on_error_a_failing_callback_is_logged(
    syncws_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = syncws_server(server_echo)
    closed = threading.Event()
    client: CallbackClient

    def on_open(ws: WebSocketConnection) -> None:
        raise RuntimeError("open failed")

    def on_message(ws: WebSocketConnection, message: str | bytes) -> None:
        client.close()

    def on_close(ws: WebSocketConnection, reason: CloseReason) -> None:
        closed.set()
        raise RuntimeError("close failed")

    client = CallbackClient(srv.url, on_open=on_open, on_message=on_message, on_close=on_close)
    with caplog.at_level(logging.ERROR, logger="syncws.callbacks"):
        client.start()
        wait_for(lambda: client.connection is not None)
        client.send_message("x")  # on_open failed, yet the loop reads on
        assert closed.wait(WAIT)
        client.close(timeout=WAIT)
    messages = [record.getMessage() for record in caplog.records]
    assert any("open failed" in m for m in messages), messages
    assert any("close failed" in m for m in messages), messages


def test_an_executor_with_one_worker_keeps_the_order(syncws_server: Any) -> None:
    srv = syncws_server(server_echo)
    recorder = Recorder()
    client: CallbackClient
    count = 40

    def on_open(ws: WebSocketConnection) -> None:
        recorder.on_open(ws)
        for i in range(count):
            ws.send_message(str(i))

    def on_message(ws: WebSocketConnection, message: str | bytes) -> None:
        recorder.on_message(ws, message)
        if message == str(count - 1):
            client.close()  # from a worker: must not wait for the loop, which waits for it

    with ThreadPoolExecutor(1, thread_name_prefix="test-worker") as executor:
        client = CallbackClient(
            srv.url,
            on_open=on_open,
            on_message=on_message,
            on_close=recorder.on_close,
            executor=executor,
        )
        client.run_forever()
    assert recorder.log[0] == ("open",)
    assert [event[1] for event in recorder.log[1:-1]] == [str(i) for i in range(count)]
    assert recorder.log[-1] == ("close", 1000, None)
    assert all(name.startswith("test-worker") for name in recorder.threads), recorder.threads


def test_with_several_workers_on_close_comes_last(syncws_server: Any) -> None:
    srv = syncws_server(server_echo)
    finished: list[str | bytes] = []
    seen_at_close: list[int] = []
    lock = threading.Lock()
    client: CallbackClient
    count = 30

    def on_open(ws: WebSocketConnection) -> None:
        for i in range(count):
            ws.send_message(str(i))

    def on_message(ws: WebSocketConnection, message: str | bytes) -> None:
        with lock:
            finished.append(message)
            if len(finished) == count:
                client.close()

    def on_close(ws: WebSocketConnection, reason: CloseReason) -> None:
        seen_at_close.append(len(finished))

    with ThreadPoolExecutor(4, thread_name_prefix="test-worker") as executor:
        client = CallbackClient(
            srv.url, on_open=on_open, on_message=on_message, on_close=on_close, executor=executor
        )
        client.run_forever()
    assert sorted(finished, key=int) == [str(i) for i in range(count)]
    assert seen_at_close == [count]
