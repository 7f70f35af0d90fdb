"""Many concurrent clients on one server: nothing lost, duplicated, corrupted or reordered."""

from __future__ import annotations

import random
import threading
from collections import deque

import pytest
from helpers import WAIT, Background, server_echo, syncws_threads, wait_for

import syncws

#: Sizes the messages are drawn from (bytes or characters), with their weights:
#: mostly small, with every frame-length encoding boundary and some 64 KiB ones.
SIZES = [0, 1, 125, 126, 127, 500, 1000, 4096, 16384, 65535, 65536]
WEIGHTS = [4, 4, 4, 4, 4, 20, 20, 6, 3, 1, 1]
WINDOW = 8  # messages in flight per client (below message_queue_size: no deadlock)


def messages_for(client: int, count: int) -> list[str | bytes]:
    rng = random.Random(client)
    messages: list[str | bytes] = []
    for index in range(count):
        size = rng.choices(SIZES, WEIGHTS)[0]
        data = rng.randbytes(size)
        if index % 2:
            text = (data.hex() + "\u00e9")[: size // 2] + "\u4e2d" * (size - size // 2)
            messages.append(text[:size])
        else:
            messages.append(data)
    return messages


def run_client(url: str, client: int, count: int, start: threading.Barrier) -> None:
    expected = messages_for(client, count)
    start.wait(WAIT)
    with syncws.connect(url, connect_timeout=3 * WAIT) as ws:
        pending: deque[str | bytes] = deque()
        for message in expected:
            ws.send_message(message, timeout=WAIT)
            pending.append(message)
            if len(pending) >= WINDOW:
                assert ws.get_message(timeout=WAIT) == pending.popleft()
        while pending:
            assert ws.get_message(timeout=WAIT) == pending.popleft()
        with pytest.raises(TimeoutError):
            ws.get_message(timeout=0)  # nothing extra (no duplicate)


def load(syncws_server, clients: int, count: int) -> None:
    srv = syncws_server(server_echo)
    start = threading.Barrier(clients)
    workers = [Background(run_client, srv.url, c, count, start) for c in range(clients)]
    failures = [(c, w.exception(6 * WAIT)) for c, w in enumerate(workers)]
    failures = [(c, e) for c, e in failures if e is not None]
    assert failures == [], f"{len(failures)} clients failed, first: {failures[0]!r}"
    wait_for(lambda: srv.server.connections == frozenset(), what="every connection to end")
    srv.stop()
    assert syncws_threads() == []


@pytest.mark.timeout(120)
def test_hundred_concurrent_clients(syncws_server) -> None:
    load(syncws_server, clients=100, count=50)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_many_concurrent_clients_long(syncws_server) -> None:
    load(syncws_server, clients=300, count=300)
