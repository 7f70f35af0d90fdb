"""The command line: ``python -m syncws`` and the ``syncws`` console script.

Commands, each in a module of its own:

* ``connect URL``: an interactive client (:mod:`syncws.cli.connect`);
* ``serve``: an echo, broadcast or command server (:mod:`syncws.cli.serve`);
* ``bench URL``: round-trip and throughput figures (:mod:`syncws.cli.bench`);
* ``demo``: an echo server and a client talking to each other (:mod:`syncws.cli.demo`),
  also what runs without a command;
* ``echo-server``: the same as ``serve --echo``, kept for compatibility.

This module builds the argument parser and dispatches to the command's ``run``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import bench, connect, demo, serve

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the whole command line, with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="syncws" if _as_script() else "python -m syncws",
        description="syncws command line: WebSocket client, servers, benchmark, demonstration.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    connect.configure(
        commands.add_parser(
            "connect",
            help="interactive client: send lines typed, print messages received",
            description=connect.DESCRIPTION,
        )
    )
    serve.configure(
        commands.add_parser(
            "serve",
            help="run an echo, broadcast or command server until Ctrl-C",
            description=serve.DESCRIPTION,
        )
    )
    bench.configure(
        commands.add_parser(
            "bench",
            help="measure round trips and throughput against an echo server",
            description=bench.DESCRIPTION,
        )
    )
    commands.add_parser(
        "demo",
        help="run an echo server and a client against each other (default)",
        description="Run an echo server and a client on 127.0.0.1 and print the messages.",
    )
    serve.configure_echo_server(
        commands.add_parser(
            "echo-server",
            help="run an echo server until Ctrl-C (same as: serve --echo)",
            description="Run a WebSocket echo server until interrupted (same as serve --echo).",
        )
    )
    return parser


def _as_script() -> bool:
    """Whether we run as the ``syncws`` console script rather than ``python -m syncws``."""
    return not sys.argv[0].endswith("__main__.py")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command given by ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Without a command, runs the demonstration. Usage errors exit with status 2.
    """
    args = build_parser().parse_args(argv)
    if args.command == "connect":
        return connect.run(args)
    if args.command in ("serve", "echo-server"):
        return serve.run(args)
    if args.command == "bench":
        return bench.run(args)
    return demo.main()
