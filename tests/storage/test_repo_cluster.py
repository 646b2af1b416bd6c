"""The nodes of a cluster: a heartbeat writes the plugin states that changed, and one plugin's
state on every node is read alone — on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from plughost.storage.db import Database
from plughost.storage.models import ClusterNodePluginRow, ClusterNodeRow
from plughost.storage.repository import Repository


@pytest.fixture
def repo(database: Database, tmp_path) -> Repository:
    return Repository(database, lock_dir=tmp_path / "locks")


def beat(repo: Repository, node_id: str, plugins: Any, *, whole: bool = True) -> bool:
    return repo.beat_node(node_id, name=node_id, url="", version="1", applied_seq=0,
                          started_at=datetime.now(UTC), plugins=plugins, info={}, whole=whole)


def rows(database: Database) -> list[tuple[str, str, str]]:
    row = ClusterNodePluginRow
    with database.engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(
            sa.select(row.node_id, row.plugin_id, row.state)
            .order_by(row.node_id, row.plugin_id))]


def test_a_beat_writes_the_states_that_changed_and_keeps_the_others(
        repo: Repository, database: Database) -> None:
    assert beat(repo, "n1", {"a": "active", "b": "active", "c": "loaded"})
    assert beat(repo, "n2", {"a": "failed"})
    assert beat(repo, "n1", None, whole=False)  # nothing changed: nothing written
    assert beat(repo, "n1", {"b": "deactivated", "c": None, "d": "active"}, whole=False)
    assert rows(database) == [("n1", "a", "active"), ("n1", "b", "deactivated"),
                              ("n1", "d", "active"), ("n2", "a", "failed")]
    assert {n.id: dict(n.plugins) for n in repo.list_nodes()} == {
        "n1": {"a": "active", "b": "deactivated", "d": "active"}, "n2": {"a": "failed"}}
    assert {n.id: dict(n.plugins) for n in repo.list_nodes(plugin_id="a")} == {
        "n1": {"a": "active"}, "n2": {"a": "failed"}}
    assert {n.id: dict(n.plugins) for n in repo.list_nodes(plugin_id="d")} == {
        "n1": {"d": "active"}, "n2": {}}
    assert beat(repo, "n1", {"z": "active"})  # whole: the other rows go
    assert rows(database) == [("n1", "z", "active"), ("n2", "a", "failed")]


def test_a_beat_of_changes_alone_does_not_create_a_forgotten_node(
        repo: Repository, database: Database) -> None:
    assert not beat(repo, "gone", {"a": "active"}, whole=False)
    assert not beat(repo, "gone", None, whole=False)
    assert repo.list_nodes() == [] and rows(database) == []
    assert beat(repo, "n1", {"a": "active", "b": "active"})
    assert repo.delete_node("n1")
    assert repo.list_nodes() == [] and rows(database) == []  # its states went with it


def test_a_node_not_upgraded_yet_is_read_from_the_states_in_its_row(
        repo: Repository, database: Database) -> None:
    """A node older than the state rows writes every state in its own row's JSON."""
    assert beat(repo, "new", {"a": "active"})
    assert beat(repo, "old", {})
    with database.engine.begin() as conn:
        conn.execute(sa.update(ClusterNodeRow).where(ClusterNodeRow.id == "old")
                     .values(plugins={"a": "failed", "b": "active"}))
    assert {n.id: dict(n.plugins) for n in repo.list_nodes()} == {
        "new": {"a": "active"}, "old": {"a": "failed", "b": "active"}}
    assert {n.id: dict(n.plugins) for n in repo.list_nodes(plugin_id="b")} == {
        "new": {}, "old": {"b": "active"}}
    assert beat(repo, "old", {"b": "active"})  # upgraded: its states are rows from now on
    assert {n.id: dict(n.plugins) for n in repo.list_nodes(plugin_id="b")} == {
        "new": {}, "old": {"b": "active"}}
    assert rows(database) == [("new", "a", "active"), ("old", "b", "active")]
