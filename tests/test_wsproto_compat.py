"""The wsproto compatibility module: supported versions, internals, undocumented behaviour.

``syncws._wsproto`` checks at import that the installed wsproto is one syncws supports
and that the private attributes it uses are there. Those checks run in a child
Python, with ``importlib.metadata.version`` or a wsproto class patched before syncws
is imported, so that this process keeps its own import of syncws.
"""

from __future__ import annotations

import configparser
import itertools
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT, WAIT, SyncwsServer, checkout_env, server_echo
from rawpeer import (
    OP_BINARY,
    OP_CONT,
    OP_TEXT,
    ClientPeerConnection,
    encode_frame,
    read_http_response,
    upgrade_request,
)
from wsproto.connection import Connection, ConnectionType
from wsproto.events import RejectConnection
from wsproto.frame_protocol import CloseReason

import syncws
from syncws import _framing, _wsproto


def run_child(code: str, **environ: str) -> str:
    """Run ``code`` in a child Python with this checkout first on the path; return its output."""
    env = checkout_env({k: v for k, v in os.environ.items() if k != _wsproto.ALLOW_ANY_VARIABLE})
    env.update(environ)
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    return child.stdout


#: Child code: import syncws and print how it went, one line.
IMPORT_SYNCWS = """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        import syncws
    except ImportError as exc:
        print("ImportError:", exc)
    else:
        print("imported", syncws.__version__)
for warning in caught:
    print(f"{warning.category.__name__}: {warning.message}")
"""

#: Child code: make importlib.metadata say that wsproto 9.0 is installed.
FAKE_VERSION = """
import importlib.metadata
real_version = importlib.metadata.version
def version(name):
    return "9.0" if name == "wsproto" else real_version(name)
importlib.metadata.version = version
"""


# ------------------------------------------------------------------------- versions


def test_an_unsupported_wsproto_fails_at_import() -> None:
    out = run_child(FAKE_VERSION + IMPORT_SYNCWS)
    assert out.startswith("ImportError: "), out
    assert "wsproto 9.0 is installed" in out
    assert f"supports wsproto {_wsproto.SUPPORTED}" in out
    assert f"pip install 'wsproto{_wsproto.SUPPORTED}'" in out
    assert "SYNCWS_ALLOW_ANY_WSPROTO=1" in out


def test_allow_any_wsproto_turns_the_error_into_a_warning() -> None:
    out = run_child(FAKE_VERSION + IMPORT_SYNCWS, SYNCWS_ALLOW_ANY_WSPROTO="1")
    first, *rest = out.splitlines()
    assert first.startswith("imported "), out
    warnings = [line for line in rest if "wsproto 9.0 is installed" in line]
    assert len(warnings) == 1, out
    assert warnings[0].startswith("RuntimeWarning: "), out
    assert _wsproto.SUPPORTED in warnings[0]


def test_allow_any_wsproto_takes_only_1() -> None:
    out = run_child(FAKE_VERSION + IMPORT_SYNCWS, SYNCWS_ALLOW_ANY_WSPROTO="0")
    assert out.startswith("ImportError: "), out


def test_the_installed_wsproto_is_supported() -> None:
    assert _wsproto.supports(_wsproto.installed_version())


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("1.3.0", True),
        ("1.3.2", True),
        ("1.3.10", True),
        ("1.3.3.dev1", True),
        ("1.2.0", False),
        ("1.2", False),
        ("1.4.0", False),
        ("1.4.0rc1", False),
        ("2.0.0", False),
        ("0.15.0", False),
        ("1", False),
        ("unknown", False),
        ("", False),
    ],
)
def test_supports(version: str, supported: bool) -> None:
    assert _wsproto.supports(version) is supported


def test_setup_cfg_requires_the_supported_range() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    requirements = config["options"]["install_requires"].split()
    assert f"wsproto{_wsproto.SUPPORTED}" in requirements


# ------------------------------------------------------------------------ internals


def after_init(cls: str, statement: str) -> str:
    """Child code: patch the wsproto class ``cls`` to run ``statement`` after its ``__init__``."""
    module = cls.rpartition(".")[0]
    return f"""
import {module}
real_init = {cls}.__init__
def init(self, *args, **kwargs):
    real_init(self, *args, **kwargs)
    {statement}
{cls}.__init__ = init
"""


#: Child code that takes away one private part of wsproto that syncws uses.
BROKEN_INTERNALS = {
    "PerMessageDeflate._decompressor": after_init(
        "wsproto.extensions.PerMessageDeflate", "del self._decompressor"
    ),
    "PerMessageDeflate._inbound_compressed": after_init(
        "wsproto.extensions.PerMessageDeflate",
        'self._inbound_message = self.__dict__.pop("_inbound_compressed")',
    ),
    "Connection._proto.extensions": after_init(
        "wsproto.connection.Connection", 'self._frames = self.__dict__.pop("_proto")'
    ),
    "PerMessageDeflate.enabled() reading PerMessageDeflate._enabled": """
import wsproto.extensions
wsproto.extensions.PerMessageDeflate.enabled = lambda self: False
""",
    # A wsproto that checks close codes against a list of its own, not the enum.
    "close code 1014 let through by CloseReason._missing_": """
import wsproto.frame_protocol as fp
real_process_close = fp.FrameProtocol._process_close
def process_close(self, frame):
    if bytes(frame.payload[:2]) == b"\\x03\\xf6":
        raise fp.ParseFailed("CLOSE with unknown reserved code")
    return real_process_close(self, frame)
fp.FrameProtocol._process_close = process_close
""",
    # A masker whose key syncws would read wrong (here, wsproto's own reads it wrong too).
    "a masked frame read right with unmask_with": after_init(
        "wsproto.frame_protocol.XorMaskerSimple", "self._masking_key = self._masking_key[::-1]"
    ),
    # A wsproto that stops reading the response after a rejection.
    "a 101 accepted after an interim 100 response": """
import wsproto.handshake
from wsproto.events import RejectConnection
real_receive_data = wsproto.handshake.H11Handshake.receive_data
def receive_data(self, data):
    real_receive_data(self, data)
    events = list(self._events)
    for index, event in enumerate(events):
        if isinstance(event, RejectConnection):
            self._events.clear()
            self._events.extend(events[: index + 1])
            break
wsproto.handshake.H11Handshake.receive_data = receive_data
""",
}


@pytest.mark.parametrize(
    ("allow_any", "missing"),
    [
        pytest.param(
            allow_any,
            missing,
            id=f"{allow_any}-{missing}",
            # A child process each: by default every internal once, with and without
            # SYNCWS_ALLOW_ANY_WSPROTO=1 in turn; the other half under -m slow.
            marks=pytest.mark.slow if (index % 2 == 0) == (allow_any == "1") else (),
        )
        for allow_any in ("", "1")
        for index, missing in enumerate(sorted(BROKEN_INTERNALS))
    ],
)
def test_missing_internals_fail_at_import(missing: str, allow_any: str) -> None:
    # Even with SYNCWS_ALLOW_ANY_WSPROTO=1: syncws cannot work without them.
    out = run_child(
        BROKEN_INTERNALS[missing] + IMPORT_SYNCWS,
        SYNCWS_ALLOW_ANY_WSPROTO=allow_any,
    )
    assert out.startswith("ImportError: "), out
    assert f"lacks internals that syncws relies on: {missing}" in out
    assert f"wsproto {_wsproto.installed_version()} " in out
    assert _wsproto.SUPPORTED in out


def test_the_internals_are_there() -> None:
    _wsproto.check_internals()


def test_close_code_1014_is_a_close_reason_of_wsproto() -> None:
    member = CloseReason(1014)
    assert isinstance(member, CloseReason)
    assert (member, member.name, member.value) == (1014, "BAD_GATEWAY", 1014)
    assert CloseReason(1014) is member
    # A second call keeps the hook as it is.
    hook = CloseReason._missing_
    _wsproto.accept_close_code_1014()
    assert CloseReason._missing_ == hook
    assert CloseReason(1014) is member
    # Other codes wsproto does not know are still unknown.
    for code in (1004, 1016, 2999):
        with pytest.raises(ValueError):
            CloseReason(code)


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (RejectConnection(status_code=100, has_body=False), 100),
        (RejectConnection(status_code=103, headers=[(b"link", b"</a>")], has_body=False), 103),
        (RejectConnection(status_code=199, has_body=False), 199),
        (RejectConnection(status_code=200, has_body=False), None),
        (RejectConnection(status_code=404, has_body=True), None),
        (RejectConnection(status_code=404, has_body=False), None),
    ],
)
def test_interim_status(event: RejectConnection, status: int | None) -> None:
    assert _wsproto.interim_status(event) == status


# --------------------------------------------------- undocumented behaviour relied on


def test_frames_sent_with_the_upgrade_request_are_read_once(syncws_server) -> None:
    # wsproto's server side drops the bytes read past the request, and syncws feeds
    # them to it after the 101. A wsproto that kept them would parse them twice.
    server: SyncwsServer = syncws_server(server_echo, connect_timeout=WAIT)
    request = upgrade_request(f"127.0.0.1:{server.port}")
    first = encode_frame(OP_TEXT, b"with the request", mask=os.urandom(4))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    try:
        sock.sendall(request + first)
        response = read_http_response(sock, WAIT, until_eof=False)
        assert response.status == 101, response
        peer = ClientPeerConnection(sock, None, response.rest)
        peer.send_text("after the 101")
        assert peer.recv_message(WAIT) == (OP_TEXT, b"with the request")
        assert peer.recv_message(WAIT) == (OP_TEXT, b"after the 101")
        assert peer.close_handshake(WAIT).close_code == 1000
    finally:
        sock.close()


# ------------------------------------------------------------------ unmasking in C


def masked_frame(payload: bytes, key: bytes, fin: bool = True) -> bytes:
    return encode_frame(OP_BINARY, payload, mask=key, fin=fin)


def read_in_pieces(engine: Connection, data: bytes, sizes: list[int]) -> bytes:
    """Feed ``data`` to ``engine`` in pieces of ``sizes`` (cycled), parsing after each."""
    out = bytearray()
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(data):
            break
        engine.receive_data(data[start : start + size])
        start += size
        for event in engine.events():
            out += event.data
    return bytes(out)


@pytest.mark.parametrize(
    "sizes",
    # [3, 5, 7] cuts at every offset modulo 4 too; [1] (70,001 pieces) under -m slow.
    [pytest.param([1], marks=pytest.mark.slow), [3, 5, 7], [4096, 1], [1 << 20]],
)
def test_unmask_with_reads_frames_cut_anywhere(sizes: list[int]) -> None:
    # Two frames of one message, each cut into pieces at every offset modulo 4: the
    # key goes on where the previous piece stopped.
    payload = os.urandom(70_001)
    data = masked_frame(payload[:30_000], b"\x9a\x01\xff\x3c", fin=False)
    data += encode_frame(OP_CONT, payload[30_000:], mask=b"\x00\x10\x20\x30")
    calls: list[int] = []

    def mask(chunk: bytes | bytearray | memoryview, key: bytes) -> bytes:
        calls.append(len(chunk))
        return _framing.apply_mask(chunk, key)

    engine = Connection(ConnectionType.SERVER)
    assert _wsproto.unmask_with(engine, mask)
    assert read_in_pieces(engine, data, sizes) == payload
    assert sum(calls) == len(payload)


def test_a_wsproto_with_its_own_masker_is_left_to_it() -> None:
    # A wsproto that brings a masker of its own (the upstream fix) is not touched.
    out = run_child(
        """
import wsproto.frame_protocol as fp
class OwnMasker(fp.XorMaskerSimple):
    pass
real_parse_header = fp.FrameDecoder.parse_header
def parse_header(self):
    parsed = real_parse_header(self)
    if parsed and type(self.masker) is fp.XorMaskerSimple:
        self.masker = OwnMasker(self.masker._masking_key)
    return parsed
fp.FrameDecoder.parse_header = parse_header
import syncws
from syncws import _wsproto
from wsproto.connection import Connection, ConnectionType
engine = Connection(ConnectionType.SERVER)
used = []
_wsproto.unmask_with(engine, lambda data, key: used.append(1) or bytes(data))
engine.receive_data(b"\\x82\\x83\\x01\\x02\\x03\\x04" + bytes([0x61 ^ 1, 0x62 ^ 2, 0x63 ^ 3]))
print([bytes(e.data) for e in engine.events()], used)
"""
    )
    assert out.strip() == "[b'abc'] []"


def test_a_server_unmasks_a_streamed_message_right(syncws_server) -> None:
    # Past max_message_size, a client's frames go through wsproto (and unmask_with):
    # a message of many frames, cut across reads anywhere, arrives byte for byte.
    received: list[bytes] = []

    def handler(request, srv):
        ws = request.accept()
        with ws.get_message_stream(timeout=WAIT) as stream:
            received.append(b"".join(stream))  # type: ignore[arg-type]
        ws.send_message("done")
        for _ in ws:
            pass

    server = syncws_server(handler, max_message_size=64 * 1024)
    payload = os.urandom(3 * 1024 * 1024 + 3)
    pieces = [payload[i : i + 9_999] for i in range(0, len(payload), 9_999)]
    with syncws.connect(server.url, max_message_size=64 * 1024) as ws:
        ws.send_message(iter(pieces), timeout=WAIT)
        assert ws.get_message(timeout=WAIT) == "done"
    assert received == [payload]
