"""A server on a free loopback port, serving in a background thread: :class:`ServerThread`.

On :meth:`~ServerThread.stop` it checks that every thread the server started has
ended. Part of :mod:`syncws.testing`, where every name here is documented.
"""

from __future__ import annotations

import ssl
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from .. import testing
from .._deadline import Deadline
from ..connection import WebSocketConnection
from ..exceptions import ConnectionClosed
from ..request import Handler, ServeOptions, WebSocketRequest
from ..server import WebSocketServer

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ServerThread"]


class ServerThread:
    """A :class:`~syncws.WebSocketServer` serving in a background thread, for a test.

    The server listens as soon as this object is made (on a free port by default), so
    :attr:`url` is known at once; :meth:`start` serves, :meth:`stop` shuts down and
    checks that nothing the server started is still running. As a context manager, it
    starts on entry and stops on exit::

        with ServerThread(RecordingHandler(echo=True)) as server:
            with syncws.connect(server.url) as ws:
                ...

    Exceptions the handler raised (other than :exc:`~syncws.ConnectionClosed`) are
    collected in :attr:`errors`; the server still logs them and closes the
    connection with code 1011, as usual.

    :param handler: the server's handler.
    :param host: the address to listen on.
    :param port: the TCP port; ``0`` picks a free one.
    :param ssl_context: for TLS (``wss://`` URLs): a server-side :class:`ssl.SSLContext`.
    :param options: see :class:`~syncws.ServeOptions`; ``connect_timeout`` and
        ``disconnect_timeout`` default to :data:`TEST_TIMEOUT`.
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ServeOptions],
    ) -> None:
        self._handler = handler
        self._lock = threading.Lock()
        #: Exceptions the handler raised, in order (a test may clear it).
        self.errors: list[Exception] = []
        # Guarded by _lock: what the server started for its clients.
        self._handler_threads: list[threading.Thread] = []
        self._accepted: list[WebSocketConnection] = []
        self._thread: threading.Thread | None = None
        serve_options: ServeOptions = {"connect_timeout": testing.TEST_TIMEOUT}
        serve_options["disconnect_timeout"] = testing.TEST_TIMEOUT
        serve_options.update(options)
        #: The server itself.
        self.server = WebSocketServer(self._handle, host, port, ssl_context, **serve_options)
        scheme = "ws" if ssl_context is None else "wss"
        shown = f"[{host}]" if ":" in host else host
        #: The URL of the server, e.g. ``"ws://127.0.0.1:43210/"``.
        self.url = f"{scheme}://{shown}:{self.server.port}/"

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self.server.port

    def _handle(self, request: WebSocketRequest) -> None:
        with self._lock:
            self._handler_threads.append(threading.current_thread())
        try:
            self._handler(request)
        except ConnectionClosed:
            raise  # The client went away: not a failure of the handler.
        except Exception as exc:
            with self._lock:
                self.errors.append(exc)
            raise
        finally:
            connection = request.connection
            if connection is not None:
                with self._lock:
                    self._accepted.append(connection)

    def start(self) -> ServerThread:
        """Serve in a thread named ``syncws-testing-server-<port>``; return ``self``.

        :raises RuntimeError: when already started.
        """
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            name=f"syncws-testing-server-{self.port}",
            # A daemon, as the server's own threads: a test that never calls stop()
            # cannot keep the interpreter alive.
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down, then check that its threads have all ended.

        Open connections are closed with code 1001 (see
        :meth:`~syncws.WebSocketServer.shutdown`). Idempotent.

        :raises AssertionError: when a thread the server started (serving, handler,
            or reader thread of an accepted connection) is still running
            :data:`THREAD_JOIN_TIMEOUT` seconds after the shutdown.
        """
        self.server.shutdown()
        with self._lock:
            threads = [*self._handler_threads]
            threads += [c.reader_thread for c in self._accepted if c.reader_thread is not None]
        if self._thread is not None:
            threads.append(self._thread)
        deadline = Deadline(testing.THREAD_JOIN_TIMEOUT)
        for thread in threads:
            thread.join(deadline.remaining())
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            raise AssertionError(
                f"threads of the server at {self.url} still running after it stopped: "
                f"{alive} (a handler that does not return when its connection closes?)"
            )

    def __enter__(self) -> ServerThread:
        """Start serving (see :meth:`start`)."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop (see :meth:`stop`)."""
        self.stop()
