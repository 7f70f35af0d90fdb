"""What the fuzz tests share: run sizes, figures, frames, a reference model, a socket pump.

* :func:`examples` and :func:`fuzz_settings`: how many examples a property runs
  (``SYNCWS_FUZZ_EXAMPLES`` scales them) and the hypothesis settings of every run;
  :func:`explicit_examples`: the examples every run tries first; :func:`fuzz_test`:
  all of them on one test, in its default or its long (``slow``) version.
* :func:`draining`: a syncws server that must be left with no connection and no
  thread of its own once a test's examples are over.
* :data:`HARD_VALUE_BYTES` and :data:`CONTROL_BYTES`: what a header value may not hold.
* :class:`Figures`: counts of what the examples did, reported through hypothesis'
  ``event()`` and, when ``SYNCWS_FUZZ_REPORT`` names a file, appended there as JSON.
* :func:`encode`: one frame with every field under control (RSV bits, reserved
  opcodes, non-minimal or impossible lengths, masked or not).
* :func:`expect`: a reference model of what RFC 6455 makes an endpoint do with a
  byte stream from its peer (the messages it delivers, the pings it answers, the
  close code it must send), written from the RFC and independent of wsproto.
* :func:`parse_output`: decode and check what the syncws side put on the wire.
* :class:`Pump`: send bytes on a raw socket while reading everything that comes back.
* :class:`ScriptedServer`: a raw TCP server that serves each connection with a job.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import queue
import re
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import WAIT, SyncwsServer, syncws_threads, wait_for
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    apply_mask,
)

__all__ = [
    "CONTROL_BYTES",
    "GENERIC_CODES",
    "HARD_VALUE_BYTES",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Expectation",
    "Figures",
    "Output",
    "Pump",
    "ScriptedServer",
    "draining",
    "encode",
    "examples",
    "expect",
    "explicit_examples",
    "fuzz_settings",
    "fuzz_test",
    "parse_output",
    "read_head",
]

# ------------------------------------------------------------------ run sizes

_Test = Callable[..., Any]


def examples(short: int, long: int, *, slow: bool, costly: bool = False) -> int:
    """Examples for one property: ``short`` in the default run, ``long`` under ``-m slow``.

    ``SYNCWS_FUZZ_EXAMPLES`` overrides: ``"4x"`` (or ``"x4"``, ``"0.5x"``) multiplies the
    count, a plain number (``"5000"``) sets it for every property except the
    ``costly`` ones (each of their examples waits for a timeout), which only scale.
    """
    count = long if slow else short
    spec = os.environ.get("SYNCWS_FUZZ_EXAMPLES", "").strip().lower()
    if not spec:
        return count
    if "x" in spec:
        return max(1, round(count * float(spec.replace("x", ""))))
    return count if costly else max(1, int(spec))


def fuzz_settings(max_examples: int) -> settings:
    """Settings of every fuzz property: no deadline, no example database."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=True,
        report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


def explicit_examples(cases: Iterable[Mapping[str, Any]]) -> Callable[[_Test], _Test]:
    """Decorate a hypothesis test with an ``@example(**case)`` for each of ``cases``.

    Explicit examples run first, on every run: each bug class the fuzzing found keeps
    one, so that finding it again does not depend on the draw.
    """

    def decorate(test: _Test) -> _Test:
        for case in reversed(list(cases)):
            test = example(**case)(test)
        return test

    return decorate


def fuzz_test(
    short: int,
    long: int,
    *,
    slow: bool,
    costly: bool = False,
    bugs: Iterable[Mapping[str, Any]] = (),
    timeout: float = 240,
    **strategies: st.SearchStrategy[Any],
) -> Callable[[_Test], _Test]:
    """Make a fuzz property of a test: ``@given(**strategies)``, its :func:`fuzz_settings`
    with :func:`examples` ``(short, long, slow=slow, costly=costly)``, the explicit
    examples ``bugs``; the long version (``slow``) is marked slow, with ``timeout``.

    Each property has a default and a long version, two tests that differ only there.
    """

    def decorate(test: _Test) -> _Test:
        test = given(**strategies)(test)
        test = fuzz_settings(examples(short, long, slow=slow, costly=costly))(test)
        test = explicit_examples(bugs)(test)
        if slow:
            test = pytest.mark.timeout(timeout)(test)
            test = pytest.mark.slow(test)
        return test

    return decorate


@contextlib.contextmanager
def draining(srv: SyncwsServer) -> Iterator[SyncwsServer]:
    """``srv`` for all the examples of a test; then it must have no connection left,
    and no more syncws threads may run than when it came."""
    threads_before = len(syncws_threads())
    yield srv
    wait_for(lambda: not srv.server.connections, what="the server's connections to drain")
    wait_for(lambda: len(syncws_threads()) <= threads_before, what="syncws threads to end")


#: Bytes no header value may hold (a parser must refuse them): NUL, CR, VT, FF.
HARD_VALUE_BYTES = re.compile(rb"[\x00\x0b\x0c\r]")
#: Control bytes (besides HTAB) that a header value should not hold.
CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class Figures:
    """What one fuzz test saw: labelled counts, examples, wall time.

    :meth:`note` also reports each label through hypothesis' ``event()``, so that
    ``--hypothesis-show-statistics`` shows them. :meth:`save` appends a JSON line to
    the file named by ``SYNCWS_FUZZ_REPORT`` (nothing when it is unset).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: Counter[str] = Counter()
        self.examples = 0
        self.started = time.monotonic()

    def note(self, *labels: str) -> None:
        for label in labels:
            self.counts[label] += 1
            event(label)

    def save(self) -> None:
        path = os.environ.get("SYNCWS_FUZZ_REPORT")
        if not path:
            return
        record = {
            "test": self.name,
            "examples": self.examples,
            "seconds": round(time.monotonic() - self.started, 2),
            "counts": dict(sorted(self.counts.items())),
        }
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------- frames

OPCODES = frozenset([OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG])
#: Close codes a peer may send (RFC 6455, section 7.4): an endpoint accepts them.
PEER_CODES = frozenset([1000, 1001, 1002, 1003, *range(1007, 1012), *range(3000, 5000)])
#: Registered with IANA after RFC 6455: an endpoint may accept them or fail with 1002.
LATER_CODES = frozenset([1012, 1013, 1014])
#: Codes syncws may put on the wire itself (it never sends 1005, 1006 or 1015).
SENDABLE_CODES = PEER_CODES | LATER_CODES
#: What syncws sends when the model cannot say exactly which failure comes first.
GENERIC_CODES = frozenset([1000, 1002, 1007, 1009, 1011])


def encode(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    width: int | None = None,
    length: int | None = None,
) -> bytes:
    """Encode one frame.

    :param width: bytes of the extended length (``0``, ``2`` or ``8``); ``None`` for
        the minimal encoding. A wider one than needed is a protocol error.
    :param length: announce this payload length instead of the real one.
    """
    n = len(payload) if length is None else length
    if width is None:
        width = 0 if n < 126 else 2 if n < 1 << 16 else 8
    first = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mask_bit = 0x80 if mask is not None else 0
    if width == 0:
        header = bytes([first, mask_bit | (n & 0x7F)])
    elif width == 2:
        header = bytes([first, mask_bit | 126]) + struct.pack("!H", n & 0xFFFF)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack("!Q", n & (2**64 - 1))
    if mask is None:
        return header + payload
    return header + mask + apply_mask(payload, mask)


def close_code_ok(code: int) -> bool:
    return code in SENDABLE_CODES


# ---------------------------------------------------------------- the reference model


@dataclass
class Expectation:
    """What a conforming endpoint does with a byte stream from its peer.

    ``end`` tells how the stream ends for the receiver:

    ``"open"``
        every byte was consumed, at a frame boundary, with no error and no close
        frame: the connection is still open.
    ``"partial"``
        the stream stops inside a frame. When that frame's visible part already
        breaks the protocol (``codes`` not empty), the endpoint may or may not have
        noticed before the end of the stream.
    ``"fault"``
        the peer broke the protocol: the endpoint fails the connection with one of
        ``codes``.
    ``"close"``
        a valid close frame ended the stream: the endpoint answers with one of
        ``codes`` (``None``: an empty close frame, for one that had no code).
    """

    messages: list[str | bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    end: str = "open"
    codes: frozenset[int | None] = frozenset()
    #: The close frame's code and reason when ``end == "close"``.
    peer_close: tuple[int | None, str] | None = None
    #: False when the model cannot decide the details (only generic checks apply).
    exact: bool = True
    #: Why the stream ended, for the figures.
    why: str = ""


def _ends(exp: Expectation, end: str, codes: set[int | None], why: str) -> Expectation:
    exp.end = end
    exp.codes = frozenset(codes)
    exp.why = why
    return exp


def expect(data: bytes, *, masked: bool, max_size: int) -> Expectation:
    """Apply the receiving rules of RFC 6455 to ``data`` from the peer.

    :param masked: whether the peer must mask (it is a client) or must not.
    :param max_size: the receiver's largest message; a larger one fails with 1009.
    """
    exp = Expectation()
    pos, end = 0, len(data)
    opcode: int | None = None  # of the message being assembled
    decoder: codecs.IncrementalDecoder | None = None
    parts: list[Any] = []
    size = 0
    while pos < end:
        # -- the header: each check needs only the bytes it looks at.
        faults = []
        first = data[pos]
        fin, rsv, op = bool(first & 0x80), (first >> 4) & 7, first & 0xF
        control = op >= 8
        if op not in OPCODES:
            faults.append("reserved opcode")
        if control and not fin:
            faults.append("fragmented control frame")
        if pos + 2 > end:
            return _ends(exp, "partial", {1002} if faults else set(), "truncated header")
        second = data[pos + 1]
        has_mask, short = bool(second & 0x80), second & 0x7F
        if control and short > 125:
            faults.append("control frame over 125 bytes")
        head = 2
        length = short
        if short in (126, 127):
            width = 2 if short == 126 else 8
            if pos + 2 + width > end:
                return _ends(exp, "partial", {1002} if faults else set(), "truncated length")
            raw = data[pos + 2 : pos + 2 + width]
            length = int.from_bytes(raw, "big")
            head += width
            if length < (126 if width == 2 else 1 << 16):
                faults.append("non-minimal length")
            if length >> 63:
                faults.append("64-bit length with the top bit set")
        if rsv:
            faults.append("RSV bit")
        if has_mask != masked:
            faults.append("masked frame" if has_mask else "unmasked frame")
        if faults:
            return _ends(exp, "fault", {1002}, faults[0])
        key = b""
        if has_mask:
            if pos + head + 4 > end:
                return _ends(exp, "partial", set(), "truncated mask key")
            key = data[pos + head : pos + head + 4]
            head += 4
        body_start = pos + head
        available = min(length, end - body_start)
        complete = available == length
        payload = data[body_start : body_start + available]
        if key:
            payload = apply_mask(payload, key)
        pos = body_start + available

        # -- control frames act once complete.
        if control:
            if not complete:
                return _ends(exp, "partial", set(), "truncated control frame")
            if op == OP_PING:
                exp.pings.append(payload)
            elif op == OP_CLOSE:
                return _close(exp, payload)
            continue

        # -- data frames: sequence, UTF-8 and size, as the payload arrives.
        seen = complete or available > 0  # a receiver looks at a frame with payload
        if op == OP_CONT and opcode is None:
            if not seen:
                return _ends(exp, "partial", {1002}, "truncated continuation")
            return _ends(exp, "fault", {1002}, "continuation outside a message")
        if op != OP_CONT and opcode is not None:
            if not seen:
                return _ends(exp, "partial", {1002}, "truncated frame")
            return _ends(exp, "fault", {1002}, "new message inside a fragmented one")
        if op != OP_CONT:
            opcode, parts, size = op, [], 0
            decoder = codecs.getincrementaldecoder("utf-8")() if op == OP_TEXT else None
        final = complete and fin
        chunk: str | bytes = payload
        bad_utf8_at: int | None = None
        if decoder is not None:
            try:
                chunk = decoder.decode(payload, final)
            except UnicodeDecodeError as exc:
                bad_utf8_at = size + exc.start
        new_size = size + len(payload)
        too_big = new_size > max_size
        if bad_utf8_at is not None:
            # The receiver counts the size as the payload arrives, in any slices:
            # past the limit before the bad bytes, either failure may come first.
            codes = {1007} if bad_utf8_at <= max_size else {1007, 1009}
            return _ends(exp, "fault", codes, "invalid UTF-8")
        if too_big:
            if decoder is not None and new_size - max_size <= 3:
                exp.exact = False  # a character split across frames may defer the count
            return _ends(exp, "fault", {1009}, "message too big")
        parts.append(chunk)
        size = new_size
        if not complete:
            return _ends(exp, "partial", set(), "truncated data frame")
        if fin:
            exp.messages.append("".join(parts) if opcode == OP_TEXT else b"".join(parts))
            opcode, decoder, parts, size = None, None, [], 0
    return _ends(exp, "open", set(), "open")


def _close(exp: Expectation, payload: bytes) -> Expectation:
    """A complete close frame from the peer (RFC 6455, sections 5.5.1 and 7.4)."""
    if not payload:
        exp.peer_close = (None, "")
        return _ends(exp, "close", {None}, "close without a code")
    if len(payload) == 1:
        return _ends(exp, "fault", {1002}, "close with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        reason = None
    if code in PEER_CODES:
        if reason is None:
            return _ends(exp, "fault", {1007}, "invalid UTF-8 in the close reason")
        exp.peer_close = (code, reason)
        return _ends(exp, "close", {code}, "close")
    if code in LATER_CODES:
        exp.peer_close = (code, reason or "")
        return _ends(exp, "close", {code, 1002} if reason is not None else {1007, 1002}, "close")
    return _ends(exp, "fault", {1002}, "invalid close code")


# ------------------------------------------------------------- the syncws side's output


@dataclass
class Output:
    """Frames an endpoint under test sent, decoded and checked."""

    messages: list[str | bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    #: The close frame's (code, reason); code None for an empty close frame.
    close: tuple[int | None, str] | None = None
    problems: list[str] = field(default_factory=list)
    #: The stream stopped inside a frame.
    truncated: bool = False


def parse_output(data: bytes, *, masked: bool) -> Output:
    """Decode ``data`` as frames from a conforming endpoint; list every rule broken.

    :param masked: whether the sender must mask (a client) or must not (a server).
    """
    out = Output()
    pos, end = 0, len(data)
    opcode: int | None = None
    parts: list[bytes] = []
    while pos < end:
        if out.close is not None:
            out.problems.append(f"{end - pos} bytes after the close frame")
            break
        if pos + 2 > end:
            out.truncated = True
            break
        first, second = data[pos], data[pos + 1]
        fin, rsv, op = bool(first & 0x80), (first >> 4) & 7, first & 0xF
        has_mask, length = bool(second & 0x80), second & 0x7F
        head = 2
        if length in (126, 127):
            width = 2 if length == 126 else 8
            if pos + 2 + width > end:
                out.truncated = True
                break
            length = int.from_bytes(data[pos + 2 : pos + 2 + width], "big")
            head += width
            if length < (126 if width == 2 else 1 << 16) or length >> 63:
                out.problems.append(f"length {length} encoded in {width} bytes")
        if has_mask:
            head += 4
        if pos + head + length > end:
            out.truncated = True
            break
        payload = data[pos + head : pos + head + length]
        if has_mask:
            payload = apply_mask(payload, data[pos + head - 4 : pos + head])
        pos += head + length
        if has_mask != masked:
            out.problems.append("masked frame" if has_mask else "unmasked frame")
        if rsv:
            out.problems.append(f"RSV bits {rsv:#o}")
        if op not in OPCODES:
            out.problems.append(f"reserved opcode {op:#x}")
            continue
        if op >= 8:
            if not fin or length > 125:
                out.problems.append(f"bad control frame (fin={fin}, length={length})")
            if op == OP_PONG:
                out.pongs.append(payload)
            elif op == OP_PING:
                out.pings.append(payload)
            else:
                out.close = _decode_close(payload, out.problems)
            continue
        if (op == OP_CONT) != (opcode is not None):
            out.problems.append(f"opcode {op:#x} out of sequence")
            continue
        if op != OP_CONT:
            opcode, parts = op, []
        parts.append(payload)
        if fin:
            message = b"".join(parts)
            if opcode == OP_TEXT:
                try:
                    out.messages.append(message.decode("utf-8"))
                except UnicodeDecodeError:
                    out.problems.append("text message with invalid UTF-8")
            else:
                out.messages.append(message)
            opcode = None
    return out


def _decode_close(payload: bytes, problems: list[str]) -> tuple[int | None, str]:
    if not payload:
        return None, ""
    if len(payload) == 1:
        problems.append("close frame with a 1-byte payload")
        return None, ""
    code = int.from_bytes(payload[:2], "big")
    if not close_code_ok(code):
        problems.append(f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        problems.append("close reason with invalid UTF-8")
        reason = ""
    return code, reason


# --------------------------------------------------------------------------- the pump


class Hang(AssertionError):
    """The endpoint under test neither answered nor closed in time."""


class Pump:
    """Drive a raw socket against a deadline: send while reading everything that arrives.

    ``received`` holds every byte read; ``eof`` is set at end of stream (``reset``
    too when it was a reset). A send that fails because the other side is gone sets
    ``send_failed`` instead of raising. Every wait raises :class:`Hang` once the
    deadline passed.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.deadline = time.monotonic() + timeout
        self.received = bytearray()
        self.eof = False
        self.reset = False
        self.send_failed = False
        self._poll = select.poll()
        self._mask = 0

    def _wait(self, write: bool, what: str, quiet: bool = False) -> tuple[bool, bool]:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            if quiet:
                return False, False
            raise Hang(f"timed out {what}; received so far: {bytes(self.received[:300])!r}")
        mask = (0 if self.eof else select.POLLIN) | (select.POLLOUT if write else 0)
        if mask != self._mask:
            if self._mask:
                self._poll.modify(self.sock, mask)
            else:
                self._poll.register(self.sock, mask)
            self._mask = mask
        ready = 0
        for _, events in self._poll.poll(max(1, int(remaining * 1000))):
            ready |= events
        failed = bool(ready & (select.POLLERR | select.POLLHUP))
        return bool(ready & select.POLLIN) or failed, bool(ready & select.POLLOUT) or failed

    def _read(self) -> None:
        if self.eof:
            return
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            self.eof = self.reset = True
            return
        if chunk:
            self.received += chunk
        else:
            self.eof = True

    def send(self, data: bytes) -> None:
        """Send ``data`` (reading meanwhile); stop early if the peer is gone."""
        view = memoryview(data)
        while view and not self.send_failed:
            readable, writable = self._wait(True, "sending")
            if readable:
                self._read()
            if writable:
                try:
                    sent = self.sock.send(view)
                except BlockingIOError:
                    continue
                except OSError:
                    self.send_failed = True
                    return
                view = view[sent:]

    def wait_until(
        self, predicate: Callable[[bytes], bool], what: str, timeout: float | None = None
    ) -> bool:
        """Read until ``predicate(received)`` holds or the stream ends; return whether it holds.

        With ``timeout``, give up quietly after that many seconds (returning False)
        instead of raising :class:`Hang` at the pump's deadline.
        """
        saved = self.deadline
        if timeout is not None:
            self.deadline = min(saved, time.monotonic() + timeout)
        try:
            while not self.eof and not predicate(bytes(self.received)):
                if timeout is not None and time.monotonic() >= self.deadline:
                    return False
                readable, _ = self._wait(False, what, quiet=timeout is not None)
                if readable:
                    self._read()
        finally:
            self.deadline = saved
        return predicate(bytes(self.received))

    def shutdown_write(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def read_to_eof(self, what: str = "waiting for the end of the stream") -> None:
        while not self.eof:
            readable, _ = self._wait(False, what)
            if readable:
                self._read()


def read_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split an HTTP message at the end of its head: (head, rest), or None if incomplete."""
    index = data.find(b"\r\n\r\n")
    if index < 0:
        return None
    return data[:index], data[index + 4 :]


# --------------------------------------------------------------- a scripted raw server


Job = Callable[[socket.socket], Any]


class ScriptedServer:
    """A raw TCP server on 127.0.0.1 that serves each connection with the next job.

    :meth:`serve` queues a job (a callable taking the accepted socket, run in the
    server thread, which closes the socket afterwards); :meth:`result` returns what
    the last job queued returned, or raises what it raised (results of earlier jobs
    that nobody collected, after a failed example, are dropped). One server serves
    a whole test.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        self._jobs: queue.Queue[tuple[int, Job]] = queue.Queue()
        self._results: queue.Queue[tuple[int, bool, Any]] = queue.Queue()
        self._last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-raw-server")
        self._thread.start()

    def serve(self, job: Job) -> None:
        self._last += 1
        self._jobs.put((self._last, job))

    def result(self, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                number, ok, value = self._results.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise AssertionError("the raw server did not finish its job in time") from None
            if number == self._last:
                break
        if not ok:
            raise value
        return value

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                number, job = self._jobs.get(timeout=0.05)
            except queue.Empty:
                continue
            if number != self._last:
                continue  # queued by an example that failed before connecting
            sock = None
            while sock is None and not self._stop.is_set():
                try:
                    sock, _ = self.listener.accept()
                except TimeoutError:
                    continue
            if sock is None:
                return
            try:
                self._results.put((number, True, job(sock)))
            except BaseException as exc:
                self._results.put((number, False, exc))
            finally:
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.listener.close()
        assert not self._thread.is_alive(), "the raw server thread did not stop"
