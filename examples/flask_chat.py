"""A Flask chat: a WebSocket route in a WSGI application, next to plain HTTP routes.

Every text message a client sends on ``/chat`` goes to every other client, prefixed
with the sender's address; the others also learn when someone joins or leaves (with
the close code). The message ``/bye`` makes the server close the sender's connection
with code 4000. ``/`` is a plain HTML page with a minimal chat client.

Run it under werkzeug's development server::

    python examples/flask_chat.py [--host 127.0.0.1] [--port 5000]

or under gunicorn, with one process (the chat is in its memory) and a thread for each
open WebSocket connection plus some for plain requests::

    gunicorn --worker-class gthread --workers 1 --threads 16 examples.flask_chat:app

Browsers must come from the page's own origin (the ``Origin`` header must match the
``Host`` header); clients that send no ``Origin`` (programs) are let in too. The chat
speaks the subprotocol ``chat.v1`` when the client offers it.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence

from flask import Flask, Response, request

import syncws
import syncws.wsgi

log = logging.getLogger("flask_chat")

app = Flask(__name__)

#: The open chat connections, guarded by the lock.
clients: set[syncws.WebSocketConnection] = set()
clients_lock = threading.Lock()

#: How long one broadcast may wait for slow clients before it cuts them off.
SEND_TIMEOUT = 10.0

PAGE = """<!doctype html>
<title>syncws Flask chat</title>
<pre id="log"></pre>
<form id="form"><input id="text" autofocus> <button>Send</button></form>
<script>
const ws = new WebSocket(location.href.replace(/^http/, "ws") + "chat", ["chat.v1"]);
const log = document.getElementById("log");
ws.onmessage = (event) => { log.textContent += event.data + "\\n"; };
ws.onclose = (event) => { log.textContent += "closed: " + event.code + "\\n"; };
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById("text");
  ws.send(text.value);
  text.value = "";
};
</script>
"""


def tell_others(sender: syncws.WebSocketConnection, message: str) -> None:
    """Send ``message`` to every client but ``sender``."""
    with clients_lock:
        others = [ws for ws in clients if ws is not sender]
    syncws.broadcast(others, message, timeout=SEND_TIMEOUT)


@app.route("/")
def index() -> Response:
    """The plain HTTP route: the chat page."""
    return Response(PAGE, mimetype="text/html")


# werkzeug's router tells WebSocket requests from the others: websocket=True is the
# rule for upgrade requests; the other rule sends the rest to the same view, where
# syncws.wsgi.accept answers them with 426 as syncws's server would.
@app.route("/chat", websocket=True)
@app.route("/chat")
def chat() -> syncws.wsgi.TakenOver:
    """The WebSocket route: relay each message to the other clients."""
    environ = request.environ
    try:
        ws = syncws.wsgi.accept(
            environ,
            origins=[None, f"{request.scheme}://{request.host}"],
            subprotocols=["chat.v1"],
        )
    except syncws.wsgi.RequestRefused as exc:
        log.info("refused a chat request: %s", exc)
        return syncws.wsgi.response(environ)
    name = str(ws.remote)
    with clients_lock:
        clients.add(ws)
        here = len(clients)
    # The newcomer learns it is in the room, and from now on gets every message.
    ws.send_message(f"welcome, {name} ({here} here)")
    tell_others(ws, f"{name} joined")
    try:
        for message in ws:
            if message == "/bye":
                ws.close(4000, "bye")
            elif isinstance(message, str):
                tell_others(ws, f"{name}: {message}")
    except syncws.ConnectionClosed:
        pass  # Closed with an error code: said below.
    finally:
        with clients_lock:
            clients.discard(ws)
        reason = ws.close_reason
        code = reason.code if reason is not None else None
        tell_others(ws, f"{name} left ({code})")
    return syncws.wsgi.response(environ)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    # threaded: each request, hence each WebSocket connection, gets a thread.
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
