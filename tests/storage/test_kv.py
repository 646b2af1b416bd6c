from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plughost.errors import KeyValueError
from plughost.storage.kv import KeyValueStore


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[KeyValueStore]:
    with KeyValueStore(tmp_path / "storage.db") as store:
        yield store


def test_get_set_delete_clear(kv: KeyValueStore) -> None:
    assert kv.get("a", "k") is None and kv.get("a", "k", 7) == 7
    kv.set("a", "k", {"x": [1, 2]})
    assert kv.get("a", "k") == {"x": [1, 2]}
    assert kv.delete("a", "k") is True and kv.delete("a", "k") is False
    kv.set_many("a", {"1": 1, "2": 2})
    kv.clear("a")
    assert kv.keys("a") == []


def test_namespaces_are_isolated(kv: KeyValueStore) -> None:
    kv.set("a", "k", 1)
    kv.set("b", "k", 2)
    kv.clear("a")
    assert kv.get("a", "k") is None and kv.get("b", "k") == 2


def test_batch_get_returns_existing_keys_in_request_order(kv: KeyValueStore) -> None:
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


def test_unserialisable_value_is_refused_and_nothing_is_written(kv: KeyValueStore) -> None:
    with pytest.raises(KeyValueError, match="cannot be stored"):
        kv.set_many("a", {"ok": 1, "bad": object()})
    assert kv.keys("a") == []
    with pytest.raises(KeyValueError, match="non-empty"):
        kv.set("a", "", 1)


def test_secondary_index_tracks_writes_and_backfills(kv: KeyValueStore) -> None:
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


def test_query_on_unknown_index_names_the_known_ones(kv: KeyValueStore) -> None:
    kv.create_index("a", "by_n", "n")
    with pytest.raises(KeyValueError, match="indexes: by_n"):
        kv.query_by_index("a", "nope", 1)
    with pytest.raises(KeyValueError, match="already indexes"):
        kv.create_index("a", "by_n", "m")


def test_transaction_commits_atomically_and_reads_its_own_writes(kv: KeyValueStore) -> None:
    kv.set("a", "keep", 1)
    with kv.transaction("a") as tx:
        tx.set("x", 1)
        tx.delete("keep")
        assert tx.get("x") == 1 and tx.get("keep") is None
        assert kv.get("a", "x") is None  # not visible outside before commit
    assert kv.get("a", "x") == 1 and kv.get("a", "keep") is None


def test_transaction_rolls_back_when_the_block_raises(kv: KeyValueStore) -> None:
    kv.create_index("a", "by_n", "n")
    kv.set("a", "k", {"n": 1})
    with pytest.raises(RuntimeError), kv.transaction("a") as tx:
        tx.set("k", {"n": 2})
        tx.set("new", {"n": 2})
        raise RuntimeError("boom")
    assert kv.get("a", "k") == {"n": 1} and kv.get("a", "new") is None
    assert list(kv.query_by_index("a", "by_n", 1)) == ["k"]


def test_explicit_rollback_and_reuse_is_refused(kv: KeyValueStore) -> None:
    tx = kv.transaction("a")
    tx.set("k", 1)
    tx.clear()
    assert tx.get("k") is None and len(tx.operations) == 2
    tx.rollback()
    assert kv.get("a", "k") is None
    with pytest.raises(KeyValueError, match="already committed or rolled back"):
        tx.set("k", 2)
