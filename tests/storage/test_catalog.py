"""The standard-library catalogue reader answers exactly as the repository does, or not at all."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plughost.errors import InvalidRecord
from plughost.services.views import idle_info, list_stored
from plughost.storage.catalog import Catalog, open_catalog, sqlite_file
from plughost.storage.db import Database
from plughost.storage.migrations import upgrade
from plughost.storage.records import StoredPlugin, StoredVersion
from plughost.storage.repository import Repository

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _manifest(pid: str, version: str, **extra: object) -> dict[str, object]:
    return {"id": pid, "name": pid.replace("-", " ").title(), "version": version,
            "description": f"{pid} does 100% of_the work", "author": "Ada",
            "type": "notify" if pid.startswith("n") else "theme",
            "runtime": "process" if pid.endswith("b") else "python",
            "entry": "x:Plugin", "config": {"schema": {"type": "object"},
                                            "defaults": {"channel": "#general"}}, **extra}


@pytest.fixture
def home_db(tmp_path: Path) -> tuple[str, Repository]:
    url = f"sqlite:///{tmp_path / 'home' / 'plughost.db'}"
    upgrade(url)
    database = Database(url)
    repo = Repository(database, lock_dir=tmp_path / "locks")
    ids = ["notify-a", "notify_b", "theme-c", "notify-d", "theme-e", "nx%y"]
    with repo.unit_of_work():
        for i, pid in enumerate(ids):
            m = _manifest(pid, f"1.{i}.0")
            key = f"plugins/p{i}/{m['version']}/p.zip"
            plugin = StoredPlugin.from_manifest(m, checksum=f"{i:064x}", object_key=key)
            repo.add_plugin(dataclasses.replace(plugin, installed_at=T0 + timedelta(hours=i),
                                                updated_at=T0 + timedelta(days=i)))
            repo.add_version(StoredVersion(pid, str(m["version"]), f"{i:064x}", key, m,
                                           signed_by="key-1" if i % 2 else None))
        repo.update_plugin("notify-d", enabled=False, source="market")
        repo.update_plugin("theme-e", state="failed", failure_reason="boom at start",
                           failure_phase="activate")
    yield url, repo
    database.close()


def _catalog(url: str) -> Catalog:
    catalog = open_catalog(url)
    assert catalog is not None, "the catalog should read this database"
    return catalog


FILTERS = [
    {}, {"type": "notify"}, {"type": "nothing"}, {"state": "failed"}, {"enabled": False},
    {"enabled": True, "type": "theme"}, {"q": "NOTIFY"}, {"q": "%"}, {"q": "_b"}, {"q": "100%"},
    {"limit": 2}, {"limit": 2, "offset": 2}, {"offset": 5}, {"limit": 0},
    {"runtime": "process"}, {"runtime": "python", "type": "notify"}, {"source": "market"},
    {"source": "local", "runtime": "python", "enabled": True},
]


@pytest.mark.parametrize("filters", FILTERS, ids=str)
def test_the_catalog_lists_counts_and_signs_as_the_repository_does(
        home_db: tuple[str, Repository], filters: dict[str, object]) -> None:
    url, repo = home_db
    counted = {k: v for k, v in filters.items() if k not in ("limit", "offset")}
    with _catalog(url) as catalog, catalog.reading():
        got = catalog.list_plugins(**filters)  # type: ignore[arg-type]
        total = catalog.count_plugins(**counted)  # type: ignore[arg-type]
        signed = catalog.signed_plugins([p.id for p in got] + ["ghost"])
    assert got == repo.list_plugins(**filters)  # type: ignore[arg-type]
    assert total == repo.count_plugins(**counted)  # type: ignore[arg-type]
    assert signed == repo.signed_plugins([p.id for p in got] + ["ghost"])
    assert all(p.installed_at is not None and p.installed_at.tzinfo is UTC for p in got)


def test_the_plugin_list_page_is_the_same_through_either_reader(
        home_db: tuple[str, Repository]) -> None:
    url, repo = home_db
    with _catalog(url) as catalog:
        assert list_stored(catalog, limit=3, offset=1, info=idle_info) == \
            list_stored(repo, limit=3, offset=1, info=idle_info)
        assert list_stored(catalog, state="disabled") == list_stored(repo, state="disabled")
        by_runtime = list_stored(catalog, runtime="process", source="local")
        assert by_runtime == list_stored(repo, runtime="process", source="local")
        assert [i.id for i in by_runtime.items] == ["notify_b"] and by_runtime.total == 1


def test_a_bad_state_or_page_is_refused_as_the_repository_refuses_it(
        home_db: tuple[str, Repository]) -> None:
    url, repo = home_db
    with _catalog(url) as catalog:
        with pytest.raises(InvalidRecord) as ours:
            catalog.list_plugins(state="sleeping")
        with pytest.raises(InvalidRecord) as theirs:
            repo.list_plugins(state="sleeping")
        assert str(ours.value) == str(theirs.value)
        with pytest.raises(InvalidRecord, match="limit and offset"):
            catalog.list_plugins(limit=-1)


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://u@127.0.0.1/db", "mysql+pymysql://u@127.0.0.1/db", "sqlite://",
    "sqlite:///:memory:", "sqlite:///file:x.db?mode=ro&uri=true", "sqlite:///x.db?timeout=3",
])
def test_other_databases_take_the_repository_s_way(url: str) -> None:
    assert sqlite_file(url) is None
    assert open_catalog(url) is None


def test_a_missing_a_foreign_or_an_unmigrated_file_takes_the_repository_s_way(
        tmp_path: Path) -> None:
    assert open_catalog(f"sqlite:///{tmp_path / 'none.db'}") is None
    assert not (tmp_path / "none.db").exists()  # the reader creates nothing
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    assert open_catalog(f"sqlite:///{tmp_path / 'junk.db'}") is None
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    assert open_catalog(f"sqlite:///{tmp_path / 'other.db'}") is None


@pytest.mark.parametrize("revision", ["0006", "9999_from_a_newer_plughost"])
def test_a_schema_older_or_newer_than_shipped_takes_the_repository_s_way(
        home_db: tuple[str, Repository], revision: str) -> None:
    url, _ = home_db
    path = sqlite_file(url)
    assert path is not None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()
    assert open_catalog(url) is None


def test_the_catalog_never_writes_and_reads_beside_a_writer(
        home_db: tuple[str, Repository]) -> None:
    url, _ = home_db
    path = sqlite_file(url)
    assert path is not None
    with _catalog(url) as catalog:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            catalog._conn.execute("DELETE FROM plugins")
        writer = sqlite3.connect(path, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE plugins SET name = 'Renamed' WHERE id = 'notify-a'")
            # A write in progress neither blocks nor shows through (WAL: a snapshot).
            assert catalog.list_plugins(limit=1)[0].name == "Notify A"
            with catalog.reading():
                before = catalog.list_plugins(limit=1)[0].name
                writer.execute("COMMIT")
                assert catalog.list_plugins(limit=1)[0].name == before  # one snapshot
            assert catalog.list_plugins(limit=1)[0].name == "Renamed"
        finally:
            writer.close()


def test_reading_blocks_nest_in_one_snapshot(home_db: tuple[str, Repository]) -> None:
    url, _ = home_db
    with _catalog(url) as catalog:
        assert isinstance(catalog, Catalog)
        with catalog.reading() as outer, outer.reading() as inner:
            assert inner.count_plugins() == 6


def test_the_catalog_imports_no_sqlalchemy(home_db: tuple[str, Repository]) -> None:
    url, _ = home_db
    code = ("import sys\nfrom plughost.storage.catalog import open_catalog\n"
            f"with open_catalog({url!r}) as c:\n    assert c.count_plugins() == 6\n"
            "assert 'sqlalchemy' not in sys.modules, 'imported SQLAlchemy'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
