from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plughost.errors import KeyValueError
from plughost.storage.db import Database
from plughost.storage.kv import KeyValueBackend, KeyValueStore
from plughost.storage.kv_db import DatabaseKeyValueStore
from tests.fixtures.databases import BACKEND_PARAMS, DatabaseServers, migrated_url


@pytest.fixture(params=[pytest.param("embedded", id="embedded"), *BACKEND_PARAMS])
def kv(request: pytest.FixtureRequest, tmp_path: Path,
       db_servers: DatabaseServers) -> Iterator[KeyValueBackend]:
    """Every test runs on both implementations: the embedded SQLite file, and the plughost
    database on SQLite, PostgreSQL and MariaDB."""
    if request.param == "embedded":
        with KeyValueStore(tmp_path / "storage.db") as store:
            yield store
        return
    with Database(migrated_url(request.param, tmp_path, db_servers)) as db, \
            DatabaseKeyValueStore(db) as db_store:
        yield db_store


def test_get_set_delete_clear(kv: KeyValueBackend) -> None:
    assert kv.get("a", "k") is None and kv.get("a", "k", 7) == 7
    kv.set("a", "k", {"x": [1, 2]})
    assert kv.get("a", "k") == {"x": [1, 2]}
    assert kv.delete("a", "k") is True and kv.delete("a", "k") is False
    kv.set_many("a", {"1": 1, "2": 2})
    kv.clear("a")
    assert kv.keys("a") == []


def test_namespaces_are_isolated(kv: KeyValueBackend) -> None:
    kv.set("a", "k", 1)
    kv.set("b", "k", 2)
    kv.clear("a")
    assert kv.get("a", "k") is None and kv.get("b", "k") == 2


def test_batch_get_returns_existing_keys_in_request_order(kv: KeyValueBackend) -> None:
    kv.set_many("a", {"x": 1, "y": 2, "z": 3})
    assert kv.get_many("a", ["z", "missing", "x"]) == {"z": 3, "x": 1}
    assert kv.keys("a", prefix="y") == ["y"]


def test_values_survive_reopening(tmp_path: Path) -> None:
    with KeyValueStore(tmp_path / "s.db") as kv:
        kv.set("a", "k", "v")
        kv.create_index("a", "by_v", "v")
    with KeyValueStore(tmp_path / "s.db") as kv:
        assert kv.get("a", "k") == "v"
        assert kv.indexes("a") == {"by_v": "v"}


def test_unserialisable_value_is_refused_and_nothing_is_written(kv: KeyValueBackend) -> None:
    with pytest.raises(KeyValueError, match="cannot be stored"):
        kv.set_many("a", {"ok": 1, "bad": object()})
    assert kv.keys("a") == []
    with pytest.raises(KeyValueError, match="non-empty"):
        kv.set("a", "", 1)


def test_secondary_index_tracks_writes_and_backfills(kv: KeyValueBackend) -> None:
    kv.set("a", "u1", {"user": {"email": "x@example.com"}, "n": 1})
    kv.create_index("a", "email", "user.email")  # indexes existing data
    kv.set("a", "u2", {"user": {"email": "x@example.com"}, "n": 2})
    kv.set("a", "u3", {"user": {"email": "y@example.com"}})
    kv.set("a", "nofield", {"other": True})
    assert list(kv.query_by_index("a", "email", "x@example.com")) == ["u1", "u2"]
    kv.set("a", "u1", {"user": {"email": "z@example.com"}})  # re-indexed on overwrite
    assert list(kv.query_by_index("a", "email", "x@example.com")) == ["u2"]
    kv.delete("a", "u2")
    assert kv.query_by_index("a", "email", "x@example.com") == {}
    assert kv.query_by_index("a", "email", "z@example.com") == {
        "u1": {"user": {"email": "z@example.com"}}
    }


def test_query_on_unknown_index_names_the_known_ones(kv: KeyValueBackend) -> None:
    kv.create_index("a", "by_n", "n")
    with pytest.raises(KeyValueError, match="indexes: by_n"):
        kv.query_by_index("a", "nope", 1)
    with pytest.raises(KeyValueError, match="already indexes"):
        kv.create_index("a", "by_n", "m")


def test_transaction_commits_atomically_and_reads_its_own_writes(kv: KeyValueBackend) -> None:
    kv.set("a", "keep", 1)
    with kv.transaction("a") as tx:
        tx.set("x", 1)
        tx.delete("keep")
        assert tx.get("x") == 1 and tx.get("keep") is None
        assert kv.get("a", "x") is None  # not visible outside before commit
    assert kv.get("a", "x") == 1 and kv.get("a", "keep") is None


def test_transaction_rolls_back_when_the_block_raises(kv: KeyValueBackend) -> None:
    kv.create_index("a", "by_n", "n")
    kv.set("a", "k", {"n": 1})
    with pytest.raises(RuntimeError), kv.transaction("a") as tx:
        tx.set("k", {"n": 2})
        tx.set("new", {"n": 2})
        raise RuntimeError("boom")
    assert kv.get("a", "k") == {"n": 1} and kv.get("a", "new") is None
    assert list(kv.query_by_index("a", "by_n", 1)) == ["k"]


def test_explicit_rollback_and_reuse_is_refused(kv: KeyValueBackend) -> None:
    tx = kv.transaction("a")
    tx.set("k", 1)
    tx.clear()
    assert tx.get("k") is None and len(tx.operations) == 2
    tx.rollback()
    assert kv.get("a", "k") is None
    with pytest.raises(KeyValueError, match="already committed or rolled back"):
        tx.set("k", 2)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_two_nodes_on_one_database_share_values_and_indexes(
        backend: str, tmp_path: Path, db_servers: DatabaseServers) -> None:
    url = migrated_url(backend, tmp_path, db_servers)
    with Database(url) as db1, Database(url) as db2:
        one, two = DatabaseKeyValueStore(db1), DatabaseKeyValueStore(db2)
        one.create_index("shared", "mail", "user.email")
        two.set("shared", "u1", {"user": {"email": "a@x"}})  # indexed by the other node's index
        assert one.query_by_index("shared", "mail", "a@x") == {"u1": {"user": {"email": "a@x"}}}
        long_key = "k" * 1024
        one.set_many("shared", {"A": 1, "a": 2, long_key: 3})  # case kept apart, even on MySQL
        assert two.get_many("shared", ["A", "a", long_key]) == {"A": 1, "a": 2, long_key: 3}
        assert two.keys("shared", prefix="A") == ["A"]


def test_an_embedded_storage_file_is_imported_without_overwriting(
        tmp_path: Path, db_servers: DatabaseServers) -> None:
    from plughost.storage.kv_db import import_sqlite_kv

    with KeyValueStore(tmp_path / "storage.db") as old:
        old.create_index("p", "by", "n")
        old.set_many("p", {"x": {"n": 1}, "y": {"n": 2}})
    with Database(migrated_url("sqlite", tmp_path, db_servers)) as db:
        store = DatabaseKeyValueStore(db)
        store.set("p", "y", {"n": 9})
        assert import_sqlite_kv(tmp_path / "storage.db", store) == 1
        assert store.get_many("p", ["x", "y"]) == {"x": {"n": 1}, "y": {"n": 9}}
        assert store.query_by_index("p", "by", 1) == {"x": {"n": 1}}


def test_overlong_namespace_is_refused_by_name(tmp_path: Path,
                                               db_servers: DatabaseServers) -> None:
    with Database(migrated_url("sqlite", tmp_path, db_servers)) as db, \
            pytest.raises(KeyValueError, match="namespace is 201 characters"):
        DatabaseKeyValueStore(db).set("n" * 201, "k", 1)
