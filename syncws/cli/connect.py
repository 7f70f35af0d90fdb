"""``syncws connect URL``: an interactive client, also usable in a pipe.

Each line read from standard input is sent as a text message (without its line
ending); a thread named ``syncws-cli-receiver`` prints every message received: text as
it is, binary as ``[binary N bytes]`` and a hexadecimal dump. On a terminal, control
characters from the server are shown escaped (see :mod:`syncws.cli._console`).

On a terminal, lines carry a timestamp and a colour and a ``> `` prompt waits for
input; elsewhere standard output carries the received messages only and information
and errors go to standard error, so that ``echo hi | syncws connect URL`` can feed
another program.

At the end of the input (Ctrl-D on a terminal), the client keeps printing messages
for ``--wait`` seconds at most, less if the server closes first, then closes the
connection. Exit status: 0 after a normal close (code 1000 or 1001, from either side),
1 when the connection could not be opened or ended abnormally (with a one-line
``error:`` on standard error), 2 for a bad argument (a malformed URL, a host name that
does not exist), 130 after Ctrl-C, which closes the connection first; a second Ctrl-C
during that closing handshake exits at once.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import math
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

from .. import ConnectOptions, WebSocketConnection
from .. import connect as open_connection
from .._redact import redact_url
from .._signals import SignalWakeup
from ..exceptions import ConnectionClosed
from ._common import (
    CONNECT_ERRORS,
    EXIT_INTERRUPTED,
    add_client_tls_arguments,
    client_ssl_context,
    compression,
    connection_failure,
    parse_header,
    positive_int,
    seconds,
    seconds_or_inf,
)
from ._console import Console, for_stream

__all__ = ["DESCRIPTION", "EXIT_INTERRUPTED", "Session", "configure", "run"]

DESCRIPTION = (
    "Connect to a WebSocket server, send each line of standard input as a text message "
    "and print the messages received. On a terminal, lines are timestamped and coloured; "
    "in a pipe, standard output carries the received messages only."
)

#: How long to wait for the receiver thread once the connection is closed.
_JOIN_TIMEOUT = 10.0
#: After a second Ctrl-C, how long to wait for a line being printed before exiting.
_SILENCE_TIMEOUT = 1.0
_NORMAL_CLOSE = (1000, 1001)
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``connect`` to ``parser``."""
    parser.add_argument("url", help="ws:// or wss:// URL of the server")
    parser.add_argument(
        "--subprotocol",
        action="append",
        dest="subprotocols",
        metavar="NAME",
        help="offer this subprotocol (repeat for several, in order of preference)",
    )
    parser.add_argument(
        "--header",
        action="append",
        dest="headers",
        type=parse_header,
        metavar="'NAME: VALUE'",
        help="add this header to the handshake request (repeatable)",
    )
    add_client_tls_arguments(parser)
    parser.add_argument(
        "--ping",
        type=seconds,
        metavar="SECONDS",
        help="send a keepalive ping this often, and show the latency on a terminal "
        "(default: the library's keepalive, every 20 s, latency not shown)",
    )
    parser.add_argument(
        "--max-size",
        type=positive_int,
        metavar="BYTES",
        help="largest message accepted (default: the library's, 1 MiB)",
    )
    parser.add_argument(
        "--compression",
        type=compression,
        default=argparse.SUPPRESS,
        metavar="deflate|none",
        help="offer permessage-deflate (deflate) or not (none) (default: the library's)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="limit for the opening and the closing handshakes (default: %(default)s)",
    )
    parser.add_argument(
        "--wait",
        type=seconds_or_inf,
        default=1.0,
        metavar="SECONDS",
        help="at the end of the input, wait this long at most for the server's replies "
        "before closing; 'inf' waits until the server closes (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``connect`` with the parsed ``args``; return the exit status."""
    url: str = args.url
    options: ConnectOptions = {
        "subprotocols": args.subprotocols,
        "extra_headers": args.headers,
        "connect_timeout": args.timeout,
        "disconnect_timeout": args.timeout,
    }
    if args.ping is not None:  # Else the library's keepalive.
        options["ping_interval"] = args.ping
    if args.max_size is not None:
        options["max_message_size"] = args.max_size
    if "compression" in args:
        options["compression"] = args.compression
    wait: float = args.wait
    for stream in (sys.stdout, sys.stderr):
        # Messages in a script the terminal cannot show must not crash the printer.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    console = Console(sys.stdout, sys.stderr)
    context = client_ssl_context(args.cafile, args.insecure)
    try:
        ws = open_connection(url, ssl_context=context, **options)
    except CONNECT_ERRORS as exc:
        message = connection_failure(url, exc)
        print(for_stream(f"error: {message}", sys.stderr), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    subprotocol = f" (subprotocol {ws.subprotocol})" if ws.subprotocol else ""
    session = Session(ws, console, args.ping)
    status = session.run(
        sys.stdin.fileno(),
        None if math.isinf(wait) else wait,
        greeting=f"connected to {redact_url(url)}{subprotocol}",
    )
    if session.output_lost:
        # Nothing more can be written: keep the interpreter's final flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status


class Session:
    """One open connection: input lines go out, messages come in.

    :param ws: the open connection; the session closes it.
    :param console: where to show what happens.
    :param ping_interval: the keepalive interval, if any: on a terminal, the latency is
        shown when it changes.
    """

    def __init__(
        self, ws: WebSocketConnection, console: Console, ping_interval: float | None
    ) -> None:
        self._ws = ws
        self._console = console
        self._latency_every = ping_interval if console.interactive else None
        self._ended = threading.Event()
        # The receiver writes here when the connection ends: it wakes the input loop.
        self._wake_r, self._wake_w = os.pipe()
        # A daemon: after a second Ctrl-C the process exits without waiting for it.
        self._receiver = threading.Thread(
            target=self._receive, name="syncws-cli-receiver", daemon=True
        )
        #: Whether standard output was closed by its reader (a broken pipe).
        self.output_lost = False
        # Ctrl-C came (set by the SIGINT handler); the session is closing.
        self._interrupted = False
        self._closing = False
        # The signal wakeup socket (main thread only): a signal delivered to another
        # thread still wakes the input loop.
        self._signals: socket.socket | None = None

    def run(self, stdin: int, wait: float | None, greeting: str | None = None) -> int:
        """Send the lines read from the file descriptor ``stdin``; return the exit status.

        Ctrl-C closes the connection (status 130); Ctrl-C during the closing handshake
        returns at once, leaving the connection to the end of the process.

        On the main thread, the first Ctrl-C (SIGINT) only raises a flag, which the
        input loop acts on between sends: an interrupt landing inside ``send_message``,
        just after the kernel took the message, would otherwise abort the connection
        (1006), as the library cannot know how much of it went out.

        :param stdin: a file descriptor to read lines from.
        :param wait: seconds to go on receiving after the end of the input
            (``None``: until the server closes).
        :param greeting: a line to show first (after it, Ctrl-C closes the session).
        """
        with SignalWakeup() as wakeup, self._deferred_interrupt():
            self._signals = wakeup.reader
            return self._run(stdin, wait, greeting)

    @contextlib.contextmanager
    def _deferred_interrupt(self) -> Iterator[None]:
        """Within ``with`` on the main thread: SIGINT sets :attr:`_interrupted` first."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            yield  # Ignored, or the embedding program's own handler: leave it.
            return
        signal.signal(signal.SIGINT, self._on_interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT: ask the input loop to close; while closing, leave at once."""
        if self._interrupted or self._closing:
            raise KeyboardInterrupt
        self._interrupted = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"i")

    def _check_interrupt(self) -> None:
        """Raise the interrupt that :meth:`_on_interrupt` deferred, at a safe point."""
        if self._interrupted:
            raise KeyboardInterrupt

    def _run(self, stdin: int, wait: float | None, greeting: str | None) -> int:
        interrupted = False
        try:
            try:
                if greeting is not None:
                    self._console.info(greeting)
                self._receiver.start()
                self._console.prompt()
                self._send_lines(stdin)
                self._console.end_prompt()
                self._wait_for_end(wait)
            except KeyboardInterrupt:
                interrupted = True
                self._console.end_prompt()
                self._console.info(
                    "interrupted: closing the connection; press Ctrl-C again to exit now"
                )
            self._closing = True
            self._ws.close()  # Also ends the receiver thread.
            if self._receiver.is_alive():  # Not if Ctrl-C came before it started.
                self._receiver.join(_JOIN_TIMEOUT)
        except KeyboardInterrupt:
            # Ctrl-C during the closing handshake: leave now, as the connection is.
            # The receiver thread, a daemon, may still print: silence it first.
            self._console.end_prompt()
            self._console.info("interrupted: exiting without waiting for the server to close")
            self._console.silence(_SILENCE_TIMEOUT)
            return EXIT_INTERRUPTED
        os.close(self._wake_r)
        os.close(self._wake_w)
        return EXIT_INTERRUPTED if interrupted else self._status()

    def _wait_for_end(self, wait: float | None) -> None:
        """Wait up to ``wait`` seconds for the connection to end, or for Ctrl-C."""
        deadline = None if wait is None else time.monotonic() + wait
        with _Selector() as selector:
            self._register_wakeups(selector)
            while not self._ended.is_set():
                self._check_interrupt()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                selector.select(remaining)
                self._drain_signals()
        self._check_interrupt()

    def _register_wakeups(self, selector: selectors.BaseSelector) -> None:
        selector.register(self._wake_r, selectors.EVENT_READ)
        if self._signals is not None:
            selector.register(self._signals, selectors.EVENT_READ)

    def _drain_signals(self) -> None:
        """Empty the signal wakeup socket; its handler has run (or runs next)."""
        if self._signals is not None:
            with contextlib.suppress(OSError):
                self._signals.recv(4096)

    def _status(self) -> int:
        reason = self._ws.close_reason
        if reason is None or reason.code in _NORMAL_CLOSE:
            self._console.info(f"connection closed: {reason}")
            return 0
        self._console.error(f"connection closed: {reason}")
        return 1

    def _send_lines(self, stdin: int) -> None:
        for line in self._lines(stdin):
            try:
                self._ws.send_message(line)
            except ConnectionClosed:
                return
            self._console.sent(line)

    def _lines(self, stdin: int) -> Iterator[str]:
        """Yield the lines of ``stdin`` until its end or the end of the connection."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        # Not epoll, which refuses regular files and /dev/null (input redirected from them).
        with _Selector() as selector:
            selector.register(stdin, selectors.EVENT_READ)
            self._register_wakeups(selector)
            while not self._ended.is_set():
                self._check_interrupt()
                ready = {key.fd for key, _ in selector.select()}
                self._drain_signals()
                self._check_interrupt()
                if stdin not in ready:
                    continue  # Woken up: the connection ended, or Ctrl-C.
                data = os.read(stdin, 65536)
                pending += decoder.decode(data, final=not data)
                *lines, pending = pending.split("\n")
                for line in lines:
                    yield line.removesuffix("\r")
                if not data:
                    if pending:
                        yield pending
                    return

    def _receive(self) -> None:
        """Print messages until the connection ends (the receiver thread)."""
        latency = 0.0
        try:
            while True:
                try:
                    # Wake up as often as the keepalive latency may change.
                    message = self._ws.get_message(self._latency_every)
                except TimeoutError:
                    if self._ws.latency != latency:
                        latency = self._ws.latency
                        self._console.info(f"latency {latency * 1000:.1f} ms")
                    continue
                self._console.received(message)
        except ConnectionClosed:
            pass
        except BrokenPipeError:
            # The reader of our output went away (``| head -1``): stop, and close.
            self.output_lost = True
        finally:
            self._ended.set()
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
