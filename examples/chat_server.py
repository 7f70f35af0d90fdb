"""A WebSocket chat server: every message from any client goes to every connected client.

Usage::

    python examples/chat_server.py [--host 127.0.0.1] [--port 8765] [--queue-size 32]

Text messages are sent on prefixed with the sender's address ("127.0.0.1:50312: hi");
binary messages are forwarded unchanged. Try it with ``examples/gui_client.py`` or with
two or more ``python examples/echo_client.py ws://127.0.0.1:8765/`` runs.

A slow client must not hold up the others, so nobody sends to a client directly from the
thread that received a message. Each client has a bounded outbound queue, drained by a
sender thread of its own. Broadcasting only puts messages into those queues and never
blocks; a client whose queue is full is too slow to keep up and is disconnected with
close code 1008 (policy violation). So ``--queue-size`` is how far a client may fall
behind the others, for instance during a burst of messages.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import sys
import threading
from collections.abc import Sequence

import syncws

log = logging.getLogger("chat")

Message = str | bytes


class Client:
    """One connected client: its connection, its outbound queue and its sender thread."""

    def __init__(self, ws: syncws.WebSocketConnection, queue_size: int, send_timeout: float):
        self.ws = ws
        self.name = str(ws.remote)  # ws://host:port, or a path for a Unix socket
        # None is the "stop" signal for the sender thread.
        self.outbox: queue.Queue[Message | None] = queue.Queue(maxsize=queue_size)
        self.send_timeout = send_timeout
        self.sender = threading.Thread(target=self._send_all, name=f"chat-send-{self.name}")
        self.sender.daemon = True
        self.closer: threading.Thread | None = None

    def _send_all(self) -> None:
        try:
            while (message := self.outbox.get()) is not None:
                self.ws.send_message(message, timeout=self.send_timeout)
        except syncws.ConnectionClosed:
            pass  # the handler thread cleans up
        except TimeoutError:
            # The client did not read for send_timeout seconds: syncws has aborted the
            # connection, which ends the handler's receive loop.
            log.info("%s: send timed out", self.name)

    def kick(self, code: int, reason: str) -> None:
        """Close the connection without blocking the caller.

        close() waits for the close handshake, which a client that does not read never
        completes, so it runs in a thread of its own (bounded by disconnect_timeout).
        """
        self.closer = threading.Thread(target=self.ws.close, args=(code, reason), daemon=True)
        self.closer.start()

    def stop(self) -> None:
        """Close the connection and wait for the helper threads to end."""
        if self.closer is not None:
            self.closer.join()
        self.ws.close()  # no-op if already closed; from now on send_message fails at once
        # Wake the sender if it waits for a message. If the queue is full instead, the
        # sender's next send_message raises ConnectionClosed, which ends it just the same.
        with contextlib.suppress(queue.Full):
            self.outbox.put_nowait(None)
        self.sender.join()


class ChatRoom:
    """The set of connected clients, and the WebSocket handler that serves each of them."""

    def __init__(self, queue_size: int, send_timeout: float) -> None:
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self._clients: set[Client] = set()
        self._lock = threading.Lock()

    def broadcast(self, message: Message) -> None:
        """Queue ``message`` for every client; never blocks on a slow one."""
        with self._lock:  # one order of messages for everyone; put_nowait is quick
            for client in list(self._clients):
                try:
                    client.outbox.put_nowait(message)
                except queue.Full:
                    log.warning("%s: too slow, disconnecting", client.name)
                    self._clients.discard(client)
                    client.kick(1008, "too slow: outbound queue full")

    def handler(self, request: syncws.WebSocketRequest) -> None:
        """Serve one client (syncws runs this in a thread of its own per client)."""
        ws = request.accept()
        client = Client(ws, self.queue_size, self.send_timeout)
        client.sender.start()
        with self._lock:
            self._clients.add(client)
            count = len(self._clients)
        log.info("%s joined (%d connected)", client.name, count)
        try:
            for message in ws:
                self.broadcast(f"{client.name}: {message}" if isinstance(message, str) else message)
        except syncws.ConnectionClosed as exc:
            log.info("%s: connection closed: %s", client.name, exc.reason)
        finally:
            with self._lock:
                self._clients.discard(client)
                count = len(self._clients)
            log.info("%s left (%d connected)", client.name, count)
            client.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a WebSocket chat server.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8765, help="default: %(default)s")
    parser.add_argument(
        "--queue-size",
        type=int,
        default=32,
        help="messages queued for a slow client before it is dropped (default: %(default)s)",
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=10.0,
        help="seconds a client may take to accept one message (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    room = ChatRoom(args.queue_size, args.send_timeout)
    # A short disconnect_timeout bounds how long closing a stuck client may take.
    syncws.serve_websocket(room.handler, args.host, args.port, disconnect_timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
