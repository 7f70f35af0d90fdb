"""The "syncws" lifecycle logger and the opt-in "syncws.trace" frame logger."""

from __future__ import annotations

import logging

from helpers import echo_handler, echo_once


def test_lifecycle_logged_at_debug(websockets_server, caplog) -> None:
    srv = websockets_server(echo_handler)
    caplog.set_level(logging.DEBUG, logger="syncws")
    echo_once(srv.url, "x")
    records = [r for r in caplog.records if r.name == "syncws" or r.name.startswith("syncws.")]
    assert records, "nothing logged on the syncws logger"
    assert any(r.levelno == logging.DEBUG for r in records)
    assert all(r.levelno < logging.WARNING for r in records)


def test_frame_trace_when_enabled(websockets_server, caplog) -> None:
    srv = websockets_server(echo_handler)
    caplog.set_level(logging.DEBUG, logger="syncws.trace")
    echo_once(srv.url, "traced")
    assert any(r.name == "syncws.trace" for r in caplog.records)


def test_quiet_at_default_levels(websockets_server, caplog) -> None:
    srv = websockets_server(echo_handler)
    caplog.set_level(logging.WARNING)
    echo_once(srv.url, "quiet")
    assert [r for r in caplog.records if r.name.startswith("syncws")] == []
