"""CloseReason, Endpoint, the exception tree and the public names."""

from __future__ import annotations

import pytest

import syncws
from syncws import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    DisconnectionTimeout,
    Endpoint,
    HandshakeError,
    WebSocketError,
)
from syncws.testing import connection_pair

PUBLIC_NAMES = [
    "WebSocketError",
    "HandshakeError",
    "ConnectionRejected",
    "ConnectionTimeout",
    "ConnectionClosed",
    "DisconnectionTimeout",
    "CloseReason",
    "Endpoint",
    "WebSocketConnection",
    "connect",
    "open_websocket",
    "open_websocket_url",
    "connect_websocket",
    "connect_websocket_url",
    "wrap_client_socket",
]


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_importable_from_package(name: str) -> None:
    assert hasattr(syncws, name)


def test_version() -> None:
    assert syncws.__version__ == "0.1.0"


def test_submodules_expose_the_same_objects() -> None:
    from syncws import client, connection, exceptions, types

    assert exceptions.WebSocketError is syncws.WebSocketError
    assert types.CloseReason is syncws.CloseReason
    assert types.Endpoint is syncws.Endpoint
    assert connection.WebSocketConnection is syncws.WebSocketConnection
    assert client.connect is syncws.connect


# ----------------------------------------------------------------- CloseReason

KNOWN_CODES = {
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


@pytest.mark.parametrize(("code", "name"), sorted(KNOWN_CODES.items()))
def test_close_reason_known_code_names(code: int, name: str) -> None:
    reason = CloseReason(code, "why")
    assert reason.code == code
    assert reason.name == name
    assert reason.reason == "why"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1004, "RFC_RESERVED"),
        (1016, "RFC_RESERVED"),
        (2999, "RFC_RESERVED"),
        (3000, "IANA_RESERVED"),
        (3999, "IANA_RESERVED"),
        (4000, "PRIVATE_RESERVED"),
        (4999, "PRIVATE_RESERVED"),
        (5000, "INVALID_CODE"),
        (999, "INVALID_CODE"),
        (0, "INVALID_CODE"),
        (65535, "INVALID_CODE"),
    ],
)
def test_close_reason_range_names(code: int, name: str) -> None:
    assert CloseReason(code, None).name == name


def test_close_reason_equality_uses_code_and_reason() -> None:
    assert CloseReason(1000, None) == CloseReason(1000, None)
    assert CloseReason(1001, "bye") == CloseReason(1001, "bye")
    assert CloseReason(1000, None) != CloseReason(1001, None)
    assert CloseReason(1000, "a") != CloseReason(1000, "b")


def test_close_reason_repr() -> None:
    expected = "<CloseReason code=1000 name=NORMAL_CLOSURE reason=None>"
    assert repr(CloseReason(1000, None)) == expected


# --------------------------------------------------------------------- Endpoint


@pytest.mark.parametrize(
    ("address", "port", "is_ssl", "url"),
    [
        ("127.0.0.1", 8000, False, "ws://127.0.0.1:8000"),
        ("::1", 8443, True, "wss://[::1]:8443"),
        ("::1", 80, False, "ws://[::1]"),
        ("example.com", 80, False, "ws://example.com"),
        ("example.com", 443, True, "wss://example.com"),
        ("example.com", 443, False, "ws://example.com:443"),
        ("example.com", 80, True, "wss://example.com:80"),
    ],
)
def test_endpoint_url(address: str, port: int, is_ssl: bool, url: str) -> None:
    endpoint = Endpoint(address, port, is_ssl)
    assert (endpoint.address, endpoint.port, endpoint.is_ssl) == (address, port, is_ssl)
    assert endpoint.url == url


# ------------------------------------------------------------------- exceptions


@pytest.mark.parametrize(
    "exc_type",
    [HandshakeError, ConnectionRejected, ConnectionTimeout, ConnectionClosed, DisconnectionTimeout],
)
def test_every_exception_is_a_websocket_error(exc_type: type[Exception]) -> None:
    assert issubclass(exc_type, WebSocketError)
    assert issubclass(WebSocketError, Exception)


def test_handshake_error_subclasses() -> None:
    assert issubclass(ConnectionRejected, HandshakeError)
    assert issubclass(ConnectionTimeout, HandshakeError)
    assert not issubclass(ConnectionClosed, HandshakeError)
    assert not issubclass(DisconnectionTimeout, HandshakeError)


def test_timeouts_are_builtin_timeout_errors() -> None:
    assert issubclass(ConnectionTimeout, TimeoutError)
    assert issubclass(DisconnectionTimeout, TimeoutError)
    assert not issubclass(ConnectionRejected, TimeoutError)
    assert not issubclass(ConnectionClosed, TimeoutError)


def test_connection_rejected_attributes() -> None:
    exc = ConnectionRejected(403, ((b"content-type", b"text/plain"),), b"go away")
    assert exc.status_code == 403
    assert exc.headers == ((b"content-type", b"text/plain"),)
    assert exc.body == b"go away"
    assert "403" in str(exc)


def test_connection_closed_carries_reason() -> None:
    reason = CloseReason(1011, "boom")
    exc = ConnectionClosed(reason)
    assert exc.reason is reason


# ------------------------------------------------------------ connection identity


def test_local_and_remote_endpoints(raw_peer) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url) as ws:
        peer.wait_request()
        assert ws.remote == Endpoint("127.0.0.1", peer.port, False)
        assert (ws.remote.address, ws.remote.port, ws.remote.is_ssl) == (
            "127.0.0.1",
            peer.port,
            False,
        )
        assert peer.client_address is not None
        assert ws.local.address == peer.client_address[0]
        assert ws.local.port == peer.client_address[1]
        assert ws.local.is_ssl is False
        assert ws.remote.url == f"ws://127.0.0.1:{peer.port}"


def test_is_client_and_is_server() -> None:
    with connection_pair() as (client, server):
        assert (client.is_client, client.is_server) == (True, False)
        assert (server.is_client, server.is_server) == (False, True)
        assert isinstance(client, syncws.WebSocketConnection)
        assert isinstance(server, syncws.WebSocketConnection)


def test_close_reason_is_none_while_open() -> None:
    with connection_pair() as (client, server):
        assert client.close_reason is server.close_reason is None
        assert client.is_closed is server.is_closed is False
    assert client.is_closed is server.is_closed is True
    assert client.close_reason == server.close_reason == CloseReason(1000, None)
