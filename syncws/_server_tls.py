"""The server's TLS handshake with a client, and the budget of its log lines.

A failed handshake that says something about TLS (a client that refuses the
certificate, one that does not speak TLS) is logged at INFO, at most
:data:`TLS_LOG_BURST` lines per :data:`TLS_LOG_INTERVAL` seconds for the whole
process, so that a scanner cannot flood the log; the others are counted.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time

from .types import Endpoint

logger = logging.getLogger("syncws")

__all__ = [
    "TLS_LOG_BURST",
    "TLS_LOG_INTERVAL",
    "LogBudget",
    "describe_tls_failure",
    "tls_failures",
    "tls_handshake",
]

#: Failed TLS handshakes are logged at INFO, one line each, at most TLS_LOG_BURST of
#: them per TLS_LOG_INTERVAL seconds (a scanner cannot flood the log); the others
#: are counted, and the count is logged when lines are allowed again.
TLS_LOG_BURST = 10
TLS_LOG_INTERVAL = 60.0


#: OpenSSL's reasons for a handshake that was not TLS at all.
_NOT_TLS = {
    "HTTP_REQUEST": "plain HTTP, such as a ws:// URL for this wss:// server",
    "HTTPS_PROXY_REQUEST": "an HTTP proxy request",
    "WRONG_VERSION_NUMBER": "no TLS record",
    "UNKNOWN_PROTOCOL": "no TLS record",
    "PACKET_LENGTH_TOO_LONG": "no TLS record",
    "RECORD_LENGTH_MISMATCH": "no TLS record",
}
#: Alerts of a client that refuses the server's certificate (a browser that does not
#: trust it, a name that does not match, an expired certificate).
_CERTIFICATE_REFUSED = frozenset(
    [
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_ACCESS_DENIED",
    ]
)
#: No protocol version or cipher suite that both sides accept.
_NOTHING_IN_COMMON = frozenset(
    [
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "VERSION_TOO_LOW",
        "NO_PROTOCOLS_AVAILABLE",
        "NO_SHARED_CIPHER",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    ]
)


def describe_tls_failure(exc: ssl.SSLError) -> str | None:
    """Say why a TLS handshake failed, for an operator; ``None`` for a client that left.

    A client that closes or resets the connection during the handshake (a port scan,
    a health check) is no TLS problem: ``None``. Otherwise OpenSSL's reason, such as
    ``TLSV1_ALERT_UNKNOWN_CA``, and what it usually means.
    """
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
        return None
    reason = exc.reason or str(exc)
    if reason in _NOT_TLS:
        return f"not TLS: {reason} ({_NOT_TLS[reason]})"
    if reason in _CERTIFICATE_REFUSED:
        return f"{reason} (the client does not accept the server's certificate)"
    if reason in _NOTHING_IN_COMMON:
        return f"{reason} (no TLS version or cipher that both sides accept)"
    return reason


class LogBudget:
    """At most ``TLS_LOG_BURST`` INFO lines per ``TLS_LOG_INTERVAL`` seconds; thread-safe.

    Lines over the budget are counted; the count is logged before the next line
    allowed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window: float | None = None
        self._logged = 0
        self._dropped = 0

    def info(self, message: str, *args: object) -> None:
        """Log ``message % args`` at INFO if the budget allows, else count it."""
        now = time.monotonic()
        with self._lock:
            dropped = 0
            if self._window is None or now - self._window >= TLS_LOG_INTERVAL:
                self._window, self._logged = now, 0
                dropped, self._dropped = self._dropped, 0
            allowed = self._logged < TLS_LOG_BURST
            if allowed:
                self._logged += 1
            else:
                self._dropped += 1
        if dropped:
            logger.info(
                "%d more TLS handshakes failed and were not logged one by one "
                "(at most %d are, every %g s)",
                dropped,
                TLS_LOG_BURST,
                TLS_LOG_INTERVAL,
            )
        if allowed:
            logger.info(message, *args)


#: The budget of the process's "TLS handshake failed" lines.
tls_failures = LogBudget()


def tls_handshake(sock: ssl.SSLSocket, remote: Endpoint | str) -> bool:
    """Run the server's TLS handshake; return whether it succeeded.

    A failure that says something about TLS (a client that refuses the certificate,
    a client that does not speak TLS) is logged at INFO, in one line with the
    client's address; a client that just went away, or was too slow, at DEBUG.
    """
    try:
        sock.do_handshake()
    except ssl.SSLError as exc:
        why = describe_tls_failure(exc)
        if why is None:
            logger.debug("TLS handshake with %s failed: %r", remote, exc)
        else:
            tls_failures.info("TLS handshake with %s failed: %s", remote or "a client", why)
        return False
    except OSError as exc:
        logger.debug("TLS handshake with %s failed: %r", remote, exc)
        return False
    return True
