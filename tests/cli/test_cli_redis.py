"""``python -m syncws serve --broadcast --redis URL``: two servers sharing one room.

Each server is a child process with its own Redis connections; ``redis-server`` runs as
a child process too (see :mod:`redisserver`), and the tests skip without it.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
from pathlib import Path

import pytest
from clihelpers import Cli, ServeCli, no_traceback
from helpers import WAIT
from redisserver import RedisServer

import syncws

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def subscribed(server: ServeCli, count: int) -> None:
    """Wait until ``server`` logged its ``count``-th client joining the room."""
    server.wait_line(rf"joined \({count} connected here\)")


def test_two_servers_relay_every_message_in_order(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    try:
        arguments = ["serve", "--port", "0", "--broadcast", "--redis", redis.url]
        with (
            ServeCli(*arguments, "--channel", "lobby") as one,
            ServeCli(*arguments, "--channel", "lobby") as two,
        ):
            clients = [syncws.connect(one.url, disconnect_timeout=WAIT)]
            subscribed(one, 1)
            clients.append(syncws.connect(two.url, disconnect_timeout=WAIT))
            subscribed(two, 1)
            clients.append(syncws.connect(two.url, disconnect_timeout=WAIT))
            subscribed(two, 2)
            count = 100
            received: list[queue.Queue[str | bytes]] = [queue.Queue() for _ in clients]

            def read(n: int) -> None:
                for _ in range(2 * count):
                    received[n].put(clients[n].get_message(WAIT))

            readers = [threading.Thread(target=read, args=(n,)) for n in range(len(clients))]
            for reader in readers:
                reader.start()
            for i in range(count):  # The first client of each server sends.
                clients[0].send_message(f"one {i}")
                clients[1].send_message(f"two {i}".encode())
            for reader in readers:
                reader.join(WAIT)
            for messages in received:
                seen = [messages.get(timeout=WAIT) for _ in range(2 * count)]
                assert [m for m in seen if isinstance(m, str)] == [f"one {i}" for i in range(count)]
                assert [m for m in seen if isinstance(m, bytes)] == [
                    f"two {i}".encode() for i in range(count)
                ]
            for client in clients:
                client.close()
            for server in (one, two):
                server.proc.send_signal(signal.SIGTERM)
                assert server.wait() == 0, server.errors
                no_traceback(server)
    finally:
        redis.stop()


def test_redis_needs_broadcast() -> None:
    with Cli("serve", "--redis", "redis://127.0.0.1:1/0") as child:
        assert child.wait() == 2
    assert "argument --redis: needs --broadcast" in child.errors


def test_channel_needs_redis() -> None:
    with Cli("serve", "--broadcast", "--channel", "x") as child:
        assert child.wait() == 2
    assert "argument --channel: needs --redis" in child.errors


def test_workers_share_the_room_through_redis(tmp_path: Path) -> None:
    # The hub is made before the workers fork: each worker must listen with a thread
    # and connections of its own. With 12 clients spread by the kernel over two
    # workers, all on one worker has a chance of 1 in 2,048.
    redis = RedisServer(tmp_path)
    try:
        arguments = ["serve", "--port", "0", "--broadcast", "--redis", redis.url]
        with ServeCli(*arguments, "--workers", "2") as server:
            clients = []
            try:
                for _ in range(12):
                    clients.append(syncws.connect(server.url, disconnect_timeout=WAIT))
                    server.wait_line(r"joined \(\d+ connected here\)")
                for n, client in enumerate(clients):
                    client.send_message(f"from {n}")
                for client in clients:
                    got = {client.get_message(WAIT) for _ in clients}
                    assert got == {f"from {n}" for n in range(len(clients))}
            finally:
                for client in clients:
                    client.close()
            server.proc.send_signal(signal.SIGTERM)
            assert server.wait() == 0, server.errors
            no_traceback(server)
    finally:
        redis.stop()
