"""Small value types: :class:`CloseReason` and :class:`Endpoint`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["CloseReason", "Endpoint"]

# The codes RFC 6455 (section 7.4.1) and the IANA registry define, by name.
_CODE_NAMES = {
    1000: "NORMAL_CLOSURE",
    1001: "GOING_AWAY",
    1002: "PROTOCOL_ERROR",
    1003: "UNSUPPORTED_DATA",
    1005: "NO_STATUS_RCVD",
    1006: "ABNORMAL_CLOSURE",
    1007: "INVALID_FRAME_PAYLOAD_DATA",
    1008: "POLICY_VIOLATION",
    1009: "MESSAGE_TOO_BIG",
    1010: "MANDATORY_EXT",
    1011: "INTERNAL_ERROR",
    1012: "SERVICE_RESTART",
    1013: "TRY_AGAIN_LATER",
    1014: "BAD_GATEWAY",
    1015: "TLS_HANDSHAKE_FAILED",
}


def _code_name(code: int) -> str:
    name = _CODE_NAMES.get(code)
    if name is not None:
        return name
    if 1000 <= code <= 2999:
        return "RFC_RESERVED"
    if 3000 <= code <= 3999:
        return "IANA_RESERVED"
    if 4000 <= code <= 4999:
        return "PRIVATE_RESERVED"
    return "INVALID_CODE"


class CloseReason:
    """Why a WebSocket connection closed: a close code, its name and a reason.

    :param code: the close code (RFC 6455, section 7.4).
    :param reason: the reason text sent with the code, or ``None``.
    """

    __slots__ = ("_code", "_name", "_reason")

    def __init__(self, code: int, reason: str | None) -> None:
        self._code = code
        self._name = _code_name(code)
        self._reason = reason

    @property
    def code(self) -> int:
        """The numeric close code, e.g. ``1000``."""
        return self._code

    @property
    def name(self) -> str:
        """The name of the code, e.g. ``"NORMAL_CLOSURE"``.

        Codes without a name of their own are named after their range:
        ``RFC_RESERVED`` (1000-2999), ``IANA_RESERVED`` (3000-3999),
        ``PRIVATE_RESERVED`` (4000-4999) and ``INVALID_CODE`` (anything else).
        """
        return self._name

    @property
    def reason(self) -> str | None:
        """The reason text, or ``None`` when there was none."""
        return self._reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CloseReason):
            return NotImplemented
        return (self._code, self._reason) == (other._code, other._reason)

    def __hash__(self) -> int:
        return hash((self._code, self._reason))

    def __repr__(self) -> str:
        return f"<CloseReason code={self._code} name={self._name} reason={self._reason!r}>"

    def __str__(self) -> str:
        if self._reason:
            return f"{self._code} ({self._name}): {self._reason}"
        return f"{self._code} ({self._name})"


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: an address, a port and whether TLS is on.

    :param address: an IPv4 or IPv6 address (or a host name).
    :param port: the TCP port.
    :param is_ssl: whether the connection uses TLS.
    """

    #: The IP address or host name.
    address: str
    #: The TCP port.
    port: int
    #: Whether the connection uses TLS.
    is_ssl: bool

    def __str__(self) -> str:
        return self.url

    @property
    def url(self) -> str:
        """The endpoint as a URL, e.g. ``ws://127.0.0.1:8000`` or ``wss://[::1]``.

        The port is left out when it is the default port of the scheme.
        """
        scheme, default_port = ("wss", 443) if self.is_ssl else ("ws", 80)
        host = self.address
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        if self.port == default_port:
            return f"{scheme}://{host}"
        return f"{scheme}://{host}:{self.port}"
