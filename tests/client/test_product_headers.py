"""The ``User-Agent`` header of the client's request and the ``Server`` header of the 101.

Both name syncws and Python by default (``syncws/0.1.0 Python/3.11``), as websockets
does with its own name; an option changes or removes each, and an extra header of the
same name takes its place rather than being sent beside it.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, WsServer, echo_handler, server_echo, unused_port
from rawpeer import RawPeer, read_http_response, upgrade_request
from websockets.sync.client import connect as websockets_connect

import syncws

PRODUCT = f"syncws/{syncws.__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"
BAD_VALUES = ["two\r\nlines", "nul\x00", "caf\u00e9"]


# ------------------------------------------------------------------- User-Agent


def user_agents(peer: RawPeer) -> list[str]:
    return peer.wait_request().header_all("User-Agent")


def test_default_user_agent(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url, connect_timeout=WAIT):
        pass
    assert user_agents(peer) == [PRODUCT]


def test_user_agent_option(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url, user_agent="inventory-bot/2.1 (+ops@example.com)"):
        pass
    assert user_agents(peer) == ["inventory-bot/2.1 (+ops@example.com)"]


def test_user_agent_none_removes_it(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url, user_agent=None):
        pass
    assert user_agents(peer) == []


@pytest.mark.parametrize("option", [{}, {"user_agent": "from-the-option"}])
@pytest.mark.parametrize("name", ["User-Agent", "user-agent", b"USER-AGENT"])
def test_an_extra_user_agent_header_takes_its_place(
    raw_peer: Callable[..., RawPeer], option: dict[str, Any], name: str | bytes
) -> None:
    peer = raw_peer(auto=True)
    with syncws.connect(peer.url, extra_headers=[(name, "from-extra-headers")], **option):
        pass
    assert user_agents(peer) == ["from-extra-headers"]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_bad_user_agent_is_refused_before_connecting(value: str) -> None:
    # Nothing listens on the port: a ValueError shows that nothing was tried.
    with pytest.raises(ValueError, match="User-Agent"):
        syncws.connect(f"ws://127.0.0.1:{unused_port()}/", user_agent=value)


def test_user_agent_with_every_client_function(raw_peer: Callable[..., RawPeer]) -> None:
    peers = [raw_peer(auto=True) for _ in range(3)]
    with syncws.open_websocket("127.0.0.1", peers[0].port, "/", use_ssl=False, user_agent="a"):
        pass
    with syncws.open_websocket_url(peers[1].url, user_agent="b"):
        pass
    sock = socket.create_connection(("127.0.0.1", peers[2].port), timeout=WAIT)
    with syncws.wrap_client_socket(sock, peers[2].netloc, "/", user_agent="c"):
        pass
    assert [user_agents(peer) for peer in peers] == [["a"], ["b"], ["c"]]


def test_a_websockets_server_sees_the_user_agent(
    websockets_server: Callable[..., WsServer],
) -> None:
    def record(ws: Any, srv: WsServer) -> None:
        srv.record.put(ws.request.headers.get_all("User-Agent"))
        echo_handler(ws, srv)

    srv = websockets_server(record)
    with syncws.connect(srv.url):
        pass
    assert srv.get() == [PRODUCT]


# ----------------------------------------------------------------------- Server


def response_to_upgrade(port: int) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(upgrade_request(f"127.0.0.1:{port}"))
        response = read_http_response(sock, WAIT, until_eof=False)
    assert response.status == 101, response
    return response


def servers(response: Any) -> list[str]:
    return [value for name, value in response.headers if name.lower() == "server"]


def test_default_server_header(syncws_server: Callable[..., SyncwsServer]) -> None:
    srv = syncws_server(server_echo)
    assert servers(response_to_upgrade(srv.port)) == [PRODUCT]


def test_server_header_option(syncws_server: Callable[..., SyncwsServer]) -> None:
    srv = syncws_server(server_echo, server_header="chat-gateway")
    assert servers(response_to_upgrade(srv.port)) == ["chat-gateway"]


def test_server_header_none_removes_it(syncws_server: Callable[..., SyncwsServer]) -> None:
    srv = syncws_server(server_echo, server_header=None)
    assert servers(response_to_upgrade(srv.port)) == []


@pytest.mark.parametrize("option", [{}, {"server_header": "from-the-option"}])
def test_an_extra_server_header_of_accept_takes_its_place(
    syncws_server: Callable[..., SyncwsServer], option: dict[str, Any]
) -> None:
    def handler(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept(extra_headers={"server": "from-accept"})
        ws.close()

    srv = syncws_server(handler, **option)
    assert servers(response_to_upgrade(srv.port)) == ["from-accept"]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_bad_server_header_is_refused_when_the_server_is_made(value: str) -> None:
    with pytest.raises(ValueError, match="Server"):
        syncws.WebSocketServer(server_echo, "127.0.0.1", 0, server_header=value)


def test_a_syncws_client_and_a_websockets_client_see_the_server_header(
    syncws_server: Callable[..., SyncwsServer],
) -> None:
    srv = syncws_server(server_echo)
    with syncws.connect(srv.url) as ws:
        assert (b"server", PRODUCT.encode()) in ws.handshake_headers
    with websockets_connect(srv.url) as client:
        assert client.response is not None
        assert client.response.headers.get_all("Server") == [PRODUCT]
