"""The "threads + sockets" baseline: length-prefixed messages over plain TCP.

No WebSocket framing, no masking, no text/binary distinction: each message is a 4-byte
big-endian length and the payload. The client mirrors the syncws design (a reader
thread per connection hands complete messages to the caller through a queue); the
server runs one thread per connection.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
from collections.abc import Callable

_HEADER = struct.Struct("!I")
#: Payloads at least this big are sent after their header instead of concatenated.
_CONCAT_LIMIT = 65536


class RawClosed(Exception):
    """The raw TCP connection ended."""


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes; :exc:`RawClosed` on EOF."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise RawClosed
        got += n
    return bytes(buffer)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = _HEADER.unpack(recv_exact(sock, 4))
    return recv_exact(sock, size) if size else b""


def send_frame(sock: socket.socket, payload: bytes) -> None:
    header = _HEADER.pack(len(payload))
    if len(payload) < _CONCAT_LIMIT:
        sock.sendall(header + payload)
    else:
        sock.sendall(header)
        sock.sendall(payload)


def _as_bytes(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


class RawClient:
    """Client: a reader thread queues each received message for :meth:`recv`."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="raw-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                self._queue.put(recv_frame(self._sock))
        except (OSError, RawClosed):
            self._queue.put(None)

    def send(self, message: str | bytes) -> None:
        with self._send_lock:
            send_frame(self._sock, _as_bytes(message))

    def recv(self, timeout: float) -> bytes:
        try:
            message = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None
        if message is None:
            self._queue.put(None)
            raise RawClosed
        return message

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(10)
        self._sock.close()


ServeLoop = Callable[[Callable[[], bytes], Callable[[str | bytes], None]], None]


def serve_raw(listener: socket.socket, serve_loop: ServeLoop) -> None:
    """Accept forever; one thread per connection runs ``serve_loop(recv, send)``."""

    def client_main(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            serve_loop(lambda: recv_frame(sock), lambda m: send_frame(sock, _as_bytes(m)))
        except (OSError, RawClosed):
            pass
        finally:
            sock.close()

    while True:
        sock, _ = listener.accept()
        threading.Thread(target=client_main, args=(sock,), daemon=True).start()
