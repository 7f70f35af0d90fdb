"""One end of the streaming benchmark, in a process of its own: ``python -m benchmarks.streamend``.

``python -m benchmarks.streamend LIB SIDE ACTION [options]``: ``LIB`` is ``syncws`` or
``websockets``; ``SIDE`` ``server`` (listens on 127.0.0.1, a free port, prints
``listening PORT``, serves one connection, then exits) or ``client`` (``--url``);
``ACTION`` ``send`` (one binary message of ``--size`` bytes from a generator of
``--chunk``-byte chunks, a frame each: syncws ``send_message(iterable)``, websockets
``send(iterable)``; then it waits for the answer) or ``recv`` (the message read as a
stream: syncws ``get_message_stream``, websockets ``recv_streaming``; bytes and CRC-32
counted; it answers ``done BYTES CRC``). The client closes the connection after the
answer.

It prints one line ``result {json}``: ``bytes``, ``crc``, ``chunks``, ``seconds`` (the
sender: from the first chunk to the answer; the receiver: the stream's start to its
end), ``answer``, and its memory: ``rss_base`` (VmRSS once the connection is open, when
the peak is reset through ``/proc/self/clear_refs``) and ``peak_growth`` (VmHWM after
the message minus ``rss_base``), in bytes.

Payloads, each chunk starting with its index (8 bytes): ``random`` repeats one block of
seeded pseudo-random bytes (incompressible), ``pattern`` repeats a 64-byte ASCII pattern
(about 340:1 with deflate). The tests run it too (``tests/streampeer.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import queue
import random
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

HOST = "127.0.0.1"
MIB = 2**20
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


# ------------------------------------------------------------------ payload and memory


def block(payload: str, size: int) -> bytes:
    """The bytes every chunk of ``payload`` repeats (after its 8-byte index)."""
    if payload == "random":
        return random.Random(20).randbytes(size)
    if payload == "pattern":
        return (PATTERN * (size // len(PATTERN) + 1))[:size]
    raise ValueError(f"unknown payload {payload!r}")


def chunks(total: int, size: int, payload: str) -> Iterator[bytes]:
    """``total`` bytes of ``payload`` in chunks of ``size`` (the last one may be shorter)."""
    body = block(payload, size)
    index = sent = 0
    while sent < total:
        length = min(size, total - sent)
        chunk = (index.to_bytes(8, "big") + body[8:length])[:length]
        yield chunk
        index += 1
        sent += length


def expected_crc(total: int, size: int, payload: str) -> int:
    """The CRC-32 of the ``total`` bytes that :func:`chunks` makes."""
    crc = 0
    for chunk in chunks(total, size, payload):
        crc = zlib.crc32(chunk, crc)
    return crc


def memory() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line[:5]] = int(line.split()[1]) * 1024
    return found


def reset_peak() -> int:
    """Reset VmHWM to the current VmRSS (Linux 4.0+); return that baseline."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    return memory()["VmRSS"]


class Counter:
    """Counts what goes through: bytes, chunks, CRC-32."""

    def __init__(self) -> None:
        self.bytes = self.chunks = self.crc = 0

    def add(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.chunks += 1
        self.crc = zlib.crc32(chunk, self.crc)

    def through(self, source: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in source:
            self.add(chunk)
            yield chunk


# -------------------------------------------------------------------------- the ends


def act(args: argparse.Namespace, send: Any, recv: Any, stream: Any) -> dict[str, Any]:
    """Send or receive the message on an open connection; return the result."""
    base = reset_peak()
    counter = Counter()
    answer = None
    started = time.perf_counter()
    if args.action == "send":
        send(counter.through(chunks(args.size, args.chunk, args.payload)))
        answer = recv()
    else:
        for chunk in stream():
            counter.add(chunk if isinstance(chunk, bytes) else chunk.encode())
    seconds = time.perf_counter() - started
    peak = memory()["VmHWM"]
    if args.action == "recv":
        send(f"done {counter.bytes} {counter.crc}")
    return {
        "bytes": counter.bytes,
        "crc": counter.crc,
        "chunks": counter.chunks,
        "seconds": seconds,
        "answer": answer,
        "rss_base": base,
        "peak_growth": peak - base,
    }


def run_syncws(args: argparse.Namespace) -> dict[str, Any]:
    import syncws

    options: dict[str, Any] = {
        "max_message_size": args.max_message_size,
        "ping_interval": None,
        "compression": "deflate" if args.compression == "deflate" else None,
    }
    timeout = args.timeout

    def run(ws: syncws.WebSocketConnection) -> dict[str, Any]:
        return act(
            args,
            lambda message: ws.send_message(message, timeout=timeout),
            lambda: ws.get_message(timeout=timeout),
            lambda: ws.get_message_stream(timeout=timeout),
        )

    if args.side == "client":
        with syncws.connect(args.url, disconnect_timeout=timeout, **options) as ws:
            return run(ws)
    results: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()

    def handler(request: syncws.WebSocketRequest) -> None:
        with request.accept() as ws:
            try:
                results.put(run(ws))
            except BaseException as exc:
                results.put(exc)
                raise
            with contextlib.suppress(syncws.ConnectionClosed):
                ws.get_message(timeout=timeout)  # Only the client's close comes.

    with syncws.WebSocketServer(handler, HOST, 0, **options) as server:
        print(f"listening {server.port}", flush=True)
        result = results.get(timeout=timeout)
    if isinstance(result, BaseException):
        raise result
    return result


def run_websockets(args: argparse.Namespace) -> dict[str, Any]:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    from websockets.sync.server import ServerConnection, serve

    options: dict[str, Any] = {
        "max_size": None,
        "ping_interval": None,
        "compression": "deflate" if args.compression == "deflate" else None,
    }
    timeout = args.timeout

    def run(ws: Any) -> dict[str, Any]:
        return act(args, ws.send, lambda: ws.recv(timeout), ws.recv_streaming)

    if args.side == "client":
        with connect(args.url, close_timeout=timeout, **options) as ws:
            return run(ws)
    results: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()

    def handler(ws: ServerConnection) -> None:
        try:
            results.put(run(ws))
        except BaseException as exc:
            results.put(exc)
            raise
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout)

    with serve(handler, HOST, 0, **options) as server:
        print(f"listening {server.socket.getsockname()[1]}", flush=True)
        serving = threading.Thread(target=server.serve_forever)
        serving.start()
        try:
            result = results.get(timeout=timeout)
        finally:
            server.shutdown()
            serving.join(timeout)
    if isinstance(result, BaseException):
        raise result
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streamend", description=__doc__)
    parser.add_argument("lib", choices=("syncws", "websockets"))
    parser.add_argument("side", choices=("server", "client"))
    parser.add_argument("action", choices=("send", "recv"))
    parser.add_argument("--url", help="the server's URL (client)")
    parser.add_argument("--size", type=int, default=MIB, help="bytes of the message")
    parser.add_argument("--chunk", type=int, default=MIB, help="bytes per chunk sent")
    parser.add_argument("--payload", choices=("random", "pattern"), default="random")
    parser.add_argument("--compression", choices=("none", "deflate"), default="none")
    parser.add_argument("--max-message-size", type=int, default=MIB, help="syncws's limit")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on every wait")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # A run that hangs shows where: every thread's stack on stderr, shortly before
    # the waits give up.
    faulthandler.dump_traceback_later(args.timeout * 0.9, exit=False)
    result = run_syncws(args) if args.lib == "syncws" else run_websockets(args)
    print("result " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
