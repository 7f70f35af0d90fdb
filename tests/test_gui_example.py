"""``examples/gui_client.py`` for real: a Tk window on a virtual X server (Xvfb).

The test starts ``Xvfb`` on a free display, runs the example in a child process against
a syncws server of its own, types a line into the window with ``xdotool`` (so the
window's send path runs), closes the connection from the server (the window learns it
through its :class:`~syncws.MessageNotifier`, without polling, and says so in its
title), takes a screenshot and quits the window with Ctrl-Q. It is skipped, with the
reason, where tkinter, Xvfb or xdotool are missing or no X server can be started.
"""

from __future__ import annotations

import os
import queue
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WAIT, ChildProcess, SyncwsServer, wait_for
from test_examples import run_example

import syncws

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs an X server")

#: What the server sends the window before it closes the connection.
GREETINGS = ["welcome from the test server", "a second message"]
TYPED = "hello from xdotool"


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (Debian package {package})")
    return path


@pytest.fixture
def display(tmp_path: Path) -> Iterator[str]:
    """Start Xvfb on a display number it picks itself; yield ``":N"``; stop it."""
    xvfb = need("Xvfb", "xvfb")
    read_end, write_end = os.pipe()
    log = (tmp_path / "xvfb.log").open("wb")
    try:
        proc = subprocess.Popen(
            [xvfb, "-displayfd", str(write_end), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    except BaseException:
        os.close(read_end)
        log.close()
        raise
    finally:
        os.close(write_end)
    try:
        # Xvfb writes the display number once it accepts clients; EOF means it died.
        number = b""
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_end], [], [], WAIT)
            chunk = os.read(read_end, 16) if ready else b""
            if not chunk:
                break
            number += chunk
        if not number.strip().isdigit():
            proc.kill()
            proc.wait(WAIT)
            log.flush()
            why = (tmp_path / "xvfb.log").read_text(errors="replace").strip()[-300:]
            pytest.skip(f"cannot start an X server with Xvfb: {why or 'no display number'}")
        yield f":{int(number)}"
    finally:
        os.close(read_end)
        if proc.poll() is None:
            proc.terminate()
        proc.wait(WAIT)
        log.close()


def xdotool(*args: str) -> str:
    result = subprocess.run(
        ["xdotool", *args], capture_output=True, text=True, timeout=WAIT, check=False
    )
    return result.stdout


def find_window(name: str) -> str:
    """Wait until a window whose title matches the regular expression ``name`` exists."""
    found: list[str] = []

    def search() -> bool:
        found[:] = xdotool("search", "--name", name).split()
        return bool(found)

    wait_for(search, what=f"a window named {name!r}")
    return found[0]


def screenshot(directory: Path) -> Path:
    """Save the whole screen (ImageMagick's PNG, or else an X window dump); return the file."""
    if shutil.which("import"):
        path = directory / "gui_client.png"
        command = ["import", "-window", "root", str(path)]
    else:
        need("xwd", "x11-apps")
        path = directory / "gui_client.xwd"
        command = ["xwd", "-root", "-silent", "-out", str(path)]
    subprocess.run(command, check=True, timeout=WAIT, capture_output=True)
    return path


def test_gui_client_under_xvfb(
    display: str,
    syncws_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pytest.importorskip("tkinter", reason="the GUI client needs tkinter (Debian: python3-tk)")
    need("xdotool", "xdotool")
    received: queue.Queue[str | bytes] = queue.Queue()

    def chat(request: Any, srv: SyncwsServer) -> None:
        ws = request.accept()
        srv.record.put(ws)
        try:
            for message in ws:
                received.put(message)
        except syncws.ConnectionClosed:
            pass

    srv = syncws_server(chat)
    monkeypatch.setenv("DISPLAY", display)
    child: ChildProcess = run_example("gui_client.py", srv.url)
    try:
        server_side = srv.get()
        for line in GREETINGS:
            server_side.send_message(line)
        window = find_window(r"^syncws chat: ws://")

        # The send path: a line typed into the window reaches the server.
        xdotool("windowfocus", "--sync", window)
        xdotool("type", "--delay", "1", TYPED)
        xdotool("key", "Return")
        assert received.get(timeout=WAIT) == TYPED

        # The end of the connection wakes the window up (it polls nothing).
        server_side.close(1000, "test over")
        find_window(r"\(disconnected\)$")

        shot = screenshot(tmp_path)
        data = shot.read_bytes()
        assert len(data) > 1000, f"empty screenshot: {len(data)} bytes"
        if shot.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:16]

        xdotool("key", "ctrl+q")
        assert child.wait(WAIT) == 0, child.errors
    finally:
        child.stop()
    assert "Traceback" not in child.errors, child.errors
