from __future__ import annotations

from pathlib import Path

from plughost.security.grant_store import PermissionStore, SQLitePermissionStore


def test_sqlite_store_satisfies_the_contract(tmp_path: Path) -> None:
    store = SQLitePermissionStore(tmp_path / "s.db")
    assert isinstance(store, PermissionStore)
    store.set_declared("p", ["storage:b", "net:a"])
    store.set_declared("p", ["net:a"])  # replaces, not appends
    assert store.declared("p") == ["net:a"]
    store.add_grant("p", "net:a", "op")
    store.add_grant("p", "net:a", "op")  # idempotent
    store.add_grant("p", "!fs:read:/etc", "op")
    assert store.grants("p") == ["net:a", "!fs:read:/etc"]
    assert store.remove_grant("p", "net:a", "op") and not store.remove_grant("p", "net:a", "op")
    rid = store.add_request("q", "env:HOME", "needs it")
    assert store.get_request(rid)[1:5] == ("q", "env:HOME", "needs it", "pending")
    store.set_request_status(rid, "refused", "op")
    assert [r[4] for r in store.list_requests("q", None)] == ["refused"]
    assert store.list_requests(None, "pending") == []
    assert store.plugins() == ["p", "q"]
    store.forget("p")
    assert store.plugins() == ["q"] and store.grants("p") == []
    store.close()
    store.close()
