"""The snapshot helper used to prove "nothing changed" sees every kind of change."""

from __future__ import annotations

from pathlib import Path

from plughost.storage.records import StoredPlugin
from plughost.storage.repository import Repository
from tests.fixtures.snapshot import diff_snapshots, take_snapshot


def test_snapshot_detects_rows_objects_and_files(database, fs_store, tmp_path: Path) -> None:
    repo = Repository(database, lock_dir=tmp_path / "locks")
    cache = tmp_path / "cache"
    cache.mkdir()
    before = take_snapshot(database=database, objects=fs_store, dirs=[cache])
    assert before == take_snapshot(database=database, objects=fs_store, dirs=[cache])

    repo.add_plugin(StoredPlugin.from_manifest({"id": "p", "version": "1.0.0"}))
    after_row = take_snapshot(database=database, objects=fs_store, dirs=[cache])
    assert any(line.startswith("database/plugins") for line in diff_snapshots(before, after_row))
    repo.delete_plugin("p")
    # Rows are back as they were; the change log keeps the history of both changes, and a
    # snapshot sees it (a refused operation must not write one either).
    after_delete = take_snapshot(database=database, objects=fs_store, dirs=[cache])
    changed_tables = {line.split(":")[0] for line in diff_snapshots(before, after_delete)}
    assert changed_tables == {"database/change_log", "database/change_sequence"}
    before = after_delete

    fs_store.put("plugins/p/1/p_1.zip", b"x")
    assert diff_snapshots(before, take_snapshot(database=database, objects=fs_store,
                                                dirs=[cache]))[0].startswith("objects")
    fs_store.delete("plugins/p/1/p_1.zip")
    (cache / "leftover").mkdir()
    changed = take_snapshot(database=database, objects=fs_store, dirs=[cache])
    assert diff_snapshots(before, changed) == [f"dir:{cache}/leftover: None -> '<dir>'"]
