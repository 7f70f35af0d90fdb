"""The optional C extension, ``syncws._speedups``, against the Python masking code.

Where a C compiler is found, the extension must have been built; where none is, the
tests of the extension skip and syncws masks in Python.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

from syncws import _framing

try:
    from syncws._speedups import apply_mask as c_mask
except ImportError:  # pragma: no cover - depends on the build
    c_mask = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(c_mask is None, reason="syncws._speedups was not built")


def test_the_extension_is_built_where_a_c_compiler_is() -> None:
    compiler = (sysconfig.get_config_var("CC") or "").split()
    if not compiler or shutil.which(compiler[0]) is None:
        pytest.skip("no C compiler here: syncws masks in Python")
    assert c_mask is not None, "syncws._speedups was not built: reinstall with pip install -e ."
    assert _framing.speedups() is not bool(os.environ.get("SYNCWS_NO_SPEEDUPS"))


@needs_c
@pytest.mark.parametrize(
    "size", [0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 125, 4096, 65535, 65536, 65537, 2**20 + 3]
)
def test_c_masking_gives_the_python_bytes(size: int) -> None:
    data, key = os.urandom(size), os.urandom(4)
    assert c_mask(data, key) == _framing._python_mask(data, key)
    assert c_mask(c_mask(data, key), key) == data


@needs_c
def test_c_masking_takes_any_contiguous_bytes_like() -> None:
    data = os.urandom(1000)
    expected = _framing._python_mask(data, b"\x01\x02\x03\x04")
    for given in (bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert c_mask(given, bytearray(b"\x01\x02\x03\x04")) == expected
    assert type(c_mask(bytearray(data), b"abcd")) is bytes


@needs_c
@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
def test_c_masking_refuses_a_key_that_is_not_four_bytes(key: bytes) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        c_mask(b"data", key)


@needs_c
def test_c_masking_refuses_what_is_not_bytes_like() -> None:
    with pytest.raises(TypeError):
        c_mask("text", b"abcd")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c_mask(b"data")  # type: ignore[call-arg]
    with pytest.raises(BufferError):
        c_mask(memoryview(b"abcdefgh")[::2], b"abcd")


@needs_c
def test_large_payloads_mask_while_other_threads_run() -> None:
    # Payloads of 64 KiB and more are masked without the GIL: threads masking at once
    # must each get their own, correct result.
    data = [os.urandom(300_000 + n) for n in range(4)]
    keys = [os.urandom(4) for _ in data]
    results: list[bytes | None] = [None] * len(data)

    def work(n: int) -> None:
        for _ in range(20):
            results[n] = c_mask(data[n], keys[n])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(data))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for n, result in enumerate(results):
        assert result == _framing._python_mask(data[n], keys[n])


def test_no_speedups_turns_the_extension_off() -> None:
    code = "from syncws import _framing; print(_framing.speedups())"
    env = {**os.environ, "SYNCWS_NO_SPEEDUPS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr


def test_syncws_never_imports_websockets() -> None:
    # The websockets package is a test peer, never a dependency of the library.
    root = Path(_framing.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] != "websockets", f"{path} imports {name}"
