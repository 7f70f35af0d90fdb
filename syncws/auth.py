"""HTTP Basic authentication (RFC 7617) for servers, as a ``process_request`` hook."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from collections.abc import Callable, Iterable

from .request import Handler, WebSocketRequest

logger = logging.getLogger("syncws")

__all__ = ["basic_auth"]

_REALM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")  # printable ASCII but " and \


def basic_auth(
    realm: str = "syncws",
    credentials: tuple[str, str] | Iterable[tuple[str, str]] | None = None,
    check_credentials: Callable[[str, str], bool] | None = None,
) -> Handler:
    """Make a ``process_request`` hook that requires HTTP Basic authentication.

    A request without valid credentials is refused with HTTP 401 and a
    ``WWW-Authenticate`` header that names ``realm``; the handler never runs. For
    an accepted request, :attr:`WebSocketRequest.username` holds the user name::

        auth = syncws.basic_auth(credentials=("alice", "secret"))
        syncws.serve_websocket(handler, "127.0.0.1", 8765, process_request=auth)

    Give exactly one of ``credentials`` and ``check_credentials``. Passwords are
    compared in constant time. Basic authentication sends the password in clear
    text: use it over TLS (``wss://``) only. Clients send it from a URL such as
    ``wss://alice:secret@host/``, which :func:`~syncws.connect` turns into the header.

    To combine it with checks of your own, call the hook from your own hook and
    go on unless the request was rejected.

    :param realm: the protection space, shown by browsers in their login prompt.
    :param credentials: one ``(username, password)`` pair, or several.
    :param check_credentials: called with the user name and password; returns
        whether they are valid (it runs in the client's thread and may block).
    :raises TypeError: unless exactly one of ``credentials`` and ``check_credentials``
        is given.
    :raises ValueError: for a realm with quotes, backslashes or control characters,
        or a user name with a colon.
    """
    if (credentials is None) == (check_credentials is None):
        raise TypeError("give exactly one of credentials and check_credentials")
    if not _REALM.fullmatch(realm):
        raise ValueError(f"invalid realm {realm!r}")
    if check_credentials is None:
        assert credentials is not None
        check_credentials = _checker(credentials)
    check = check_credentials
    challenge = [("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"')]

    def authenticate(request: WebSocketRequest) -> None:
        parsed = _parse_authorization(request.header("authorization"))
        if parsed is not None and check(*parsed):
            request.username = parsed[0]
            return
        logger.debug(
            "%s: %s", request.remote, "bad credentials" if parsed else "no valid credentials"
        )
        request.reject(401, challenge, "401 authentication required\n")

    return authenticate


def _checker(
    credentials: tuple[str, str] | Iterable[tuple[str, str]],
) -> Callable[[str, str], bool]:
    """Build a checker over a fixed set of credentials."""
    if isinstance(credentials, tuple) and len(credentials) == 2 and isinstance(credentials[0], str):
        pairs = [credentials]
    else:
        pairs = list(credentials)
    table: dict[str, bytes] = {}
    for pair in pairs:
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(item, str) for item in pair)
        ):
            raise TypeError(f"credentials must be (username, password) pairs of str, not {pair!r}")
        if ":" in pair[0]:
            raise ValueError(f"a user name cannot contain ':' (RFC 7617): {pair[0]!r}")
        table[pair[0]] = pair[1].encode("utf-8")

    def check(username: str, password: str) -> bool:
        expected = table.get(username)
        # Compare even for an unknown user, so that timing does not tell users apart.
        valid = hmac.compare_digest(password.encode("utf-8"), expected or b"\0" * 16)
        return valid and expected is not None

    return check


def _parse_authorization(value: str | None) -> tuple[str, str] | None:
    """Return ``(username, password)`` from a Basic ``Authorization`` value, else ``None``."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    return username, password
