"""The client's address behind trusted reverse proxies (the ``trusted_proxies`` option).

A reverse proxy such as nginx connects to the server itself, so the TCP peer of every
connection is the proxy; it passes the address of its own client on in
``X-Forwarded-For`` (each proxy appends the address it saw) or ``X-Real-IP``. Anyone can
send those headers, so they are believed only from a peer in ``trusted_proxies``, and
only as far as the chain of trusted hops goes: :func:`client_address` walks
``X-Forwarded-For`` from its right end, where the nearest proxy wrote, and stops at the
first address that is not a trusted proxy. What lies left of that address was written
by someone we cannot vouch for, and is ignored.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Iterable, Sequence

from .types import Endpoint

logger = logging.getLogger("syncws")

__all__ = ["UNIX", "check_trusted_proxies", "client_address"]

#: The entry of ``trusted_proxies`` that trusts peers on a Unix socket (a proxy on the
#: same host, such as nginx with ``proxy_pass http://unix:/run/app.sock``).
UNIX = "unix"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_trusted_proxies(value: object) -> tuple[str, ...] | None:
    """Check a ``trusted_proxies`` value; return it as a tuple of normalised networks.

    :raises TypeError: unless it is ``None`` or a list of strings.
    :raises ValueError: for an entry that is neither an IP address, a CIDR network
        (host bits clear) nor ``"unix"``.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"trusted_proxies must be a list of addresses or networks, not {type(value).__name__}"
        )
    entries = []
    for entry in value:
        if not isinstance(entry, str):
            raise TypeError(f"trusted_proxies must hold strings, not {entry!r}")
        if entry.strip().lower() == UNIX:
            entries.append(UNIX)
            continue
        try:
            entries.append(str(ipaddress.ip_network(entry.strip())))
        except ValueError:
            raise ValueError(
                f"trusted_proxies: {entry!r} is not an IP address or a network such as "
                "'10.0.0.0/8' (host bits clear)"
            ) from None
    return tuple(entries)


@functools.lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[_Network, ...]:
    """Parse the networks of a checked ``trusted_proxies`` tuple (once per tuple)."""
    return tuple(ipaddress.ip_network(entry) for entry in entries if entry != UNIX)


def _parse(text: str) -> _Address | None:
    """Parse an address of a forwarding header: ``1.2.3.4``, ``::1``, ``[::1]``, with a port."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: _Address, networks: tuple[_Network, ...]) -> bool:
    return any(address in network for network in networks)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Return the entries of every ``X-Forwarded-For`` header, in order."""
    entries: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            entries.extend(value.decode("latin-1").split(","))
    return [entry.strip() for entry in entries if entry.strip()]


def _real_ip(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"x-real-ip":
            return value.decode("latin-1")
    return None


def client_address(
    peer: Endpoint | str,
    headers: Sequence[tuple[bytes, bytes]],
    trusted_proxies: Sequence[str] | None,
) -> Endpoint | str:
    """Return the client's address: ``peer``, or what trusted proxies say it is.

    :param peer: the TCP peer (a path string for a Unix socket).
    :param headers: the request headers.
    :param trusted_proxies: the checked option (see :func:`check_trusted_proxies`).
    :returns: ``peer`` itself unless it is a trusted proxy that sent ``X-Forwarded-For``
        or ``X-Real-IP``; else an :class:`Endpoint` with the client's address, port
        ``0`` (the headers do not carry it) and ``is_ssl`` of the connection to the
        proxy.
    """
    if not trusted_proxies:
        return peer
    networks = _networks(tuple(trusted_proxies))
    if isinstance(peer, str):
        if UNIX not in trusted_proxies:
            return peer
        is_ssl = False
    else:
        address = _parse(peer.address)
        if address is None or not _trusted(address, networks):
            return peer
        is_ssl = peer.is_ssl
    chain = _forwarded_for(headers)
    if not chain:
        real_ip = _real_ip(headers)
        chain = [real_ip] if real_ip is not None else []
    found: _Address | None = None
    for entry in reversed(chain):
        hop = _parse(entry)
        if hop is None:
            logger.debug("trusted proxy %s forwarded an invalid address %r", peer, entry)
            break
        found = hop
        if not _trusted(hop, networks):
            break  # The nearest address that is not a proxy of ours: the client.
    if found is None:
        return peer
    return Endpoint(str(found), 0, is_ssl)
