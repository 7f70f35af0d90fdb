"""A WebSocket "ticker": every client gets the current time, once per interval.

Usage::

    python examples/broadcast_server.py [--host 127.0.0.1] [--port 8765] [--interval 1.0]
        [--send-timeout 5.0] [--count N] [--wait-clients N]

Connect any number of clients, for instance with ``python examples/gui_client.py``; each
one receives the time in ISO 8601 format as a text message, ``--interval`` seconds apart.
What clients send is ignored. Stop the server with Ctrl-C, or give ``--count N`` to stop
after N broadcasts: every client is then closed with code 1000 and the server exits.
``--wait-clients N`` holds the first broadcast back until N clients are connected.

One thread sends each message to all the clients with :func:`syncws.broadcast`, which
writes to every socket from one loop: a client that does not read delays the others by
``--send-timeout`` seconds at most, once, and is then cut off (close code 1006) instead
of making the server buffer messages for it without bound.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import threading
from collections.abc import Sequence

import syncws

log = logging.getLogger("ticker")


class Ticker:
    """The connected clients, the handler that registers them and the broadcast loop."""

    def __init__(self) -> None:
        self._clients: set[syncws.WebSocketConnection] = set()
        # Guards _clients; the broadcaster waits on it for clients to arrive.
        self._changed = threading.Condition()
        self._stopped = threading.Event()

    def handler(self, request: syncws.WebSocketRequest) -> None:
        """Serve one client (syncws runs this in a thread of its own per client)."""
        ws = request.accept()
        with self._changed:
            self._clients.add(ws)
            count = len(self._clients)
            self._changed.notify_all()
        log.info("%s joined (%d connected)", ws.remote, count)
        try:
            # Reading is what notices that the client has gone, and answers its pings.
            for _ in ws:
                pass
        except syncws.ConnectionClosed:
            pass  # closed abnormally, e.g. cut off by a broadcast
        finally:
            with self._changed:
                self._clients.discard(ws)
                count = len(self._clients)
            log.info("%s left: %s (%d connected)", ws.remote, ws.close_reason, count)

    def clients(self) -> list[syncws.WebSocketConnection]:
        with self._changed:
            return list(self._clients)

    def stop(self) -> None:
        """Make :meth:`run` return soon (from any thread)."""
        with self._changed:
            self._stopped.set()
            self._changed.notify_all()

    def run(
        self, interval: float, send_timeout: float, count: int | None, wait_clients: int
    ) -> None:
        """Broadcast the time every ``interval`` seconds until stopped (or ``count`` times).

        The first broadcast waits until ``wait_clients`` clients are connected.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: len(self._clients) >= wait_clients or self._stopped.is_set()
            )
        sent = 0
        while count is None or sent < count:
            if self._stopped.wait(interval):
                return
            message = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            )
            missed = syncws.broadcast(self.clients(), message, timeout=send_timeout)
            sent += 1
            if missed:
                # Gone, or cut off for not reading in time: their handlers see the
                # connection closed and unregister them; forget them right away too.
                with self._changed:
                    self._clients.difference_update(missed)
                log.info("%d client(s) dropped: closed, or cut off after not reading", len(missed))

    def close_all(self) -> None:
        """Close every client with 1000 (normal closure)."""
        for ws in self.clients():
            ws.close(1000, "ticker finished")  # bounded by disconnect_timeout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send the time to every WebSocket client.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument(
        "--port", type=int, default=8765, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between messages (default: 1.0)"
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=5.0,
        help="seconds a client may take to read a message before it is cut off "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--count", type=int, default=None, help="stop after this many messages (default: never)"
    )
    parser.add_argument(
        "--wait-clients",
        type=int,
        default=0,
        metavar="N",
        help="start broadcasting once N clients are connected (default: at once)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ticker = Ticker()
    # A short disconnect_timeout bounds how long closing an unresponsive client may take.
    server = syncws.WebSocketServer(ticker.handler, args.host, args.port, disconnect_timeout=5.0)
    with server:  # accepts clients in a background thread until the block ends
        broadcaster = threading.Thread(
            target=ticker.run,
            args=(args.interval, args.send_timeout, args.count, args.wait_clients),
            name="ticker-broadcast",
        )
        broadcaster.start()
        try:
            for listener in server.listeners:
                print(f"listening on {listener}/", flush=True)
            broadcaster.join()  # returns after --count broadcasts; Ctrl-C interrupts it
        except KeyboardInterrupt:
            log.info("interrupted, shutting down")
            ticker.stop()
            broadcaster.join()
        else:
            ticker.close_all()
    # Leaving the "with" block shut the server down: clients still connected got 1001.
    return 0


if __name__ == "__main__":
    sys.exit(main())
