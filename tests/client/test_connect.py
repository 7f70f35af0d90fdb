"""Connecting within one deadline, address after address (Happy Eyeballs, RFC 8305).

Name resolution is faked (``socket.getaddrinfo`` patched): a test host name resolves to
loopback addresses of the test's choice, and no DNS query leaves the machine. An address
that never answers is a listening socket whose accept queue is full: Linux then drops
further SYNs, so a connection attempt to it hangs.
"""

from __future__ import annotations

import errno
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import HAS_IPV6, MARGIN, SHORT, WAIT, unused_port
from rawpeer import SILENT, RawPeer

import syncws
from syncws import ConnectionTimeout
from syncws._connect import CONNECTION_ATTEMPT_DELAY, Address, interleave

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a full accept queue drops SYNs on Linux"
)

HOST = "eyeballs.test"
Resolve = Callable[..., None]


class Blackhole:
    """A loopback address and port where connection attempts are never answered."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self._filler: socket.socket | None = None
        try:
            self.listener.bind((host, 0))
            self.listener.listen(0)
            self.port = self.listener.getsockname()[1]
            # One connection nobody accepts fills a queue of length 0.
            self._filler = socket.create_connection((host, self.port), timeout=WAIT)
        except BaseException:
            self.close()
            raise

    def answers(self) -> bool:
        """Whether a connection attempt completes after all (then the tests cannot run)."""
        family = self.listener.family
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            probe.connect_ex((self.host, self.port))
            _, writable, _ = select.select([], [probe], [], SHORT)
            return bool(writable)

    def close(self) -> None:
        if self._filler is not None:
            self._filler.close()
        self.listener.close()


#: Whether a full accept queue drops SYNs here, found out once per family.
_DROPS_SYNS: dict[int, bool] = {}


@pytest.fixture
def blackhole() -> Iterator[Callable[..., Blackhole]]:
    made: list[Blackhole] = []

    def make(host: str = "127.0.0.1") -> Blackhole:
        hole = Blackhole(host)
        made.append(hole)
        family = hole.listener.family
        if family not in _DROPS_SYNS:
            _DROPS_SYNS[family] = not hole.answers()
        if not _DROPS_SYNS[family]:
            pytest.skip("this system completes connections to a full accept queue")
        return hole

    yield make
    for hole in made:
        hole.close()


@pytest.fixture
def resolve(monkeypatch: pytest.MonkeyPatch) -> Resolve:
    """``resolve(HOST, (ip, port), ...)``: make ``HOST`` resolve to those addresses only.

    Any other name fails as an unknown one would; IP literals resolve as usual.
    """
    real = socket.getaddrinfo
    table: dict[str, list[tuple[str, int]]] = {}

    def fake(host: Any, port: Any, family: int = 0, type: int = 0, *args: Any) -> Any:
        if host not in table:
            try:
                return real(host, port, family, type, 0, socket.AI_NUMERICHOST)
            except socket.gaierror:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        results = []
        for ip, real_port in table[host]:
            if ":" in ip:
                results.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, real_port, 0, 0)))
            else:
                results.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, real_port)))
        return results

    def add(host: str, *addresses: tuple[str, int]) -> None:
        table[host] = list(addresses)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return add


def url(port: int = 80) -> str:
    return f"ws://{HOST}:{port}/"


# --------------------------------------------------------------------- ordering


def address(ip: str, port: int = 80) -> Address:
    if ":" in ip:
        return Address(socket.AF_INET6, socket.SOCK_STREAM, 6, (ip, port, 0, 0))
    return Address(socket.AF_INET, socket.SOCK_STREAM, 6, (ip, port))


def test_interleave_alternates_families_first_family_first() -> None:
    a6, b6, c6 = address("::1", 1), address("::1", 2), address("::1", 3)
    a4, b4 = address("127.0.0.1", 1), address("127.0.0.1", 2)
    assert interleave([a6, b6, c6, a4, b4]) == [a6, a4, b6, b4, c6]
    assert interleave([a4, a6, b6, c6]) == [a4, a6, b6, c6]
    assert interleave([b4, a4]) == [b4, a4]
    assert interleave([]) == []


# ------------------------------------------------------------------ one deadline


@pytest.mark.slow  # 2 s: the deadline itself
def test_two_silent_addresses_share_one_deadline(resolve: Resolve, blackhole: Any) -> None:
    first, second = blackhole("127.0.0.1"), blackhole("127.0.0.2")
    resolve(HOST, (first.host, first.port), (second.host, second.port))
    started = time.monotonic()
    with pytest.raises(ConnectionTimeout) as excinfo:
        syncws.connect(url(), connect_timeout=2)
    elapsed = time.monotonic() - started
    # Each address used to get the whole timeout: 4 s.
    assert 2.0 <= elapsed < 2.0 + min(MARGIN, 1.0), elapsed
    assert f"no answer from 127.0.0.1:{first.port}, 127.0.0.2:{second.port}" in str(excinfo.value)


def test_one_silent_address_times_out_naming_it(resolve: Resolve, blackhole: Any) -> None:
    """A host with one address connects without the race, within the same deadline."""
    hole = blackhole()
    resolve(HOST, (hole.host, hole.port))
    started = time.monotonic()
    with pytest.raises(ConnectionTimeout) as excinfo:
        syncws.connect(url(hole.port), connect_timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 0.5 + min(MARGIN, 1.0), elapsed
    assert f"timed out connecting: no answer from 127.0.0.1:{hole.port}" in str(excinfo.value)


def test_one_refusing_address_names_it(resolve: Resolve) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # Bound, not listening: connections are refused.
        resolve(HOST, ("127.0.0.1", port))
        with pytest.raises(ConnectionRefusedError) as excinfo:
            syncws.connect(url(port), connect_timeout=WAIT)
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in str(excinfo.value)


def test_silent_first_address_then_a_working_one(
    resolve: Resolve, blackhole: Any, raw_peer: Callable[..., RawPeer]
) -> None:
    hole, peer = blackhole(), raw_peer(auto=True)
    resolve(HOST, (hole.host, hole.port), (peer.host, peer.port))
    started = time.monotonic()
    with syncws.connect(url(peer.port), connect_timeout=WAIT) as ws:
        elapsed = time.monotonic() - started
        assert ws.remote.port == peer.port
    # About the attempt delay, not the connect timeout.
    assert CONNECTION_ATTEMPT_DELAY <= elapsed < CONNECTION_ATTEMPT_DELAY + MARGIN, elapsed


def test_refused_first_address_falls_through_at_once(
    resolve: Resolve, raw_peer: Callable[..., RawPeer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With an attempt delay longer than the test's patience, only "at once" passes.
    monkeypatch.setattr("syncws._connect.CONNECTION_ATTEMPT_DELAY", 2 * WAIT)
    peer = raw_peer(auto=True)
    resolve(HOST, ("127.0.0.1", unused_port()), (peer.host, peer.port))
    with syncws.connect(url(peer.port), connect_timeout=2 * WAIT) as ws:
        assert ws.remote.port == peer.port


def test_time_spent_on_addresses_counts_against_the_handshake(
    resolve: Resolve, blackhole: Any, raw_peer: Callable[..., RawPeer]
) -> None:
    # The second address accepts but never answers the upgrade: one deadline for both.
    hole, peer = blackhole(), raw_peer(handshake=SILENT)
    resolve(HOST, (hole.host, hole.port), (peer.host, peer.port))
    started = time.monotonic()
    with pytest.raises(ConnectionTimeout):
        syncws.connect(url(peer.port), connect_timeout=1)
    assert time.monotonic() - started < 1 + min(MARGIN, 1.0)


def test_a_tiny_connect_timeout_times_out_after_resolving(resolve: Resolve) -> None:
    resolve(HOST, ("127.0.0.1", unused_port()))
    with pytest.raises(ConnectionTimeout, match=f"resolving {HOST}"):
        syncws.connect(url(), connect_timeout=1e-9)


def test_unknown_name_raises_gaierror(resolve: Resolve) -> None:
    with pytest.raises(socket.gaierror):
        syncws.connect("ws://unknown.test/", connect_timeout=WAIT)


# ------------------------------------------------------------------------ errors


def test_every_address_refused(resolve: Resolve) -> None:
    first, second = unused_port(), unused_port()
    resolve(HOST, ("127.0.0.1", first), ("127.0.0.2", second))
    with pytest.raises(ConnectionRefusedError) as excinfo:
        syncws.connect(url(), connect_timeout=WAIT)
    assert excinfo.value.errno == errno.ECONNREFUSED
    assert str(excinfo.value).endswith(
        f"cannot connect to 127.0.0.1:{first}, 127.0.0.2:{second}: connection refused"
    )


def test_refused_and_silent_addresses_in_the_timeout_message(
    resolve: Resolve, blackhole: Any
) -> None:
    hole = blackhole("127.0.0.2")
    refused = unused_port()
    resolve(HOST, ("127.0.0.1", refused), (hole.host, hole.port))
    with pytest.raises(ConnectionTimeout) as excinfo:
        syncws.connect(url(), connect_timeout=0.5)
    message = str(excinfo.value)
    assert f"no answer from 127.0.0.2:{hole.port}" in message
    assert f"127.0.0.1:{refused}: connection refused" in message


def test_one_refused_address_names_it_with_its_port() -> None:
    # The message of the issue: "cannot connect to 127.0.0.1:8765: connection refused".
    port = unused_port()
    with pytest.raises(ConnectionRefusedError) as excinfo:
        syncws.connect(f"ws://127.0.0.1:{port}/", connect_timeout=WAIT)
    assert isinstance(excinfo.value, OSError)
    assert excinfo.value.errno == errno.ECONNREFUSED
    assert str(excinfo.value) == (
        f"[Errno {errno.ECONNREFUSED}] cannot connect to 127.0.0.1:{port}: connection refused"
    )
    assert excinfo.value.strerror == f"cannot connect to 127.0.0.1:{port}: connection refused"


def test_a_port_that_may_be_part_of_a_password_is_hidden(resolve: Resolve) -> None:
    # "alice:27182/81828" may be a password with a "/", read by the URL parser as the
    # host "alice" and the port 27182: the port is not shown, nor the address that a
    # piece of the password resolved to.
    port = unused_port()
    resolve("alice", ("127.0.0.1", port))
    with pytest.raises(ConnectionRefusedError) as excinfo:
        syncws.connect(f"ws://alice:{port}/81828@{HOST}/", connect_timeout=WAIT)
    assert excinfo.value.strerror == "cannot connect to 127.0.0.1:***: connection refused"
    resolve("bob", ("127.0.0.3", port))
    with pytest.raises(ConnectionRefusedError) as excinfo:
        syncws.connect(f"ws://alice:s3@bob:{port}/81828@{HOST}/", connect_timeout=WAIT)
    assert excinfo.value.strerror == "cannot connect to ***:***: connection refused"
    with pytest.raises(ConnectionTimeout) as timeout:
        syncws.connect(f"ws://alice:s3@bob:{port}/81828@{HOST}/", connect_timeout=1e-9)
    assert str(timeout.value) == "timed out resolving ***"


# -------------------------------------------------------------------------- IPv6


needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")


@needs_ipv6
@pytest.mark.parametrize("silent", ["::1", "127.0.0.1"])
def test_mixed_families_silent_one_then_the_other(
    silent: str, resolve: Resolve, blackhole: Any, raw_peer: Callable[..., RawPeer]
) -> None:
    hole = blackhole(silent)
    peer = raw_peer(host="127.0.0.1" if silent == "::1" else "::1", auto=True)
    resolve(HOST, (hole.host, hole.port), (peer.host, peer.port))
    with syncws.connect(url(peer.port), connect_timeout=WAIT):
        pass
    assert peer.client_address is not None
    assert peer.client_address[0] == peer.host


@needs_ipv6
def test_families_are_tried_alternately(resolve: Resolve, blackhole: Any) -> None:
    v6a, v6b, v4 = blackhole("::1"), blackhole("::1"), blackhole("127.0.0.1")
    resolve(HOST, *((hole.host, hole.port) for hole in (v6a, v6b, v4)))
    with pytest.raises(ConnectionTimeout) as excinfo:
        syncws.connect(url(), connect_timeout=4 * CONNECTION_ATTEMPT_DELAY)
    # Attempts in the order they started: IPv6, IPv4, IPv6.
    message = str(excinfo.value)
    assert f"no answer from [::1]:{v6a.port}, 127.0.0.1:{v4.port}, [::1]:{v6b.port}" in message


@needs_ipv6
def test_ipv6_and_ipv4_refused(resolve: Resolve) -> None:
    v6, v4 = unused_port(), unused_port()
    resolve(HOST, ("::1", v6), ("127.0.0.1", v4))
    with pytest.raises(ConnectionRefusedError) as excinfo:
        syncws.connect(url(), connect_timeout=WAIT)
    message = str(excinfo.value)
    assert message.endswith(f"cannot connect to [::1]:{v6}, 127.0.0.1:{v4}: connection refused")
