"""Everything syncws takes from wsproto beyond its documented API, in one module.

syncws is built on wsproto's public API, which is imported where it is used:
:class:`wsproto.WSConnection`, the events of :mod:`wsproto.events`,
:class:`wsproto.connection.ConnectionState` and
:class:`wsproto.utilities.RemoteProtocolError`. A few things syncws needs are not in
that API. Every use of a private name of wsproto, or of behaviour that wsproto does
not document, is here, behind small typed functions, so that a wsproto release that
changes them breaks this module, at import, and nothing else.

Supported versions
    :data:`~._wsproto_version.SUPPORTED` (in :mod:`._wsproto_version`, re-exported
    here) is the range of wsproto versions this module was written and tested for;
    importing syncws with another version raises :exc:`ImportError` unless
    ``SYNCWS_ALLOW_ANY_WSPROTO=1`` is set. :func:`check_internals` then checks, also
    at import, that the private attributes listed below are there and behave as
    expected; a wsproto that changed them raises :exc:`ImportError` whatever the
    environment says, since syncws could not work with it.

Private names and undocumented behaviour used, all of them in this module:

``Connection._proto.extensions`` (:func:`negotiated_extensions`)
    The extensions in force on an open connection. wsproto enables an offered
    extension only if the handshake negotiated it, and does not say publicly which
    ones it kept; syncws needs to know, to frame and parse uncompressed data frames
    itself (:mod:`._framing`) and for ``WebSocketConnection.extensions``. *Removed
    by:* a public read-only ``extensions`` attribute on wsproto's ``Connection``.
    (Without an upstream change, the engine's handshake events carry the same
    answer: ``AcceptConnection.extensions`` on the client, ``Extension.enabled()``
    on the server; it would have to be carried to the connection.)

``H11Handshake._nonce`` (:func:`client_engine`)
    syncws writes the upgrade request itself (:mod:`._upgrade`), with a key of its
    own, and reads a plain ``101`` itself. Any other response (an interim one, a
    rejection, an unusual head) is read by wsproto's engine, which checks a ``101``
    against the key *it* made: the engine is given syncws's key in its place.
    *Removed by:* a documented way to give the handshake engine a key, or a public
    HTTP-free reader of responses.

The state of ``PerMessageDeflate`` (:class:`DeflateBase`)
    Its attributes ``_enabled``, ``_compressor``, ``_decompressor``,
    ``_inbound_compressed`` and ``_inbound_is_compressible``. syncws's
    permessage-deflate (``_deflate.BoundedDeflate``) negotiates more strictly than
    wsproto (RFC 7692, section 7) and inflates with an output bound, so that a small
    compressed frame cannot expand to gigabytes. wsproto's class has no hook for
    either: the subclass replaces ``accept`` and ``finalize``, which must mark the
    extension enabled, and the inflating, which reads and resets the inflater and
    the flags of the message being received. *Removed by:* a documented way for a
    subclass to enable the extension, and a bound on the inflated size of a message
    in wsproto's own ``PerMessageDeflate``.

``wsproto.frame_protocol``
    ``CloseReason``, ``Opcode``, ``RsvBits``, ``FrameDecoder`` and ``FrameProtocol``:
    the types in the signatures of ``Extension``'s methods, which a subclass
    overrides; wsproto's documentation does not cover that module. Re-exported
    here. *Removed by:* documenting them with ``wsproto.extensions``.

The exception behind a :exc:`~wsproto.utilities.RemoteProtocolError` (:func:`http_status_hint`)
    wsproto raises its error for an HTTP message that h11 refused while handling
    h11's error, without passing on its status (431 for a head that is too large,
    where wsproto's hint says 400). The status is read from the error wsproto was
    handling (``__context__``). *Removed by:* wsproto putting h11's status in its
    ``event_hint``.

The text of a handshake error (:func:`missing_upgrade`)
    Which check of the upgrade request failed is only in the error's message: a
    request without ``Connection: Upgrade`` or ``Upgrade: websocket`` (a plain HTTP
    request) deserves 426, not 400. *Removed by:* an error code, or a 426 hint, in
    wsproto's error.

:exc:`UnicodeError` from ``receive_data`` (:data:`HANDSHAKE_ERRORS`)
    wsproto decodes some handshake headers itself (``Host`` as IDNA on the server;
    ``Connection``, ``Sec-WebSocket-Extensions`` and ``-Protocol`` as ASCII) and
    lets the decoding error out instead of raising ``RemoteProtocolError``.
    *Removed by:* wsproto wrapping it.

Close code 1014 (:func:`accept_close_code_1014`)
    wsproto takes a peer's close code below 3000 only if its ``CloseReason`` enum has
    it (``FrameProtocol._process_close``: the range 1000-4999, then
    ``CloseReason(code)``, then ``isinstance``), and the enum stops at 1013 (besides
    1015). Code 1014 (Bad Gateway), registered with IANA after RFC 6455 as 1012 and
    1013 were, would fail the connection with 1002. At import, this module gives the
    enum a ``_missing_`` hook, the :mod:`enum` module's documented hook for values an
    enum lacks, which answers 1014 with a member made here, ``BAD_GATEWAY``; every
    other unknown value still raises :exc:`ValueError`. Nothing of wsproto is
    replaced: its check then lets 1014 through like 1012, and the ``CloseConnection``
    event carries it (sending 1014 needed nothing). The hook is set on wsproto's class,
    so ``CloseReason(1014)`` works for every user of wsproto in the process once syncws
    is imported, as it would with the upstream change. :func:`check_internals` feeds a
    close frame with 1014 to a wsproto connection and refuses to import if it is not
    reported as received. *Removed by:* ``BAD_GATEWAY = 1014`` in wsproto's
    ``CloseReason``: the change in ``docs/upstream/wsproto-close-1014.patch``, ready to
    submit (see "Upstream changes" in ``docs/topics/conformance.rst``). With it, no
    hook is set.

Interim responses are reported as rejections (:func:`interim_status`)
    wsproto's client reports an interim ``1xx`` response other than ``101`` (``100
    Continue``, ``103 Early Hints``) as a ``RejectConnection`` without a body, and
    moves to ``CLOSED``, but goes on parsing what follows: the ``101`` after it still
    gives ``AcceptConnection`` and the open connection, with the bytes behind the
    ``101``. RFC 9110, section 15.2, has a client skip interim responses before the
    final one; ``_client_handshake`` skips those events (at most a few, within the
    bound on the size of the response's head). :func:`check_internals` checks that
    a ``101`` behind a ``100`` is still accepted. *Removed by:* wsproto skipping
    interim responses, or reporting them with an event of their own.

The frame decoder's unmasking (:func:`unmask_with`)
    wsproto unmasks a client's frames in pure Python (``XorMaskerSimple``, four
    ``bytes.translate`` calls per piece), which costs about half of a server's CPU
    receiving a large fragmented message (the frames syncws's own parser leaves to
    wsproto: those of a message streamed past ``max_message_size``). With the C
    speedup built, :func:`unmask_with` wraps one engine's ``FrameProtocol._frame_decoder``
    ``.parse_header`` (on that instance only) so that, once a masked frame's header is
    parsed, its ``masker`` is replaced by one that gives the same bytes with the C
    function, starting from the key in ``XorMaskerSimple._masking_key``. Any other
    masker (a faster one of wsproto's own), or a decoder without these attributes, is
    left alone: wsproto then unmasks the frames itself. :func:`check_internals` checks
    that a masked frame read in two pieces comes out right. *Removed by:* a faster
    masker in wsproto.

Workarounds elsewhere in syncws, for what wsproto does not check or does not give:

The opening handshake's head is split again
    ``_http.check_request_head`` (called by ``_read_request.receive_request``) and
    ``_http.split_head`` (called by ``client._check_response_head``) split the
    header block that h11 parsed and wsproto accepted a second time. wsproto reads
    the headers that may appear once into single values, the last one winning:
    ``Host``, ``Upgrade``, ``Sec-WebSocket-Key`` and ``-Version`` in a request,
    ``Sec-WebSocket-Accept``, ``-Protocol`` and ``-Extensions`` in a response. It
    leaves ``Host`` out of the ``Request`` event's ``extra_headers``, and all three
    out of ``AcceptConnection.extra_headers``, so a repeated one cannot be seen in
    what it hands over. Neither wsproto nor h11 gives the raw lines either, so
    obs-fold continuation lines (h11 unfolds them; RFC 9112 wants a server to
    refuse them or replace them), the number of lines and control characters in
    values cannot be checked from the events. wsproto also does not check the
    request's HTTP version, target form, body or the form of ``Sec-WebSocket-Key``.
    syncws splits the head only to refuse what wsproto let through (400, 431, or a
    failed client handshake). *Removed by:* wsproto refusing repeated single-valued
    handshake headers and checking the rest of RFC 6455, sections 4.1 and 4.2.1, or
    handing over h11's full header list, repeated headers included, in its
    ``Request`` and ``AcceptConnection`` events (obs-fold and line counts would
    still need h11 to refuse or report them).

``Host`` is encoded back (``request._host_bytes``)
    wsproto's ``Request.host`` is the header decoded as IDNA; syncws encodes it back
    for ``WebSocketRequest.headers``. *Removed by:* the raw header in the event.

The bytes after the upgrade request (``request.WebSocketRequest.accept``)
    On the client, wsproto hands the bytes h11 read past the ``101`` response to the
    open connection (``Connection``'s ``trailing_data``); on the server it drops
    those after the request. syncws keeps them (``_read_request.receive_request``) and
    feeds them to the engine itself after sending the ``101``. If wsproto passed
    them on the server too, they would be parsed twice: the tests of frames sent
    right behind the handshake would fail. *Removed by:* wsproto passing h11's
    trailing data on the server as on the client.

"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from wsproto import WSConnection
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, Request
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    RsvBits,
    XorMaskerSimple,
)
from wsproto.utilities import RemoteProtocolError

from ._framing import apply_mask
from ._wsproto_version import (
    ALLOW_ANY_VARIABLE,
    BELOW,
    LOWEST,
    SUPPORTED,
    check_version,
    installed_version,
    supports,
)

if TYPE_CHECKING:
    from zlib import _Compress, _Decompress

__all__ = [
    "ALLOW_ANY_VARIABLE",
    "BAD_GATEWAY",
    "BELOW",
    "HANDSHAKE_ERRORS",
    "LOWEST",
    "SUPPORTED",
    "CloseReason",
    "DeflateBase",
    "FrameDecoder",
    "FrameProtocol",
    "Opcode",
    "RsvBits",
    "accept_close_code_1014",
    "check_internals",
    "check_version",
    "client_engine",
    "http_status_hint",
    "installed_version",
    "interim_status",
    "is_peer_close",
    "missing_upgrade",
    "negotiated_extensions",
    "supports",
    "unmask_with",
]

#: What wsproto's ``receive_data`` raises during the opening handshake on bad input:
#: its own error, and :exc:`UnicodeError` for a header it could not decode.
HANDSHAKE_ERRORS = (RemoteProtocolError, UnicodeError)

#: Close code 1014, Bad Gateway, in the IANA "WebSocket Close Code Number Registry"
#: since 2016, after RFC 6455 (see :func:`accept_close_code_1014`).
BAD_GATEWAY = 1014

#: What :func:`check_internals` feeds wsproto: a server's close frame with code 1014,
#: and the head of a response that starts with an interim 100.
_CLOSE_1014 = b"\x88\x02" + BAD_GATEWAY.to_bytes(2, "big")
_CONTINUE_THEN_101 = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: %s\r\n\r\n"
)
_KEY = re.compile(rb"\r\nSec-WebSocket-Key: *([!-~]+)", re.IGNORECASE)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The private attributes of PerMessageDeflate that DeflateBase reads or writes.
_DEFLATE_STATE = (
    "_enabled",
    "_compressor",
    "_decompressor",
    "_inbound_compressed",
    "_inbound_is_compressible",
)


def check_internals() -> None:
    """Check that the private parts of wsproto that this module uses are there.

    :raises ImportError: naming what is missing or changed, and the installed
        wsproto version.
    """
    problems = []
    proto = getattr(Connection(ConnectionType.SERVER), "_proto", None)
    if not isinstance(getattr(proto, "extensions", None), list):
        problems.append("Connection._proto.extensions (a list)")
    deflate = PerMessageDeflate()
    problems.extend(
        f"PerMessageDeflate.{name}" for name in _DEFLATE_STATE if not hasattr(deflate, name)
    )
    if not problems:
        deflate._enabled = True
        if deflate.enabled() is not True:
            problems.append("PerMessageDeflate.enabled() reading PerMessageDeflate._enabled")
    if not problems and not _receives_close_code_1014():
        problems.append("close code 1014 let through by CloseReason._missing_")
    if not problems and not _takes_a_key():
        problems.append("H11Handshake._nonce (the key of the client's request)")
    if not problems and not _accepts_101_after_interim():
        problems.append("a 101 accepted after an interim 100 response")
    if not problems and not _unmasks_alike():
        problems.append("a masked frame read right with unmask_with")
    if problems:
        raise ImportError(
            f"wsproto {installed_version()} lacks internals that syncws relies on: "
            f"{', '.join(problems)}; syncws supports wsproto {SUPPORTED}"
        )


def accept_close_code_1014() -> None:
    """Have wsproto take close code 1014 (Bad Gateway) from a peer, as it takes 1012 and 1013.

    Gives ``wsproto.frame_protocol.CloseReason`` a ``_missing_`` hook that answers
    :data:`BAD_GATEWAY` with a member named ``BAD_GATEWAY``, made once here, and passes
    any other value to the hook it had. Does nothing when ``CloseReason(1014)`` works
    already: a wsproto that knows the code, or a second call.
    """
    try:
        CloseReason(BAD_GATEWAY)
    except ValueError:
        pass
    else:
        return
    # A member made as the enum module makes its pseudo-members: an int of the class
    # with the enum's name and value attributes.
    member = int.__new__(CloseReason, BAD_GATEWAY)
    member._name_ = "BAD_GATEWAY"
    member._value_ = BAD_GATEWAY
    previous = CloseReason._missing_

    def missing(cls: type[CloseReason], value: object) -> CloseReason | None:
        if value == BAD_GATEWAY:
            return member
        found: CloseReason | None = previous(value)
        return found

    CloseReason._missing_ = classmethod(missing)  # type: ignore[assignment,method-assign]


def _receives_close_code_1014() -> bool:
    """Whether a wsproto connection reports a close frame with code 1014 as received."""
    connection = Connection(ConnectionType.CLIENT)
    try:
        connection.receive_data(_CLOSE_1014)
        events = list(connection.events())
    except Exception:  # A wsproto that changed may fail in any way.
        return False
    return (
        len(events) == 1
        and isinstance(events[0], CloseConnection)
        and events[0].code == BAD_GATEWAY
        and connection.state is ConnectionState.REMOTE_CLOSING
    )


def _accepts_101_after_interim() -> bool:
    """Whether wsproto's client accepts a 101 that follows an interim 100 response.

    Before the ``AcceptConnection``, only events that :func:`interim_status` recognises
    may come (none, from a wsproto that skips interim responses itself).
    """
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        key = _KEY.search(ws.send(Request(host="localhost", target="/")))
        if key is None:
            return False
        digest = hashlib.sha1(key[1] + _GUID, usedforsecurity=False).digest()
        ws.receive_data(_CONTINUE_THEN_101 % base64.b64encode(digest))
        events = list(ws.events())
    except Exception:  # A wsproto that changed may fail in any way.
        return False
    if not events:
        return False
    *interim, last = events
    return isinstance(last, AcceptConnection) and all(
        isinstance(event, RejectConnection) and interim_status(event) == 100 for event in interim
    )


def _unmasks_alike() -> bool:
    """Whether an engine given :func:`unmask_with` reads a masked frame right, in pieces.

    Whoever unmasks it: a wsproto with another masker is left to use its own.
    """
    payload = b"unmasked in two pieces"
    key = b"\x01\x82\x43\xf4"
    frame = b"\x82" + bytes([0x80 | len(payload)]) + key + apply_mask(payload, key)
    engine = Connection(ConnectionType.SERVER)
    try:
        if not unmask_with(engine, apply_mask):
            return False
        data = b""
        for piece in (frame[:11], frame[11:]):
            engine.receive_data(piece)
            data += b"".join(bytes(getattr(event, "data", b"")) for event in engine.events())
    except Exception:  # A wsproto that changed may fail in any way.
        return False
    return data == payload


def _takes_a_key() -> bool:
    """Whether a client engine given a key by :func:`client_engine` accepts its answer."""
    key = b"c3luY3dzIGtleSBjaGVjayE="
    try:
        ws = client_engine(Request(host="localhost", target="/"), key)
        digest = hashlib.sha1(key + _GUID, usedforsecurity=False).digest()
        ws.receive_data(_CONTINUE_THEN_101.split(b"\r\n\r\n", 1)[1] % base64.b64encode(digest))
        events = list(ws.events())
    except Exception:  # A wsproto that changed may fail in any way.
        return False
    return len(events) == 1 and isinstance(events[0], AcceptConnection)


def interim_status(event: RejectConnection) -> int | None:
    """Return the status of the interim response ``event`` stands for, ``None`` for a rejection.

    wsproto's client reports an interim (``1xx``) response, such as ``100 Continue``,
    as a ``RejectConnection`` without a body, and goes on reading the response.
    """
    status = event.status_code
    return status if not event.has_body and 100 <= status < 200 else None


def client_engine(request: Request, key: bytes) -> WSConnection:
    """Return a client engine that has sent ``request`` with ``key`` as its key.

    The bytes it wrote are dropped: syncws sent its own (see :mod:`._upgrade`).
    """
    ws = WSConnection(ConnectionType.CLIENT)
    ws.send(request)
    ws.handshake._nonce = key
    return ws


#: A function that XORs data with a 4-byte key repeated (``_framing.apply_mask``).
Mask = Callable[[bytes | bytearray | memoryview, bytes], bytes]


class _Unmasker:
    """Unmasks one frame's payload with ``mask``, piece by piece, as ``XorMaskerSimple``."""

    __slots__ = ("_key", "_mask")

    def __init__(self, key: bytes, mask: Mask) -> None:
        self._key = key
        self._mask = mask

    def process(self, data: bytearray) -> bytes:
        out = self._mask(data, self._key)
        turn = len(data) % 4
        if turn:
            # The next piece goes on where this one stopped in the key.
            self._key = self._key[turn:] + self._key[:turn]
        return out


def unmask_with(engine: Connection, mask: Mask) -> bool:
    """Have ``engine`` unmask the frames it parses with ``mask`` (see the module's notes).

    :returns: whether it will (``False``: wsproto's internals are not as expected, and
        its own masker is used).
    """
    decoder = getattr(getattr(engine, "_proto", None), "_frame_decoder", None)
    parse_header = getattr(decoder, "parse_header", None)
    if decoder is None or parse_header is None:
        return False

    def parse_and_swap() -> bool:
        parsed: bool = parse_header()
        masker = getattr(decoder, "masker", None)
        if parsed and type(masker) is XorMaskerSimple:
            key = getattr(masker, "_masking_key", None)
            if isinstance(key, (bytes, bytearray)) and len(key) == 4:
                decoder.masker = _Unmasker(bytes(key), mask)
        return parsed

    decoder.parse_header = parse_and_swap
    return True


def negotiated_extensions(engine: Connection) -> str | None:
    """Return the extensions negotiated on ``engine``, as a ``Sec-WebSocket-Extensions`` value.

    ``""`` for none. An extension of syncws says what was agreed on in its attribute
    ``negotiated``; others are named. ``None`` (unknown) when wsproto's internals are
    not as expected, which turns the fast path for data frames off.
    """
    proto = getattr(engine, "_proto", None)
    extensions = getattr(proto, "extensions", None)
    if not isinstance(extensions, list):
        return None
    return ", ".join(str(getattr(e, "negotiated", None) or e.name) for e in extensions)


def http_status_hint(exc: BaseException) -> int | None:
    """Return the HTTP status h11 proposed for the error behind wsproto's ``exc``, if any.

    For instance 431 for a request head that is too large, where wsproto says 400.
    """
    hint = getattr(exc.__context__, "error_status_hint", None)
    return hint if isinstance(hint, int) else None


def missing_upgrade(exc: RemoteProtocolError) -> bool:
    """Whether wsproto refused a request for its ``Connection`` or ``Upgrade`` header.

    Such a request is most likely plain HTTP, not a WebSocket handshake.
    """
    return "Upgrade" in str(exc)


class DeflateBase(PerMessageDeflate):
    """wsproto's permessage-deflate, with the private state a subclass needs under typed names.

    Takes the same arguments as :class:`wsproto.extensions.PerMessageDeflate`.
    """

    def enable(self) -> None:
        """Mark the extension as negotiated: wsproto only uses it then."""
        self._enabled = True

    @property
    def compressor(self) -> _Compress | None:
        """The compressor of outgoing messages; ``None`` until the first one."""
        return self._compressor

    @compressor.setter
    def compressor(self, value: _Compress | None) -> None:
        self._compressor = value

    @property
    def decompressor(self) -> _Decompress | None:
        """The inflater of incoming messages, ``None`` before the first compressed one.

        wsproto makes it in ``frame_inbound_header``; setting ``None`` makes it start
        the next message with a fresh one (no context takeover).
        """
        return self._decompressor

    @decompressor.setter
    def decompressor(self, value: _Decompress | None) -> None:
        self._decompressor = value

    @property
    def message_compressed(self) -> bool | None:
        """Whether the incoming message is compressed; ``None`` between messages."""
        return self._inbound_compressed

    @message_compressed.setter
    def message_compressed(self, value: bool | None) -> None:
        self._inbound_compressed = value

    @property
    def frame_compressible(self) -> bool | None:
        """Whether the incoming frame is a data frame (one that may be compressed)."""
        return self._inbound_is_compressible


check_version(installed_version())
accept_close_code_1014()
check_internals()


def is_peer_close(ws: Connection) -> bool:
    """Whether the ``CloseConnection`` event just taken from ``ws`` is the peer's close frame.

    wsproto reports a protocol error in the peer's data as a ``CloseConnection`` event
    too, without leaving its state; only a real close frame moves it to
    ``REMOTE_CLOSING`` (or ``CLOSED``, when ours went first). Upstream, a distinct
    event for protocol errors would remove this test.
    """
    return ws.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED)
