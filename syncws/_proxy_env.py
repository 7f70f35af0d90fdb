"""Proxy URLs: checking them, and choosing one from the environment.

:func:`parse_proxy` checks a proxy URL (``http://``, ``https://``, ``socks5://``,
``socks5h://``, ``socks4://``, ``socks4a://``) and takes it apart.
:func:`proxy_from_environment` finds the proxy for a WebSocket URL the way ``curl``,
``requests`` and :mod:`urllib.request` do:

- ``wss://`` uses ``wss_proxy``, then ``https_proxy``, then ``all_proxy``; ``ws://``
  uses ``ws_proxy``, then ``http_proxy``, then ``all_proxy``. For each name the
  lower-case variable comes first, then the upper-case one. A lower-case variable set
  to the empty string hides its upper-case twin, and ``HTTP_PROXY`` (upper case) is
  ignored when ``REQUEST_METHOD`` is set (a CGI script, where a client's ``Proxy:``
  header would arrive as ``HTTP_PROXY``), as ``urllib.request.getproxies()`` does.
- ``no_proxy`` (or ``NO_PROXY``), a comma-separated list, names the hosts reached
  directly: ``*`` for every host; a host name, which also matches its sub-domains
  (``example.com`` and ``.example.com`` alike); ``host:port``; an IP address (IPv6 in
  brackets or not, ``[::1]:8080`` with a port); a CIDR range (``10.0.0.0/8``,
  ``fd00::/8``), which matches the URL's host only when it is an IP address: no name
  is resolved to decide.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ._redact import redact_url

__all__ = [
    "DEFAULT_PORTS",
    "PROXY_SCHEMES",
    "ProxyURL",
    "bypass",
    "check_proxy",
    "parse_proxy",
    "proxy_from_environment",
]

#: The port of each kind of proxy when its URL gives none.
DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "socks5": 1080,
    "socks5h": 1080,
    "socks4": 1080,
    "socks4a": 1080,
}
PROXY_SCHEMES = frozenset(DEFAULT_PORTS)

_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ProxyURL:
    """A checked proxy URL, taken apart."""

    #: ``http``, ``https``, ``socks5``, ``socks5h``, ``socks4`` or ``socks4a``.
    scheme: str
    #: The host name or IP address (IPv6 without brackets).
    host: str
    port: int
    #: The user name, percent-decoded, or ``None``.
    username: str | None = None
    #: The password, percent-decoded (``""`` with a user name and no password).
    password: str | None = field(default=None, repr=False)
    #: The URL as given, its password hidden: for messages.
    shown: str = ""

    @property
    def address(self) -> str:
        """``host:port``, IPv6 in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_proxy(url: str) -> ProxyURL:
    """Check a proxy URL and take it apart.

    A URL without a scheme (``proxy.example:3128``) is an ``http://`` proxy, as for
    ``curl`` and ``requests``. Credentials are percent-decoded.

    :raises ValueError: for a malformed URL, or a scheme other than those of
        :data:`PROXY_SCHEMES`; the message hides the password.
    """
    shown = redact_url(url)
    if _UNSAFE.search(url):
        raise ValueError(f"invalid proxy URL {shown!r}: spaces and control characters")
    full = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(full)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid proxy URL {shown!r}: bad host or port") from exc
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        choices = ", ".join(f"{name}://" for name in DEFAULT_PORTS)
        raise ValueError(f"invalid proxy URL {shown!r}: the scheme is not one of {choices}")
    if not parts.hostname:
        raise ValueError(f"invalid proxy URL {shown!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"invalid proxy URL {shown!r}: a proxy URL has no path or query")
    username = password = None
    if parts.username is not None:
        try:
            username = unquote(parts.username, errors="strict")
            password = unquote(parts.password or "", errors="strict")
        except UnicodeDecodeError as exc:
            raise ValueError(f"invalid proxy URL {shown!r}: credentials not UTF-8") from exc
    return ProxyURL(
        scheme=scheme,
        host=parts.hostname,
        port=DEFAULT_PORTS[scheme] if port is None else port,
        username=username,
        password=password,
        shown=shown,
    )


def check_proxy(name: str, value: object) -> None:
    """Check the ``proxy`` option: a URL, ``True`` (from the environment) or ``None``."""
    if value is None or value is True:
        return
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a proxy URL, True (from the environment) or None (no proxy), "
            f"not {value!r}"
        )
    parse_proxy(value)


def _variable(environ: Mapping[str, str], name: str) -> str | None:
    """Read ``name`` (lower case) or its upper-case twin, as urllib reads them."""
    lower = environ.get(name)
    if lower is not None:
        return lower or None  # Set to "": none, whatever the upper-case one says.
    if name == "http_proxy" and "REQUEST_METHOD" in environ:
        return None  # CGI: HTTP_PROXY may come from the client's "Proxy:" header.
    return environ.get(name.upper()) or None


def proxy_from_environment(
    secure: bool, host: str, port: int, environ: Mapping[str, str]
) -> tuple[str, str] | None:
    """Find the proxy for a ``ws(s)://host:port`` URL in the environment.

    :returns: the proxy URL and the name of the variable that gave it; ``None`` when
        no variable names a proxy or ``no_proxy`` says to connect directly.
    """
    names = ("wss_proxy", "https_proxy") if secure else ("ws_proxy", "http_proxy")
    for name in (*names, "all_proxy"):
        url = _variable(environ, name)
        if url is not None:
            break
    else:
        return None
    if bypass(host, port, _variable(environ, "no_proxy") or ""):
        return None
    return url, name


def _ip(text: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _split_entry(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 -> (host, port)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _matches(entry: str, host: str, host_ip: _IPAddress | None, port: int) -> bool:
    """Whether one ``no_proxy`` entry (lower case, stripped) covers ``host:port``."""
    if entry == "*":
        return True
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
        return host_ip is not None and host_ip.version == network.version and host_ip in network
    name, entry_port = _split_entry(entry)
    if entry_port is not None and entry_port != port:
        return False
    entry_ip = _ip(name)
    if entry_ip is not None:
        return entry_ip == host_ip
    name = name.removeprefix("*").lstrip(".").rstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


def bypass(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``no_proxy`` says to reach ``host:port`` directly (no name is resolved)."""
    host = host.strip("[]").rstrip(".").lower()
    host_ip = _ip(host)
    for item in no_proxy.split(","):
        entry = item.strip().lower()
        if entry and _matches(entry, host, host_ip, port):
            return True
    return False
