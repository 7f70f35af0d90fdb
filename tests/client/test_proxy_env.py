"""Which proxy the environment names for a URL, and proxy URLs taken apart (no network)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from syncws._proxy_env import bypass, parse_proxy, proxy_from_environment


def chosen(environ: dict[str, str], url: str) -> str | None:
    """The proxy URL that the environment names for ``url``, or ``None``."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    found = proxy_from_environment(secure, parts.hostname or "", port, environ)
    return None if found is None else found[0]


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({}, "ws://example.com/", None),
        ({"http_proxy": "http://p:1"}, "ws://example.com/", "http://p:1"),
        ({"http_proxy": "http://p:1"}, "wss://example.com/", None),
        ({"https_proxy": "http://p:2"}, "wss://example.com/", "http://p:2"),
        ({"https_proxy": "http://p:2"}, "ws://example.com/", None),
        ({"ws_proxy": "http://w:1", "http_proxy": "http://p:1"}, "ws://example.com/", "http://w:1"),
        ({"wss_proxy": "http://w:2", "https_proxy": "http://p:2"}, "wss://x/", "http://w:2"),
        ({"all_proxy": "socks5h://s:1"}, "ws://example.com/", "socks5h://s:1"),
        ({"all_proxy": "socks5h://s:1"}, "wss://example.com/", "socks5h://s:1"),
        ({"all_proxy": "socks5h://s:1", "http_proxy": "http://p:1"}, "ws://x/", "http://p:1"),
        ({"HTTP_PROXY": "http://P:1"}, "ws://example.com/", "http://P:1"),
        ({"HTTPS_PROXY": "http://P:2"}, "wss://example.com/", "http://P:2"),
        ({"WS_PROXY": "http://W:1"}, "ws://example.com/", "http://W:1"),
        ({"ALL_PROXY": "http://A:1"}, "ws://example.com/", "http://A:1"),
        # Lower case first.
        ({"http_proxy": "http://l:1", "HTTP_PROXY": "http://U:1"}, "ws://x/", "http://l:1"),
        # An empty lower-case variable hides its upper-case twin (as urllib reads them)...
        ({"http_proxy": "", "HTTP_PROXY": "http://U:1"}, "ws://x/", None),
        # ... but the next name still counts.
        ({"http_proxy": "", "all_proxy": "http://a:1"}, "ws://x/", "http://a:1"),
        ({"HTTP_PROXY": ""}, "ws://x/", None),
        # A CGI script: HTTP_PROXY may come from the client's "Proxy:" header.
        ({"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}, "ws://x/", None),
        ({"http_proxy": "http://ok:1", "REQUEST_METHOD": "GET"}, "ws://x/", "http://ok:1"),
        ({"HTTPS_PROXY": "http://ok:2", "REQUEST_METHOD": "GET"}, "wss://x/", "http://ok:2"),
        # no_proxy, lower case first.
        ({"http_proxy": "http://p:1", "no_proxy": "example.com"}, "ws://example.com/", None),
        ({"http_proxy": "http://p:1", "NO_PROXY": "example.com"}, "ws://example.com/", None),
        (
            {"http_proxy": "http://p:1", "no_proxy": "other.org", "NO_PROXY": "example.com"},
            "ws://example.com/",
            "http://p:1",
        ),
        ({"http_proxy": "http://p:1", "no_proxy": "*"}, "ws://example.com/", None),
        ({"all_proxy": "http://p:1", "no_proxy": "example.com"}, "wss://a.example.com/", None),
    ],
)
def test_proxy_from_environment(environ: dict[str, str], url: str, expected: str | None) -> None:
    assert chosen(environ, url) == expected


def test_the_variable_is_named() -> None:
    assert proxy_from_environment(False, "x", 80, {"ALL_PROXY": "http://p:1"}) == (
        "http://p:1",
        "all_proxy",
    )


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("example.com", 80, "", False),
        ("example.com", 80, "*", True),
        ("example.com", 80, "a.org, *", True),
        ("example.com", 80, "example.com", True),
        ("EXAMPLE.com", 80, "example.COM", True),
        ("example.com.", 80, "example.com", True),
        ("example.com", 80, "example.com.", True),
        ("www.example.com", 80, "example.com", True),
        ("www.example.com", 80, ".example.com", True),
        ("www.example.com", 80, "*.example.com", True),
        ("example.com", 80, ".example.com", True),
        ("badexample.com", 80, "example.com", False),
        ("badexample.com", 80, ".example.com", False),
        ("example.com.evil", 80, "example.com", False),
        ("example.com", 80, "  other.org ,example.com  ", True),
        ("example.com", 80, ",,,", False),
        ("example.com", 8080, "example.com:8080", True),
        ("example.com", 80, "example.com:8080", False),
        ("www.example.com", 8080, ".example.com:8080", True),
        ("127.0.0.1", 80, "127.0.0.1", True),
        ("127.0.0.2", 80, "127.0.0.1", False),
        ("127.0.0.1", 9000, "127.0.0.1:9000", True),
        ("127.0.0.1", 9001, "127.0.0.1:9000", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("192.168.1.7", 80, "192.168.1.0/24", True),
        ("192.168.1.7", 80, "192.168.1.1/24", True),  # Host bits set: still the network.
        ("10.1.2.3", 80, "10.0.0.0/33", False),  # Not a network: ignored.
        ("example.com", 80, "10.0.0.0/8", False),  # Names are not resolved.
        ("::1", 80, "::1", True),
        ("::1", 80, "[::1]", True),
        ("::1", 80, "0:0:0:0:0:0:0:1", True),
        ("::1", 8080, "[::1]:8080", True),
        ("::1", 8081, "[::1]:8080", False),
        ("[::1]", 80, "::1", True),
        ("fd00::5", 80, "fd00::/8", True),
        ("fe80::5", 80, "fd00::/8", False),
        ("::ffff:10.0.0.1", 80, "10.0.0.0/8", False),  # Another family.
        ("10.0.0.1", 80, "::/0", False),
        ("localhost", 80, "localhost", True),
        ("localhost", 80, "127.0.0.1", False),  # Names are not resolved.
        ("127.0.0.1", 80, "localhost", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypass(host, port, no_proxy) is expected


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "username", "password"),
    [
        ("http://proxy:3128", "http", "proxy", 3128, None, None),
        ("http://proxy", "http", "proxy", 80, None, None),
        ("http://proxy/", "http", "proxy", 80, None, None),
        ("HTTP://Proxy:3128", "http", "proxy", 3128, None, None),
        ("https://proxy", "https", "proxy", 443, None, None),
        ("socks5://proxy", "socks5", "proxy", 1080, None, None),
        ("socks5h://proxy:9050", "socks5h", "proxy", 9050, None, None),
        ("socks4://proxy", "socks4", "proxy", 1080, None, None),
        ("socks4a://proxy", "socks4a", "proxy", 1080, None, None),
        ("proxy:3128", "http", "proxy", 3128, None, None),  # As curl and requests.
        ("http://[::1]:3128", "http", "::1", 3128, None, None),
        ("http://u:p@proxy:1", "http", "proxy", 1, "u", "p"),
        ("http://u@proxy:1", "http", "proxy", 1, "u", ""),
        ("http://u:@proxy:1", "http", "proxy", 1, "u", ""),
        ("http://al%20ice:p%40ss%3Aw%2Fd@proxy:1", "http", "proxy", 1, "al ice", "p@ss:w/d"),
        ("http://%C3%A9:%E2%82%AC@proxy:1", "http", "proxy", 1, "é", "€"),
    ],
)
def test_parse_proxy(  # noqa: PLR0917 - the parameters of the table
    url: str, scheme: str, host: str, port: int, username: str | None, password: str | None
) -> None:
    proxy = parse_proxy(url)
    assert (proxy.scheme, proxy.host, proxy.port) == (scheme, host, port)
    assert (proxy.username, proxy.password) == (username, password)
    if password:
        assert f"'{password}'" not in repr(proxy)
        assert "***" in proxy.shown


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://proxy:21", "the scheme is not one of"),
        ("ws://proxy:80", "the scheme is not one of"),
        ("http://", "no host"),
        ("http://:3128", "no host"),
        ("http://proxy:port", "bad host or port"),
        ("http://proxy:70000", "bad host or port"),
        ("http://proxy:3128/path", "no path or query"),
        ("http://proxy:3128?x", "no path or query"),
        ("http://proxy:3128#x", "no path or query"),
        ("http://pro xy:3128", "spaces and control characters"),
        ("http://proxy:3128\r\n", "spaces and control characters"),
        ("http://u:%FF@proxy:1", "credentials not UTF-8"),
    ],
)
def test_parse_proxy_refuses(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_proxy(url)


def test_parse_proxy_hides_the_password() -> None:
    with pytest.raises(ValueError, match=r"http://alice:\*\*\*@proxy:99999") as caught:
        parse_proxy("http://alice:hunter2-secret@proxy:99999")
    assert "hunter2" not in str(caught.value)
