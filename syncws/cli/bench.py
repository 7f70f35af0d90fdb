"""``syncws bench URL``: round-trip latency and throughput against an echo server.

Two measurements on one connection, against any server that sends every message back:

* ``--count`` round trips of ``--size``-byte messages, one at a time: the median
  (p50) and 99th percentile (p99) of the round-trip time, and the rate;
* ``--throughput-count`` messages of ``--throughput-size`` bytes, sent by one thread
  while the main thread reads the echoes: megabytes per second, each way.

Each echo is compared with the message sent. The client accepts messages of up to
``--max-size`` bytes, by default the largest message it sends or 1 MiB, whichever is
more; a server whose own limit is lower closes the connection with 1009, and the
error says so. On a terminal, a progress bar on standard error follows runs longer
than half a second; the summary goes to standard output. Exit status: 0, 1 with a
one-line ``error:`` when the connection fails, times out, or the server does not echo,
2 for a bad argument, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from typing import TextIO

from .. import WebSocketConnection
from .. import connect as open_connection
from .._redact import redact_url
from ..exceptions import ConnectionClosed
from ._common import (
    CONNECT_ERRORS,
    EXIT_INTERRUPTED,
    BadArgument,
    add_client_tls_arguments,
    client_ssl_context,
    connection_failure,
    count,
    describe_error,
    positive_int,
    seconds,
)
from ._console import for_stream

__all__ = ["DESCRIPTION", "Progress", "configure", "percentile", "run"]

DESCRIPTION = (
    "Measure round-trip latency and throughput against a WebSocket echo server "
    "(any server that sends every message back)."
)

#: A progress bar appears once a run has taken this long (seconds).
PROGRESS_AFTER = 0.5
#: Seconds between two redraws of the progress bar.
PROGRESS_EVERY = 0.1
#: The client's message size limit when --max-size is not given, unless a message
#: sent is larger: the library's default, 1 MiB.
MIN_MAX_SIZE = 1024 * 1024
_BAR_WIDTH = 30


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``bench`` to ``parser``."""
    parser.add_argument("url", help="ws:// or wss:// URL of an echo server")
    parser.add_argument(
        "--count",
        type=positive_int,
        default=1000,
        help="round trips to time (default: %(default)s)",
    )
    parser.add_argument(
        "--size",
        type=count,
        default=32,
        metavar="BYTES",
        help="size of the round-trip messages (default: %(default)s)",
    )
    parser.add_argument(
        "--throughput-count",
        type=count,
        default=100,
        metavar="N",
        help="messages of the throughput run; 0 skips it (default: %(default)s)",
    )
    parser.add_argument(
        "--throughput-size",
        type=count,
        default=64 * 1024,
        metavar="BYTES",
        help="size of the throughput messages (default: %(default)s)",
    )
    parser.add_argument("--text", action="store_true", help="send text messages (default: binary)")
    parser.add_argument(
        "--max-size",
        type=positive_int,
        metavar="BYTES",
        help="largest message the client accepts (default: the largest message sent, "
        "at least 1 MiB)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="limit for connecting and for each echo (default: %(default)s)",
    )
    add_client_tls_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``bench`` with the parsed ``args``; return the exit status."""
    url: str = args.url
    shown = redact_url(url)
    timeout: float = args.timeout
    biggest = max(args.size, args.throughput_size if args.throughput_count else 0)
    max_size: int = max(biggest, MIN_MAX_SIZE) if args.max_size is None else args.max_size
    if max_size < biggest:
        option = "--size" if biggest == args.size else "--throughput-size"
        raise BadArgument(
            f"argument --max-size: {max_size} is below the {biggest} bytes of {option}: "
            "the echoes would not fit"
        )
    context = client_ssl_context(args.cafile, args.insecure)
    try:
        ws = open_connection(
            url,
            ssl_context=context,
            connect_timeout=timeout,
            disconnect_timeout=timeout,
            max_message_size=max_size,
        )
    except CONNECT_ERRORS as exc:
        message = f"error: {connection_failure(url, exc)}"
        print(for_stream(message, sys.stderr), file=sys.stderr)
        return 1
    progress = Progress(sys.stderr, enabled=sys.stderr.isatty())
    kind = "text" if args.text else "binary"
    option, size = "--size", args.size  # What the run under way sends.
    try:
        with ws:
            latencies = round_trips(
                ws, _payload(args.size, args.text), args.count, timeout, progress
            )
            print(f"{shown}: {kind} messages")
            _print_round_trips(latencies, args.size)
            if args.throughput_count:
                option, size = "--throughput-size", args.throughput_size
                elapsed = throughput(
                    ws,
                    _payload(args.throughput_size, args.text),
                    args.throughput_count,
                    timeout,
                    progress,
                )
                _print_throughput(args.throughput_count, args.throughput_size, elapsed)
    except (*CONNECT_ERRORS, TimeoutError, EchoMismatch) as exc:
        progress.clear()
        message = describe_error(exc)
        if isinstance(exc, ConnectionClosed) and exc.reason.code == 1009:
            message += "; " + _which_limit(exc, size, option, max_size)
        print(for_stream(f"error: {message}", sys.stderr), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.clear()
        return EXIT_INTERRUPTED
    return 0


def _which_limit(exc: ConnectionClosed, size: int, option: str, max_size: int) -> str:
    """Say which side's message size limit closed the connection with 1009.

    This client's limit holds every message it sends (see :func:`run`), so an echo
    cannot trip it: the server's did, unless the server sent something larger than
    an echo, which the close reason then shows (syncws names its limit there).
    """
    if f" {max_size} bytes" in (exc.reason.reason or ""):
        return (
            f"the server sent a message over this client's limit of {max_size} bytes "
            "(--max-size): it does not only echo"
        )
    return (
        f"the server's limit on message size is below the {size} bytes of {option} "
        f"(this client's is {max_size}, set with --max-size; syncws serve sets its own "
        "with --max-size)"
    )


class EchoMismatch(Exception):
    """The server sent back something other than the message."""


def _payload(size: int, text: bool) -> str | bytes:
    return "x" * size if text else bytes(i % 251 for i in range(size))


def round_trips(
    ws: WebSocketConnection, payload: str | bytes, count: int, timeout: float, progress: Progress
) -> list[float]:
    """Send ``payload`` and wait for its echo, ``count`` times; return each round trip."""
    latencies = []
    progress.start("round trips", count)
    for _ in range(count):
        started = time.perf_counter()
        ws.send_message(payload, timeout)
        echo = ws.get_message(timeout)
        latencies.append(time.perf_counter() - started)
        if echo != payload:
            raise EchoMismatch("the server did not send the message back unchanged")
        progress.advance()
    progress.clear()
    return latencies


def throughput(
    ws: WebSocketConnection, payload: str | bytes, count: int, timeout: float, progress: Progress
) -> float:
    """Send ``payload`` ``count`` times from a thread while reading the echoes here.

    :returns: the seconds from the first send to the last echo.
    """
    failure: list[BaseException] = []

    def send_all() -> None:
        try:
            for _ in range(count):
                ws.send_message(payload, timeout)
        except Exception as exc:  # Reported by the reading side.
            failure.append(exc)

    sender = threading.Thread(target=send_all, name="syncws-cli-bench-sender")
    progress.start("throughput", count)
    started = time.perf_counter()
    sender.start()
    try:
        for _ in range(count):
            echo = ws.get_message(timeout)
            if echo != payload:
                raise EchoMismatch("the server did not send the message back unchanged")
            progress.advance()
        elapsed = time.perf_counter() - started
    except BaseException:
        ws.close()  # Wakes the sender if it is blocked.
        raise
    finally:
        sender.join(timeout)
        progress.clear()
    if failure:
        raise failure[0]
    return elapsed


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``sorted_values`` (``fraction`` in 0-1)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _print_round_trips(latencies: list[float], size: int) -> None:
    ordered = sorted(latencies)
    total = sum(latencies)
    print(f"round trips    {len(latencies)} x {size} bytes")
    print(f"  latency p50  {percentile(ordered, 0.50) * 1000:.3f} ms")
    print(f"  latency p99  {percentile(ordered, 0.99) * 1000:.3f} ms")
    print(f"  rate         {len(latencies) / total:,.0f} round trips/s")


def _print_throughput(count: int, size: int, elapsed: float) -> None:
    megabytes = count * size / 1e6
    print(f"throughput     {count} x {size} bytes, echoed")
    print(f"  time         {elapsed:.3f} s")
    print(f"  rate         {megabytes / elapsed:,.1f} MB/s each way")


class Progress:
    """A text progress bar on one terminal line, for runs longer than half a second.

    :param stream: where to draw it (standard error).
    :param enabled: draw nothing when false (output that is not a terminal).
    """

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self._stream = stream
        self._draw = enabled
        self._label = ""
        self._total = 1
        self._done = 0
        self._started = 0.0
        self._drawn_at = 0.0
        self._visible = False

    def start(self, label: str, total: int) -> None:
        """Begin following a run of ``total`` steps."""
        self._label, self._total, self._done = label, max(total, 1), 0
        self._started = self._drawn_at = time.monotonic()

    def advance(self) -> None:
        """Count one step done; redraw when it is time."""
        self._done += 1
        if not self._draw:
            return
        now = time.monotonic()
        if now - self._started < PROGRESS_AFTER or now - self._drawn_at < PROGRESS_EVERY:
            return
        self._drawn_at = now
        filled = _BAR_WIDTH * self._done // self._total
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        percent = 100 * self._done // self._total
        self._stream.write(f"\r{self._label:<12} [{bar}] {percent:3d}%")
        self._stream.flush()
        self._visible = True

    def clear(self) -> None:
        """Erase the bar, if one is drawn."""
        if self._visible:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._visible = False
