"""Small HTTP/1.1 pieces wsproto leaves to us: header checks and plain responses."""

from __future__ import annotations

import http
import re
from collections.abc import Iterable, Mapping

__all__ = ["HeadersLike", "check_headers", "check_token", "response"]

#: Extra HTTP headers: a mapping, or ``(name, value)`` pairs of ``str`` or ``bytes``.
HeadersLike = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e]*")


def _ascii(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        if not value.isascii():
            raise ValueError(f"{what} must be ASCII: {value!r}")
        return value.encode("ascii")
    return bytes(value)


def check_token(value: str, what: str) -> str:
    """Return ``value`` if it is an HTTP token (a header name, a subprotocol), else raise."""
    if not _TOKEN.fullmatch(_ascii(value, what)):
        raise ValueError(f"invalid {what} {value!r}")
    return value


def check_headers(headers: HeadersLike | None) -> list[tuple[bytes, bytes]]:
    """Encode extra headers, refusing anything that could break the message.

    :raises ValueError: for a name that is not a token, or a value with CR, LF,
        NUL, other control characters or non-ASCII characters.
    """
    if headers is None:
        return []
    items: Iterable[tuple[str | bytes, str | bytes]]
    items = headers.items() if isinstance(headers, Mapping) else headers
    result = []
    for name, value in items:
        raw_name = _ascii(name, "a header name")
        raw_value = _ascii(value, "a header value")
        if not _TOKEN.fullmatch(raw_name):
            raise ValueError(f"invalid header name {name!r}")
        if not _FIELD_VALUE.fullmatch(raw_value):
            raise ValueError(f"invalid value for header {name!r}: {value!r}")
        result.append((raw_name, raw_value))
    return result


def response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """Serialise a complete HTTP/1.1 response that closes the connection."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}".encode("ascii")]
    names = {name.lower() for name, _ in headers}
    if b"content-type" not in names and body:
        lines.append(b"Content-Type: text/plain; charset=utf-8")
    lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
