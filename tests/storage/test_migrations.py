"""Migrations produce exactly the models' schema, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plughost.errors import MigrationError
from plughost.storage import migrations
from plughost.storage.db import Database
from plughost.storage.models import Base


def schema_diff(db: Database) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(ctx, Base.metadata)


def test_migrations_produce_exactly_the_models_schema(empty_database_url: str) -> None:
    with Database(empty_database_url) as db:
        assert migrations.current(db) is None
        assert migrations.upgrade(db) == migrations.head()
        assert schema_diff(db) == []


def test_upgrade_is_idempotent_and_reports_the_revision(empty_database_url: str) -> None:
    assert migrations.upgrade(empty_database_url) == migrations.head()
    assert migrations.upgrade(empty_database_url) == migrations.head()
    assert migrations.current(empty_database_url) == migrations.head()


def test_database_migrated_by_a_newer_plughost_is_refused(empty_database_url: str) -> None:
    with Database(empty_database_url) as db:
        migrations.upgrade(db)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'zz99_future'")
        with pytest.raises(MigrationError, match="newer plughost") as info:
            migrations.upgrade(db)
        assert info.value.code == "storage.migration"
        assert migrations.current(db) == "zz99_future"


def test_unknown_target_revision_names_the_known_ones(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(MigrationError, match="Known revisions: 0001"):
        migrations.upgrade(url, "nope")


def test_database_migrate_method_and_alembic_config_need_no_ini_file(tmp_path) -> None:
    cfg = migrations.alembic_config()
    assert cfg.config_file_name is None
    assert (migrations.MIGRATIONS_DIR / "env.py").is_file()
    with Database(f"sqlite:///{tmp_path / 'y.db'}") as db:
        db.migrate()
        assert migrations.current(db) == migrations.head()


def test_the_head_read_from_the_revision_files_is_alembics() -> None:
    assert migrations._shipped_head() == migrations.head()


def test_upgrading_a_database_at_head_costs_one_query_and_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'z.db'}"
    assert migrations.upgrade(url) == migrations.head()
    probe = ("import sys\nfrom plughost.storage import migrations\n"
             f"assert migrations.upgrade({url!r}) == {migrations.head()!r}\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n")
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": src}, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
    # Behind head (here: an empty database) it is still Alembic's work, as before.
    url2 = f"sqlite:///{tmp_path / 'w.db'}"
    with Database(url2) as db:
        assert migrations.upgrade(db) == migrations.head()


def test_upgrading_past_0008_records_what_the_installed_plugins_require(tmp_path: Path) -> None:
    import json

    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert migrations.upgrade(url, "0007") == "0007"
    manifests = {"lib": {"id": "lib"}, "app": {"id": "app", "dependencies": {"lib": "^1"},
                                              "optional-dependencies": {"extra": "*"}},
                 "odd": {"id": "odd", "dependencies": ["not", "a", "table"]}}
    with Database(url) as db, db.engine.begin() as conn:
        for pid, data in manifests.items():
            conn.execute(text(
                "INSERT INTO plugins (id, name, version, description, author, type, runtime, "
                "entry_point, icon, repository, documentation, state, enabled, checksum, "
                "source, source_uri, object_key, manifest, installed_at, updated_at) VALUES "
                "(:id, :id, '1.0.0', '', '', '', 'python', '', '', '', '', 'installed', 1, '', "
                "'local', '', '', :manifest, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"),
                {"id": pid, "manifest": json.dumps(data)})
    assert migrations.upgrade(url) == migrations.head()
    with Database(url) as db, db.engine.connect() as conn:
        rows = conn.execute(text("SELECT plugin_id, requires FROM plugin_requirements")).all()
    assert [tuple(r) for r in rows] == [("app", "lib")]


def test_upgrading_past_0009_counts_the_audit_events_and_operations_already_recorded(
        empty_database_url: str) -> None:
    from sqlalchemy import text

    assert migrations.upgrade(empty_database_url, "0008") == "0008"
    events = [("plugin.install", "ok")] * 3 + [("plugin.install", "error"), ("config.set", "ok")]
    with Database(empty_database_url) as db, db.engine.begin() as conn:
        for action, outcome in events:
            conn.execute(text(
                "INSERT INTO audit_events (at, actor, action, plugin_id, outcome, details) "
                "VALUES ('2026-01-01 00:00:00', 'cli', :action, 'p', :outcome, '{}')"),
                {"action": action, "outcome": outcome})
        for i, (kind, status, started, finished) in enumerate((
                ("install", "succeeded", "2026-01-01 00:00:01", "2026-01-01 00:00:03"),
                ("install", "succeeded", None, "2026-01-01 00:00:04"),
                ("update", "failed", "2026-01-01 00:00:00", "2026-01-01 00:00:00.500000"),
                ("update", "running", "2026-01-01 00:00:00", None))):
            conn.execute(text(
                "INSERT INTO operations (id, kind, plugin_id, status, progress, message, "
                "details, actor, created_at, updated_at, started_at, finished_at) VALUES "
                "(:id, :kind, 'p', :status, 0, '', '{}', 'cli', '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00', :started, :finished)"),
                {"id": f"op{i}", "kind": kind, "status": status, "started": started,
                 "finished": finished})
    assert migrations.upgrade(empty_database_url) == migrations.head()
    with Database(empty_database_url) as db, db.engine.connect() as conn:
        rows = conn.execute(text("SELECT action, outcome, count FROM audit_counts "
                                 "ORDER BY action, outcome")).all()
        totals = conn.execute(text("SELECT kind, status, count, seconds FROM operation_totals "
                                   "ORDER BY kind, status")).all()
    assert [tuple(r) for r in rows] == [("config.set", "ok", 1), ("plugin.install", "error", 1),
                                        ("plugin.install", "ok", 3)]
    # seconds from start (from creation when it never started) to finish; unfinished: none
    assert [tuple(r) for r in totals] == [("install", "succeeded", 2, 6.0),
                                          ("update", "failed", 1, 0.5)]


def test_upgrading_past_0010_moves_each_nodes_plugin_states_into_rows(
        empty_database_url: str) -> None:
    import json

    from sqlalchemy import text

    assert migrations.upgrade(empty_database_url, "0009") == "0009"
    nodes = {"n1": {"a": "active", "b": "failed"}, "n2": {}, "n3": {"a": "loaded", "": "x"}}
    with Database(empty_database_url) as db, db.engine.begin() as conn:
        for node_id, states in nodes.items():
            conn.execute(text(
                "INSERT INTO cluster_nodes (id, name, url, version, started_at, heartbeat_at, "
                "applied_seq, plugins, info) VALUES (:id, :id, '', '1', '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00', 0, :plugins, '{}')"),
                {"id": node_id, "plugins": json.dumps(states)})
    assert migrations.upgrade(empty_database_url) == migrations.head()
    with Database(empty_database_url) as db, db.engine.connect() as conn:
        rows = conn.execute(text("SELECT node_id, plugin_id, state FROM cluster_node_plugins "
                                 "ORDER BY node_id, plugin_id")).all()
        left = conn.execute(text("SELECT plugins FROM cluster_nodes")).scalars().all()
    assert [tuple(r) for r in rows] == [("n1", "a", "active"), ("n1", "b", "failed"),
                                        ("n3", "a", "loaded")]
    assert [json.loads(v) if isinstance(v, str) else v for v in left] == [{}, {}, {}]
