"""syncws: a synchronous, threaded WebSocket library built on wsproto.

Everything public is importable from this package::

    import syncws

    with syncws.connect("ws://127.0.0.1:8765/") as ws:
        ws.send_message("hello")
        print(ws.get_message(timeout=5))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._deprecated import module_getattr as _module_getattr
from ._serve import serve_websocket
from ._version import __version__ as __version__
from ._workers import WorkerPool
from .auth import basic_auth
from .broadcast import broadcast
from .callbacks import Backoff, CallbackClient
from .client import (
    ConnectOptions,
    HeadersLike,
    connect,
    connect_websocket,
    connect_websocket_url,
    open_websocket,
    open_websocket_url,
    wrap_client_socket,
)
from .connection import ConnectionOptions, MessageStream, WebSocketConnection
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectionLost,
    ConnectionRejected,
    ConnectionTimeout,
    DisconnectionTimeout,
    HandshakeError,
    ProxyError,
    RedirectError,
    RedisUnavailable,
    WebSocketError,
)
from .notify import MessageNotifier
from .redis_broadcast import RedisHub
from .request import Handler, ServeOptions, WebSocketRequest, wrap_server_socket
from .server import WebSocketServer
from .types import CloseReason, Endpoint

if TYPE_CHECKING:
    from .request import RequestHook as RequestHook  # Deprecated: Handler.
else:
    # The deprecated names (RequestHook), with a DeprecationWarning.
    __getattr__ = _module_getattr(__name__, globals())

__all__ = [
    "Backoff",
    "CallbackClient",
    "CloseReason",
    "ConnectOptions",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionLost",
    "ConnectionOptions",
    "ConnectionRejected",
    "ConnectionTimeout",
    "DisconnectionTimeout",
    "Endpoint",
    "Handler",
    "HandshakeError",
    "HeadersLike",
    "MessageNotifier",
    "MessageStream",
    "ProxyError",
    "RedirectError",
    "RedisHub",
    "RedisUnavailable",
    "ServeOptions",
    "WebSocketConnection",
    "WebSocketError",
    "WebSocketRequest",
    "WebSocketServer",
    "WorkerPool",
    "basic_auth",
    "broadcast",
    "connect",
    "connect_websocket",
    "connect_websocket_url",
    "open_websocket",
    "open_websocket_url",
    "serve_websocket",
    "wrap_client_socket",
    "wrap_server_socket",
]
