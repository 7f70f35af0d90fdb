"""``syncws serve``: a ready-made server, and its handlers.

``--echo`` (the default) sends every message back to its sender. ``--broadcast`` sends
every message to every connected client, the sender included, with
:func:`syncws.broadcast`: a client that stops reading is cut off after
:data:`SEND_TIMEOUT` seconds instead of holding up the others. With ``--redis URL``, the
clients of every server using that Redis share the room (see
:mod:`syncws.cli._redis_room`). ``--exec CMD`` runs the
shell command ``CMD`` once per message, with the message on its standard input, and
sends its standard output back (see :class:`CommandHandler`).

The server prints the URL of each listening socket on standard output, logs
connections on standard error, and runs until Ctrl-C or SIGTERM; it then closes every
connection with code 1001 and exits with status 0. While handlers are still running it
says so; a second Ctrl-C or SIGTERM then aborts the connections at once, and the exit
status is 130. A command of ``--exec`` still running when the server stops is killed.
A bad argument (a port out of range, a certificate file that cannot be read, a host
name that does not exist, an option value the library refuses) exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from typing import Any, TextIO

from .. import (
    Handler,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    WorkerPool,
    broadcast,
)
from .._redact import redact_url
from .._signals import sigterm_interrupts
from ..exceptions import ConnectionClosed
from ._common import (
    EXIT_INTERRUPTED,
    BadArgument,
    compression,
    describe_error,
    is_bad_argument,
    port_number,
    positive_int,
    seconds,
)
from ._console import for_stream
from ._redis_room import add_arguments as add_redis_arguments
from ._redis_room import make_room

__all__ = [
    "DESCRIPTION",
    "SEND_TIMEOUT",
    "ChatRoom",
    "CommandHandler",
    "configure",
    "configure_echo_server",
    "echo_handler",
    "run",
]

DESCRIPTION = (
    "Run a WebSocket server until Ctrl-C: an echo server (the default), a chat server "
    "that sends every message to every client (--broadcast), or a server that runs a "
    "command for each message and sends back what it prints (--exec)."
)

#: Seconds a client may take to read a broadcast message before it is cut off.
SEND_TIMEOUT = 5.0
#: Seconds for each closing handshake, so that a stuck client cannot delay the exit long.
DISCONNECT_TIMEOUT = 5.0
#: Once the server stopped, how long handlers whose commands were killed get to return.
STOP_TIMEOUT = 1.0

_log = logging.getLogger("syncws.cli")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``serve`` to ``parser``."""
    _add_address_arguments(parser)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--echo",
        action="store_const",
        dest="mode",
        const="echo",
        help="send every message back to its sender (the default)",
    )
    modes.add_argument(
        "--broadcast",
        action="store_const",
        dest="mode",
        const="broadcast",
        help="send every message to every connected client, the sender included",
    )
    modes.add_argument(
        "--exec",
        dest="exec_command",
        metavar="CMD",
        help="run the shell command CMD for each message, the message on its standard "
        "input, and send back what it writes on standard output",
    )
    parser.add_argument(
        "--exec-timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="kill a command of --exec that runs longer (default: %(default)s)",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="serve wss://: the certificate chain")
    parser.add_argument(
        "--tls-key", metavar="PEM", help="the private key, unless it is in --tls-cert's file"
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
        help="accept permessage-deflate when a client offers it (deflate) or not (none) "
        "(default: the library's)",
    )
    parser.add_argument(
        "--origin",
        action="append",
        dest="origins",
        type=_origin,
        metavar="ORIGIN",
        help="accept only browsers of this origin, e.g. https://example.com, and 'none' "
        "for clients that send no Origin header (repeatable; default: any)",
    )
    add_redis_arguments(parser)
    parser.set_defaults(mode="echo")


def configure_echo_server(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``echo-server``, the older name of ``serve --echo``."""
    _add_address_arguments(parser)
    parser.set_defaults(
        mode="echo",
        exec_command=None,
        exec_timeout=None,
        tls_cert=None,
        tls_key=None,
        max_size=None,
        origins=None,
    )


def _add_address_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=8765,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="serve from N forked processes sharing the port (POSIX; default: %(default)s)",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="set SO_REUSEPORT, so that other processes may listen on the same port",
    )


def _origin(text: str) -> str | None:
    """Parse an ``--origin`` value: ``none`` (any case) for ``None``, others as they are."""
    return None if text.lower() == "none" else text


def run(args: argparse.Namespace) -> int:
    """Run ``serve`` with the parsed ``args`` until interrupted; return the exit status.

    :raises BadArgument: for an argument found wrong when the server starts.
    """
    handler: Handler = echo_handler
    if args.exec_command is not None and getattr(args, "workers", 1) > 1:
        # Each worker would run commands that nothing stops when the worker does.
        raise BadArgument("argument --workers: not allowed with argument --exec")
    room = make_room(args, SEND_TIMEOUT)  # With --redis: broadcast through Redis.
    if args.exec_command is not None:
        handler = CommandHandler(args.exec_command, args.exec_timeout)
    elif room is not None:
        handler = room
    elif args.mode == "broadcast":
        handler = ChatRoom()
    try:
        return _serve(args, handler)
    finally:
        if room is not None:
            room.close()


def _serve(args: argparse.Namespace, handler: Handler) -> int:
    """Bind and serve with ``handler`` until interrupted; return the exit status."""
    server = _start(args, handler)
    if server is None:
        return 1
    if isinstance(server, WorkerPool):
        return _supervise(server)
    _log_to_stderr()
    with sigterm_interrupts():
        try:
            for listener in server.listeners:
                print(f"listening on {listener}/", flush=True)
            server.serve_forever()
        except KeyboardInterrupt:
            pass  # serve_forever() shut the server down.
        finally:
            server.shutdown()  # At once when serve_forever() did it.
            if isinstance(handler, CommandHandler):
                handler.stop(STOP_TIMEOUT)
    return EXIT_INTERRUPTED if server.shutdown_cut_short else 0


def _supervise(pool: WorkerPool) -> int:
    """Run ``--workers N``: print where the workers listen once they all do."""
    _log_to_stderr()
    try:
        pool.start()
    except KeyboardInterrupt:
        return 0  # start() stopped the workers it had started.
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: the workers did not start: {exc}", file=sys.stderr)
        return 1
    for listener in pool.listeners:
        print(f"listening on {listener}/", flush=True)
    pool.serve_forever()  # Until SIGINT or SIGTERM, which it handles.
    return EXIT_INTERRUPTED if pool.shutdown_cut_short else 0


def _log_to_stderr() -> None:
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setFormatter(_TerminalSafeFormatter(sys.stderr))
    logging.basicConfig(level=logging.INFO, handlers=[log_handler])


def _start(args: argparse.Namespace, handler: Handler) -> WebSocketServer | WorkerPool | None:
    """Bind the server; ``None`` after an ``error:`` line when that fails.

    :raises BadArgument: for a certificate or key that cannot be loaded, a host name
        that does not exist, or an option value the library refuses.
    """
    context = _server_ssl_context(args.tls_cert, args.tls_key)
    options: dict[str, Any] = {"disconnect_timeout": DISCONNECT_TIMEOUT}
    if args.max_size is not None:
        options["max_message_size"] = args.max_size
    if "compression" in args:
        options["compression"] = args.compression
    if args.origins is not None:
        options["origins"] = args.origins
    # A URL given as the host by mistake may hold a password.
    host = redact_url(args.host)
    reuse_port: bool = getattr(args, "reuse_port", False)
    try:
        if getattr(args, "workers", 1) > 1:
            return WorkerPool(
                handler,
                args.host,
                args.port,
                context,
                workers=args.workers,
                reuse_port=reuse_port,
                **options,
            )
        return WebSocketServer(
            handler, args.host, args.port, context, reuse_port=reuse_port, **options
        )
    except (OSError, ValueError, TypeError) as exc:
        if isinstance(exc, socket.gaierror) and is_bad_argument(exc):
            raise BadArgument(
                f"argument --host: cannot resolve {host!r}: {describe_error(exc)}"
            ) from None
        if is_bad_argument(exc):
            raise BadArgument(describe_error(exc)) from None
        print(
            f"error: cannot serve on {host}:{args.port}: {describe_error(exc)}",
            file=sys.stderr,
        )
        return None


class _TerminalSafeFormatter(logging.Formatter):
    """Log lines with control characters escaped when they go to a terminal.

    Close reasons and paths come from clients: on a terminal, their escape sequences
    must not reach the screen (see :func:`~syncws.cli._console.escape_controls`).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._stream = stream

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record``; escape control characters if the stream is a terminal."""
        # Tracebacks keep their line feeds: each line is escaped on its own.
        lines = super().format(record).split("\n")
        return "\n".join(for_stream(line, self._stream) for line in lines)


def _server_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """Load ``--tls-cert`` and ``--tls-key``; raise BadArgument if they do not load."""
    if cert is None:
        if key is not None:
            raise BadArgument("argument --tls-key: needs --tls-cert")
        return None
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise BadArgument(
                    f"argument {option}: cannot read {path!r}: {describe_error(exc)}"
                ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ValueError) as exc:
        options = "--tls-cert" if key is None else "--tls-cert and --tls-key"
        raise BadArgument(
            f"argument {options}: not a PEM certificate chain and its private key: "
            f"{describe_error(exc)}"
        ) from None
    return context


# ---------------------------------------------------------------------------- handlers


def echo_handler(request: WebSocketRequest) -> None:
    """Accept the connection and send every message back until the client closes."""
    ws = request.accept()
    client = str(request.remote)
    _log.info("%s connected to %s", client, request.path)
    try:
        for message in ws:
            ws.send_message(message)
    except ConnectionClosed as exc:
        _log.info("%s disconnected: %s", client, exc.reason)
    else:
        _log.info("%s disconnected: %s", client, ws.close_reason)


class ChatRoom:
    """The handler of ``serve --broadcast``: every message goes to every client."""

    def __init__(self) -> None:
        self._clients: set[WebSocketConnection] = set()
        self._lock = threading.Lock()

    def clients(self) -> list[WebSocketConnection]:
        """Return the connected clients."""
        with self._lock:
            return list(self._clients)

    def __call__(self, request: WebSocketRequest) -> None:
        """Serve one client: relay its messages to everyone until it leaves."""
        ws = request.accept()
        with self._lock:
            self._clients.add(ws)
        _log.info("%s joined (%d connected)", ws.remote, len(self.clients()))
        try:
            for message in ws:
                broadcast(self.clients(), message, timeout=SEND_TIMEOUT)
        except ConnectionClosed:
            pass  # Closed abnormally, e.g. cut off by a broadcast it did not read.
        finally:
            with self._lock:
                self._clients.discard(ws)
            _log.info("%s left: %s (%d connected)", ws.remote, ws.close_reason, len(self.clients()))


class CommandHandler:
    """The handler of ``serve --exec``: a shell command for each message.

    For each message, ``command`` runs in a shell, in a session of its own (Ctrl-C at
    the server's terminal does not reach it), with the message on its standard input
    and the environment variables ``SYNCWS_PATH`` (the requested resource) and
    ``SYNCWS_REMOTE`` (the client's address) set. What it writes on standard output
    is sent back as one message of the same type as the one received, unless it
    wrote nothing: for a text message, the output is decoded as UTF-8 and one final
    line ending is removed (``echo`` adds one); binary output is sent as it is.
    Its standard error goes to the server's. A command that runs longer than
    ``timeout`` seconds is killed, with every process of its session, and nothing is
    sent back. Messages of one client are handled one after the other.

    :param command: the shell command line.
    :param timeout: seconds a command may run.
    """

    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        # Guarded by _changed: the commands running, the clients being served, and
        # whether stop() was called.
        self._changed = threading.Condition()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._clients = 0
        self._stopped = False

    def __call__(self, request: WebSocketRequest) -> None:
        """Serve one client: run the command for each of its messages."""
        with self._changed:
            self._clients += 1
        try:
            self._serve(request)
        finally:
            with self._changed:
                self._clients -= 1
                self._changed.notify_all()

    def _serve(self, request: WebSocketRequest) -> None:
        ws = request.accept()
        env = dict(os.environ, SYNCWS_PATH=request.path, SYNCWS_REMOTE=str(request.remote))
        _log.info("%s connected to %s", ws.remote, request.path)
        try:
            for message in ws:
                data = message.encode("utf-8") if isinstance(message, str) else message
                output = self.run_command(data, env)
                if output and isinstance(message, str):
                    # One final line ending goes: echo and print add one.
                    text = output.decode("utf-8", "replace").removesuffix("\n")
                    ws.send_message(text.removesuffix("\r"))
                elif output:
                    ws.send_message(output)
        except ConnectionClosed:
            pass
        _log.info("%s disconnected: %s", ws.remote, ws.close_reason)

    def run_command(self, data: bytes, env: dict[str, str]) -> bytes | None:
        """Run the command with ``data`` on its input; its output, or ``None`` on timeout.

        Also ``None`` once :meth:`stop` was called: the command is not run, or killed.
        """
        with subprocess.Popen(
            self.command,
            shell=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        ) as process:
            with self._changed:
                self._running.add(process)
                stopped = self._stopped
            try:
                if stopped:
                    _kill(process)
                output, _ = process.communicate(data, self.timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                process.communicate()
                _log.warning("command killed after %ss: %s", self.timeout, self.command)
                return None
            finally:
                with self._changed:
                    self._running.discard(process)
        if self._stopped:
            return None  # Killed by stop(): nothing to say.
        if process.returncode:
            _log.warning("command exited with status %d: %s", process.returncode, self.command)
        return output

    def stop(self, timeout: float) -> None:
        """Kill the commands still running, and every process of their sessions.

        For when the server has stopped: no command runs any more, and the clients'
        handlers, whose connections are closed, get up to ``timeout`` seconds to
        return.
        """
        with self._changed:
            self._stopped = True
            running = list(self._running)
        for process in running:
            _kill(process)
        with self._changed:
            self._changed.wait_for(lambda: self._clients == 0, timeout)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill a command of ``--exec`` with every process of its session, unless it ended."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
