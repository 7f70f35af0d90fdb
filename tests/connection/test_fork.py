"""A connection belongs to the process that opened it: fork() leaves it to the parent."""

from __future__ import annotations

import json
import os
import select
import sys
import time
import warnings
from typing import Any

import pytest
from helpers import WAIT, server_echo

import syncws

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


def in_child(ws: syncws.WebSocketConnection) -> dict[str, Any]:
    """What the inherited connection does in the child (runs in the child)."""
    report: dict[str, Any] = {"closed_at_start": ws.is_closed}
    start = time.monotonic()
    ws.close()
    report["close_seconds"] = time.monotonic() - start
    report["code"] = ws.close_reason.code if ws.close_reason else None
    for name, call in (
        ("send", lambda: ws.send_message("from the child")),
        ("get", lambda: ws.get_message(timeout=1)),
        ("ping", lambda: ws.ping(timeout=1)),
    ):
        try:
            call()
            report[name] = "returned"
        except syncws.ConnectionClosed:
            report[name] = "ConnectionClosed"
        except Exception as exc:
            report[name] = repr(exc)
    return report


def fork_and_report(ws: syncws.WebSocketConnection) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that fork() in a process with threads may deadlock: that
        # is what syncws's at-fork handler is about.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(in_child(ws)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = b""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], deadline - time.monotonic())
            if not ready:
                break
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, os.WNOHANG)
        if status == 0 and not data:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    assert data, "the child did not report in time"
    return json.loads(data)


@pytest.mark.skipif(sys.platform == "darwin", reason="fork() with threads is unsafe on macOS")
def test_the_child_of_a_fork_leaves_the_parents_connection_alone(syncws_server: Any) -> None:
    srv = syncws_server(server_echo)
    with syncws.connect(srv.url, disconnect_timeout=5) as ws:
        ws.send_message("before")
        assert ws.get_message(timeout=WAIT) == "before"
        report = fork_and_report(ws)
        # In the child: closed at once, with nothing sent, and unusable.
        assert report["closed_at_start"] is True
        assert report["close_seconds"] < 0.5, report
        assert report["code"] == 1006
        assert report["send"] == report["get"] == report["ping"] == "ConnectionClosed", report
        # In the parent: untouched.
        assert not ws.is_closed
        ws.send_message("after")
        assert ws.get_message(timeout=WAIT) == "after"
    assert ws.close_reason is not None
    assert ws.close_reason.code == 1000
