"""Helpers for testing code that uses syncws, with pytest or any other test runner.

* :func:`connection_pair`: a connected client and server connection over a
  :func:`socket.socketpair`, with no network and no server: for unit tests of code
  that takes a :class:`~syncws.WebSocketConnection`.
* :class:`RecordingHandler`: a server handler that records every message and close
  reason, optionally answers, and lets a test wait for them without sleeping.
* :class:`ServerThread`: a :class:`~syncws.WebSocketServer` on a free loopback port,
  serving in a background thread, that checks on :meth:`~ServerThread.stop` that every
  thread it started has ended.
* :func:`echo`: a handler that sends every message back.
* :class:`ServerFactory` and :class:`ConnectionFactory`: what the ``ws_server`` and
  ``ws_connect`` fixtures are, usable without pytest too.

This module does not import pytest; the pytest fixtures built on it are in
:mod:`syncws.pytest_plugin`. Everything made here defaults to
:data:`TEST_TIMEOUT` for ``connect_timeout`` and ``disconnect_timeout``, so that a
test that goes wrong fails within seconds instead of the library's default minute.
"""

from __future__ import annotations

# The helpers are written in private modules of this package, one job each: _pair (the
# connection pair), _handlers, _server_thread, _factories (what the fixtures are made
# of). This module is their public name and the home of the two values below.

__all__ = [
    "TEST_TIMEOUT",
    "ConnectionFactory",
    "ConnectionPair",
    "RecordingHandler",
    "ServerFactory",
    "ServerThread",
    "connection_pair",
    "echo",
]

#: Seconds: the default ``connect_timeout`` and ``disconnect_timeout`` of everything
#: made by this module and by the pytest fixtures, and the default of every wait.
TEST_TIMEOUT = 10.0
#: Seconds a stopped :class:`ServerThread` waits for its threads, after the shutdown.
THREAD_JOIN_TIMEOUT = 2.0

# The parts read these two values from this module when they run (as the module did
# before it was split), so that a test may set THREAD_JOIN_TIMEOUT here; they import
# this module, so the values come before the imports. Reply is not in __all__, as
# before: it is the type of RecordingHandler's reply callbacks.
from ._factories import ConnectionFactory, ServerFactory  # noqa: E402
from ._handlers import RecordingHandler, echo  # noqa: E402
from ._handlers import Reply as Reply  # noqa: E402
from ._pair import ConnectionPair, connection_pair  # noqa: E402
from ._server_thread import ServerThread  # noqa: E402
