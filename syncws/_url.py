"""Client URLs: what a ``ws://`` or ``wss://`` URL asks for, checked, and how to show it.

:func:`parse_url` makes a :class:`Target` (where to connect, what to ask for, the
``Host`` and ``Authorization`` headers); every error about a URL says what is wrong
without showing a password, however the URL is written (see :mod:`._redact`).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urlsplit

from ._redact import MASK, hidden_span, redact_url

__all__ = ["UNSAFE_URL", "Target", "check_host", "check_resource", "host_header", "parse_url"]

#: Characters that no part of a URL may hold: controls and spaces.
UNSAFE_URL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Target:
    """Where to connect and what to ask for."""

    host: str
    port: int
    secure: bool
    resource: str
    host_header: str
    authorization: bytes | None = None
    #: The host or the port may be a piece of the URL's password: messages hide it.
    hide_host: bool = False
    hide_port: bool = False

    @property
    def where(self) -> str:
        """``host:port`` for messages, with ``***`` for what must not be shown.

        For :func:`wrap_client_socket`, which knows no port (port 0): the ``Host``
        header it was given.
        """
        if self.hide_host:
            host = MASK
        elif self.port == 0:
            return self.host
        else:
            host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{MASK if self.hide_port else self.port}"


def host_header(host: str, port: int, secure: bool) -> str:
    """Build the ``Host`` header: IPv6 addresses in brackets, the port unless the default."""
    if ":" in host:
        host = f"[{host}]"
    return host if port == (443 if secure else 80) else f"{host}:{port}"


def check_host(host: str) -> str:
    if not host or UNSAFE_URL.search(host):
        raise ValueError(f"invalid host {host!r}")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid host {host!r}") from exc


def check_resource(resource: str) -> str:
    if not resource.startswith("/"):
        raise ValueError(f"the resource must start with '/', not {resource!r}")
    if UNSAFE_URL.search(resource):
        raise ValueError(f"the resource contains whitespace or control characters: {resource!r}")
    # Non-ASCII characters are sent percent-encoded, as browsers do.
    return quote(resource, safe="!#$%&'()*+,/:;=?@[]~")


def parse_url(url: str) -> Target:
    """Split a ``ws://`` or ``wss://`` URL; raise ValueError naming what is wrong.

    Error messages show the URL through :func:`redact_url` only, never a part of it
    taken from the parser (which may have mistaken a piece of password for a port or a
    host), and chain no exception that could hold it.
    """
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return split_url(url)


#: The WebSocket scheme to use instead of an HTTP one (RFC 6455, section 3).
_HTTP_SCHEMES = {"http": "ws", "https": "wss"}


def url_problem(url: str) -> str | None:
    """Return what is wrong with ``url``, its password hidden, or ``None``."""
    shown = repr(redact_url(url))
    if UNSAFE_URL.search(url):
        return f"the URL contains whitespace or control characters: {shown}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # Its message may quote the netloc, password included.
        return f"malformed URL {shown}: an invalid port or host"
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        return scheme_problem(url, parts.scheme, shown)
    if not parts.hostname:
        return f"no host in URL {shown}"
    if port == 0:
        return f"invalid port 0 in URL {shown}"
    if "#" in url:
        # RFC 6455, section 3: fragments must not be used; a "#" is sent as %23.
        return f"a WebSocket URL may not have a fragment: {shown}"
    try:
        check_host(parts.hostname)
        check_resource(parts.path or "/")
    except ValueError:
        return f"invalid host or path in URL {shown}"
    return None


def scheme_problem(url: str, scheme: str, shown: str) -> str:
    """Say what is wrong with the scheme of ``url``, and what to write instead.

    ``localhost:8765/`` parses as the scheme ``localhost``: a "scheme" that is not
    followed by ``//`` is taken for a host, and ``ws://`` is suggested in front of it.
    The scheme is shown only when ``://`` follows it, where it cannot be part of a
    password; suggestions go through :func:`redact_url` like the URL itself.
    """
    has_scheme = bool(scheme) and url[len(scheme) : len(scheme) + 3] == "://"
    if not has_scheme:
        suggestion = repr(redact_url("ws://" + url.removeprefix("//")))
        return f"URL needs a ws:// or wss:// scheme: {shown} (try {suggestion})"
    instead = _HTTP_SCHEMES.get(scheme.lower())
    if instead is not None:
        suggestion = repr(redact_url(instead + url[len(scheme) :]))
        return (
            f"use {instead}://, not {scheme.lower()}://, for a WebSocket URL: {shown} "
            f"(try {suggestion})"
        )
    # The scheme comes before the first colon: it cannot hold the password.
    return f"unsupported URL scheme {scheme!r} in {shown}: use ws:// or wss://"


def split_url(url: str) -> Target:
    """Split a URL that :func:`url_problem` found nothing wrong with."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    secure = parts.scheme.lower() == "wss"
    resource = parts.path or "/"
    if parts.query:
        resource = f"{resource}?{parts.query}"
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = b"Basic " + base64.b64encode(credentials.encode("utf-8"))
    host = check_host(parts.hostname)
    port = parts.port or (443 if secure else 80)
    hide_host, hide_port = maybe_password(url, parts)
    return Target(
        host=host,
        port=port,
        secure=secure,
        resource=check_resource(resource),
        host_header=host_header(host, port, secure),
        authorization=authorization,
        hide_host=hide_host,
        hide_port=hide_port,
    )


def maybe_password(url: str, parts: SplitResult) -> tuple[bool, bool]:
    """Whether the host and the port that the parser found may be pieces of a password.

    ``ws://alice:12/34@host/`` may be the password ``12/34`` of ``alice``, which the
    parser reads as the host ``alice`` and the port 12: a host or a port that overlaps
    what :func:`redact_url` hides is not shown in messages.
    """
    span = hidden_span(url)
    if span is None:
        return False, False
    netloc_start = len(parts.scheme) + len("://")
    netloc_end = netloc_start + len(parts.netloc)
    host_start = netloc_start + parts.netloc.rfind("@") + 1
    host_end = netloc_end
    if parts.port is not None:
        host_end = netloc_start + parts.netloc.rfind(":")
    hidden_start, hidden_end = span
    hide_host = host_start < hidden_end and hidden_start < host_end
    hide_port = parts.port is not None and host_end + 1 < hidden_end and hidden_start < netloc_end
    return hide_host, hide_port
