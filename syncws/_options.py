"""Every keyword option of the client and server functions, defined once.

Each :class:`Option` holds its name, where it applies, its default, how its value is
checked and the line that describes it in the documentation: the functions check their
options here before they touch the network, fill in the defaults from here, and the
option tables of the docs are generated from here (the ``syncws-options`` directive of
``docs/conf.py``), so that none of them can drift from the others.

The :class:`~typing.TypedDict` classes of :mod:`syncws.connection`, :mod:`syncws.client`
and :mod:`syncws.request` give the same names to type checkers; a test checks that they
agree with this table.
"""

from __future__ import annotations

import difflib
import functools
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast

from ._forwarded import check_trusted_proxies
from ._http import check_header_option, product
from ._proxy_env import check_proxy

__all__ = [
    "COMPRESSION_CHOICES",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DISCONNECT_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_QUEUE_SIZE",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "OPTIONS",
    "UNLIMITED",
    "ConnectionOptions",
    "Option",
    "Scope",
    "check_names",
    "check_options",
    "connection_args",
    "names",
    "seconds",
    "value",
]

DEFAULT_MESSAGE_QUEUE_SIZE = 16
DEFAULT_MAX_MESSAGE_SIZE = 2**20
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_DISCONNECT_TIMEOUT = 60.0
DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0
#: The values of the ``compression`` option.
COMPRESSION_CHOICES = (None, "deflate")
#: What ``max_message_size=None`` (no limit) stands for inside syncws: more bytes than
#: any message can have, small enough for every count and zlib call.
UNLIMITED = sys.maxsize // 4

#: Where an option applies: every connection; the opening handshake, on both sides (the
#: client functions and the servers, not :class:`~syncws.WebSocketConnection`); the
#: client functions only; or the servers only.
Scope = Literal["connection", "handshake", "client", "server"]

#: The scopes whose options a function of each scope accepts.
_ACCEPTED: dict[Scope, tuple[Scope, ...]] = {
    "connection": ("connection",),
    "handshake": ("connection", "handshake"),
    "client": ("connection", "handshake", "client"),
    "server": ("connection", "handshake", "server"),
}


# -- value checks: each raises TypeError or ValueError naming the option --------------------


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    return value


def _queue_size(name: str, value: object) -> None:
    if _integer(name, value) < 0:
        raise ValueError(f"{name} must be >= 0, not {value!r}")


def _message_size(name: str, value: object) -> None:
    if value is not None and _integer(name, value) <= 0:
        raise ValueError(f"{name} must be > 0 or None (no limit), not {value!r}")


def _positive_seconds(name: str, value: object) -> None:
    if _number(name, value) <= 0:
        raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")


def _seconds(name: str, value: object) -> None:
    if _number(name, value) < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")


def _optional_positive_seconds(name: str, value: object) -> None:
    if value is not None:
        _positive_seconds(name, value)


def _compression(name: str, value: object) -> None:
    if value not in COMPRESSION_CHOICES:
        raise ValueError(f"{name} must be 'deflate' or None, not {value!r}")


def _subprotocols(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of names, not {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold strings, not {type(item).__name__}")


def _headers(name: str, value: object) -> None:
    if value is not None and (isinstance(value, (str, bytes)) or not hasattr(value, "__iter__")):
        raise TypeError(f"{name} must be a mapping or (name, value) pairs")


def _optional_text(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")


def _header(header: str) -> Callable[[str, object], None]:
    """Check the value of an option that sets the header ``header`` (``None``: none)."""

    def check(name: str, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")
        check_header_option(name, header, value)

    return check


def _max_connections(name: str, value: object) -> None:
    if value is not None and _integer(name, value) < 1:
        raise ValueError(f"{name} must be >= 1 or None, not {value!r}")


def _origins(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list of origins, not {type(value).__name__}")


def _trusted_proxies(name: str, value: object) -> None:
    check_trusted_proxies(value)


def _callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, not {type(value).__name__}")


@dataclass(frozen=True)
class Option:
    """One keyword option."""

    #: The keyword.
    name: str
    #: Where it applies.
    scope: Scope
    #: Its default value.
    default: object
    #: The default as the docs show it (reStructuredText).
    shown: str
    #: What it means, one sentence of reStructuredText for the docs' tables.
    meaning: str
    #: Raises TypeError or ValueError for a bad value.
    check: Callable[[str, object], None]


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option(
            "message_queue_size",
            "connection",
            DEFAULT_MESSAGE_QUEUE_SIZE,
            "``16``",
            "received messages that may wait for ``get_message`` (and at most that many "
            "times ``max_message_size`` bytes of them, as stored in memory) before "
            "reading pauses",
            _queue_size,
        ),
        Option(
            "max_message_size",
            "connection",
            DEFAULT_MAX_MESSAGE_SIZE,
            "``2**20``",
            "largest message ``get_message`` returns, in payload bytes (it fails the "
            "connection with close code 1009 on a larger one, which only "
            "``get_message_stream`` reads, in chunks); ``None``: no limit, which lets "
            "a peer use any amount of memory",
            _message_size,
        ),
        Option(
            "connect_timeout",
            "handshake",
            DEFAULT_CONNECT_TIMEOUT,
            "``10.0``",
            "seconds for the opening handshake: TCP connect (client), TLS and the HTTP "
            "upgrade together",
            _positive_seconds,
        ),
        Option(
            "disconnect_timeout",
            "connection",
            DEFAULT_DISCONNECT_TIMEOUT,
            "``60.0``",
            "seconds for the closing handshake",
            _seconds,
        ),
        Option(
            "ping_interval",
            "connection",
            DEFAULT_PING_INTERVAL,
            "``20.0``",
            "seconds between keepalive pings (``None``: no keepalive)",
            _optional_positive_seconds,
        ),
        Option(
            "ping_timeout",
            "connection",
            DEFAULT_PING_TIMEOUT,
            "``20.0``",
            "seconds to wait for any sign of life after a keepalive ping before closing "
            "with 1011 (``None``: the same as ``ping_interval``)",
            _optional_positive_seconds,
        ),
        Option(
            "compression",
            "connection",
            None,
            "``None``",
            '``"deflate"`` for permessage-deflate (RFC 7692) when the peer agrees; '
            "``None`` for no compression",
            _compression,
        ),
        Option(
            "subprotocols",
            "client",
            None,
            "``None``",
            "subprotocols to offer, in order of preference",
            _subprotocols,
        ),
        Option(
            "extra_headers",
            "client",
            None,
            "``None``",
            "extra headers for the HTTP upgrade request: a mapping or ``(name, value)`` pairs",
            _headers,
        ),
        Option(
            "origin",
            "client",
            None,
            "``None``",
            "the ``Origin`` header to send",
            _optional_text,
        ),
        Option(
            "user_agent",
            "client",
            product(),
            '``"syncws/VERSION Python/X.Y"``',
            "the ``User-Agent`` header of the request (``None``: none); an ``extra_headers`` "
            "entry of that name replaces it",
            _header("User-Agent"),
        ),
        Option(
            "proxy",
            "client",
            True,
            "``True``",
            "the proxy to connect through: a URL (``http://``, ``https://``, ``socks5://``, "
            "``socks5h://``, ``socks4://``, ``socks4a://``, credentials in it); ``True``: "
            "the one of the environment (``https_proxy``, ``no_proxy``, ...); ``None``: none",
            check_proxy,
        ),
        Option(
            "max_connections",
            "server",
            None,
            "``None``",
            "clients served at once (``None``: no limit); clients beyond it get HTTP 503",
            _max_connections,
        ),
        Option(
            "origins",
            "server",
            None,
            "``None``",
            "allowed ``Origin`` values (``None`` in the list: no header); others get "
            "HTTP 403 (``None``: no check)",
            _origins,
        ),
        Option(
            "process_request",
            "server",
            None,
            "``None``",
            "a function called with each request before the handler; it may reject the request",
            _callable,
        ),
        Option(
            "server_header",
            "server",
            product(),
            '``"syncws/VERSION Python/X.Y"``',
            "the ``Server`` header of the 101 response (``None``: none)",
            _header("Server"),
        ),
        Option(
            "trusted_proxies",
            "server",
            None,
            "``None``",
            'reverse proxies (IP addresses, CIDR networks, ``"unix"``) whose '
            "``X-Forwarded-For`` or ``X-Real-IP`` gives ``request.remote`` (``None``: none; "
            "see :ref:`trusted-proxies`)",
            _trusted_proxies,
        ),
    )
}

#: Names that users of other WebSocket libraries reach for, and the option they mean.
_ALIASES = {
    "timeout": "connect_timeout",
    "open_timeout": "connect_timeout",
    "close_timeout": "disconnect_timeout",
    "max_size": "max_message_size",
    "max_queue": "message_queue_size",
    "additional_headers": "extra_headers",
    "headers": "extra_headers",
    "header": "extra_headers",
    "subprotocol": "subprotocols",
    "ssl": "ssl_context",
    "sslopt": "ssl_context",
    "compress": "compression",
    "permessage_deflate": "compression",
    "ping_period": "ping_interval",
    "user_agent_header": "user_agent",
}


@functools.cache
def names(scope: Scope) -> frozenset[str]:
    """Return the option names a function of ``scope`` accepts."""
    return frozenset(name for name, option in OPTIONS.items() if option.scope in _ACCEPTED[scope])


def check_names(options: Mapping[str, object], allowed: frozenset[str]) -> None:
    """Raise TypeError, as for a keyword argument, for a name not in ``allowed``.

    The message names the likely option when there is one: ``timeout`` ->
    ``connect_timeout``, ``max_size`` -> ``max_message_size``, and close misspellings.
    """
    unknown = sorted(set(options) - allowed)
    if not unknown:
        return
    name = unknown[0]
    message = f"unexpected keyword argument {name!r}"
    if len(unknown) > 1:
        message = f"unexpected keyword arguments {', '.join(map(repr, unknown))}"
    guess = _ALIASES.get(name)
    if guess is None or (guess not in allowed and guess != "ssl_context"):
        close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
        guess = close[0] if close else None
    if guess is not None:
        message += f"; did you mean {guess!r}?"
    raise TypeError(message)


def check_options(options: Mapping[str, object], scope: Scope) -> None:
    """Check the names and values of ``options`` for a function of ``scope``.

    :raises TypeError: for an unknown name, or a value of the wrong type.
    :raises ValueError: for a value out of range.
    """
    check_names(options, names(scope))
    for name, given in options.items():
        OPTIONS[name].check(name, given)


def value(options: Mapping[str, object], name: str) -> object:
    """Return the value of option ``name`` in ``options``, or its default."""
    return options.get(name, OPTIONS[name].default)


def seconds(options: Mapping[str, object], name: str) -> float | None:
    """Return the value of a timeout option ``name`` in ``options``, or its default."""
    given = options.get(name, OPTIONS[name].default)
    return None if given is None else float(given)  # type: ignore[arg-type]


# -- the options of a connection, for type checkers ---------------------------------------


class ConnectionOptions(TypedDict, total=False):
    """Keyword options of a connection, shared by the client and server functions.

    They configure the :class:`WebSocketConnection` once it is open;
    ``connect_timeout``, which bounds the opening handshake, is one of
    :class:`ConnectOptions` and :class:`ServeOptions`. Every key is optional; the
    client reference gives the defaults, which come with the checks and the docs'
    tables from one definition (``syncws/_options.py``).
    """

    #: Messages that may wait for ``get_message`` before reading pauses (default 16);
    #: reading also pauses once they take ``message_queue_size * max_message_size``
    #: bytes in memory.
    message_queue_size: int
    #: The largest incoming message, in bytes (default 1 MiB; ``None``: no limit).
    max_message_size: int | None
    #: Seconds for the closing handshake (default 60).
    disconnect_timeout: float
    #: Seconds between keepalive pings (default 20; ``None``: no keepalive).
    ping_interval: float | None
    #: Seconds to wait for any sign of life after a keepalive ping (default 20;
    #: ``None``: ping_interval).
    ping_timeout: float | None
    #: ``"deflate"`` for permessage-deflate (RFC 7692) when the peer agrees; ``None``
    #: (the default) for no compression.
    compression: str | None


class _ConnectionArgs(TypedDict):
    message_queue_size: int
    max_message_size: int | None
    disconnect_timeout: float
    ping_interval: float | None
    ping_timeout: float | None


def connection_args(options: Mapping[str, Any]) -> _ConnectionArgs:
    """Pick the :class:`WebSocketConnection` keyword arguments out of ``options``."""
    return cast(
        "_ConnectionArgs", {name: value(options, name) for name in _ConnectionArgs.__annotations__}
    )
