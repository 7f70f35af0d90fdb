"""The ``trusted_proxies`` option: the client's address from ``X-Forwarded-For`` or
``X-Real-IP``, believed from trusted peers only, as far as the chain of trusted hops goes.

The tests connect from 127.0.0.1 with the headers a proxy would add, and read what the
handler sees in ``request.remote``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer

import syncws
from syncws import Endpoint


def record_remote(request: Any, srv: SyncwsServer) -> None:
    srv.record.put(request.remote)
    with request.accept() as ws:
        ws.send_message("hi")


def remote_seen(srv: SyncwsServer, headers: Sequence[tuple[str, str]]) -> Any:
    with syncws.connect(srv.url, extra_headers=headers, connect_timeout=WAIT) as ws:
        assert ws.get_message(timeout=WAIT) == "hi"
    return srv.get()


def address_seen(srv: SyncwsServer, headers: Sequence[tuple[str, str]]) -> str:
    remote = remote_seen(srv, headers)
    assert isinstance(remote, Endpoint)
    return remote.address


XFF = "X-Forwarded-For"


def test_without_the_option_the_headers_are_ignored(syncws_server) -> None:
    srv = syncws_server(record_remote)
    remote = remote_seen(srv, [(XFF, "203.0.113.7"), ("X-Real-IP", "203.0.113.8")])
    assert remote.address == "127.0.0.1"
    assert remote.port != 0


def test_untrusted_peer_cannot_spoof_its_address(syncws_server) -> None:
    srv = syncws_server(record_remote, trusted_proxies=["10.0.0.0/8", "::1"])
    assert address_seen(srv, [(XFF, "203.0.113.7")]) == "127.0.0.1"
    assert address_seen(srv, [("X-Real-IP", "203.0.113.7")]) == "127.0.0.1"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(XFF, "203.0.113.7")], "203.0.113.7"),
        ([("X-Real-IP", "203.0.113.8")], "203.0.113.8"),
        # X-Forwarded-For wins over X-Real-IP.
        ([("X-Real-IP", "203.0.113.8"), (XFF, "203.0.113.7")], "203.0.113.7"),
        # A client that sends its own X-Forwarded-For: the proxy appends the real
        # address, and the right-most untrusted entry is the one believed.
        ([(XFF, "198.51.100.66, 203.0.113.7")], "203.0.113.7"),
        # A chain through trusted proxies (10.0.0.0/8): skipped from the right.
        ([(XFF, "198.51.100.66, 203.0.113.7, 10.0.0.2, 10.9.9.9")], "203.0.113.7"),
        # Several headers make one list, in order.
        ([(XFF, "198.51.100.66"), (XFF, "203.0.113.7, 10.0.0.2")], "203.0.113.7"),
        # Only trusted proxies: the left-most of them.
        ([(XFF, "10.0.0.3, 10.0.0.2")], "10.0.0.3"),
        # Forms seen in the wild: IPv6, brackets, ports, IPv4-mapped IPv6.
        ([(XFF, "2001:db8::7")], "2001:db8::7"),
        ([(XFF, "[2001:db8::7]:4711")], "2001:db8::7"),
        ([(XFF, "203.0.113.7:4711")], "203.0.113.7"),
        ([(XFF, "::ffff:203.0.113.7")], "203.0.113.7"),
        # Garbage where the client should be: the nearest hop we could read.
        ([(XFF, "203.0.113.7, not-an-address, 10.0.0.2")], "10.0.0.2"),
        ([(XFF, "unknown")], "127.0.0.1"),
        ([(XFF, "")], "127.0.0.1"),
    ],
)
def test_trusted_peer_forwards_the_client(syncws_server, headers, expected) -> None:
    srv = syncws_server(record_remote, trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    remote = remote_seen(srv, headers)
    assert remote.address == expected
    if expected != "127.0.0.1":
        assert remote.port == 0  # Forwarding headers carry no port.
        assert not remote.is_ssl


def test_a_network_trusts_the_peer(syncws_server) -> None:
    srv = syncws_server(record_remote, trusted_proxies=["127.0.0.0/8"])
    assert address_seen(srv, [(XFF, "203.0.113.7")]) == "203.0.113.7"


def test_basic_auth_logs_the_forwarded_address(syncws_server, caplog) -> None:
    auth = syncws.basic_auth(credentials=("alice", "secret"))
    srv = syncws_server(record_remote, process_request=auth, trusted_proxies=["127.0.0.1"])
    with caplog.at_level(logging.DEBUG, logger="syncws"), pytest.raises(syncws.ConnectionRejected):
        syncws.connect(srv.url, extra_headers=[(XFF, "203.0.113.7")], connect_timeout=WAIT)
    assert "ws://203.0.113.7:0: no valid credentials" in caplog.text


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("127.0.0.1", TypeError),
        ([b"127.0.0.1"], TypeError),
        (["localhost"], ValueError),
        (["10.0.0.1/8"], ValueError),  # host bits set
        (["10.0.0.0/33"], ValueError),
    ],
)
def test_bad_values(value, error) -> None:
    with pytest.raises(error, match="trusted_proxies"):
        syncws.WebSocketServer(record_remote, "127.0.0.1", 0, trusted_proxies=value)


def test_unix_entry_trusts_unix_socket_peers(tmp_path) -> None:
    path = str(tmp_path / "ws.sock")
    seen: list[Any] = []

    def handler(request: syncws.WebSocketRequest) -> None:
        seen.append(request.remote)
        request.reject(403)

    with syncws.WebSocketServer(handler, unix_path=path, trusted_proxies=[" UNIX "]):
        for headers in ([(XFF, "203.0.113.7")], []):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(WAIT)
            client.connect(path)
            with pytest.raises(syncws.ConnectionRejected):
                syncws.wrap_client_socket(
                    client, "localhost", "/", extra_headers=headers, connect_timeout=WAIT
                )
            client.close()
    assert seen[0] == Endpoint("203.0.113.7", 0, False)
    assert isinstance(seen[1], str)  # No header: the Unix peer, as a path string.
