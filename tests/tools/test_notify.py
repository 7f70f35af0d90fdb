"""MessageNotifier: a descriptor that becomes readable when a message is queued."""

from __future__ import annotations

import select
import threading
import time

import pytest
from helpers import SHORT, WAIT, Background

import syncws
from syncws import ConnectionClosed, MessageNotifier, WebSocketConnection

Pair = tuple[WebSocketConnection, WebSocketConnection]


def readable(notifier: MessageNotifier, timeout: float = WAIT) -> bool:
    ready, _, _ = select.select([notifier], [], [], timeout)
    return bool(ready)


def queued(local: WebSocketConnection, remote: WebSocketConnection) -> None:
    """Return once what ``remote`` sent before is in ``local``'s queue.

    The pong comes behind those messages on the same stream, and the queue (16) has room.
    """
    local.ping(timeout=WAIT)


def test_readable_when_a_message_arrives(pair: Pair) -> None:
    local, remote = pair
    with MessageNotifier(local) as notifier:
        assert not readable(notifier, 0)
        assert notifier.take() == []  # a spurious call is harmless
        remote.send_message("hello")
        assert readable(notifier)
        assert notifier.take() == ["hello"]
        assert not readable(notifier, 0)


def test_messages_are_coalesced_and_kept_in_order(pair: Pair) -> None:
    local, remote = pair
    with MessageNotifier(local) as notifier:
        for i in range(5):
            remote.send_message(f"m{i}")
        remote.send_message(b"\x00")
        queued(local, remote)
        assert readable(notifier, 0)
        assert notifier.take() == ["m0", "m1", "m2", "m3", "m4", b"\x00"]
        assert not readable(notifier, 0)


def test_limit_leaves_the_rest_announced(pair: Pair) -> None:
    local, remote = pair
    with MessageNotifier(local) as notifier:
        for i in range(5):
            remote.send_message(str(i))
        queued(local, remote)
        assert notifier.take(limit=2) == ["0", "1"]
        assert readable(notifier, 0)
        assert notifier.take(limit=3) == ["2", "3", "4"]
        assert readable(notifier, 0)  # the call stopped at its limit: maybe more
        assert notifier.take() == []
        assert not readable(notifier, 0)


def test_messages_queued_before_are_announced_at_once(pair: Pair) -> None:
    local, remote = pair
    remote.send_message("early")
    queued(local, remote)
    with MessageNotifier(local) as notifier:
        assert readable(notifier, 0)
        assert notifier.take() == ["early"]


def test_the_end_of_the_connection_is_announced(pair: Pair) -> None:
    local, remote = pair
    with MessageNotifier(local) as notifier:
        remote.send_message("last")
        closer = Background(remote.close, 4001, "bye")
        messages: list[str | bytes] = []
        with pytest.raises(ConnectionClosed) as info:
            while readable(notifier):
                messages.extend(notifier.take())
        closer.result()
    assert messages == ["last"]
    assert info.value.reason.code == 4001


def test_a_message_from_a_busy_peer_is_never_missed(pair: Pair) -> None:
    """A loop that sleeps only in select() receives every message of a fast sender."""
    local, remote = pair
    count = 300
    sender = Background(lambda: [remote.send_message(str(i)) for i in range(count)])
    received: list[str | bytes] = []
    with MessageNotifier(local) as notifier:
        while len(received) < count:
            assert readable(notifier), f"no wake-up after {len(received)} messages"
            received.extend(notifier.take(limit=7))
    sender.result()
    assert received == [str(i) for i in range(count)]


def test_one_notifier_per_connection(pair: Pair) -> None:
    local, _remote = pair
    first = MessageNotifier(local)
    with pytest.raises(RuntimeError, match="notifier already"):
        MessageNotifier(local)
    first.close()
    first.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        first.fileno()
    with pytest.raises(ValueError, match="closed"):
        first.take()
    with MessageNotifier(local) as second:  # once closed, another may take its place
        assert second.fileno() >= 0


def test_close_from_another_thread_while_messages_flow(pair: Pair) -> None:
    local, remote = pair
    count = 200
    notifier = MessageNotifier(local)
    sender = Background(lambda: [remote.send_message(str(i), timeout=WAIT) for i in range(count)])
    assert readable(notifier)
    Background(notifier.close).result()
    received = [local.get_message(timeout=WAIT) for _ in range(count)]
    sender.result()
    assert received == [str(i) for i in range(count)]


def test_works_with_a_client_connection(syncws_server: object) -> None:
    """Without the pair fixture: a plain client and the readiness of its descriptor."""
    from helpers import server_echo

    srv = syncws_server(server_echo)  # type: ignore[operator]
    with syncws.connect(srv.url) as ws, MessageNotifier(ws) as notifier:
        ws.send_message("ping?")
        assert readable(notifier)
        assert notifier.take() == ["ping?"]


# The client end (a GUI's) by default, the server end under -m slow.
@pytest.mark.parametrize(
    "pair", ["client", pytest.param("server", marks=pytest.mark.slow)], indirect=True
)
def test_a_message_after_an_idle_spell_is_announced_at_once(pair: Pair) -> None:
    """take() may read the socket itself; it must not keep it from the reader thread.

    After a GUI was idle for a while, a read on its thread would leave the socket to it
    for a long caller window (see syncws._readturns): nobody would read the next message.
    """
    local, remote = pair
    idle = threading.Event()
    with MessageNotifier(local) as notifier:
        for message in ["a", "b", "c"]:
            idle.wait(SHORT)  # the GUI thread does something else for a while
            sent = time.monotonic()
            remote.send_message(message)
            assert readable(notifier)
            latency = time.monotonic() - sent
            assert notifier.take() == [message]
            assert latency < SHORT / 2, f"{message!r} announced after {latency:.3f}s"
