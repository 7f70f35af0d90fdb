"""Client-side drivers: one small adapter per library, and the peers measured.

Every library is configured alike: no compression (except the deflate workload), no
keepalive pings, a 4 MiB message size limit. ``python -m benchmarks.clients LIB PORT N``
is the child process of the idle-connections workload (see :func:`idle_main`).
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import HOST, MAX_SIZE, TIMEOUT
from .sysinfo import process_stats, raise_fd_limit

CLIENT_LIBS = ("syncws", "websockets", "simple-websocket", "websocket-client", "raw-tcp")


@dataclass(frozen=True)
class Peer:
    """A library as measured: its client against a server."""

    name: str
    client: str
    server: str
    #: Server processes: more than 1 runs the syncws server as a WorkerPool.
    workers: int = 1

    @property
    def label(self) -> str:
        if self.client == self.server:
            return self.name
        return f"{self.client} (vs {self.server} server)"


def workers_peer(workers: int) -> Peer:
    """The syncws client against a syncws server of ``workers`` worker processes."""
    return Peer(f"syncws-workers{workers}", "syncws", "syncws", workers)


PEERS = {
    peer.name: peer
    for peer in (
        Peer("syncws", "syncws", "syncws"),
        Peer("websockets", "websockets", "websockets"),
        Peer("simple-websocket", "simple-websocket", "simple-websocket"),
        Peer("websocket-client", "websocket-client", "syncws"),
        Peer("websocket-client@websockets", "websocket-client", "websockets"),
        Peer("raw-tcp", "raw-tcp", "raw-tcp"),
    )
}


@dataclass(frozen=True)
class Conn:
    """An open client connection: ``recv`` raises TimeoutError after ``TIMEOUT`` seconds."""

    send: Callable[[str | bytes], None]
    recv: Callable[[], str | bytes]
    close: Callable[[], None]


def _syncws(port: int, compression: bool) -> Conn:
    import syncws

    ws = syncws.connect(
        f"ws://{HOST}:{port}/",
        max_message_size=MAX_SIZE,
        connect_timeout=TIMEOUT,
        disconnect_timeout=TIMEOUT,
        compression="deflate" if compression else None,
        ping_interval=None,  # no keepalive, like every library here
    )
    return Conn(ws.send_message, lambda: ws.get_message(TIMEOUT), ws.close)


def _websockets(port: int, compression: bool) -> Conn:
    from websockets.sync.client import connect

    options: dict[str, Any] = {}
    parameters = inspect.signature(connect).parameters
    if "legacy" in parameters:
        options["legacy"] = True  # websockets >= 17.1: return the connection directly
    if "proxy" in parameters:
        options["proxy"] = None  # websockets >= 15: no proxy lookup in the environment
    ws = connect(
        f"ws://{HOST}:{port}/",
        compression="deflate" if compression else None,
        ping_interval=None,
        max_size=MAX_SIZE,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        **options,
    )
    return Conn(ws.send, lambda: ws.recv(TIMEOUT), ws.close)


def _simple_websocket(port: int, compression: bool) -> Conn:
    import simple_websocket

    ws = simple_websocket.Client.connect(f"ws://{HOST}:{port}/", max_message_size=MAX_SIZE)

    def recv() -> str | bytes:
        message: str | bytes | None = ws.receive(TIMEOUT)
        if message is None:
            raise TimeoutError(f"no message within {TIMEOUT} s")
        return message

    return Conn(ws.send, recv, ws.close)


def _websocket_client(port: int, compression: bool) -> Conn:
    import websocket

    ws = websocket.create_connection(f"ws://{HOST}:{port}/", timeout=TIMEOUT)

    def send(message: str | bytes) -> None:
        if isinstance(message, str):
            ws.send(message)
        else:
            ws.send_binary(message)

    return Conn(send, ws.recv, ws.close)


def _raw(port: int, compression: bool) -> Conn:
    from .rawtcp import RawClient

    client = RawClient(HOST, port, TIMEOUT)
    return Conn(client.send, lambda: client.recv(TIMEOUT), client.close)


_OPENERS: dict[str, Callable[[int, bool], Conn]] = {
    "syncws": _syncws,
    "websockets": _websockets,
    "simple-websocket": _simple_websocket,
    "websocket-client": _websocket_client,
    "raw-tcp": _raw,
}


def open_conn(lib: str, port: int, compression: bool = False) -> Conn:
    """Connect with client library ``lib`` to the benchmark server on ``port``."""
    return _OPENERS[lib](port, compression)


def idle_main() -> None:
    """Open N idle connections, print this process's memory per connection, wait for EOF."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients")
    parser.add_argument("lib", choices=CLIENT_LIBS)
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    raise_fd_limit()
    # One connection first, so that lazy imports and first-use allocations are in the baseline.
    warmup = open_conn(args.lib, args.port)
    warmup.send("warmup")
    warmup.recv()
    warmup.close()
    del warmup
    gc.collect()
    before = process_stats()
    conns = [open_conn(args.lib, args.port) for _ in range(args.count)]
    gc.collect()
    after = process_stats()
    per_conn = {key: (after[key] - before[key]) / len(conns) for key in before}
    sys.stdout.write(json.dumps(per_conn) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent has measured the server and closes our stdin
    os._exit(0)  # the kernel closes the sockets; the server sees them end


if __name__ == "__main__":
    idle_main()
