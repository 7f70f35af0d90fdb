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
from typing import NoReturn

from .._redact import hide_passwords
from . import bench, connect, demo, serve
from ._common import BadArgument

__all__ = ["UsageError", "build_parser", "main"]


class UsageError(Exception):
    """A command line that does not parse; raised instead of exiting, to be reported.

    :param parser: the parser (or subparser) that found the error.
    :param message: what :mod:`argparse` says is wrong.
    """

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing and exiting.

    Its messages quote the arguments (``invalid choice: 'ws://alice:secret@host/'`` when
    the command is left out), so :func:`main` hides passwords before printing them.
    Subparsers are of the same class.
    """

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` with ``message``."""
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the whole command line, with one subparser per command."""
    parser = _Parser(
        prog="syncws" if _as_script() else "python -m syncws",
        description="syncws command line: WebSocket client, servers, benchmark, demonstration.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help, description=description)
        # A BadArgument found once the command runs is reported with its usage.
        command.set_defaults(command_parser=command)
        return command

    connect.configure(
        add(
            "connect",
            help="interactive client: send lines typed, print messages received",
            description=connect.DESCRIPTION,
        )
    )
    serve.configure(
        add(
            "serve",
            help="run an echo, broadcast or command server until Ctrl-C",
            description=serve.DESCRIPTION,
        )
    )
    bench.configure(
        add(
            "bench",
            help="measure round trips and throughput against an echo server",
            description=bench.DESCRIPTION,
        )
    )
    add(
        "demo",
        help="run an echo server and a client against each other (default)",
        description="Run an echo server and a client on 127.0.0.1 and print the messages.",
    )
    serve.configure_echo_server(
        add(
            "echo-server",
            help="run an echo server until Ctrl-C (same as: serve --echo)",
            description="Run a WebSocket echo server until interrupted (same as serve --echo).",
        )
    )
    return parser


def _argument_values(arguments: Sequence[str]) -> list[str]:
    """Each argument, and the value of each ``--option=value`` argument."""
    values = list(arguments)
    values += [arg.partition("=")[2] for arg in arguments if arg.startswith("-") and "=" in arg]
    return values


def _as_script() -> bool:
    """Whether we run as the ``syncws`` console script rather than ``python -m syncws``."""
    return not sys.argv[0].endswith("__main__.py")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command given by ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Without a command, runs the demonstration. A usage error returns 2, after the
    command's usage and one ``error:`` line on standard error that shows no password of
    a URL argument: an argument :mod:`argparse` refuses, or one the command finds wrong
    once it uses it (:class:`~syncws.cli._common.BadArgument`).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        return _usage_error(exc.parser, exc.message, arguments)
    try:
        return _run(args)
    except BadArgument as exc:
        return _usage_error(getattr(args, "command_parser", parser), str(exc), arguments)


def _run(args: argparse.Namespace) -> int:
    if args.command == "connect":
        return connect.run(args)
    if args.command in ("serve", "echo-server"):
        return serve.run(args)
    if args.command == "bench":
        return bench.run(args)
    return demo.main()


def _usage_error(parser: argparse.ArgumentParser, message: str, arguments: list[str]) -> int:
    """Print the usage and ``PROG: error: MESSAGE``, as argparse does; return 2."""
    parser.print_usage(sys.stderr)
    message = hide_passwords(message, _argument_values(arguments))
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 2
