"""What several commands share: argument types, client TLS options, error messages.

Every command reports a bad argument the way :mod:`argparse` does, with its usage, one
``error:`` line and exit status 2. Values :mod:`argparse` can check (numbers, ports) are
checked by the argument types here; what only shows once a command uses an argument (a
file that cannot be read, a URL or an option value the library refuses, a host name
that does not exist) is raised as :class:`BadArgument`, which :func:`syncws.cli.main`
reports the same way.
"""

from __future__ import annotations

import argparse
import math
import re
import socket
import ssl

from .._redact import redact_url
from ..exceptions import ConnectionRejected, WebSocketError

__all__ = [
    "CONNECT_ERRORS",
    "EXIT_INTERRUPTED",
    "BadArgument",
    "add_client_tls_arguments",
    "client_ssl_context",
    "compression",
    "connection_failure",
    "count",
    "describe_error",
    "is_bad_argument",
    "parse_header",
    "port_number",
    "positive_int",
    "seconds",
    "seconds_or_inf",
]

#: What opening a client connection raises for a bad URL, a failure or a refusal.
CONNECT_ERRORS = (WebSocketError, OSError, ValueError, TypeError)
#: Exit status after Ctrl-C, as a shell reports a process killed by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
#: getaddrinfo() errors that mean the name does not exist (not that the resolver
#: failed, which may pass).
_NO_SUCH_HOST = frozenset(
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
)


#: Where in CPython's ssl module an error was raised, at the end of its message.
_SSL_SOURCE = re.compile(r" \(_ssl\.c:\d+\)$")


class BadArgument(Exception):
    """An argument found wrong once used: reported as a usage error (exit status 2).

    :param message: what is wrong, e.g. ``argument --cafile: cannot read 'ca.pem'``.
    """


# ------------------------------------------------------------------- argument types


def port_number(text: str) -> int:
    """Parse a TCP port, 0 to 65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port: {text!r} (0 to 65535)")
    return port


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
    return value


def positive_int(text: str) -> int:
    """Parse a whole number, at least 1 (a count, a size limit)."""
    return _integer(text, 1)


def count(text: str) -> int:
    """Parse a whole number, at least 0 (a count or a size that may be zero)."""
    return _integer(text, 0)


def _seconds(text: str, allow_inf: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_inf):
        limit = "0 or more, or inf" if allow_inf else "a finite number above 0"
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r} ({limit})")
    if value == 0 and not allow_inf:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r} (above 0)")
    return value


def seconds(text: str) -> float:
    """Parse a duration in seconds: finite and above 0."""
    return _seconds(text, allow_inf=False)


def seconds_or_inf(text: str) -> float:
    """Parse a duration in seconds: 0 or more, ``inf`` for no limit."""
    return _seconds(text, allow_inf=True)


def compression(text: str) -> str | None:
    """Parse the ``compression`` option: ``none`` for ``None``, other values as they are.

    The library checks the value.
    """
    return None if text.lower() == "none" else text


def parse_header(text: str) -> tuple[str, str]:
    """Split a ``--header "Name: value"`` argument; raise ArgumentTypeError if malformed."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


# ------------------------------------------------------------------------ client TLS


def add_client_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cafile`` and ``--insecure``, for ``wss://`` URLs."""
    parser.add_argument(
        "--cafile",
        metavar="PEM",
        help="for wss://: trust the certificate authorities in this PEM file",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="for wss://: do not check the server's certificate nor its host name",
    )


def client_ssl_context(cafile: str | None, insecure: bool) -> ssl.SSLContext | None:
    """Return the TLS context for ``wss://``: ``None`` (system defaults) unless asked.

    :param cafile: a PEM file of certificate authorities to trust, or ``None``.
    :param insecure: skip certificate and host name verification altogether.
    :raises BadArgument: when ``cafile`` cannot be read or holds no certificate.
    """
    if cafile is None and not insecure:
        return None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ValueError) as exc:
        message = f"argument --cafile: cannot load {cafile!r}: {describe_error(exc)}"
        raise BadArgument(message) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# ---------------------------------------------------------------------------- errors


def is_bad_argument(exc: BaseException) -> bool:
    """Whether what a library call raised means that an argument was wrong.

    The library raises :exc:`ValueError` (but not an :exc:`OSError`, such as a failed
    certificate check) and :exc:`TypeError` for a malformed URL or option, before it
    touches the network; a host name that does not exist fails name resolution with
    ``EAI_NONAME``. A resolver that fails, a refused connection and the like are not
    the arguments' fault.
    """
    if isinstance(exc, socket.gaierror):
        return exc.errno in _NO_SUCH_HOST
    return isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, OSError)


def connection_failure(url: str, exc: BaseException) -> str:
    """Say why connecting to ``url`` failed, in one line (its password hidden).

    :raises BadArgument: instead, when an argument is to blame: a malformed URL or
        option value (the library's message names it), or a host that does not exist.
    """
    shown = redact_url(url)
    if isinstance(exc, socket.gaierror) and is_bad_argument(exc):
        raise BadArgument(f"cannot resolve the host of {shown}: {describe_error(exc)}")
    if is_bad_argument(exc):
        raise BadArgument(describe_error(exc))
    text = describe_error(exc)
    if text.startswith("cannot connect to "):
        return text  # The library's message names the address already.
    return f"cannot connect to {shown}: {text}"


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, for ``error: ...`` on standard error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate verification failed: {exc.verify_message or exc.reason} "
            "(--cafile PEM trusts a private authority, --insecure skips the check)"
        )
    if isinstance(exc, ConnectionRejected):
        return str(exc)
    if isinstance(exc, ssl.SSLError) and " rather than " in str(exc):
        return str(exc)  # The client's own explanation (ws:// against a TLS server, ...).
    if isinstance(exc, ssl.SSLError):
        # Without a reason, the message of OpenSSL's error: "[SSL] PEM lib (_ssl.c:3905)".
        text = exc.reason or _SSL_SOURCE.sub("", str(exc.args[-1])).removeprefix("[SSL] ")
        return f"TLS error: {text}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}"
    return str(exc) or type(exc).__name__
