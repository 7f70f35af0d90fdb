"""After ``fork()``: a child process lets go of its parent's connections.

A connection belongs to the process that opened it. The child has none of its
threads, and its locks may have been held when the process forked; it must not send
a close frame or shut the socket down either, which would end the parent's
connection. Each connection's reader registers here (:func:`track`); in the child,
each is told to become a closed copy of itself (code 1006) with fresh locks, and its
copy of the socket is released.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["Inherited", "track"]


class Inherited(Protocol):
    """What the child does with a connection it inherited."""

    def after_fork(self) -> None:
        """Become a closed copy of the parent's connection."""


#: Every open connection of this process (their readers).
_live: weakref.WeakSet[Inherited] = weakref.WeakSet()


def track(connection: Inherited) -> None:
    """Remember ``connection``, to let go of it in a child process."""
    _live.add(connection)


def _forsake_inherited() -> None:
    for connection in list(_live):
        connection.after_fork()
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forsake_inherited)
