"""A hand-written WebSocket server peer, written from RFC 6455 for the tests.

It deliberately uses neither wsproto nor syncws: frames are encoded and decoded
byte by byte here, so that the tests can make the peer misbehave in ways a
conforming library never would (reserved opcodes, RSV bits, bad UTF-8, frames
that announce more payload than they carry, silence, abrupt resets, ...) and
record exactly which bytes the client under test put on the wire.

A :class:`RawPeer` listens on a loopback port.  A background thread accepts one
connection and performs the opening handshake (or a deliberately broken one).
Then, either the thread keeps serving the connection automatically (``auto=True``:
answer pings, echo the closing handshake, record every frame) or it hands the
:class:`PeerConnection` to the test, which drives it step by step.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

# Every blocking step of the peer is bounded by this many seconds.
PEER_TIMEOUT = 10.0
_POLL = 0.05


class PeerEOF(EOFError):
    """The client closed (or reset) the TCP connection."""


# --------------------------------------------------------------------------- frames


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455, section 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (RFC 6455, section 5.3)."""
    n = len(data)
    if n == 0:
        return b""
    stream = (bytes(key) * (n // 4 + 1))[:n]
    value = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(n, "big")


@dataclass
class Frame:
    """One decoded frame."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes
    mask_key: bytes | None = None

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")

    def __repr__(self) -> str:
        shown = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return (
            f"Frame(fin={self.fin}, rsv={self.rsv}, opcode={self.opcode:#x}, "
            f"masked={self.masked}, len={len(self.payload)}, payload={shown!r})"
        )


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """Encode one frame.

    ``rsv`` holds the three RSV bits (RSV1 = 4, RSV2 = 2, RSV3 = 1).  ``length``
    overrides the announced payload length (to announce more than is sent).
    """
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        header = bytes([first, mask_bit | n])
    elif n < 1 << 16:
        header = bytes([first, mask_bit | 126]) + struct.pack("!H", n)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack("!Q", n)
    if mask is not None:
        assert len(mask) == 4
        return header + mask + apply_mask(payload, mask)
    return header + payload


def decode_frame(buf: bytes | bytearray) -> tuple[Frame, int] | None:
    """Decode the frame at the start of ``buf``: (frame, bytes used), or None if incomplete."""
    if len(buf) < 2:
        return None
    first, second = buf[0], buf[1]
    n = second & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        (n,) = struct.unpack("!H", bytes(buf[2:4]))
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        (n,) = struct.unpack("!Q", bytes(buf[2:10]))
        pos = 10
    masked = bool(second & 0x80)
    key = None
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos : pos + 4])
        pos += 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos : pos + n])
    if key is not None:
        payload = apply_mask(payload, key)
    frame = Frame(
        fin=bool(first & 0x80),
        rsv=(first >> 4) & 0x7,
        opcode=first & 0xF,
        masked=masked,
        payload=payload,
        mask_key=key,
    )
    return frame, pos + n


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")


# ---------------------------------------------------------------------- HTTP request


@dataclass
class Request:
    """The client's HTTP upgrade request as received."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def parse_request(raw: bytes) -> Request:
    lines = raw.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Request(method, target, version, headers, raw)


def response_101(
    request: Request,
    *,
    accept: str | None = None,
    subprotocol: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A valid 101 answer to ``request`` (``accept`` overrides the computed key)."""
    key = request.header("Sec-WebSocket-Key") or ""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept if accept is not None else accept_key(key)}",
    ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    lines.extend(f"{name}: {value}" for name, value in extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ------------------------------------------------------------------- the connection


class PeerConnection:
    """The server end of one accepted connection."""

    def __init__(self, sock: socket.socket, request: Request | None, leftover: bytes = b""):
        self.sock = sock
        self.request = request
        self.buf = bytearray(leftover)
        self.frames: list[Frame] = []  # every frame received, in order
        self.bytes_received = 0
        self.closed = False
        self.eof = False

    # sending -------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.settimeout(PEER_TIMEOUT)
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **kwargs: object) -> None:
        self.send_raw(encode_frame(opcode, payload, **kwargs))  # type: ignore[arg-type]

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self.send_frame(OP_BINARY, data)

    def send_ping(self, payload: bytes = b"") -> None:
        self.send_frame(OP_PING, payload)

    def send_pong(self, payload: bytes = b"") -> None:
        self.send_frame(OP_PONG, payload)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    # receiving -----------------------------------------------------------------
    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("raw peer: no frame from the client in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError as exc:
            self.eof = True
            raise PeerEOF("connection reset by the client") from exc
        if not data:
            self.eof = True
            raise PeerEOF("the client closed the TCP connection")
        self.bytes_received += len(data)
        self.buf += data

    def read_at_least(self, count: int, timeout: float = PEER_TIMEOUT) -> None:
        """Buffer incoming bytes until ``count`` bytes were received in total."""
        deadline = time.monotonic() + timeout
        while self.bytes_received < count:
            self._fill(deadline)

    def recv_frame(self, timeout: float = PEER_TIMEOUT) -> Frame:
        """Next frame from the client; TimeoutError, or PeerEOF at end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            decoded = decode_frame(self.buf)
            if decoded is not None:
                frame, used = decoded
                del self.buf[:used]
                self.frames.append(frame)
                return frame
            self._fill(deadline)

    def recv_data_frame(self, timeout: float = PEER_TIMEOUT, answer_pings: bool = True) -> Frame:
        """Next frame that is not a ping/pong (pings are answered unless told otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv_frame(max(deadline - time.monotonic(), 0.0))
            if frame.opcode == OP_PING:
                if answer_pings:
                    self.send_pong(frame.payload)
            elif frame.opcode != OP_PONG:
                return frame

    def recv_message(self, timeout: float = PEER_TIMEOUT) -> tuple[int, bytes]:
        """Next complete data message as (opcode, payload); pings are answered."""
        deadline = time.monotonic() + timeout
        frame = self.recv_data_frame(timeout)
        assert frame.opcode in (OP_TEXT, OP_BINARY), frame
        opcode, parts = frame.opcode, [frame.payload]
        while not frame.fin:
            frame = self.recv_data_frame(max(deadline - time.monotonic(), 0.0))
            assert frame.opcode == OP_CONT, frame
            parts.append(frame.payload)
        return opcode, b"".join(parts)

    def expect_close(self, timeout: float = PEER_TIMEOUT, answer_pings: bool = True) -> Frame:
        """Read frames until the client's close frame and return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            frame = self.recv_data_frame(remaining, answer_pings)
            if frame.opcode == OP_CLOSE:
                return frame

    def close_handshake(self, timeout: float = PEER_TIMEOUT, answer_pings: bool = True) -> Frame:
        """Wait for the client's close frame, echo its code, then close TCP (server side)."""
        frame = self.expect_close(timeout, answer_pings)
        self.send_frame(OP_CLOSE, frame.payload[:2])
        self.close()
        return frame

    def wait_eof(self, timeout: float = PEER_TIMEOUT) -> None:
        """Read (and record) frames until the client closes TCP."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.recv_frame(max(deadline - time.monotonic(), 0.0))
        except PeerEOF:
            return

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()

    def abort(self) -> None:
        """Reset the TCP connection (SO_LINGER 0): the client sees an RST."""
        if not self.closed:
            self.closed = True
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


# -------------------------------------------------------------------------- the peer


Responder = Callable[[Request], bytes]

#: Read the request but never answer it.
SILENT = "silent"
#: Accept the TCP connection but never read nor write anything.
MUTE = "mute"


class RawPeer:
    """A one-connection WebSocket server on loopback, driven by the test.

    ``handshake`` is a callable turning the request into the bytes to answer
    (default: a valid 101), or :data:`SILENT` / :data:`MUTE`.  With ``auto=True``
    the peer thread keeps serving after the handshake: it records frames, answers
    pings (``auto_pong``), echoes data messages (``echo``) and completes the
    closing handshake.  Otherwise :meth:`connection` hands the connection over.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handshake: Responder | str | None = None,
        auto: bool = False,
        auto_pong: bool = True,
        echo: bool = False,
        close_after_handshake: bool = False,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if rcvbuf is not None:
                self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            self.listener.bind((host, port))
            self.listener.listen(4)
        except BaseException:
            self.listener.close()
            raise
        self.listener.settimeout(_POLL)
        self.host = host
        self.port = self.listener.getsockname()[1]
        self.handshake = handshake if handshake is not None else response_101
        self.auto = auto
        self.auto_pong = auto_pong
        self.echo = echo
        self.close_after_handshake = close_after_handshake
        self.ssl_context = ssl_context
        self.stop = threading.Event()
        self.handshake_done = threading.Event()
        self.finished = threading.Event()  # auto mode: the connection is over
        self.frames: queue.Queue[Frame] = queue.Queue()  # auto mode: frames as they arrive
        self.client_address: tuple[str, int] | None = None
        self.request: Request | None = None
        self.conn: PeerConnection | None = None
        self.error: BaseException | None = None
        self._handed: queue.Queue[PeerConnection] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"rawpeer-{self.port}")
        self._thread.start()

    # -- addresses
    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.url_for("/")

    def url_for(self, resource: str) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.netloc}{resource}"

    # -- test side
    def connection(self, timeout: float = PEER_TIMEOUT) -> PeerConnection:
        """The connection after a successful handshake (manual mode)."""
        try:
            return self._handed.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"raw peer: no handshake in time ({self.error!r})") from None

    def wait_request(self, timeout: float = PEER_TIMEOUT) -> Request:
        assert self.handshake_done.wait(timeout), "raw peer: no HTTP request received"
        assert self.request is not None
        return self.request

    def wait_finished(self, timeout: float = PEER_TIMEOUT) -> PeerConnection:
        assert self.finished.wait(timeout), "raw peer: the connection did not end in time"
        assert self.conn is not None
        return self.conn

    def next_frame(self, timeout: float = PEER_TIMEOUT) -> Frame:
        """Auto mode: the next frame the client sent."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("raw peer: no frame in time") from None

    def close(self) -> None:
        self.stop.set()
        self._thread.join(PEER_TIMEOUT)
        alive = self._thread.is_alive()
        self.listener.close()
        if self.conn is not None:
            self.conn.close()
        assert not alive, "raw peer thread did not stop"

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- peer thread
    def _accept(self) -> socket.socket | None:
        while not self.stop.is_set():
            try:
                sock, address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return None
            self.client_address = address[:2]
            return sock
        return None

    def _read_request(self, sock: socket.socket) -> tuple[bytes, bytes] | None:
        data = b""
        sock.settimeout(_POLL)
        deadline = time.monotonic() + PEER_TIMEOUT
        while b"\r\n\r\n" not in data:
            if self.stop.is_set() or time.monotonic() > deadline:
                return None
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n", rest

    def _run(self) -> None:
        try:
            sock = self._accept()
            if sock is None:
                return
            if self.handshake == MUTE:
                self.conn = PeerConnection(sock, None)
                self.handshake_done.set()
                self.stop.wait()
                return
            if self.ssl_context is not None:
                sock.settimeout(PEER_TIMEOUT)
                try:
                    sock = self.ssl_context.wrap_socket(sock, server_side=True)
                except BaseException:
                    sock.close()
                    raise
            received = self._read_request(sock)
            if received is None:
                self.conn = PeerConnection(sock, None)
                return
            raw, rest = received
            self.request = parse_request(raw)
            self.conn = PeerConnection(sock, self.request, rest)
            self.handshake_done.set()
            if self.handshake == SILENT:
                self.stop.wait()
                return
            assert callable(self.handshake)
            sock.settimeout(PEER_TIMEOUT)
            sock.sendall(self.handshake(self.request))
            if self.close_after_handshake:
                self.conn.close()
            elif self.auto:
                self._serve(self.conn)
            else:
                self._handed.put(self.conn)
        except BaseException as exc:  # reported through .error / connection()
            self.error = exc
        finally:
            self.handshake_done.set()
            self.finished.set()

    def _serve(self, conn: PeerConnection) -> None:
        parts: list[bytes] = []
        opcode = OP_TEXT
        while not self.stop.is_set():
            try:
                frame = conn.recv_frame(_POLL)
            except TimeoutError:
                continue
            except PeerEOF:
                return
            self.frames.put(frame)
            if frame.opcode == OP_PING and self.auto_pong:
                conn.send_pong(frame.payload)
            elif frame.opcode == OP_CLOSE:
                conn.send_frame(OP_CLOSE, frame.payload[:2])
                conn.close()
                return
            elif self.echo and frame.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                if frame.opcode != OP_CONT:
                    opcode, parts = frame.opcode, []
                parts.append(frame.payload)
                if frame.fin:
                    conn.send_frame(opcode, b"".join(parts))


# ------------------------------------------------------------------------- pushing


class Pusher:
    """Push ``data`` into a socket from a thread and notice when the peer stops reading.

    ``stalled`` is set once no byte could be written for ``stall_after`` seconds;
    ``sent_at_stall`` is the byte count at that moment.  The pusher keeps trying
    afterwards and sets ``done`` when everything was written.
    """

    def __init__(self, sock: socket.socket, data: bytes, stall_after: float) -> None:
        self.sock = sock
        self.data = memoryview(data)
        self.stall_after = stall_after
        self.sent = 0
        self.sent_at_stall: int | None = None
        self.stalled = threading.Event()
        self.done = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rawpeer-pusher")
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLOUT)
        last_progress = time.monotonic()
        try:
            while self.sent < len(self.data) and not self.stop.is_set():
                if poller.poll(int(_POLL * 1000)):
                    try:
                        n = self.sock.send(
                            self.data[self.sent : self.sent + (1 << 16)], socket.MSG_DONTWAIT
                        )
                    except BlockingIOError:
                        n = 0
                    if n:
                        self.sent += n
                        last_progress = time.monotonic()
                if (
                    not self.stalled.is_set()
                    and time.monotonic() - last_progress > self.stall_after
                ):
                    self.sent_at_stall = self.sent
                    self.stalled.set()
            if self.sent == len(self.data):
                self.done.set()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = PEER_TIMEOUT) -> None:
        self.stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "pusher thread did not stop"


# -------------------------------------------------------------------- raw client side
#
# The other direction, for testing a server: a hand-made HTTP upgrade request, a
# reader for whatever HTTP response comes back, and a client connection that masks
# its frames (or deliberately does not).


def upgrade_request(
    host: str,
    resource: str = "/",
    *,
    method: str = "GET",
    version: str | None = "13",
    key: str | None = None,
    upgrade: bool = True,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """An HTTP/1.1 WebSocket upgrade request (or a plain GET with ``upgrade=False``)."""
    lines = [f"{method} {resource} HTTP/1.1", f"Host: {host}"]
    if upgrade:
        nonce = key if key is not None else base64.b64encode(os.urandom(16)).decode("ascii")
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {nonce}"]
        if version is not None:
            lines.append(f"Sec-WebSocket-Version: {version}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class HttpResponse:
    """An HTTP response as a raw client received it."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    rest: bytes  # bytes after the body (frames after a 101, normally nothing otherwise)
    closed: bool  # the server closed the connection after the response

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def _recv_some(sock: socket.socket, deadline: float) -> bytes:
    """One recv bounded by ``deadline``; b"" at EOF (a reset counts as EOF)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("raw client: nothing received in time")
    sock.settimeout(remaining)
    try:
        return sock.recv(1 << 16)
    except ConnectionResetError:
        return b""


def read_http_response(
    sock: socket.socket, timeout: float = PEER_TIMEOUT, *, until_eof: bool = True
) -> HttpResponse:
    """Read a response head and its Content-Length body.

    With ``until_eof`` (for error responses) also wait for the server to close the
    connection and report whether it did (``closed``) within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    data = b""
    eof = False
    while b"\r\n\r\n" not in data:
        chunk = _recv_some(sock, deadline)
        if not chunk:
            raise PeerEOF(f"connection closed before a complete response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _version, status, *reason = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    response = HttpResponse(int(status), reason[0] if reason else "", headers, b"", rest, False)
    length = response.header("Content-Length")
    if length is not None:
        while len(rest) < int(length):
            chunk = _recv_some(sock, deadline)
            if not chunk:
                eof = True
                break
            rest += chunk
        response.body, response.rest = rest[: int(length)], rest[int(length) :]
    if until_eof:
        try:
            while not eof:
                chunk = _recv_some(sock, deadline)
                if not chunk:
                    eof = True
                elif length is None:
                    response.body += chunk
                else:
                    response.rest += chunk
        except TimeoutError:
            pass
    response.closed = eof
    return response


def wait_closed(sock: socket.socket, timeout: float = PEER_TIMEOUT) -> bytes:
    """Read until the other side closes the connection; return what was read.

    Raises TimeoutError if the connection is still open after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        chunk = _recv_some(sock, deadline)
        if not chunk:
            return data
        data += chunk


class ClientPeerConnection(PeerConnection):
    """The client end of a raw connection: frames are masked unless ``mask=None`` is given.

    ``response``: the server's answer to the opening handshake, when :func:`raw_client`
    made the connection.
    """

    response: HttpResponse | None = None

    def send_frame(self, opcode: int, payload: bytes = b"", **kwargs: object) -> None:
        kwargs.setdefault("mask", os.urandom(4))
        super().send_frame(opcode, payload, **kwargs)

    def close_handshake(self, timeout: float = PEER_TIMEOUT) -> Frame:
        """Send a close frame, wait for the server's, then for the server to close TCP."""
        self.send_close(1000)
        frame = self.expect_close(timeout)
        self.wait_eof(timeout)
        self.close()
        return frame


def raw_client(
    port: int,
    resource: str = "/",
    *,
    host: str = "127.0.0.1",
    headers: Iterable[tuple[str, str]] = (),
    timeout: float = PEER_TIMEOUT,
    rcvbuf: int | None = None,
) -> ClientPeerConnection:
    """Open a WebSocket connection by hand; fail unless the server answers 101.

    ``rcvbuf``: a receive buffer size, set before connecting (so that the TCP window
    the client announces stays small). The 101 is the connection's ``response``.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        sock.sendall(upgrade_request(f"{host}:{port}", resource, key=key, headers=headers))
        response = read_http_response(sock, timeout, until_eof=False)
        assert response.status == 101, response
        assert response.header("Sec-WebSocket-Accept") == accept_key(key), response
    except BaseException:
        sock.close()
        raise
    conn = ClientPeerConnection(sock, None, response.rest)
    conn.response = response
    return conn
