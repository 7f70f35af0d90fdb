"""Payloads, and the byte-counting TCP forwarder of the deflate workload."""

from __future__ import annotations

import contextlib
import functools
import json
import random
import socket
import threading

from . import HOST, TIMEOUT

TEXT_32 = "syncws benchmark: 32 bytes echo!"
assert len(TEXT_32.encode()) == 32

_FIRST = ("Ada", "Alan", "Grace", "Linus", "Guido", "Barbara", "Ken", "Dennis", "Margaret", "Tim")
_LAST = ("Lovelace", "Turing", "Hopper", "Torvalds", "van Rossum", "Liskov", "Thompson", "Ritchie")
_TAGS = ("admin", "beta", "billing", "eu", "us", "mobile", "desktop", "trial", "vip", "support")
_WORDS = (
    "the", "order", "was", "shipped", "to", "customer", "and", "invoice", "is", "attached",
    "please", "check", "status", "pending", "delivered", "returned", "refund", "payment",
    "card", "account", "update", "address",
)  # fmt: skip


@functools.cache
def json_messages(count: int, size: int = 16384, seed: int = 6) -> tuple[str, ...]:
    """``count`` different JSON documents of about ``size`` bytes: lists of user records."""
    rng = random.Random(seed)
    messages = []
    for page in range(count):
        items: list[dict[str, object]] = []
        length = 40
        while length < size:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            item = {
                "id": rng.randrange(10**7),
                "name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower().replace(' ', '')}@example.com",
                "active": rng.random() < 0.7,
                "score": round(rng.uniform(0, 100), 2),
                "tags": rng.sample(_TAGS, rng.randint(1, 4)),
                "created": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
                "note": " ".join(rng.choices(_WORDS, k=rng.randint(3, 12))),
            }
            items.append(item)
            length += len(json.dumps(item)) + 2
        messages.append(json.dumps({"page": page, "count": len(items), "items": items}))
    return tuple(messages)


class CountingProxy:
    """Forward one TCP connection to ``upstream_port``, counting the bytes each way.

    A context manager; :attr:`port` is where the client connects. The counts are
    taken before forwarding, so they are complete once the other end saw the data.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(TIMEOUT)
        self.port: int = self._listener.getsockname()[1]
        self.to_server = 0
        self.to_client = 0
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._run, name="proxy", daemon=True)]
        self._threads[0].start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            client, _ = self._listener.accept()
            server = socket.create_connection((HOST, self._upstream_port), timeout=TIMEOUT)
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            pumps = [
                threading.Thread(target=self._pump, args=(client, server, True), daemon=True),
                threading.Thread(target=self._pump, args=(server, client, False), daemon=True),
            ]
            self._threads += pumps
            for pump in pumps:
                pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if to_server:
                    self.to_server += len(data)
                else:
                    self.to_client += len(data)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() if nobody came
        self._listener.close()
        self._threads[0].join(TIMEOUT)
        for thread in self._threads[1:]:
            thread.join(2)  # the client has closed: both directions end by themselves
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads[1:]:
            thread.join(TIMEOUT)
