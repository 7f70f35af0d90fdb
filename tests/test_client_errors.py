"""What the client says when it cannot open a connection: URLs, peers that are not what
the URL promised, peers that go away during the opening handshake.

Each message names what happened and, where it can, what to do about it; none shows a
password of the URL.
"""

from __future__ import annotations

import pytest
from helpers import unused_port

import syncws

# ------------------------------------------------------------------ URL schemes


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("localhost:{port}/", "'ws://localhost:{port}/'"),
        ("localhost:{port}", "'ws://localhost:{port}'"),
        ("127.0.0.1:{port}", "'ws://127.0.0.1:{port}'"),
        ("[::1]:{port}/chat", "'ws://[::1]:{port}/chat'"),
        ("//127.0.0.1:{port}/", "'ws://127.0.0.1:{port}/'"),
    ],
)
def test_url_without_scheme_says_it_needs_one(url: str, suggestion: str) -> None:
    port = unused_port()
    with pytest.raises(ValueError) as excinfo:
        syncws.connect(url.format(port=port))
    message = str(excinfo.value)
    assert message.startswith("URL needs a ws:// or wss:// scheme: ")
    assert repr(url.format(port=port)) in message
    assert suggestion.format(port=port) in message
    assert "unsupported" not in message


@pytest.mark.parametrize(("scheme", "instead"), [("http", "ws"), ("https", "wss"), ("HTTP", "ws")])
def test_http_url_says_which_scheme_to_use(scheme: str, instead: str) -> None:
    port = unused_port()
    with pytest.raises(ValueError) as excinfo:
        syncws.connect(f"{scheme}://127.0.0.1:{port}/chat?room=1")
    message = str(excinfo.value)
    assert f"use {instead}://, not {scheme.lower()}://" in message
    assert f"'{instead}://127.0.0.1:{port}/chat?room=1'" in message


def test_other_scheme_is_unsupported() -> None:
    with pytest.raises(ValueError, match=r"unsupported URL scheme 'ftp'.*use ws:// or wss://"):
        syncws.connect(f"ftp://127.0.0.1:{unused_port()}/")


@pytest.mark.parametrize(
    "url",
    [
        "alice:s3cret@localhost:{port}/",
        "//alice:s3cret@localhost:{port}/",
        "http://alice:s3cret@localhost:{port}/",
        "https://alice:s3cret@localhost:{port}/",
        "alice:s3{{cret}}@localhost:{port}/",
    ],
)
def test_scheme_messages_hide_the_password(url: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        syncws.connect(url.format(port=unused_port()))
    message = str(excinfo.value)
    assert "s3" not in message
    assert "***" in message
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__context__ is None
