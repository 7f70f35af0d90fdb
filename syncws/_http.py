"""Small HTTP/1.1 pieces wsproto leaves to us: header checks and plain responses."""

from __future__ import annotations

import base64
import binascii
import functools
import http
import re
import sys
from collections.abc import Iterable, Mapping

from ._version import __version__

__all__ = [
    "HEAD_END",
    "MAX_HEADERS",
    "MAX_HEAD_SIZE",
    "HeadersLike",
    "add_header",
    "check_header_option",
    "check_headers",
    "check_request_head",
    "check_token",
    "has_control_character",
    "is_websocket_key",
    "product",
    "response",
    "split_head",
]

#: The most header lines an upgrade request may have, continuation lines included
#: (beyond it: 431).
MAX_HEADERS = 128
#: The largest request head, request line and headers together (beyond it: 431).
MAX_HEAD_SIZE = 16 * 1024
#: Headers that a request may carry only once.
_SINGLE_HEADERS = (b"host", b"sec-websocket-key", b"sec-websocket-version", b"upgrade")
#: The blank line that ends a head, with or without carriage returns.
HEAD_END = re.compile(rb"\r?\n\r?\n")
#: Control characters, which RFC 7230 (section 3.2) does not allow in header values.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: A request target in origin form (a path) or absolute form (RFC 7230, section 5.3).
_TARGET = re.compile(rb"/|(?i:https?|wss?)://")

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


@functools.cache
def product() -> str:
    """Name syncws and Python, for ``User-Agent`` and ``Server``: ``syncws/0.1.0 Python/3.11``."""
    return f"syncws/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"


def check_header_option(option: str, name: str, value: str | bytes) -> tuple[bytes, bytes]:
    """Check the value of an option that sets one header, as extra headers are checked.

    :returns: the header, encoded.
    :raises ValueError: naming the option and the header, for a value that is not
        printable ASCII.
    """
    try:
        (header,) = check_headers([(name, value)])
    except ValueError:
        raise ValueError(
            f"invalid {option} {value!r}: a {name} header value must be printable ASCII"
        ) from None
    return header


def add_header(headers: list[tuple[bytes, bytes]], header: tuple[bytes, bytes]) -> None:
    """Append ``header`` to ``headers`` unless they have one of that name (any case)."""
    name = header[0].lower()
    if all(existing.lower() != name for existing, _ in headers):
        headers.append(header)


def response(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool = False
) -> bytes:
    """Serialise a complete HTTP/1.1 response that closes the connection.

    :param head: answer a ``HEAD`` request: the same headers, ``Content-Length``
        included, without the body (RFC 9110, section 9.3.2).
    """
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
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body)


def _is_continuation(line: bytes) -> bool:
    """Whether a header line is an obs-fold continuation line (it starts with SP or HTAB)."""
    return line[:1] in (b" ", b"\t")


def _split(data: bytes) -> tuple[bytes, list[bytes], dict[bytes, list[bytes]], int]:
    """Return the start line, the header lines, the values by name and the end offset."""
    end = HEAD_END.search(data)
    head = data[: end.start()] if end else data
    start_line, *lines = head.split(b"\n")
    values: dict[bytes, list[bytes]] = {}
    name = None
    for line in lines:
        if _is_continuation(line) and name is not None:
            # obs-fold: a continuation line, unfolded as the HTTP parser does.
            values[name][-1] = (values[name][-1] + b" " + line.strip()).strip()
            continue
        raw_name, _, value = line.partition(b":")
        name = raw_name.strip().lower()
        values.setdefault(name, []).append(value.strip())
    return start_line.strip(), lines, values, end.end() if end else len(data)


def split_head(data: bytes) -> tuple[bytes, dict[bytes, list[bytes]], int]:
    """Split an HTTP message head that the HTTP parser accepted.

    ``data`` starts with the head; what follows it is ignored. An obs-fold
    continuation line is unfolded into the value before it, as the HTTP parser
    does (:func:`check_request_head` refuses them in a request).

    :returns: the start line, the header values by lower-case name, and the offset
        just past the head (``len(data)`` when it is incomplete).
    """
    start_line, _, values, end = _split(data)
    return start_line, values, end


def has_control_character(values: dict[bytes, list[bytes]]) -> bool:
    r"""Whether a header value holds a control character other than HTAB.

    The HTTP parser lets them through, and ``str.strip()`` (which wsproto applies to
    the tokens it checks) takes some of them for spaces: ``Upgrade\x1c`` would pass
    for ``Upgrade``. Both ends refuse them.
    """
    return any(_CONTROL.search(value) for items in values.values() for value in items)


def check_request_head(data: bytes) -> tuple[tuple[int, str] | None, int]:
    """Check what the HTTP parser leaves to us in a request head that it accepted.

    ``data`` starts with the request head; what follows it is returned as an offset.

    :returns: ``(problem, end)``: ``problem`` is ``(status, why)`` for a request to
        refuse, ``None`` for a good one: 431 for a head over :data:`MAX_HEAD_SIZE`
        bytes or with more than :data:`MAX_HEADERS` header lines (continuation lines
        included); 400 for an obs-fold continuation line (RFC 9112, section 5.2), a
        version other than HTTP/1.1, a target that is neither a path nor an absolute
        URI, a body, a control character in a header value, a repeated ``Host``,
        ``Upgrade`` or ``Sec-WebSocket-*`` header, or a key that is not 16 bytes in
        base64 (RFC 6455, sections 4.1 and 4.2.1). ``end`` is the offset just past
        the head.
    """
    start_line, lines, values, end = _split(data)
    return _request_problem(start_line, lines, values, end), end


def _request_problem(
    start_line: bytes, lines: list[bytes], values: dict[bytes, list[bytes]], end: int
) -> tuple[int, str] | None:
    if end > MAX_HEAD_SIZE:
        return 431, f"request head larger than {MAX_HEAD_SIZE} bytes"
    if len(lines) > MAX_HEADERS:
        # Lines, not fields: continuation lines count too.
        return 431, f"more than {MAX_HEADERS} header lines"
    if any(_is_continuation(line) for line in lines):
        # RFC 9112, section 5.2: "A server that receives an obs-fold in a request
        # message [...] MUST either reject the message by sending a 400 (Bad
        # Request) [...] or replace each received obs-fold with one or more SP".
        return 400, "obs-fold: a header line starts with whitespace"
    parts = start_line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return 400, "a WebSocket handshake needs HTTP/1.1"
    if not _TARGET.match(parts[1]):
        return 400, "the request target must be a path or an absolute URI"
    if b"transfer-encoding" in values or values.get(b"content-length", [b"0"]) != [b"0"]:
        return 400, "a WebSocket upgrade request has no body"
    if has_control_character(values):
        return 400, "control character in a header value"
    for name in _SINGLE_HEADERS:
        if len(values.get(name, ())) > 1:
            return 400, f"repeated {name.decode()} header"
    if not is_websocket_key(values.get(b"sec-websocket-key", [b""])[0]):
        return 400, "Sec-WebSocket-Key is not 16 bytes in base64"
    return None


def is_websocket_key(key: bytes) -> bool:
    """Whether ``key`` is a valid ``Sec-WebSocket-Key``: 16 bytes in base64."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False
