"""Testing code that uses syncws, with pytest and the fixtures of syncws's plugin.

Run it with ``python -m pytest examples/test_with_syncws.py`` (or ``python
examples/test_with_syncws.py``). The fixtures ``ws_server``, ``ws_echo_server`` and
``ws_connect`` need no import: installing syncws makes them available to pytest.
Nothing here sleeps: every wait ends as soon as what it waits for has happened.
"""

from __future__ import annotations

import sys

import pytest

import syncws
from syncws.testing import (
    ConnectionFactory,
    RecordingHandler,
    ServerFactory,
    connection_pair,
)

# ----------------------------------------------------------------- the code under test


def answer(ws: syncws.WebSocketConnection) -> None:
    """Answer one question: "add 2 3" gets "5"; anything else gets "?"."""
    words = str(ws.get_message(timeout=10)).split()
    if len(words) > 1 and words[0] == "add" and all(word.isdigit() for word in words[1:]):
        ws.send_message(str(sum(int(word) for word in words[1:])))
    else:
        ws.send_message("?")


def calculator(request: syncws.WebSocketRequest) -> None:
    """A server handler: answers questions until the client closes."""
    ws = request.accept()
    while True:
        try:
            answer(ws)
        except syncws.ConnectionClosed:
            return


def ask(url: str, question: str) -> str | bytes:
    """A client: connects, asks one question and returns the answer."""
    with syncws.connect(url) as ws:
        ws.send_message(question)
        return ws.get_message(timeout=10)


# ------------------------------------------------------------------------------ tests


def test_answer_with_a_connection_pair() -> None:
    # Code that takes a connection: no server and no port, just two connected ends.
    with connection_pair() as (client, server):
        client.send_message("add 2 3")
        answer(server)
        assert client.get_message(timeout=10) == "5"


def test_the_calculator_server(ws_server: ServerFactory, ws_connect: ConnectionFactory) -> None:
    # A real server on a free port, stopped (and checked) at the end of the test.
    ws = ws_connect(ws_server(calculator))
    for question, expected in [("add 1 2 3", "6"), ("divide 1 0", "?")]:
        ws.send_message(question)
        assert ws.get_message(timeout=10) == expected


def test_the_client_against_a_recording_server(ws_server: ServerFactory) -> None:
    # A stand-in server that replies and records what the client sent.
    handler = RecordingHandler(reply=lambda message: "42")
    assert ask(ws_server(handler), "what is the answer?") == "42"
    assert handler.messages == ["what is the answer?"]
    assert handler.wait_closed()[0].code == 1000  # The client closed properly.


def test_the_client_against_an_echo_server(ws_echo_server: str) -> None:
    assert ask(ws_echo_server, "hello") == "hello"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, *sys.argv[1:]]))
