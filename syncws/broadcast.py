"""Sending one message to many connections, without letting a slow peer hold up the rest.

:func:`broadcast` frames the message into every connection's write queue first, then
writes to all the sockets from one loop that waits for whichever becomes writable.
Peers that read get the message as fast as they read it; a peer that has not taken
its copy when the timeout passes is cut off.
"""

from __future__ import annotations

import logging
import selectors
from collections.abc import Iterable
from typing import Any

from wsproto.events import Message

from ._deadline import Deadline
from ._framing import message_event
from ._transport import Progress, retry_wait
from .connection import WebSocketConnection
from .exceptions import ConnectionClosed

logger = logging.getLogger("syncws")

__all__ = ["broadcast"]

#: While another thread holds a connection's writer role, how often to look again.
_BUSY_RECHECK = 0.01


def broadcast(
    connections: Iterable[WebSocketConnection],
    message: str | bytes | bytearray | memoryview,
    timeout: float | None = None,
) -> list[WebSocketConnection]:
    """Send ``message`` to every connection, waiting for all of them at once.

    The message goes out to each connection in the same order as its other
    messages: :meth:`~WebSocketConnection.send_message` calls from other threads
    never interleave with it. Unlike a loop of ``send_message`` calls, one peer that
    does not read delays no one else by more than ``timeout`` in total, whatever the
    number of slow peers.

    A connection that is closing or closed is skipped. A connection whose socket
    has not accepted the whole message when ``timeout`` passes is aborted (close
    code 1006), as :meth:`~WebSocketConnection.send_message` does on a timeout:
    part of the message may be on the wire, so the connection cannot go on.
    That is how a server cuts off a client that stopped reading, instead of
    buffering for it without bound. A connection sending a message in fragments
    gets this one after it; when that does not end in time, the connection is
    left out (and open: nothing of this message was sent to it).

    Thread-safe; the call returns once every connection has its copy or was cut off.

    :param connections: the connections (any iterable; it is read once). A
        connection listed twice gets the message once.
    :param message: ``str`` for a text message, bytes-like for a binary message.
    :param timeout: how long, in seconds, to wait in total for the slowest peers
        (``None``: no limit; closing a connection from another thread still releases
        the call from waiting for it).
    :returns: the connections that did not get the message: already closed, lost
        meanwhile, or cut off by the timeout. Empty when every one got it.
    :raises TypeError: when ``message`` is neither ``str`` nor bytes-like.
    """
    event = message_event(message)
    deadline = Deadline(timeout)
    missed: list[WebSocketConnection] = []
    waiting: dict[WebSocketConnection, int] = {}
    # Connections sending a message in fragments: theirs is queued once it is sent.
    deferred: list[WebSocketConnection] = []
    for connection in dict.fromkeys(connections):  # Each connection once, in order.
        _enqueue(connection, event, waiting, deferred, missed)
    blocked, busy = _push(waiting, missed)
    if waiting or deferred:
        # Some sockets are full (or sending a message in fragments): only now is a
        # selector worth its system calls.
        _wait(waiting, deferred, missed, deadline, event=event, blocked=blocked, busy=busy)
    if missed:
        logger.debug("broadcast: %d connection(s) did not get the message", len(missed))
    return missed


def _enqueue(
    connection: WebSocketConnection,
    event: Message[Any],
    waiting: dict[WebSocketConnection, int],
    deferred: list[WebSocketConnection],
    missed: list[WebSocketConnection],
) -> None:
    """Queue the message on ``connection``; file it under the list it now belongs to."""
    try:
        end = connection.enqueue(event)
    except ConnectionClosed:
        missed.append(connection)
        return
    if end is None:
        deferred.append(connection)
    else:
        waiting[connection] = end


def _wait(
    waiting: dict[WebSocketConnection, int],
    deferred: list[WebSocketConnection],
    missed: list[WebSocketConnection],
    deadline: Deadline,
    *,
    event: Message[Any],
    blocked: list[WebSocketConnection],
    busy: bool,
) -> None:
    """Write to the sockets as they become writable, until done or ``deadline``.

    ``blocked`` and ``busy`` are what the last :func:`_push` reported. The
    ``deferred`` connections are asked again on each pass.
    """
    with selectors.DefaultSelector() as selector:
        while waiting or deferred:
            if deferred:
                for connection in deferred[:]:
                    deferred.remove(connection)
                    _enqueue(connection, event, waiting, deferred, missed)
            if deadline.expired():
                for connection in waiting:
                    connection.abort("the peer did not read a broadcast in time")
                    missed.append(connection)
                # Nothing of the message was queued on these: no need to abort them.
                missed.extend(deferred)
                return
            registered = []
            for connection in blocked:
                try:
                    selector.register(connection.socket_fileno, selectors.EVENT_WRITE)
                except (OSError, ValueError):
                    busy = True  # Closed meanwhile: the next pass sees it failed.
                else:
                    registered.append(connection)
            # Full sockets may take bytes before they are reported writable (see
            # retry_wait). Another thread writing some of them may stop once its own
            # bytes are out: look again soon rather than wait on sockets it is using.
            remaining = retry_wait(deadline.remaining())
            if busy or deferred:
                remaining = min(remaining, _BUSY_RECHECK)
            selector.select(remaining)
            for connection in registered:
                selector.unregister(connection.socket_fileno)
            blocked, busy = _push(waiting, missed)


def _push(
    waiting: dict[WebSocketConnection, int], missed: list[WebSocketConnection]
) -> tuple[list[WebSocketConnection], bool]:
    """Write what each socket takes now; drop the finished ones from ``waiting``.

    :returns: the connections waiting for their socket to become writable, and
        whether any is being written by another thread.
    """
    blocked = []
    busy = False
    for connection, end in list(waiting.items()):
        progress = connection.progress(end)
        if progress is Progress.WRITTEN:
            del waiting[connection]
        elif progress is Progress.FAILED:
            del waiting[connection]
            missed.append(connection)
        elif progress is Progress.BLOCKED:
            blocked.append(connection)
        else:
            busy = True
    return blocked, busy
