"""Fixtures of the fuzz tests: the figures of a test and a scripted raw server.

Function-scoped fixtures are set up once per test function, not once per
hypothesis example: every example of a test shares them (on purpose; the health
check that warns about it is suppressed in :func:`fuzz.support.fuzz_settings`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import Figures, ScriptedServer


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """Counts of what the examples of this test did, saved when it ends."""
    figures = Figures(request.node.name)
    yield figures
    figures.save()


@pytest.fixture
def raw_server() -> Iterator[ScriptedServer]:
    """A raw TCP server that serves each connection with a job (see ScriptedServer)."""
    server = ScriptedServer()
    yield server
    server.close()
