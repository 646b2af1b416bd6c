from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plughost.errors import PermissionDenied
from plughost.security.permissions import PermissionManager
from plughost.services.hostapi import implicit_scopes, make_services
from plughost.services.hostapi.storage import StorageService
from plughost.storage.kv import KeyValueStore


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[KeyValueStore]:
    with KeyValueStore(tmp_path / "storage.db") as store:
        yield store


@pytest.fixture
def storage(perms: PermissionManager, kv: KeyValueStore, tmp_path: Path) -> StorageService:
    perms.set_implicit("p", implicit_scopes("p", tmp_path / "data"))
    return StorageService("p", perms, kv)


def test_own_namespace_works_without_a_grant(storage: StorageService) -> None:
    storage.set("k", {"n": 1})
    assert storage.get("k") == {"n": 1}
    storage.set_many({"a": 1, "b": 2})
    assert storage.get_many(["a", "b", "z"]) == {"a": 1, "b": 2}
    assert storage.keys() == ["a", "b", "k"]
    assert storage.delete("a") is True
    storage.clear()
    assert storage.keys() == []


def test_other_namespace_needs_a_grant(
    storage: StorageService, perms: PermissionManager, kv: KeyValueStore
) -> None:
    shared = storage.with_namespace("shared")
    with pytest.raises(PermissionDenied, match="storage shared"):
        shared.get("k")
    perms.grant("p", "storage:shared")
    shared.set("k", 1)
    assert kv.get("shared", "k") == 1 and storage.get("k") is None
    perms.revoke("p", "storage:shared")
    with pytest.raises(PermissionDenied):
        shared.set("k", 2)
    assert kv.get("shared", "k") == 1
    assert [r.target for r in perms.audit.query(plugin="p", decision="deny")] == [
        "shared",
        "shared",
    ]


def test_operator_deny_rule_blocks_even_the_own_namespace(
    storage: StorageService,
    perms: PermissionManager,
) -> None:
    perms.grant("p", "!storage:p")
    with pytest.raises(PermissionDenied, match="denied by rule"):
        storage.get("k")


def test_indexes_and_transactions_through_the_service(storage: StorageService) -> None:
    storage.create_index("by_artist", "artist")
    with storage.transaction() as tx:
        tx.set("s1", {"artist": "A", "title": "x"})
        tx.set("s2", {"artist": "B", "title": "y"})
    assert list(storage.query_by_index("by_artist", "A")) == ["s1"]
    with pytest.raises(ZeroDivisionError), storage.transaction() as tx:
        tx.set("s3", {"artist": "A"})
        raise ZeroDivisionError("abort")
    assert list(storage.query_by_index("by_artist", "A")) == ["s1"]


async def test_make_services_wires_all_three(
    perms: PermissionManager, kv: KeyValueStore, tmp_path: Path
) -> None:
    services = make_services("q", perms, data_dir=tmp_path / "data" / "q", kv=kv)
    services.files.write_text("a.txt", "x")
    services.storage.set("k", 1)
    assert services.files.read_text("a.txt") == "x" and services.storage.get("k") == 1
    with pytest.raises(PermissionDenied):
        await services.http.get("http://example.com/")
    await services.aclose()
