"""Client-side drivers: one small adapter per library, and the peers measured.

Every library is configured alike: no compression (except the deflate workload), no
keepalive pings, a 4 MiB message size limit. ``compression`` is ``False`` (off), ``True``
(permessage-deflate asked for) or ``None`` (no compression argument: the library's
default). ``python -m benchmarks.clients LIB PORT N`` is the child process of the
idle-connections workload (see :func:`idle_main`).
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
from .payloads import json_messages
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


def _compression_option(compression: bool | None) -> dict[str, Any]:
    """The ``compression`` keyword argument, or none at all for the library's default."""
    if compression is None:
        return {}
    return {"compression": "deflate" if compression else None}


def _syncws(port: int, compression: bool | None) -> Conn:
    import syncws

    ws = syncws.connect(
        f"ws://{HOST}:{port}/",
        max_message_size=MAX_SIZE,
        connect_timeout=TIMEOUT,
        disconnect_timeout=TIMEOUT,
        ping_interval=None,  # no keepalive, like every library here
        **_compression_option(compression),
    )
    return Conn(ws.send_message, lambda: ws.get_message(TIMEOUT), ws.close)


def _websockets(port: int, compression: bool | None) -> Conn:
    from websockets.sync.client import connect

    options = _compression_option(compression)
    parameters = inspect.signature(connect).parameters
    if "legacy" in parameters:
        options["legacy"] = True  # websockets >= 17.1: return the connection directly
    if "proxy" in parameters:
        options["proxy"] = None  # websockets >= 15: no proxy lookup in the environment
    ws = connect(
        f"ws://{HOST}:{port}/",
        ping_interval=None,
        max_size=MAX_SIZE,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        **options,
    )
    return Conn(ws.send, lambda: ws.recv(TIMEOUT), ws.close)


def _simple_websocket(port: int, compression: bool | None) -> Conn:
    import simple_websocket

    ws = simple_websocket.Client.connect(f"ws://{HOST}:{port}/", max_message_size=MAX_SIZE)

    def recv() -> str | bytes:
        message: str | bytes | None = ws.receive(TIMEOUT)
        if message is None:
            raise TimeoutError(f"no message within {TIMEOUT} s")
        return message

    return Conn(ws.send, recv, ws.close)


def _websocket_client(port: int, compression: bool | None) -> Conn:
    import websocket

    ws = websocket.create_connection(f"ws://{HOST}:{port}/", timeout=TIMEOUT)

    def send(message: str | bytes) -> None:
        if isinstance(message, str):
            ws.send(message)
        else:
            ws.send_binary(message)

    return Conn(send, ws.recv, ws.close)


def _raw(port: int, compression: bool | None) -> Conn:
    from .rawtcp import RawClient

    client = RawClient(HOST, port, TIMEOUT)
    return Conn(client.send, lambda: client.recv(TIMEOUT), client.close)


_OPENERS: dict[str, Callable[[int, bool | None], Conn]] = {
    "syncws": _syncws,
    "websockets": _websockets,
    "simple-websocket": _simple_websocket,
    "websocket-client": _websocket_client,
    "raw-tcp": _raw,
}


def open_conn(lib: str, port: int, compression: bool | None = False) -> Conn:
    """Connect with client library ``lib`` to the benchmark server on ``port``."""
    return _OPENERS[lib](port, compression)


#: ``--compression`` of the idle child: the value of ``compression`` given to open_conn.
COMPRESSION_MODES: dict[str, bool | None] = {"off": False, "deflate": True, "default": None}


def _per_conn(before: dict[str, int], count: int) -> dict[str, float]:
    gc.collect()
    after = process_stats()
    return {key: (after[key] - before[key]) / count for key in before}


def idle_main() -> None:
    """Open N idle connections, print this process's memory per connection, wait for EOF.

    With ``--message-size S``, then wait for a line on stdin, send one JSON document of
    about S bytes on every connection and receive its echo, and print the memory per
    connection again (from the same baseline) before waiting for EOF.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients")
    parser.add_argument("lib", choices=CLIENT_LIBS)
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--compression", choices=COMPRESSION_MODES, default="off")
    parser.add_argument("--message-size", type=int, default=0)
    args = parser.parse_args()
    compression = COMPRESSION_MODES[args.compression]
    raise_fd_limit()
    message = json_messages(1, args.message_size)[0] if args.message_size else "warmup"
    # One connection first, so that lazy imports and first-use allocations are in the baseline.
    warmup = open_conn(args.lib, args.port, compression)
    warmup.send(message)
    warmup.recv()
    warmup.close()
    del warmup
    gc.collect()
    before = process_stats()
    conns = [open_conn(args.lib, args.port, compression) for _ in range(args.count)]
    sys.stdout.write(json.dumps(_per_conn(before, len(conns))) + "\n")
    sys.stdout.flush()
    if args.message_size and sys.stdin.readline():
        for conn in conns:
            conn.send(message)
            if len(conn.recv()) != len(message):
                raise RuntimeError("the echo differs from the message sent")
        sys.stdout.write(json.dumps(_per_conn(before, len(conns))) + "\n")
        sys.stdout.flush()
    sys.stdin.read()  # until the parent has measured the server and closes our stdin
    os._exit(0)  # the kernel closes the sockets; the server sees them end


if __name__ == "__main__":
    idle_main()
