"""``plughost nodes`` as a table: each plugin's state while a node has a few, a count of each
state once it has many."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from plughost.interfaces.cli.cluster import LIST_AT_MOST, _plugins_cell
from plughost.settings import HostSettings
from plughost.storage.backends import open_storage

runner = CliRunner()


def test_a_cell_lists_a_few_plugins_and_counts_many_by_state() -> None:
    few = [{"id": "a", "state": "active"}, {"id": "b", "state": "failed"}]
    assert _plugins_cell(few) == "a=active, b=failed"
    assert _plugins_cell([]) == "-"
    many = ([{"id": f"p{i:05d}", "state": "active"} for i in range(9_990)]
            + [{"id": f"q{i}", "state": "failed"} for i in range(7)]
            + [{"id": f"r{i}", "state": "loaded"} for i in range(7)])
    assert _plugins_cell(many) == "9,990 active, 7 failed, 7 loaded"
    assert "=" in _plugins_cell(many[:LIST_AT_MOST])


def test_the_table_of_a_node_with_many_plugins_counts_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = HostSettings.from_env({**os.environ, "PLUGHOST_HOME": str(home)})
    with open_storage(settings) as storage:
        storage.repository.beat_node(
            "node-1", name="alpha", url="", version="1.0", started_at=datetime.now(UTC),
            applied_seq=3, info={"transport": "polling"},
            plugins={f"p{i:02d}": "failed" if i % 4 == 0 else "active" for i in range(40)})
    result = runner.invoke(build_app(), ["nodes", "--home", str(home)],
                           env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "alpha" in result.output and "30 active, 10 failed" in result.output
    assert "p01=" not in result.output
