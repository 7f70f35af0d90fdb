"""Bad arguments, every command: the usage, one ``error:`` line, status 2, no traceback.

``serve --port 99999`` used to print a traceback, a malformed URL or a certificate file
that cannot be read exited with status 1 like a failed connection. Host names are
tested in-process, with a patched resolver: no test makes a DNS query.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from clihelpers import Cli
from helpers import ChildProcess

from syncws.cli import main


def bad_arguments(tmp_path: Path, tls_ca: Any) -> list[tuple[str, ...]]:
    """Command lines that must each fail as a usage error (none touches the network)."""
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cert = tmp_path / "cert.pem"
    other_key = tmp_path / "other-key.pem"
    tls_ca.issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(cert))
    tls_ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    missing = str(tmp_path / "missing.pem")
    url = "ws://127.0.0.1:1/"  # Nothing listens there, and nothing connects to it.
    return [
        ("serve", "--port", "99999"),
        ("serve", "--port", "-1"),
        ("serve", "--port", "http"),
        ("serve", "--max-size", "0"),
        ("serve", "--exec", "cat", "--exec-timeout", "nan"),
        ("serve", "--port", "0", "--tls-cert", missing),
        ("serve", "--port", "0", "--tls-cert", str(not_pem)),
        ("serve", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(other_key)),
        ("serve", "--port", "0", "--tls-key", str(other_key)),
        ("serve", "--port", "0", "--origin", "https://example.com/ path"),
        ("serve", "--port", "0", "--compression", "zstd"),
        ("echo-server", "--port", "70000"),
        ("connect", "http://127.0.0.1:1/"),
        ("connect", "ws://"),
        ("connect", "ws://127.0.0.1:99999/"),
        ("connect", "ws://alice:s3cret@127.0.0.1:99999/"),
        ("connect", "ws://127.0.0.1:1/#fragment"),
        ("connect", url, "--timeout", "0"),
        ("connect", url, "--wait", "nan"),
        ("connect", url, "--ping", "-1"),
        ("connect", url, "--max-size", "many"),
        ("connect", url, "--cafile", missing),
        ("connect", url, "--cafile", str(not_pem)),
        ("connect", url, "--compression", "zstd"),
        ("connect", url, "--subprotocol", "two words"),
        ("connect", url, "--header", "X-Token: a\x01b"),
        ("bench", "127.0.0.1:1"),
        ("bench", url, "--count", "0"),
        ("bench", url, "--throughput-size", "-5"),
        ("bench", url, "--max-size", "1000", "--size", "2000"),
        ("bench", url, "--timeout", "inf"),
        ("bench", url, "--cafile", missing),
        ("demo", "--port", "1"),
    ]


#: Runs ``main()`` for each command line of ``argv[1]`` (JSON) in this one child
#: process, as ``python -m syncws`` would (one start of Python instead of thirty), and
#: prints each exit status with what went to standard output and standard error; an
#: exception escaping ``main()`` is reported as the traceback it would print.
MATRIX = """
import contextlib, io, json, sys, traceback
from syncws.cli import main

results = []
for arguments in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(arguments)
    except BaseException:
        code = None
        err.write(traceback.format_exc())
    results.append([arguments, code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def check_usage_error(args: Any, code: int | None, output: str, errors: str) -> None:
    assert code == 2, (args, code, errors)
    assert output == "", (args, output)
    assert "Traceback" not in errors, (args, errors)
    error_lines = [line for line in errors.splitlines() if "error:" in line]
    assert len(error_lines) == 1, (args, errors)
    assert re.match(r"(python -m )?syncws( [a-z-]+)?: error: ", error_lines[0]), (args, errors)
    assert errors.startswith("usage: "), (args, errors)
    assert "s3cret" not in errors, (args, errors)


def test_every_bad_argument_is_one_error_line_and_status_2(tmp_path: Path, tls_ca: Any) -> None:
    with ChildProcess(MATRIX, json.dumps(bad_arguments(tmp_path, tls_ca))) as child:
        assert child.wait() == 0, child.errors
    results = json.loads(child.output)
    assert len(results) == len(bad_arguments(tmp_path, tls_ca))
    for args, code, output, errors in results:
        check_usage_error(args, code, output, errors)


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--port", "99999"),
        # The old name of serve, under -m slow.
        pytest.param(("echo-server", "--port", "-1"), marks=pytest.mark.slow),
        ("connect", "http://127.0.0.1:1/"),
        ("bench", "ws://127.0.0.1:1/", "--count", "0"),
    ],
    ids=["serve", "echo-server", "connect", "bench"],
)
def test_a_bad_argument_in_a_process_of_its_own(args: tuple[str, ...]) -> None:
    with Cli(*args) as child:
        code = child.wait()
    check_usage_error(args, code, child.output, child.errors)


# --------------------------------------------------------- host names, in-process


def no_such_host(monkeypatch: pytest.MonkeyPatch, name: str, error: int) -> None:
    """Make resolving ``name`` fail with ``error``; other names resolve as usual."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            raise socket.gaierror(error, "Name or service not known")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "arguments",
    [
        ["connect", "ws://nosuch.invalid/"],
        ["bench", "ws://nosuch.invalid:8765/", "--count", "1"],
        ["serve", "--host", "nosuch.invalid", "--port", "0"],
    ],
    ids=["connect", "bench", "serve"],
)
def test_a_host_that_does_not_exist_is_a_bad_argument(
    arguments: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_such_host(monkeypatch, "nosuch.invalid", socket.EAI_NONAME)
    assert main(arguments) == 2
    errors = capsys.readouterr().err
    error_lines = [line for line in errors.splitlines() if "error:" in line]
    assert len(error_lines) == 1, errors
    assert "cannot resolve" in error_lines[0]
    assert "nosuch.invalid" in error_lines[0]


def test_a_resolver_that_fails_is_not_a_bad_argument(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # "Temporary failure in name resolution": the DNS server, not the argument.
    no_such_host(monkeypatch, "dns.down.invalid", socket.EAI_AGAIN)
    assert main(["connect", "ws://dns.down.invalid/"]) == 1
    errors = capsys.readouterr().err
    assert errors.startswith("error: cannot connect to ws://dns.down.invalid/: ")
    assert len(errors.splitlines()) == 1, errors
