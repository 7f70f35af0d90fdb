"""Hiding the password of a URL before it is shown anywhere.

:func:`redact_url` takes any string a user may have given as a URL, well-formed or not,
and hides whatever could be a password in it. It does not trust a URL parser to say
where the password is: a password may hold ``#``, ``?``, ``/``, ``@`` or ``:``, and a
URL may be malformed exactly because of it. ``urlsplit`` reads
``ws://alice:1234#5678@host/`` as host ``alice``, port ``1234`` and fragment
``5678@host/``, so the password would be shown by anything that trusted that reading.

The rule instead covers every reading: a password can only lie between the ``://``
after the scheme and the *last* ``@`` of the string, after the first ``:`` there. That
stretch is hidden as a whole. Characters that Unicode normalisation (NFKC) turns into
a delimiter, such as the full-width commercial at (U+FF20), count as that delimiter.
A URL whose path or query holds an ``@`` is over-redacted (``wss://host:***@trade``):
it cannot be told apart from a password with a ``/`` in it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = ["MASK", "hidden_span", "hide_passwords", "redact_url"]

#: What a hidden password is shown as.
MASK = "***"

#: Characters that end a user name in any reading of a URL.
_DELIMITERS = ":/?#@[]\\"
_SCHEME_SEPARATOR = "://"


def _normalised(char: str) -> str:
    """Return what ``char`` becomes under NFKC normalisation (ASCII stays as is)."""
    if char.isascii():
        return char
    return unicodedata.normalize("NFKC", char)


def _is(char: str, delimiter: str) -> bool:
    return delimiter in _normalised(char)


def _last_at(text: str) -> int:
    """Index of the last character that is or normalises to ``@``; -1 if none."""
    for index in range(len(text) - 1, -1, -1):
        if _is(text[index], "@"):
            return index
    return -1


def _scheme_end(text: str, limit: int) -> int:
    """Index just past ``scheme://`` if ``text`` starts with one before ``limit``, else 0."""
    scheme, separator, _ = text.partition(_SCHEME_SEPARATOR)
    end = len(scheme) + len(separator)
    if not separator or end > limit or not scheme:
        return 0
    if not scheme[0].isascii() or not scheme[0].isalpha():
        return 0
    if not all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme):
        return 0
    return end


def hidden_span(url: str) -> tuple[int, int] | None:
    """``(start, end)`` of what :func:`redact_url` hides in ``url``, or ``None``.

    For callers that show a part of ``url`` that a parser found (a port, a host): a
    part that overlaps this span may be a piece of the password.
    """
    at = _last_at(url)
    if at < 0:
        return None
    start = _scheme_end(url, at)
    userinfo = url[start:at]
    colon = next((i for i, char in enumerate(userinfo) if _is(char, ":")), -1)
    if colon < 0:
        return None  # A user name alone, with no password.
    username = userinfo[:colon]
    if start > 0 and not any(
        _is(char, delimiter) for char in username for delimiter in _DELIMITERS
    ):
        return start + colon + 1, at  # The user name stays.
    return start, at


def redact_url(url: str) -> str:
    """Return ``url`` with any password in it replaced by ``***``, for messages and logs.

    ``ws://alice:secret@host/`` becomes ``ws://alice:***@host/``. Works on any string,
    whether or not it is a valid URL; when in doubt it hides more than the password
    (the user name too, or a stretch of the path), never less.

    :param url: what the user gave as a URL.
    :returns: the same string with what may be a password hidden; unchanged when it
        has no ``@``, or no ``:`` before its last ``@``.
    """
    span = hidden_span(url)
    if span is None:
        return url
    start, end = span
    return f"{url[:start]}{MASK}{url[end:]}"


def hide_passwords(text: str, urls: Iterable[str]) -> str:
    """Hide in ``text`` the passwords of ``urls``, wherever ``text`` quotes them.

    For messages built by code that does not know which of its inputs are URLs, such
    as those of :mod:`argparse`: each stretch :func:`redact_url` would hide in one of
    ``urls`` is replaced by ``***`` in ``text``, also where it appears escaped as
    :func:`repr` escapes it.
    """
    for url in urls:
        span = hidden_span(url)
        if span is None:
            continue
        secret = url[span[0] : span[1]]
        escaped = repr(secret)[1:-1]
        for form in (secret, escaped, escaped.replace("'", "\\'")):
            if form:
                text = text.replace(form, MASK)
    return text
