"""Everything syncws takes from wsproto beyond its documented API, in one module.

syncws is built on wsproto's public API, which is imported where it is used:
:class:`wsproto.WSConnection`, the events of :mod:`wsproto.events`,
:class:`wsproto.connection.ConnectionState` and
:class:`wsproto.utilities.RemoteProtocolError`. A few things syncws needs are not in
that API. Every use of a private name of wsproto, or of behaviour that wsproto does
not document, is here, behind small typed functions, so that a wsproto release that
changes them breaks this module, at import, and nothing else.

Supported versions
    :data:`SUPPORTED` is the range of wsproto versions this module was written and
    tested for; ``install_requires`` in ``setup.cfg`` says the same. Importing syncws
    with another version raises :exc:`ImportError`, unless the environment variable
    ``SYNCWS_ALLOW_ANY_WSPROTO=1`` is set, which makes it a :exc:`RuntimeWarning`.
    :func:`check_internals` then checks, also at import, that the private attributes
    listed below are there and behave as expected; a wsproto that changed them
    raises :exc:`ImportError` whatever the environment says, since syncws could
    not work with it.

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

Known gap, not worked around: close code 1014
    ``wsproto.frame_protocol.CloseReason`` stops at 1013 (besides 1015), and wsproto
    refuses a peer's close frame with a code below 3000 that it does not know. Code
    1014 (Bad Gateway), registered with IANA after RFC 6455, therefore fails the
    connection with 1002 (the conformance case 7.6.12, marked xfail in
    ``tests/conformance``, and ``docs/topics/conformance.rst``). *Removed by:*
    ``BAD_GATEWAY = 1014`` in wsproto's ``CloseReason``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import warnings
from typing import TYPE_CHECKING

import wsproto
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.utilities import RemoteProtocolError

if TYPE_CHECKING:
    from zlib import _Compress, _Decompress

    from wsproto import WSConnection

__all__ = [
    "ALLOW_ANY_VARIABLE",
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
    "check_internals",
    "check_version",
    "http_status_hint",
    "installed_version",
    "is_peer_close",
    "missing_upgrade",
    "negotiated_extensions",
    "supports",
]

#: The oldest wsproto release syncws supports, as ``(major, minor)``. wsproto 1.2
#: hands some payloads over as ``bytearray`` (those of unmasked frames, and empty
#: ones); syncws relies on ``bytes``, which 1.3 gives.
LOWEST = (1, 3)
#: The first wsproto release that syncws does not support, as ``(major, minor)``: a
#: new minor release may change the internals listed in this module.
BELOW = (1, 4)
#: The supported versions as a requirement specifier, as in ``setup.cfg``.
SUPPORTED = f">={LOWEST[0]}.{LOWEST[1]},<{BELOW[0]}.{BELOW[1]}"
#: Set to ``1``, this environment variable lets syncws import with a wsproto version
#: outside :data:`SUPPORTED`, with a warning.
ALLOW_ANY_VARIABLE = "SYNCWS_ALLOW_ANY_WSPROTO"
#: What wsproto's ``receive_data`` raises during the opening handshake on bad input:
#: its own error, and :exc:`UnicodeError` for a header it could not decode.
HANDSHAKE_ERRORS = (RemoteProtocolError, UnicodeError)

_RELEASE = re.compile(r"(\d+)\.(\d+)")
#: The private attributes of PerMessageDeflate that DeflateBase reads or writes.
_DEFLATE_STATE = (
    "_enabled",
    "_compressor",
    "_decompressor",
    "_inbound_compressed",
    "_inbound_is_compressible",
)


def installed_version() -> str:
    """Return the version of the wsproto that is installed (``"unknown"`` if it has none)."""
    try:
        return importlib.metadata.version("wsproto")
    except importlib.metadata.PackageNotFoundError:
        # Imported from a directory rather than installed.
        return str(getattr(wsproto, "__version__", "unknown"))


def supports(version: str) -> bool:
    """Whether ``version`` (such as ``"1.3.2"``) is in :data:`SUPPORTED`."""
    match = _RELEASE.match(version)
    if match is None:
        return False
    release = (int(match[1]), int(match[2]))
    return LOWEST <= release < BELOW


def check_version(version: str) -> None:
    """Refuse a wsproto ``version`` outside :data:`SUPPORTED`.

    :raises ImportError: naming the installed and supported versions, unless the
        environment variable :data:`ALLOW_ANY_VARIABLE` is ``1``: then it warns
        (:exc:`RuntimeWarning`) instead.
    """
    if supports(version):
        return
    message = (
        f"syncws supports wsproto {SUPPORTED}, but wsproto {version} is installed: "
        f"install a supported version (pip install 'wsproto{SUPPORTED}')"
    )
    if os.environ.get(ALLOW_ANY_VARIABLE) == "1":
        warnings.warn(
            f"{message}; {ALLOW_ANY_VARIABLE}=1 is set, so syncws runs with it, untested",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    raise ImportError(f"{message}, or set {ALLOW_ANY_VARIABLE}=1 to try this one anyway")


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
    if problems:
        raise ImportError(
            f"wsproto {installed_version()} lacks internals that syncws relies on: "
            f"{', '.join(problems)}; syncws supports wsproto {SUPPORTED}"
        )


def negotiated_extensions(ws: WSConnection) -> str | None:
    """Return the extensions negotiated on ``ws``, as a ``Sec-WebSocket-Extensions`` value.

    ``""`` for none. An extension of syncws says what was agreed on in its attribute
    ``negotiated``; others are named. ``None`` (unknown) when wsproto's internals are
    not as expected, which turns the fast path for data frames off.
    """
    proto = getattr(ws.connection, "_proto", None)
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
check_internals()


def is_peer_close(ws: Connection) -> bool:
    """Whether the ``CloseConnection`` event just taken from ``ws`` is the peer's close frame.

    wsproto reports a protocol error in the peer's data as a ``CloseConnection`` event
    too, without leaving its state; only a real close frame moves it to
    ``REMOTE_CLOSING`` (or ``CLOSED``, when ours went first). Upstream, a distinct
    event for protocol errors would remove this test.
    """
    return ws.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED)
