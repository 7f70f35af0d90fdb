"""Names kept for one release after they were renamed, with a warning on each use.

A type alias cannot warn by itself when it is used, so the modules that exported an
old name resolve it in a module-level ``__getattr__`` (:pep:`562`) made here, which
issues a :class:`DeprecationWarning` naming the new name and returns the object it
names. Type checkers see the old names as plain aliases (``if TYPE_CHECKING:``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

__all__ = ["RENAMED", "module_getattr"]

#: Old name -> new name, for the names of the package and of its public modules.
RENAMED = {"RequestHook": "Handler"}


def module_getattr(module: str, namespace: Mapping[str, object]) -> Callable[[str], object]:
    """Make the ``__getattr__`` of ``module``, whose globals are ``namespace``.

    It returns the object of the new name for an old one in :data:`RENAMED`, with a
    :class:`DeprecationWarning` that points at the code that used the old name, and
    raises :exc:`AttributeError` for any other name, as a module does.
    """

    def getattr_(name: str) -> object:
        new = RENAMED.get(name)
        if new is None or new not in namespace:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return namespace[new]

    return getattr_
