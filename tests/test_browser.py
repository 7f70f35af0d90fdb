"""syncws against a real browser: headless Chromium, driven over DevTools.

A page served by the test on loopback (over HTTP, or over HTTPS with a trustme
certificate) opens ``new WebSocket(...)`` to a syncws server, once per scenario: text,
binary and a 1 MiB binary message echoed, with the subprotocol and the extensions
negotiated (permessage-deflate when the server compresses); a message one byte over
the server's ``max_message_size`` (the page must see close code 1009); the page closing
with 4001 "bye"; the server closing with 4002 "server bye". The page hands its
findings to the test through a DevTools binding; the test checks them, what the server
saw, a screenshot of the page, and Chromium's net log (no traffic outside loopback).

Chromium (Debian's package ``chromium``) is driven through the DevTools Protocol over
syncws's own client (``chromium.py``). Skipped only where that package is missing.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import (
    Chromium,
    DevTools,
    find_chromium,
    outside_loopback,
    spki_sha256,
    tcp_connections,
)
from helpers import WAIT, SyncwsServer, made_for_the_test

import syncws

#: The server's limit (the default: 1 MiB): the page sends a message of exactly this
#: size, which must pass, and one a byte larger, which must close the connection.
MAX_MESSAGE_SIZE = 2**20
#: The text message, with characters from outside ASCII and outside the BMP.
TEXT = "héllo, wörld ☃ 🎉"
SUBPROTOCOL = "chat.v1"
#: How long the page waits for each step (opening, a message, a close), in seconds.
STEP_TIMEOUT = WAIT / 2
#: The scenarios, each on a connection of its own, as the page runs them.
SCENARIOS = ("echo", "too-big", "page-closes", "server-closes")

pytestmark = pytest.mark.timeout(90)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>syncws: running</title>
<style>
body { font: 13px monospace; margin: 12px; }
pre { white-space: pre-wrap; word-break: break-all; }
</style>
</head><body><h3>syncws in Chromium</h3><pre id="out">running</pre>
<script>
"use strict";
const CONFIG = __CONFIG__;

function within(promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out: " + what)), CONFIG.stepTimeout);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// Open a WebSocket; resolve, once it is open, with next() (the next message) and
// closed() (what its close event said). Both listeners exist from the start.
function open(path, protocols) {
  const ws = new WebSocket(CONFIG.url + path, protocols);
  ws.binaryType = "arraybuffer";
  const queued = [], waiting = [];
  ws.onmessage = (event) => {
    if (waiting.length) waiting.shift()(event.data); else queued.push(event.data);
  };
  const closing = new Promise((resolve) => {
    ws.onclose = (e) => resolve({code: e.code, reason: e.reason, wasClean: e.wasClean});
  });
  const next = () => within(
    queued.length ? Promise.resolve(queued.shift()) : new Promise((r) => waiting.push(r)),
    "a message on " + path);
  const closed = () => within(closing, "the close of " + path);
  return within(new Promise((resolve, reject) => {
    ws.onopen = () => resolve({ws, next, closed});
    ws.onerror = () => reject(new Error("cannot open " + path));
  }), "opening " + path);
}

function randomBytes(size) {
  const bytes = new Uint8Array(size);
  for (let start = 0; start < size; start += 65536) {
    crypto.getRandomValues(bytes.subarray(start, start + 65536));
  }
  return bytes;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const steps = {
  async "echo"() {
    const c = await open("/echo", [CONFIG.subprotocol, "other.v0"]);
    const r = {extensions: c.ws.extensions, protocol: c.ws.protocol};
    c.ws.send(CONFIG.text);
    r.text = await c.next();
    const small = Uint8Array.from({length: 256}, (_, i) => i);
    c.ws.send(small.buffer);
    const smallBack = await c.next();
    r.binaryIsArrayBuffer = smallBack instanceof ArrayBuffer;
    r.binaryEchoed = sameBytes(small, new Uint8Array(smallBack));
    const big = randomBytes(CONFIG.maxSize);
    r.bigSha256 = await sha256(big);
    c.ws.send(big.buffer);
    const bigBack = new Uint8Array(await c.next());
    r.bigLength = bigBack.length;
    r.bigEchoed = sameBytes(big, bigBack);
    c.ws.close(1000, "done");
    r.close = await c.closed();
    return r;
  },
  async "too-big"() {
    const c = await open("/too-big");
    c.ws.send(randomBytes(CONFIG.maxSize + 1).buffer);
    return {close: await c.closed()};
  },
  async "page-closes"() {
    const c = await open("/page-closes");
    c.ws.close(4001, "bye");
    return {close: await c.closed()};
  },
  async "server-closes"() {
    const c = await open("/server-closes");
    const r = {message: await c.next()};
    r.close = await c.closed();
    return r;
  },
};

async function main() {
  const results = {origin: location.origin, secureContext: window.isSecureContext};
  for (const [name, step] of Object.entries(steps)) {
    try {
      results[name] = await step();
    } catch (error) {
      results[name] = {error: String(error)};
    }
  }
  return results;
}

main().then((results) => {
  const lines = Object.entries(results).map(([name, r]) => name + ": " + JSON.stringify(r));
  document.getElementById("out").textContent = lines.join("\\n\\n");
  document.title = "syncws: done";
  syncwsReport(JSON.stringify(results));
});
</script></body></html>
"""


# ------------------------------------------------------------------ the page's server


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """Serves the page at ``/``; 404 for anything else (such as /favicon.ico)."""

    server: PageServer
    timeout = WAIT  # a connection Chromium opened in advance and never used

    def setup(self) -> None:
        if self.server.tls is not None:
            self.request.settimeout(WAIT)
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.server.tls is not None:
                self.request.close()  # the TLS socket; socketserver closes the plain one

    def do_GET(self) -> None:
        found = self.path == "/"
        body = self.server.page if found else b"not found\n"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageServer(http.server.ThreadingHTTPServer):
    """An HTTP (or, with ``tls``, HTTPS) server of one page on 127.0.0.1, in a thread."""

    def __init__(self, page: bytes, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _PageHandler)
        self.page = page
        self.tls = tls
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="page-server"
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server_address[1]}/"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(WAIT)


# --------------------------------------------------------------------- the ws server


def handler(request: Any, srv: SyncwsServer) -> None:
    """One scenario per path; every finding goes to ``srv.record`` as ``(path, what, x)``,
    and ``(path, "done", None)`` last, whatever happens."""
    path = request.path
    try:
        srv.record.put((path, "origin", request.origin))
        scenario(path, request, srv)
    finally:
        srv.record.put((path, "done", None))


def scenario(path: str, request: Any, srv: SyncwsServer) -> None:
    if path == "/echo":
        offered = request.proposed_subprotocols
        ws = request.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        srv.record.put((path, "offered", offered))
        srv.record.put((path, "extensions", ws.extensions))
        try:
            for message in ws:
                srv.record.put((path, "message", message))
                ws.send_message(message)
        except syncws.ConnectionClosed:
            pass
        srv.record.put((path, "close", ws.close_reason))
    elif path in ("/too-big", "/page-closes"):
        ws = request.accept()
        try:
            message = ws.get_message(timeout=WAIT)
        except syncws.ConnectionClosed as exc:
            srv.record.put((path, "close", exc.reason))
        else:
            srv.record.put((path, "unexpected message", len(message)))
    elif path == "/server-closes":
        ws = request.accept()
        ws.send_message("closing now")
        ws.close(4002, "server bye")
        srv.record.put((path, "close", ws.close_reason))
    else:
        request.reject(404, body="no such scenario\n")


def server_findings(srv: SyncwsServer) -> dict[str, dict[str, list[Any]]]:
    """Wait until every scenario's handler is done; what each recorded, by kind."""
    found: dict[str, dict[str, list[Any]]] = {f"/{name}": {} for name in SCENARIOS}
    done = 0
    while done < len(SCENARIOS):
        path, what, value = srv.get()
        if what == "done":
            done += 1
        else:
            found.setdefault(path, {}).setdefault(what, []).append(value)
    return found


# ------------------------------------------------------------------------- fixtures


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[..., Chromium]]:
    """Factory: ``chromium(*flags)`` -> a started :class:`chromium.Chromium`."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("Debian package chromium is not installed")
    yield from made_for_the_test(lambda *flags: Chromium(binary, tmp_path, *flags), Chromium.stop)


@pytest.fixture
def page_server() -> Iterator[Callable[..., PageServer]]:
    """Factory: ``page_server(page, tls=None)`` -> a :class:`PageServer`, serving."""
    yield from made_for_the_test(PageServer, PageServer.stop)


# ---------------------------------------------------------------------------- tests


def run_page(browser: Chromium, url: str, screenshot: Path) -> tuple[dict[str, Any], str]:
    """Open ``url`` in a new tab, wait for the page's findings, save a screenshot.

    :returns: the findings, and the browser's product name and version.
    """
    devtools = DevTools(browser.devtools_url)
    try:
        version: str = devtools.call("Browser.getVersion")["product"]
        session = devtools.open_page()
        devtools.call("Runtime.enable", session)
        devtools.call("Runtime.addBinding", session, name="syncwsReport")
        devtools.call("Page.enable", session)
        navigation = devtools.call("Page.navigate", session, url=url)
        assert "errorText" not in navigation, (navigation, browser.log_tail())
        # The page's report, or the first uncaught exception of its script.
        method, params = devtools.wait_event(
            ("Runtime.bindingCalled", "Runtime.exceptionThrown"),
            session,
            timeout=len(SCENARIOS) * STEP_TIMEOUT + WAIT,
        )
        assert method == "Runtime.bindingCalled", params["exceptionDetails"]
        findings: dict[str, Any] = json.loads(params["payload"])
        shot = devtools.call("Page.captureScreenshot", session, format="png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        devtools.close()
    return findings, version


@pytest.mark.parametrize(
    ("scheme", "compression"),
    [
        pytest.param("ws", None, id="ws"),
        # Each of ws and deflate is in another variant: this one under -m slow.
        pytest.param("ws", "deflate", id="ws-deflate", marks=pytest.mark.slow),
        pytest.param("wss", "deflate", id="wss-deflate"),
    ],
)
def test_chromium(
    *,  # pytest passes fixtures by name
    scheme: str,
    compression: str | None,
    chromium: Callable[..., Chromium],
    page_server: Callable[..., PageServer],
    syncws_server: Callable[..., SyncwsServer],
    tls_ca: Any,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    flags = []
    tls = None
    if scheme == "wss":
        cert = tls_ca.issue_cert("127.0.0.1")
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(tls)
        # Chromium trusts this one certificate (by its public key) and no other.
        flags.append(
            f"--ignore-certificate-errors-spki-list={spki_sha256(cert.cert_chain_pems[0].bytes())}"
        )
    srv = syncws_server(
        handler, ssl_context=tls, compression=compression, max_message_size=MAX_MESSAGE_SIZE
    )
    config = {
        "url": srv.url[:-1],
        "subprotocol": SUBPROTOCOL,
        "text": TEXT,
        "maxSize": MAX_MESSAGE_SIZE,
        "stepTimeout": int(STEP_TIMEOUT * 1000),
    }
    page = PAGE.replace("__CONFIG__", json.dumps(config)).encode()
    pages = page_server(page, tls)
    browser = chromium(*flags)
    screenshot = tmp_path / f"chromium-{scheme}-{compression or 'plain'}.png"
    findings, version = run_page(browser, pages.url, screenshot)
    record_property("chromium", version)
    record_property("screenshot", str(screenshot))
    print(f"{version}; screenshot: {screenshot}")
    seen = server_findings(srv)
    browser.stop()

    # Nothing failed on the page, which was a secure context for crypto.subtle.
    errors = {n: r["error"] for n, r in findings.items() if isinstance(r, dict) and "error" in r}
    assert not errors, (errors, findings)
    origin = pages.url[:-1]
    assert findings["origin"] == origin
    assert findings["secureContext"] is True

    # Echo: text, binary as an ArrayBuffer, 1 MiB (the server's limit exactly).
    echo = findings["echo"]
    assert echo["protocol"] == SUBPROTOCOL
    if compression == "deflate":
        assert "permessage-deflate" in echo["extensions"]
        assert "permessage-deflate" in seen["/echo"]["extensions"][0]
    else:
        assert echo["extensions"] == ""
        assert seen["/echo"]["extensions"] == [""]
    assert echo["text"] == TEXT
    assert echo["binaryIsArrayBuffer"] is True
    assert echo["binaryEchoed"] is True
    assert echo["bigLength"] == MAX_MESSAGE_SIZE
    assert echo["bigEchoed"] is True
    assert echo["close"] == {"code": 1000, "reason": "done", "wasClean": True}
    messages = seen["/echo"]["message"]
    assert messages[:2] == [TEXT, bytes(range(256))]
    assert len(messages) == 3
    assert hashlib.sha256(messages[2]).hexdigest() == echo["bigSha256"]
    assert seen["/echo"]["offered"] == [(SUBPROTOCOL, "other.v0")]
    assert (seen["/echo"]["close"][0].code, seen["/echo"]["close"][0].reason) == (1000, "done")

    # One byte over max_message_size: the server closes with 1009 and the page sees it,
    # at the end of a clean closing handshake.
    assert findings["too-big"]["close"]["code"] == 1009
    assert findings["too-big"]["close"]["wasClean"] is True
    assert seen["/too-big"]["close"][0].code == 1009

    # The page closes with 4001 "bye": the handler sees it.
    too_close = seen["/page-closes"]["close"][0]
    assert (too_close.code, too_close.reason) == (4001, "bye")
    assert findings["page-closes"]["close"]["code"] == 4001
    assert findings["page-closes"]["close"]["wasClean"] is True

    # The handler closes with 4002 "server bye": the page sees it.
    assert findings["server-closes"]["message"] == "closing now"
    assert findings["server-closes"]["close"] == {
        "code": 4002,
        "reason": "server bye",
        "wasClean": True,
    }
    server_close = seen["/server-closes"]["close"][0]
    assert (server_close.code, server_close.reason) == (4002, "server bye")

    # Every connection came from the page's origin.
    for name in SCENARIOS:
        assert seen[f"/{name}"]["origin"] == [origin], name

    # The screenshot, and no traffic of Chromium's outside loopback (the net log is
    # read: it shows the page's connections).
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, len(data)
    assert f"127.0.0.1:{srv.port}" in tcp_connections(browser.net_log_path)
    assert outside_loopback(browser.net_log_path) == []


def test_net_log_check(tmp_path: Path) -> None:
    """What the net log check reports, on a log of Chromium's format made up here."""
    types = {"TCP_CONNECT": 1, "UDP_CONNECT": 2, "UDP_BYTES_SENT": 3}
    types["HOST_RESOLVER_MANAGER_REQUEST"] = 4
    events = [
        (1, {"address_list": ["127.0.0.1:8080", "[::1]:8080"]}),
        (1, {"address_list": ["192.0.2.1:443"]}),
        (2, {"address": "[2001:4860:4860::8888]:443"}),  # a route lookup: sends nothing
        (3, {"byte_count": 40}),
        (4, {"host": "https://~notfound"}),
        (4, {"host": "127.0.0.1:8080"}),
        (4, {"host": "https://example.com"}),
    ]
    lines = [json.dumps({"constants": {"logEventTypes": types}})[:-1] + ",", '"events": [']
    lines += [json.dumps({"type": t, "params": p, "phase": 0}) + "," for t, p in events]
    lines.append('{"type": 1, "params": {"address_li')  # cut short by a signal
    log = tmp_path / "netlog.json"
    log.write_text("\n".join(lines) + "\n")
    assert tcp_connections(log) == ["127.0.0.1:8080", "[::1]:8080", "192.0.2.1:443"]
    assert outside_loopback(log) == [
        "TCP connection to 192.0.2.1:443",
        "UDP datagram: {'byte_count': 40}",
        "name resolved: https://example.com",
    ]
