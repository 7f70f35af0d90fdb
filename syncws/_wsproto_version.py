"""The wsproto versions syncws supports, checked when syncws is imported.

:data:`SUPPORTED` is the range of wsproto versions syncws was written and tested for;
``install_requires`` in ``setup.cfg`` says the same. :mod:`._wsproto`, which holds every
use of wsproto's internals, calls :func:`check_version` at import: another version raises
:exc:`ImportError`, unless the environment variable ``SYNCWS_ALLOW_ANY_WSPROTO=1`` is
set, which makes it a :exc:`RuntimeWarning`.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import warnings

import wsproto

__all__ = [
    "ALLOW_ANY_VARIABLE",
    "BELOW",
    "LOWEST",
    "SUPPORTED",
    "check_version",
    "installed_version",
    "supports",
]

#: The oldest wsproto release syncws supports, as ``(major, minor)``. wsproto 1.2
#: hands some payloads over as ``bytearray`` (those of unmasked frames, and empty
#: ones); syncws relies on ``bytes``, which 1.3 gives.
LOWEST = (1, 3)
#: The first wsproto release that syncws does not support, as ``(major, minor)``: a
#: new minor release may change the internals that :mod:`._wsproto` uses.
BELOW = (1, 4)
#: The supported versions as a requirement specifier, as in ``setup.cfg``.
SUPPORTED = f">={LOWEST[0]}.{LOWEST[1]},<{BELOW[0]}.{BELOW[1]}"
#: Set to ``1``, this environment variable lets syncws import with a wsproto version
#: outside :data:`SUPPORTED`, with a warning.
ALLOW_ANY_VARIABLE = "SYNCWS_ALLOW_ANY_WSPROTO"
_RELEASE = re.compile(r"(\d+)\.(\d+)")


def installed_version() -> str:
    """Return the version of the wsproto that is installed (``"unknown"`` if it has none)."""
    try:
        return importlib.metadata.version("wsproto")
    except importlib.metadata.PackageNotFoundError:
        # Imported from a directory rather than installed.
        return str(getattr(wsproto, "__version__", "unknown"))


def supports(version: str) -> bool:
    """Whether ``version`` (such as ``"1.3.2"``) is in :data:`SUPPORTED`."""
    match = _RELEASE.match(version)
    if match is None:
        return False
    release = (int(match[1]), int(match[2]))
    return LOWEST <= release < BELOW


def check_version(version: str) -> None:
    """Refuse a wsproto ``version`` outside :data:`SUPPORTED`.

    :raises ImportError: naming the installed and supported versions, unless the
        environment variable :data:`ALLOW_ANY_VARIABLE` is ``1``: then it warns
        (:exc:`RuntimeWarning`) instead.
    """
    if supports(version):
        return
    message = (
        f"syncws supports wsproto {SUPPORTED}, but wsproto {version} is installed: "
        f"install a supported version (pip install 'wsproto{SUPPORTED}')"
    )
    if os.environ.get(ALLOW_ANY_VARIABLE) == "1":
        warnings.warn(
            f"{message}; {ALLOW_ANY_VARIABLE}=1 is set, so syncws runs with it, untested",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    raise ImportError(f"{message}, or set {ALLOW_ANY_VARIABLE}=1 to try this one anyway")
