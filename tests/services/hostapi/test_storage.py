from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plughost.errors import KeyValueError, PermissionDenied
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


@pytest.mark.parametrize("grant", ["storage:kv-*", "storage:*", "storage:kv-victim"])
def test_no_grant_reaches_another_plugins_private_namespace(
    perms: PermissionManager, kv: KeyValueStore, tmp_path: Path, grant: str
) -> None:
    # The victim's own namespace is its id; the attacker holds a (wildcard) storage grant.
    perms.set_implicit("kv-victim", implicit_scopes("kv-victim", tmp_path / "victim"))
    StorageService("kv-victim", perms, kv).set("token", "victim-secret")
    perms.set_implicit("kv-attacker", implicit_scopes("kv-attacker", tmp_path / "attacker"))
    perms.grant("kv-attacker", grant)
    perms.grant("kv-attacker", "storage:kv-shared")
    attacker = StorageService("kv-attacker", perms, kv)
    victim_ns = attacker.with_namespace("kv-victim")
    for call in (lambda: victim_ns.get("token"), lambda: victim_ns.keys(),
                 lambda: victim_ns.set("token", "overwritten"), victim_ns.clear):
        with pytest.raises(PermissionDenied, match="private storage namespace of the plugin"):
            call()
    assert kv.get("kv-victim", "token") == "victim-secret"
    # A shared namespace the grant names still works, and so does the attacker's own.
    attacker.with_namespace("kv-shared").set("k", 1)
    attacker.set("k", 2)
    assert (kv.get("kv-shared", "k"), kv.get("kv-attacker", "k")) == (1, 2)


def test_a_plugin_known_later_is_private_from_then_on(
    perms: PermissionManager, kv: KeyValueStore, tmp_path: Path
) -> None:
    perms.set_implicit("a", implicit_scopes("a", tmp_path / "a"))
    perms.grant("a", "storage:*")
    other = StorageService("a", perms, kv).with_namespace("late")
    other.set("k", 1)  # nobody's namespace yet: the wildcard grant covers it
    perms.declare("late", ["net:example.com"])  # a plugin called "late" is installed
    with pytest.raises(PermissionDenied, match="private storage namespace"):
        other.get("k")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set("\ud800", 1),
        lambda s: s.get("\udfff"),
        lambda s: s.delete("a\ud800b"),
        lambda s: s.get_many(["ok", "\ud800"]),
        lambda s: s.keys(prefix="\ud800"),
        lambda s: s.set_many({"ok": 1, "\ud800": 2}),
        lambda s: s.create_index("\ud800", "a.b"),
        lambda s: s.set("deep", _deep(100_000)),
        lambda s: s.set("deep", {"a": _deep(5_000)}),
        lambda s: s.query_by_index("i", _deep(100_000)),
        lambda s: s.transaction().set("deep", _deep(100_000)),
        lambda s: s.transaction().set("\ud800", 1),
        lambda s: s.get(""),
    ],
    ids=["set-surrogate-key", "get-surrogate-key", "delete-surrogate-key", "get-many",
         "keys-prefix", "set-many", "index-name", "set-100k-deep", "set-5k-deep-inside",
         "query-100k-deep", "tx-deep", "tx-surrogate-key", "get-empty-key"],
)
def test_bad_keys_and_values_raise_key_value_error_and_write_nothing(
    storage: StorageService, kv: KeyValueStore, call: Callable[[StorageService], object]
) -> None:
    storage.set("ok", 0)
    storage.create_index("i", "a")
    with pytest.raises(KeyValueError):
        call(storage)
    assert storage.keys() == ["ok"] and storage.get("ok") == 0


def test_a_bad_namespace_name_is_a_key_value_error(
    storage: StorageService, perms: PermissionManager
) -> None:
    perms.grant("p", "storage:*")
    with pytest.raises(KeyValueError, match="surrogate"):
        storage.with_namespace("ns\ud800").set("k", 1)
    assert perms.audit.query(plugin="p", decision="deny") == []


def _deep(levels: int) -> object:
    value: object = []
    for _ in range(levels):
        value = [value]
    return value
