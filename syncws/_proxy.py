"""Opening the client's socket, directly or through a proxy, within the connect deadline.

:func:`open_socket` picks the proxy (the ``proxy`` option, or the environment: see
:mod:`._proxy_env`) and returns a socket on which the client runs TLS to the server
(for ``wss://``) and the WebSocket handshake, as on a direct connection:

- ``http://`` proxy: a TCP connection to the proxy, then one ``CONNECT host:port``
  request, written here, with ``Proxy-Authorization: Basic`` when the proxy URL holds
  credentials. The proxy resolves the server's name.
- ``https://`` proxy: the same inside TLS to the proxy, whose certificate is verified
  against its host name with the client's ``ssl_context`` (default: the system's
  trusted certificates). For a ``wss://`` server, TLS to the server then runs inside
  that TLS: :mod:`._proxy_relay` gives the connection a socket of its own, relayed.
- ``socks5h://``, ``socks4a://``: python-socks asks the proxy for the server by name;
  ``socks5://``, ``socks4://``: the name is resolved here and the proxy gets the
  address (as ``curl`` reads these schemes).

Everything, from the connection to the proxy to its answer, is spent from the connect
deadline. A proxy that cannot be reached raises the :class:`OSError` of the failure, a
proxy that refuses raises :class:`~syncws.ProxyError`; both name the proxy, its
password hidden.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import ssl
from typing import TYPE_CHECKING

from ._connect import open_tcp
from ._deadline import Deadline
from ._http import product
from ._proxy_env import ProxyURL, parse_proxy, proxy_from_environment
from ._proxy_relay import relay
from ._url import Target
from .exceptions import ConnectionTimeout, ProxyError

if TYPE_CHECKING:
    from .client import ConnectOptions

__all__ = ["MAX_PROXY_HEAD", "choose_proxy", "open_socket"]

logger = logging.getLogger("syncws")

#: The largest response head accepted from an HTTP proxy, in bytes.
MAX_PROXY_HEAD = 16 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?:[ \t][^\r\n]*)?")
_SHOWN_LINE = 100


def choose_proxy(target: Target, option: object) -> ProxyURL | None:
    """Return the proxy for ``target``: the ``proxy`` option's, the environment's, or none.

    :raises ValueError: for a malformed proxy URL, naming the variable it came from.
    """
    if option is None:
        return None
    if isinstance(option, str):
        return parse_proxy(option)
    found = proxy_from_environment(target.secure, target.host, target.port, os.environ)
    if found is None:
        return None
    url, variable = found
    try:
        return parse_proxy(url)
    except ValueError as exc:
        raise ValueError(f"{exc} (from the environment variable {variable})") from None


def open_socket(
    target: Target,
    deadline: Deadline,
    options: ConnectOptions,
    ssl_context: ssl.SSLContext | None,
) -> socket.socket:
    """Connect to ``target``, through its proxy if it has one, before ``deadline``.

    :returns: a blocking socket, ready for TLS to the server or the WebSocket handshake.
    """
    proxy = choose_proxy(target, options.get("proxy", True))
    if proxy is None:
        return open_tcp(
            target.host,
            target.port,
            deadline,
            hide_host=target.hide_host,
            hide_port=target.hide_port,
        )
    logger.debug("connecting to %s through the proxy %s", target.where, proxy.shown)
    if proxy.scheme.startswith("socks"):
        return _socks(proxy, target, deadline)
    user_agent = options.get("user_agent", product())
    return _tunnel(proxy, target, deadline, ssl_context, user_agent)


# -- HTTP CONNECT ---------------------------------------------------------------------------


def _reach(proxy: ProxyURL, deadline: Deadline) -> socket.socket:
    """Open a TCP connection to the proxy; errors name it."""
    try:
        return open_tcp(proxy.host, proxy.port, deadline)
    except ConnectionTimeout as exc:
        raise ConnectionTimeout(f"timed out connecting to the proxy {proxy.shown}: {exc}") from exc
    except socket.gaierror as exc:
        raise socket.gaierror(
            exc.errno, f"cannot resolve the host of the proxy {proxy.shown}: {exc.strerror}"
        ) from exc
    except OSError as exc:
        raise _named(exc, f"cannot reach the proxy {proxy.shown}") from exc


def _named(exc: OSError, what: str) -> OSError:
    """Remake ``exc`` (same errno, so the same subclass), its message led by ``what``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno is None:
        return OSError(f"{what}: {reason}")
    return OSError(exc.errno, f"{what}: {reason}")


def _settimeout(sock: socket.socket, deadline: Deadline, proxy: ProxyURL, doing: str) -> None:
    remaining = deadline.remaining()
    if remaining is not None and remaining <= 0:
        raise ConnectionTimeout(f"timed out {doing} the proxy {proxy.shown}")
    sock.settimeout(remaining)


def _proxy_tls(
    sock: socket.socket, proxy: ProxyURL, context: ssl.SSLContext | None, deadline: Deadline
) -> ssl.SSLSocket:
    """TLS to an ``https://`` proxy, its certificate checked against its host name."""
    context = context if context is not None else ssl.create_default_context()
    _settimeout(sock, deadline, proxy, "in the TLS handshake with")
    try:
        return context.wrap_socket(sock, server_hostname=proxy.host)
    except TimeoutError as exc:
        raise ConnectionTimeout(
            f"timed out in the TLS handshake with the proxy {proxy.shown}"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        error = ssl.SSLCertVerificationError(
            exc.errno,
            f"the TLS certificate of the proxy {proxy.shown} could not be verified: "
            f"{exc.verify_message or exc.reason}",
        )
        error.verify_code = exc.verify_code
        error.verify_message = exc.verify_message
        raise error from exc
    except OSError as exc:
        raise _named(exc, f"TLS with the proxy {proxy.shown} failed") from exc


def connect_request(proxy: ProxyURL, target: Target, user_agent: str | None) -> bytes:
    """Build the ``CONNECT`` request for ``target``, with its headers."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = f"{host}:{target.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if user_agent is not None:
        lines.append(f"User-Agent: {user_agent}")
    if proxy.username is not None:
        credentials = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _refusal(proxy: ProxyURL, target: Target, status: int, line: str) -> ProxyError:
    """Make the error for a proxy that answered ``CONNECT`` with a status other than 2xx."""
    message = f"the proxy {proxy.shown} refused to connect to {target.where}: {line!r}"
    if status in (401, 407):  # tinyproxy answers 401 to wrong credentials.
        message += (
            "; check the user name and password of the proxy URL"
            if proxy.username is not None
            else "; it wants credentials: give them in the proxy URL "
            f"({proxy.scheme}://user:password@{proxy.address})"
        )
    return ProxyError(message, proxy=proxy.shown, status_code=status, status_line=line)


def _read_answer(sock: socket.socket, proxy: ProxyURL, target: Target, deadline: Deadline) -> None:
    """Read the proxy's answer to ``CONNECT``; return once the tunnel is open.

    :raises ProxyError: for a status other than 2xx, an answer that is not HTTP or
        too long, bytes after a 2xx head (the server cannot have spoken first), or an
        end of stream before the end of the head.
    """
    received = b""
    while True:
        _settimeout(sock, deadline, proxy, "waiting for the answer of")
        try:
            chunk = sock.recv(4096)
        except TimeoutError as exc:
            raise ConnectionTimeout(
                f"timed out waiting for the proxy {proxy.shown} to answer CONNECT"
            ) from exc
        except OSError as exc:
            raise _named(exc, f"the proxy {proxy.shown} failed during CONNECT") from exc
        if not chunk:
            raise ProxyError(
                f"the proxy {proxy.shown} closed the connection before answering CONNECT",
                proxy=proxy.shown,
            )
        received += chunk
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0 or len(received) > MAX_PROXY_HEAD:
            break
        if not re.match(rb"H(?:T(?:T(?:P(?:/.*)?)?)?)?\Z", received[:5], re.DOTALL):
            break  # Not HTTP: no need to wait for the rest.
    first_line = received.split(b"\r\n", 1)[0]
    line = first_line[:_SHOWN_LINE].decode("latin-1")
    match = _STATUS_LINE.fullmatch(first_line)
    if match is None:
        raise ProxyError(
            f"the proxy {proxy.shown} did not answer CONNECT in HTTP: {line!r}", proxy=proxy.shown
        )
    if head_end < 0:
        raise ProxyError(
            f"the proxy {proxy.shown} sent a response head over {MAX_PROXY_HEAD} bytes",
            proxy=proxy.shown,
        )
    status = int(match.group(1))
    if not 200 <= status < 300:
        raise _refusal(proxy, target, status, line)
    extra = len(received) - head_end - 4
    if extra:
        raise ProxyError(
            f"the proxy {proxy.shown} sent {extra} bytes after its answer {line!r}, "
            "before the server could have said anything",
            proxy=proxy.shown,
            status_code=status,
            status_line=line,
        )


def _tunnel(
    proxy: ProxyURL,
    target: Target,
    deadline: Deadline,
    ssl_context: ssl.SSLContext | None,
    user_agent: str | None,
) -> socket.socket:
    """Open a tunnel to ``target`` through an ``http://`` or ``https://`` proxy."""
    sock = _reach(proxy, deadline)
    try:
        if proxy.scheme == "https":
            sock = _proxy_tls(sock, proxy, ssl_context, deadline)
        _settimeout(sock, deadline, proxy, "sending CONNECT to")
        try:
            sock.sendall(connect_request(proxy, target, user_agent))
        except TimeoutError as exc:
            raise ConnectionTimeout(
                f"timed out sending CONNECT to the proxy {proxy.shown}"
            ) from exc
        except OSError as exc:
            raise _named(exc, f"the proxy {proxy.shown} failed during CONNECT") from exc
        _read_answer(sock, proxy, target, deadline)
        sock.settimeout(None)
        if isinstance(sock, ssl.SSLSocket) and target.secure:
            # TLS to the server inside TLS to the proxy: the connection needs a socket
            # of its own, which a thread relays through the proxy's TLS.
            return relay(sock, f"{target.where} via {proxy.address}")
        return sock
    except BaseException:
        sock.close()
        raise


# -- SOCKS --------------------------------------------------------------------------------


def _socks(proxy: ProxyURL, target: Target, deadline: Deadline) -> socket.socket:
    """Connect to ``target`` through a SOCKS proxy, negotiated by python-socks.

    python-socks bounds each step by the time left when it starts; the deadline is
    checked again once it returns.
    """
    # Imported here: python-socks is an optional extra, needed for SOCKS only.
    try:
        from python_socks import (  # noqa: PLC0415
            ProxyConnectionError,
            ProxyTimeoutError,
            ProxyType,
        )
        from python_socks import ProxyError as SocksError  # noqa: PLC0415
        from python_socks.sync import Proxy  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            f"a {proxy.scheme}:// proxy needs python-socks: pip install 'syncws[socks]'"
        ) from exc
    remaining = deadline.remaining()
    if remaining is not None and remaining <= 0:
        raise ConnectionTimeout(f"timed out before connecting to the proxy {proxy.shown}")
    socks = Proxy(
        ProxyType.SOCKS5 if proxy.scheme.startswith("socks5") else ProxyType.SOCKS4,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password if proxy.username is not None else None,
        rdns=proxy.scheme in ("socks5h", "socks4a"),
    )
    try:
        sock = socks.connect(target.host, target.port, timeout=remaining)
    except ProxyTimeoutError as exc:
        raise ConnectionTimeout(f"timed out connecting through the proxy {proxy.shown}") from exc
    except ProxyConnectionError as exc:
        cause = exc.__cause__
        reason = cause if isinstance(cause, OSError) else exc
        raise _named(reason, f"cannot reach the proxy {proxy.shown}") from exc
    except SocksError as exc:
        raise ProxyError(
            f"the proxy {proxy.shown} refused to connect to {target.where}: {exc}",
            proxy=proxy.shown,
        ) from exc
    except TimeoutError as exc:
        raise ConnectionTimeout(f"timed out connecting through the proxy {proxy.shown}") from exc
    except socket.gaierror:
        raise  # The server's name, resolved here for socks5:// and socks4://.
    except OSError as exc:
        raise _named(exc, f"the proxy {proxy.shown} failed") from exc
    if deadline.expired():
        sock.close()
        raise ConnectionTimeout(f"timed out connecting through the proxy {proxy.shown}")
    sock.settimeout(None)
    return sock
