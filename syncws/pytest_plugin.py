"""pytest fixtures for testing code that uses syncws.

Installing syncws registers this module as a pytest plugin (the ``pytest11`` entry
point ``syncws.pytest_plugin``), so the fixtures are available in every test without
an import. Where plugin autoloading is off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), load
it with ``-p syncws.pytest_plugin`` or ``pytest_plugins = ["syncws.pytest_plugin"]``
in a ``conftest.py``; ``-p no:syncws.pytest_plugin`` turns it off.

* ``ws_server``: ``url = ws_server(handler, **options)`` starts a
  :class:`~syncws.WebSocketServer` on a free loopback port, serving in a background
  thread (a :class:`~syncws.testing.ServerThread`), and returns its URL.
* ``ws_echo_server``: the URL of a running echo server.
* ``ws_connect``: ``ws = ws_connect(url, **options)`` opens a client connection.

At the end of the test, the connections are closed first, then every server stops;
the test fails if a thread a server started is still running after the stop, or if
a handler raised an exception (other than :exc:`~syncws.ConnectionClosed`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import ConnectionFactory, ServerFactory, echo

__all__ = ["ws_connect", "ws_echo_server", "ws_server"]


@pytest.fixture
def ws_server() -> Iterator[ServerFactory]:
    """Start syncws servers, each with a handler, and return their URLs.

    ``url = ws_server(handler, **options)`` (see :meth:`~syncws.testing.ServerFactory.__call__`).
    Each server listens on a free port of 127.0.0.1 and serves in a background thread;
    ``ws_server.servers`` lists them (:class:`~syncws.testing.ServerThread`).
    At teardown every server is shut down, and the test fails if one of its threads
    is still running or if its handler raised.
    """
    factory = ServerFactory()
    yield factory
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def ws_echo_server(ws_server: ServerFactory) -> str:
    """Start a syncws server that sends every message back; return its URL."""
    return ws_server(echo)


@pytest.fixture
def ws_connect(ws_server: ServerFactory) -> Iterator[ConnectionFactory]:
    """Open client connections to a URL, and close them at teardown.

    ``ws = ws_connect(url, **options)`` (see :meth:`~syncws.testing.ConnectionFactory.__call__`).
    Every connection still open at teardown is closed, before the servers of
    ``ws_server`` stop (this fixture depends on that one for the order).
    """
    factory = ConnectionFactory()
    yield factory
    factory.close_all()
