"""Names deprecated in favour of others: they still work, with a DeprecationWarning."""

from __future__ import annotations

import importlib

import pytest

import syncws
from syncws import request

RENAMED = "RequestHook is deprecated; use Handler"


def test_request_hook_is_handler_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=RENAMED):
        assert syncws.RequestHook is syncws.Handler  # type: ignore[comparison-overlap]
    with pytest.warns(DeprecationWarning, match=RENAMED):
        assert request.RequestHook is request.Handler  # type: ignore[comparison-overlap]


def test_request_hook_can_still_be_imported() -> None:
    with pytest.warns(DeprecationWarning, match=RENAMED) as record:
        from syncws import RequestHook
    assert RequestHook is syncws.Handler  # type: ignore[comparison-overlap]
    # The warning points at the import, not into syncws or importlib.
    assert {entry.filename for entry in record} == {__file__}
    with pytest.warns(DeprecationWarning, match=RENAMED):
        from syncws.request import RequestHook as again
    assert again is syncws.Handler  # type: ignore[comparison-overlap]


def test_the_deprecated_names_are_not_exported() -> None:
    assert "RequestHook" not in syncws.__all__
    assert "RequestHook" not in request.__all__


@pytest.mark.parametrize("module", ["syncws", "syncws.request"])
def test_other_missing_names_still_raise_attribute_error(module: str) -> None:
    with pytest.raises(AttributeError, match="has no attribute 'RequestHooks'"):
        _ = importlib.import_module(module).RequestHooks
