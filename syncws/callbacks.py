"""A client driven by callbacks, which can reconnect by itself.

:class:`CallbackClient` runs a loop: connect, call ``on_open``, call ``on_message`` for
each message, call ``on_close`` when the connection ends, then, with a :class:`Backoff`,
wait and connect again. The loop runs on the caller's thread (:meth:`~CallbackClient.run_forever`)
or on a thread of its own (:meth:`~CallbackClient.start`), and that thread is the one
that reads the connection: it waits in :meth:`~syncws.WebSocketConnection.get_message`.
Callbacks run on it too, unless an executor is given.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._closing import check_close_arguments, exit_close_code
from ._options import check_options
from ._redact import redact_url
from .client import connect
from .connection import WebSocketConnection
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionRejected,
    HandshakeError,
    ProxyError,
    RedirectError,
)
from .types import CloseReason

if TYPE_CHECKING:
    import ssl
    from concurrent.futures import Executor
    from types import TracebackType

    from typing_extensions import Unpack

    from .client import ConnectOptions

__all__ = ["Backoff", "CallbackClient"]

logger = logging.getLogger("syncws.callbacks")

#: Callbacks submitted to an executor and not finished yet, at most; the loop stops
#: reading (and TCP flow control slows the peer) while this many are pending.
MAX_PENDING_CALLBACKS = 16
#: HTTP statuses of a refused handshake worth retrying; any other 4xx is final.
_RETRY_STATUSES = frozenset([408, 429])
#: Statuses of a proxy's refusal that retrying would not change: credentials missing or
#: wrong (407; tinyproxy answers 401 to wrong ones), a destination it does not allow (403).
_FINAL_PROXY_STATUSES = frozenset([401, 403, 407])
_ids = itertools.count(1)
_in_callback = threading.local()


@dataclass(frozen=True)
class Backoff:
    """How :class:`CallbackClient` waits between connection attempts.

    The wait before the *n*-th attempt in a row after a connection ended or failed is
    ``min(max_delay, initial * factor ** (n - 1))``, minus a random part of up to
    ``jitter`` times that: with many clients, jitter spreads their attempts out, so
    that a restarted server is not hit by all of them at once. The count starts again
    once a connection opens.

    :param initial: the first wait, in seconds.
    :param factor: how much each wait grows over the previous one.
    :param max_delay: the longest wait, in seconds.
    :param jitter: the random part, as a fraction of the wait: ``1.0`` ("full
        jitter") waits anything from zero to the wait, ``0.2`` from 80 % to 100 % of
        it, ``0.0`` exactly the wait.
    :param max_attempts: how many connection attempts in a row may fail before
        :meth:`CallbackClient.run_forever` gives up and raises the last error
        (``None``: never give up).
    :raises ValueError: for a negative delay, a factor below 1, a jitter outside
        0-1 or fewer than one attempt.
    """

    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    jitter: float = 1.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max_delay < 0:
            raise ValueError("initial and max_delay must be >= 0")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the wait before the ``attempt``-th attempt in a row (from 1), in seconds.

        :param rng: the random generator for the jitter (default: the :mod:`random`
            module's).
        """
        exponent = max(attempt - 1, 0)
        try:
            base = min(self.max_delay, self.initial * self.factor**exponent)
        except OverflowError:
            base = self.max_delay
        return base * (1 - self.jitter * (rng or random).random())


def _retryable(exc: Exception) -> bool:
    """Whether a failed connection attempt is worth trying again."""
    if isinstance(exc, RedirectError):
        return False  # A loop, too many redirects, a downgrade: the same next time.
    if isinstance(exc, ProxyError):
        return exc.status_code not in _FINAL_PROXY_STATUSES
    if isinstance(exc, ConnectionRejected):
        return exc.status_code >= 500 or exc.status_code in _RETRY_STATUSES
    return isinstance(exc, (OSError, HandshakeError))


class CallbackClient:
    """A WebSocket client that calls functions of yours as things happen.

    ::

        def on_message(ws: syncws.WebSocketConnection, message: str | bytes) -> None:
            print(message)

        client = syncws.CallbackClient(url, on_message=on_message, reconnect=syncws.Backoff())
        client.run_forever()  # until client.close(), from a callback or another thread

    The callbacks, all optional:

    ``on_open(ws)``
        Once per connection, when it opens, with the
        :class:`~syncws.WebSocketConnection`; it returns before the first ``on_message``
        of the connection starts.
    ``on_message(ws, message)``
        For each message, ``str`` or ``bytes``, in the order received.
    ``on_close(ws, reason)``
        Once per connection that opened (``on_open`` was called), after every
        ``on_message`` of the connection has returned, with its
        :class:`~syncws.CloseReason`: after the peer closed, the connection failed, or
        :meth:`close` was called.
    ``on_error(error)``
        With an exception that does not end the loop: one raised by another callback
        (on the thread the callback ran on), or a failed connection attempt that will
        be retried. Without it, those are logged (logger ``syncws.callbacks``).

    Callbacks run on the thread of the loop, which is the thread that reads the
    connection: while a callback runs, no message is read, and the queue of the
    connection fills up before the peer is slowed down (see
    :doc:`/topics/backpressure`). Pass an ``executor``
    (:class:`concurrent.futures.ThreadPoolExecutor`) to run them there instead: they
    are submitted in order, and run in order with a single worker; with several
    workers, ``on_message`` calls may overlap and finish out of order, but ``on_open``
    still returns before the first ``on_message`` starts and ``on_close`` starts after
    the last one returned. At most :data:`~syncws.callbacks.MAX_PENDING_CALLBACKS` may wait in the
    executor: beyond that the loop stops reading.

    A callback may call :meth:`send_message` or the connection's own methods, and
    :meth:`close`. Callbacks should return promptly: :meth:`close` waits for the one
    running.

    :param url: as for :func:`~syncws.connect`.
    :param on_open: see above.
    :param on_message: see above.
    :param on_close: see above.
    :param on_error: see above.
    :param reconnect: connect again after a connection ends or an attempt fails,
        waiting as it says; ``None``: run one connection, and raise if it cannot be
        opened.
    :param executor: where to run the callbacks (``None``: on the loop's thread).
        The client never shuts it down.
    :param ssl_context: as for :func:`~syncws.connect`.
    :param options: the options of :func:`~syncws.connect`, used for every connection.
    """

    def __init__(
        self,
        url: str,
        *,
        on_open: Callable[[WebSocketConnection], object] | None = None,
        on_message: Callable[[WebSocketConnection, str | bytes], object] | None = None,
        on_close: Callable[[WebSocketConnection, CloseReason], object] | None = None,
        on_error: Callable[[Exception], object] | None = None,
        reconnect: Backoff | None = None,
        executor: Executor | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ConnectOptions],
    ) -> None:
        check_options(options, "client")  # Before any connection is tried.
        self._url = url
        self._on_open = on_open
        self._on_message = on_message
        self._on_close = on_close
        self._on_error = on_error
        self._reconnect = reconnect
        self._executor = executor
        self._ssl_context = ssl_context
        self._options = options
        self._id = next(_ids)
        self._lock = threading.Lock()
        self._stop = threading.Event()  # close() was called
        self._finished = threading.Event()  # run_forever() ended (or never will run)
        self._finished.set()
        self._running = False
        self._ws: WebSocketConnection | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread: threading.Thread | None = None
        # Callbacks submitted to the executor and not finished yet.
        self._pending = 0
        self._pending_changed = threading.Condition(threading.Lock())

    def __repr__(self) -> str:
        # The repr goes into log records: never with the URL's password.
        return f"<CallbackClient {self._id} {redact_url(self._url)!r}>"

    @property
    def connection(self) -> WebSocketConnection | None:
        """The open connection, or ``None`` between connections."""
        return self._ws

    # -- running -----------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run the loop on the calling thread until :meth:`close` or the end.

        Returns after :meth:`close`, or, without ``reconnect``, once the connection
        ended (``on_close`` was called). :exc:`KeyboardInterrupt` ends the loop at once:
        the connection is closed with code 1001 (``on_close`` is not called) and the
        exception propagates.

        :raises OSError: (or :exc:`~syncws.HandshakeError`) when a connection cannot
            be opened and no attempt is left: without ``reconnect`` at once, with it
            after ``max_attempts`` failures in a row, or at once for what retrying
            would not change: an HTTP 4xx refusal other than 408 and 429 (after
            redirects, the final answer's), a :exc:`~syncws.RedirectError` (a redirect
            loop, too many redirects, ...), or a :exc:`~syncws.ProxyError` with status
            407, 401 (credentials missing or wrong) or 403 (destination not allowed).
        :raises ValueError: for an invalid URL or option.
        :raises RuntimeError: when the loop runs already, or :meth:`close` was called.
        """
        with self._lock:
            if self._running:
                raise RuntimeError("the client is running already")
            if self._stop.is_set():
                raise RuntimeError("the client was closed")
            self._running = True
            self._loop_thread = threading.current_thread()
            self._finished.clear()
        try:
            self._loop()
        finally:
            with self._lock:
                self._running = False
                self._loop_thread = None
            self._finished.set()

    def start(self) -> None:
        """Run the loop in a new thread named ``syncws-app-<n>``; return at once.

        The thread ends after :meth:`close` (which joins it), or when the loop ends by
        itself; an error that ends it goes to ``on_error`` (or is logged).

        :raises RuntimeError: when the loop runs already, or :meth:`close` was called.
        """
        with self._lock:
            if self._running or self._thread is not None:
                raise RuntimeError("the client is running already")
            if self._stop.is_set():
                raise RuntimeError("the client was closed")
            self._finished.clear()
            self._thread = threading.Thread(
                target=self._run_in_thread,
                name=f"syncws-app-{self._id}",
                # A daemon, like the reader threads: a client the application forgot
                # to close must not keep the interpreter alive, reconnecting forever.
                # close() joins it.
                daemon=True,
            )
            self._thread.start()

    def _run_in_thread(self) -> None:
        try:
            self.run_forever()
        except Exception as exc:
            self._report(exc)
        finally:
            self._finished.set()

    def _loop(self) -> None:
        failures = 0  # failed attempts in a row
        attempt = 0  # attempts in a row since a connection ended (or the start)
        while not self._stop.is_set():
            if attempt and self._reconnect is not None:
                delay = self._reconnect.delay(attempt)
                logger.debug("%r: connecting again in %.2f s", self, delay)
                if self._stop.wait(delay):
                    return
            try:
                ws = connect(self._url, ssl_context=self._ssl_context, **self._options)
            except Exception as exc:
                failures += 1
                attempt += 1
                if not _retryable(exc) or self._reconnect is None:
                    raise
                limit = self._reconnect.max_attempts
                if limit is not None and failures >= limit:
                    raise
                logger.info("%r: cannot connect (%s)", self, exc)
                self._call(self._on_error, exc)
                continue
            failures = 0
            attempt = 1
            self._session(ws)
            if self._reconnect is None:
                return

    def _session(self, ws: WebSocketConnection) -> None:
        """Serve one open connection until it ends; call on_close."""
        with self._lock:
            stopping = self._stop.is_set()
            if not stopping:
                self._ws = ws
        if stopping:  # close() was called while this connection was being opened.
            ws.close()
            return
        try:
            self._call(self._on_open, ws)
            self._wait_for_callbacks()
            reason = CloseReason(1006, None)
            while True:
                try:
                    message = ws.get_message()
                except ConnectionClosed as exc:
                    reason = exc.reason
                    break
                if self._stop.is_set():
                    break  # close() was called: what is still queued is not delivered.
                self._call(self._on_message, ws, message)
        except BaseException:  # KeyboardInterrupt: leave at once.
            with self._lock:
                self._ws = None
            ws.close(1001)
            raise
        with self._lock:
            self._ws = None
        ws.close()  # Finishes the closing handshake; the socket is closed after it.
        self._wait_for_callbacks()
        self._call(self._on_close, ws, ws.close_reason or reason)
        self._wait_for_callbacks()

    # -- callbacks ---------------------------------------------------------------------

    def _call(self, callback: Callable[..., object] | None, *args: object) -> None:
        """Run ``callback(*args)`` here, or submit it to the executor."""
        if callback is None:
            return
        if self._executor is None:
            self._run_callback(callback, args)
            return
        with self._pending_changed:
            while self._pending >= MAX_PENDING_CALLBACKS:
                self._pending_changed.wait()
            self._pending += 1
        try:
            future = self._executor.submit(self._run_callback, callback, args)
        except BaseException:  # The executor was shut down, or an interrupt.
            self._callback_done()
            raise
        future.add_done_callback(lambda _future: self._callback_done())

    def _callback_done(self) -> None:
        with self._pending_changed:
            self._pending -= 1
            self._pending_changed.notify_all()

    def _wait_for_callbacks(self) -> None:
        """Wait until every callback submitted to the executor has returned."""
        if self._executor is None:
            return
        with self._pending_changed:
            while self._pending:
                self._pending_changed.wait()

    def _run_callback(self, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        _in_callback.active = True
        try:
            callback(*args)
        except Exception as exc:
            if callback is self._on_error:
                logger.exception("%r: on_error failed", self)
            else:
                self._report(exc)
        finally:
            _in_callback.active = False

    def _report(self, exc: Exception) -> None:
        """Hand ``exc`` to on_error on this thread, or log it."""
        if self._on_error is None:
            logger.error("%r: %s", self, exc, exc_info=exc)
            return
        try:
            self._on_error(exc)
        except Exception:
            logger.exception("%r: on_error failed", self)

    # -- the application's calls -------------------------------------------------------

    def send_message(
        self, message: str | bytes | bytearray | memoryview, timeout: float | None = None
    ) -> None:
        """Send a message on the open connection, as :meth:`WebSocketConnection.send_message`.

        :raises ConnectionClosed: when no connection is open (code 1006, reason
            ``"not connected"``), or it closed.
        :raises TimeoutError: when ``timeout`` passed first (the connection is aborted).
        """
        ws = self._ws
        if ws is None:
            raise ConnectionClosedError(CloseReason(1006, "not connected"))
        ws.send_message(message, timeout)

    def close(
        self, code: int = 1000, reason: str | None = None, timeout: float | None = None
    ) -> None:
        """Close the connection and stop the loop; idempotent, callable from any thread.

        Wakes the loop wherever it waits (for a message, or between attempts) and
        closes the open connection with ``code`` and ``reason`` (``on_close`` follows).
        No ``on_message`` call starts after this one: messages received but not yet
        delivered are dropped.
        A connection attempt under way is closed as soon as it opens: that can take
        up to ``connect_timeout``. Then waits for the loop to end, unless called from
        a callback or from the loop's own thread.

        :param code: the close code, as for :meth:`~syncws.WebSocketConnection.close`.
        :param reason: the close reason, likewise.
        :param timeout: how long to wait for the loop to end (``None``: no limit).
        :raises ValueError: for a code that may not be sent or a reason too long.
        :raises TimeoutError: when the loop did not end within ``timeout``.
        """
        check_close_arguments(code, reason)
        with self._lock:
            self._stop.set()
            ws, thread, loop_thread = self._ws, self._thread, self._loop_thread
        if ws is not None:
            ws.close(code, reason)
        current = threading.current_thread()
        if current is loop_thread or getattr(_in_callback, "active", False):
            return
        if not self._finished.wait(timeout):
            raise TimeoutError("the client's loop did not end in time")
        if thread is not None and thread is not current:
            thread.join(timeout)

    def __enter__(self) -> CallbackClient:
        """Start the loop in its thread (see :meth:`start`)."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close with code 1000; 1001 for Ctrl-C, 1011 for any other exception on its way out."""
        self.close(exit_close_code(exc_type))
