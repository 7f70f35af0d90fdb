"""The thin I/O layer: a non-blocking socket with deadline-bounded reads and ordered writes.

Everything here is about bytes; nothing knows about WebSocket frames.

Reads
    Only the connection's reader thread reads. :meth:`Transport.receive` returns the
    bytes available, ``b""`` at end of stream, or ``None`` when the wait timed out or
    the socket became writable (so the reader can flush what it queued).

Writes
    Outgoing bytes are appended, under the connection's lock, to one FIFO in the
    order the protocol engine produced them; the engine's output order is the wire
    order, which matters once compression keeps state across messages. One thread
    at a time holds the *writer role* and writes the FIFO into the socket. A caller
    that needs its bytes on the wire (:meth:`Transport.flush`) either takes the role
    or waits, with a deadline, until the writer has passed its bytes. The holder of
    the role writes up to the end of its own bytes and no further, then hands the
    role on: a sender never waits for the messages of threads that queued after it.
    The reader thread never waits for the socket to become writable: it writes what
    it can without blocking (:meth:`Transport.try_flush`, which also takes over the
    bytes nobody else waits for) and asks :meth:`receive` to wake it when the socket
    is writable again.

Aborting
    :meth:`Transport.abort` shuts the socket down in both directions, which wakes a
    thread blocked in ``poll`` on Linux and macOS, and fails every pending and future
    write. Only :meth:`Transport.close` releases the file descriptor, once no other
    thread can be using it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from .types import Endpoint

if TYPE_CHECKING:
    from ._deadline import Deadline

__all__ = [
    "BLOCKED",
    "BUSY",
    "FAILED",
    "WRITTEN",
    "Progress",
    "Transport",
    "TransportError",
    "endpoint",
    "retry_wait",
]

#: How much one ``recv`` asks for.
RECV_SIZE = 256 * 1024
#: The largest slice handed to one ``SSLSocket.send`` (it retries with the same slice).
SSL_SEND_SIZE = 256 * 1024
#: The longest wait for a full socket to become writable before trying to send again.
#: Linux reports a TCP socket writable only once a third of its send buffer is free,
#: but ``send`` takes bytes long before that (the buffer also grows while in use), so
#: a writer that waited for the signal alone could stall while the kernel would
#: accept its bytes.
WRITE_RETRY = 0.05

_READ_EVENTS = getattr(select, "POLLIN", 1)
_WRITE_EVENTS = getattr(select, "POLLOUT", 4)
_ERROR_EVENTS = (
    getattr(select, "POLLERR", 8) | getattr(select, "POLLHUP", 16) | getattr(select, "POLLNVAL", 32)
)


def endpoint(sock: socket.socket, *, local: bool, is_ssl: bool) -> Endpoint | str:
    """Describe one end of a socket: an Endpoint, or a path for Unix sockets."""
    try:
        address = sock.getsockname() if local else sock.getpeername()
    except OSError:
        return ""
    if isinstance(address, tuple):
        return Endpoint(str(address[0]), int(address[1]), is_ssl)
    return os.fsdecode(address)


def retry_wait(remaining: float | None) -> float:
    """How long to wait for a full socket: ``remaining``, capped at :data:`WRITE_RETRY`."""
    return WRITE_RETRY if remaining is None else min(remaining, WRITE_RETRY)


class Progress(enum.Enum):
    """Where queued bytes stand, as :meth:`Transport.progress` and ``try_flush`` report it."""

    WRITTEN = "written"  # handed to the kernel
    BLOCKED = "blocked"  # waiting for the socket to become writable
    BUSY = "busy"  # another thread holds the writer role; try again shortly
    FAILED = "failed"  # the socket broke or was aborted


# The members as plain globals, for the hot paths (an enum member lookup costs more).
WRITTEN = Progress.WRITTEN
BLOCKED = Progress.BLOCKED
BUSY = Progress.BUSY
FAILED = Progress.FAILED


class TransportError(ConnectionError):
    """The socket can no longer be written to (reset, aborted or closed)."""


class _Poller:
    """Waits for one socket to become readable and/or writable.

    One poller is used by one thread at a time: the reader has its own, the holder
    of the writer role shares another.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._registered = 0

    def wait(self, read: bool, write: bool, timeout: float | None) -> tuple[bool, bool]:
        """Wait up to ``timeout`` seconds; return ``(readable, writable)``.

        An error or hang-up on the socket reports it as both readable and writable,
        so that the next ``recv`` or ``send`` surfaces the condition.
        """
        if self._poll is None:  # pragma: no cover - platforms without poll()
            rlist, wlist, xlist = select.select(
                [self._fd] if read else [], [self._fd] if write else [], [self._fd], timeout
            )
            return bool(rlist or xlist), bool(wlist or xlist)
        mask = (_READ_EVENTS if read else 0) | (_WRITE_EVENTS if write else 0)
        if mask != self._registered:
            self._poll.register(self._fd, mask)
            self._registered = mask
        ms = -1 if timeout is None else max(0, int(timeout * 1000 + 0.999))
        ready = 0
        for _, events in self._poll.poll(ms):
            ready |= events
        if ready & _ERROR_EVENTS:
            return True, True
        return bool(ready & _READ_EVENTS), bool(ready & _WRITE_EVENTS)


class Transport:
    """A connected socket, made non-blocking, shared by a reader and many writers.

    :param sock: a connected stream socket (plain or :class:`ssl.SSLSocket`).
    :param lock: the connection's lock; the write queue lives under it so that
        protocol output can be queued in the same critical section that produced it.
    """

    def __init__(self, sock: socket.socket, lock: threading.Lock) -> None:
        self.sock = sock
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Messages are written whole; waiting to coalesce them only adds latency.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.is_ssl = isinstance(sock, ssl.SSLSocket)
        # An SSL object must not be used by two threads at once. The socket never
        # blocks inside OpenSSL, so holding this lock around each call is cheap.
        self._ssl_lock = threading.Lock() if self.is_ssl else None
        # The connection's lock: held directly (a C call) where nobody waits.
        self._lock = lock
        self._cond = threading.Condition(lock)
        self._fd = sock.fileno()
        self._read_poller = _Poller(self._fd)
        self._write_poller = _Poller(self._fd)
        self._read_first = True
        # Write queue state, guarded by ``_cond``.
        # A list, not a deque: it is short, and an empty deque costs 700 bytes more
        # per connection.
        self._out: list[memoryview] = []
        self._queued = 0  # bytes ever queued
        self._written = 0  # bytes ever handed to the kernel
        self._writing = False  # someone holds the writer role
        self._error: BaseException | None = None
        self._closed = False
        # Shut down for writing (shutdown_write), both ways (abort): once each is
        # enough, and each costs a system call.
        self._shut_wr = False
        self._shut = False

    # -- reading (reader thread only) ----------------------------------------------

    def receive(self, timeout: float | None, want_write: bool = False) -> bytes | None:
        """Return received bytes, ``b""`` at end of stream, or ``None``.

        ``None`` means that ``timeout`` passed or, when ``want_write`` is set, that
        the socket became writable. A reset connection counts as end of stream.
        """
        if not self._read_first:
            readable, _ = self._read_poller.wait(True, want_write, timeout)
            if not readable:
                return None
        try:
            data = self._recv()
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            self._read_first = False
            return None
        except OSError:
            return b""
        # A short read means the kernel buffer is drained: poll before the next read.
        # TLS may still hold decrypted bytes that poll cannot see.
        self._read_first = len(data) == RECV_SIZE or self._ssl_pending()
        return data

    def wait_writable(self, timeout: float | None, blocked: bool) -> None:
        """Wait up to ``timeout`` seconds without reading, for queued bytes to go out.

        For the reader thread while it holds back from reading. ``blocked``: the
        socket is full, so wake up as soon as it is writable; otherwise another thread
        is writing, and this only waits (an error or hang-up still ends the wait).
        """
        self._read_poller.wait(False, blocked, timeout)

    def _recv(self) -> bytes:
        if self._ssl_lock is None:
            return self.sock.recv(RECV_SIZE)
        with self._ssl_lock:
            return self.sock.recv(RECV_SIZE)

    def _ssl_pending(self) -> bool:
        if self._ssl_lock is None:
            return False
        with self._ssl_lock:
            return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0

    # -- writing ---------------------------------------------------------------------

    def queue(self, data: bytes | bytearray) -> int:
        """Append ``data`` to the write queue; return the queue offset just past it.

        Must be called with the connection's lock held. Once the socket has failed,
        the bytes are counted but not kept: they can never be written.
        """
        if data:
            if self._error is None:
                self._out.append(memoryview(data))
            self._queued += len(data)
        return self._queued

    @property
    def fileno(self) -> int:
        """The socket's file descriptor, as it was when the transport was made."""
        return self._fd

    @property
    def pending(self) -> bool:
        """Whether queued bytes wait to be written (read under the lock)."""
        return bool(self._out)

    @property
    def written_offset(self) -> int:
        """The queue offset up to which bytes have been handed to the kernel.

        A plain read without the lock: it only grows, so a stale value errs on the
        side of bytes still waiting.
        """
        return self._written

    def write(self, data: bytes) -> tuple[int, bool]:
        """Write ``data`` now if no other write is under way; queue what is left (lock held).

        The common case, one writer at a time and a socket with room, costs one
        ``send`` and no other lock round. The socket never blocks, so the lock is held
        only for the system call.

        :returns: the queue offset just past ``data``, and whether it was all written
            (if not, :meth:`flush` up to that offset).
        """
        if self._writing or self._out or self._error is not None:
            return self.queue(data), False
        try:
            sent = self._send(memoryview(data))
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:
            # The bytes were refused: count them as queued, never to be written, so
            # that flush() up to the returned offset raises TransportError.
            self._error = exc
            self._queued += len(data)
            self._cond.notify_all()
            return self._queued, False
        self._queued += len(data)
        self._written += sent
        if sent < len(data):
            self._out.append(memoryview(data)[sent:])
            return self._queued, False
        return self._queued, True

    def flush(self, end: int, deadline: Deadline) -> None:
        """Block until the queue has been written up to offset ``end``.

        :raises TimeoutError: when ``deadline`` passes first; part of the bytes may
            have been written.
        :raises TransportError: when the socket broke or was aborted.
        """
        with self._lock:
            while self._written < end:
                if self._error is not None:
                    raise TransportError("connection lost") from self._error
                if not self._writing:
                    self._writing = True
                    break
                self._cond.wait(deadline.remaining())
                if deadline.expired() and self._written < end:
                    raise TimeoutError("timed out waiting for the peer to read")
            else:
                return
        try:
            self._drain(end, deadline)
        finally:
            with self._lock:
                self._writing = False
                self._cond.notify_all()

    def written(self, end: int) -> bool:
        """Whether the queue has been written up to offset ``end``."""
        with self._lock:
            return self._written >= end

    def _drain(self, end: int, deadline: Deadline) -> None:
        """Write queued bytes up to offset ``end`` while holding the writer role.

        Bytes queued behind ``end`` are left to their own writers (or to the reader's
        :meth:`try_flush`): a sender returns as soon as its own bytes are out.
        """
        while True:
            with self._lock:
                if self._error is not None:
                    if self._written >= end:
                        return
                    raise TransportError("connection lost") from self._error
                if self._written >= end or not self._out:
                    return
                chunk = self._out[0]
            try:
                sent = self._send(chunk)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            except OSError as exc:
                self._fail(exc)
                continue
            if sent:
                self._advance(sent)
                continue
            if deadline.expired():
                raise TimeoutError("timed out waiting for the peer to read")
            self._write_poller.wait(False, True, retry_wait(deadline.remaining()))

    def try_flush(self) -> Progress:
        """Write what can be written now, without blocking; say what remains.

        Used by the reader thread, which writes the bytes no sender waits for (its
        own control frames, and what others queued without flushing).

        :returns: :attr:`Progress.WRITTEN` when nothing is left, ``BLOCKED`` when the
            socket is full (wait until it is writable), ``BUSY`` when another thread
            holds the writer role (try again shortly), ``FAILED`` when the socket broke.
        """
        if not self._out:
            # The common case, checked without the lock (a racy read is fine).
            return FAILED if self._error is not None else WRITTEN
        with self._lock:
            if self._error is not None:
                return FAILED
            if not self._out:
                return WRITTEN
            if self._writing:
                return BUSY
            self._writing = True
        try:
            while True:
                with self._lock:
                    if self._error is not None:
                        return FAILED
                    if not self._out:
                        return WRITTEN
                    chunk = self._out[0]
                try:
                    sent = self._send(chunk)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    return BLOCKED
                except OSError as exc:
                    self._fail(exc)
                    return FAILED
                self._advance(sent)
        finally:
            with self._lock:
                self._writing = False
                self._cond.notify_all()

    def progress(self, end: int) -> Progress:
        """Write what can be written now, without blocking; say where offset ``end`` is.

        Used by :func:`~syncws.broadcast`, which waits for many sockets at once.
        """
        self.try_flush()
        with self._lock:
            if self._written >= end:
                return Progress.WRITTEN
            if self._error is not None:
                return Progress.FAILED
            return Progress.BUSY if self._writing else Progress.BLOCKED

    def _send(self, chunk: memoryview) -> int:
        if self._ssl_lock is None:
            return self.sock.send(chunk)
        # Retries after SSLWantWriteError must pass the same bytes: the slice below
        # starts at the same offset and has the same length until it is sent.
        with self._ssl_lock:
            return self.sock.send(chunk[:SSL_SEND_SIZE])

    def _advance(self, sent: int) -> None:
        with self._lock:
            if self._error is not None:
                return  # The queue was failed (and emptied) while we were sending.
            head = self._out[0]
            if sent >= len(head):
                del self._out[0]
            else:
                self._out[0] = head[sent:]
            self._written += sent
            self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
            self._out.clear()
            self._cond.notify_all()

    # -- ending ------------------------------------------------------------------------

    def shutdown_write(self) -> None:
        """Send end-of-stream (TCP FIN) after the bytes already written."""
        if self._shut or self._shut_wr:
            return  # Once is enough: each costs a system call.
        self._shut_wr = True
        # socket.socket.shutdown, not SSLSocket.shutdown, which drops the TLS state
        # that a concurrent recv still needs.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def abort(self) -> None:
        """Fail every write and wake every thread waiting on this socket."""
        self._fail(TransportError("connection aborted"))
        if self._shut:
            return
        self._shut = True
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def forsake(self, lock: threading.Lock) -> None:
        """In a child process after ``fork()``: release our copy of the socket, quietly.

        The parent's threads may have held the locks when the process forked: they are
        replaced, with ``lock`` as the connection's new lock. Nothing is sent and the
        socket is not shut down (that would end the parent's connection too); only the
        child's file descriptor is closed.
        """
        self._lock = lock
        self._cond = threading.Condition(lock)
        self._ssl_lock = threading.Lock() if self.is_ssl else None
        self._out = []
        self._writing = False
        self._error = TransportError("connection inherited across fork()")
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def close(self, timeout: float) -> None:
        """Abort, wait up to ``timeout`` for the writer role to be free, close the fd."""
        self.abort()
        with self._lock:
            if self._closed:
                return
            self._cond.wait_for(lambda: not self._writing, timeout)
            self._closed = True
        self.sock.close()
