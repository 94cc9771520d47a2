from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/gui" in str(item.fspath):
            item.add_marker(pytest.mark.gui)
            if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
                item.add_marker(pytest.mark.skip(reason="needs a display: run under xvfb-run"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prediction cache of the test's own (OMICSLENS_CACHE_DIR), never the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(folder))
    return folder
