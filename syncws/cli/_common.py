"""What several commands share: client TLS options and one-line error messages."""

from __future__ import annotations

import argparse
import ssl

from ..exceptions import ConnectionRejected, WebSocketError

__all__ = [
    "CONNECT_ERRORS",
    "add_client_tls_arguments",
    "client_ssl_context",
    "describe_error",
    "parse_header",
]

#: What opening a client connection raises for a bad URL, a failure or a refusal.
CONNECT_ERRORS = (WebSocketError, OSError, ValueError)


def add_client_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cafile`` and ``--insecure``, for ``wss://`` URLs."""
    parser.add_argument(
        "--cafile",
        metavar="PEM",
        help="for wss://: trust the certificate authorities in this PEM file",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="for wss://: do not check the server's certificate nor its host name",
    )


def client_ssl_context(cafile: str | None, insecure: bool) -> ssl.SSLContext | None:
    """Return the TLS context for ``wss://``: ``None`` (system defaults) unless asked.

    :param cafile: a PEM file of certificate authorities to trust, or ``None``.
    :param insecure: skip certificate and host name verification altogether.
    """
    if cafile is None and not insecure:
        return None
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def parse_header(text: str) -> tuple[str, str]:
    """Split a ``--header "Name: value"`` argument; raise ArgumentTypeError if malformed."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, for ``error: ...`` on standard error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate verification failed: {exc.verify_message or exc.reason} "
            "(--cafile PEM trusts a private authority, --insecure skips the check)"
        )
    if isinstance(exc, ConnectionRejected):
        return str(exc)
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}"
    return str(exc) or type(exc).__name__
