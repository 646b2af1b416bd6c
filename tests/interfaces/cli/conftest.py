"""The CLI tests read the human output (tables) unless a test asks for another format: under
pytest stdout is not a terminal, which would otherwise select ``plain``."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _table_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGHOST_OUTPUT", "table")
