"""One contract suite, run against every ConfigStore backend (SQLite file and real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plughost.errors import ConfigConflict
from plughost.storage.config_store import (
    ConfigRecord,
    ConfigStore,
    RedisConfigStore,
    SQLiteConfigStore,
    open_config_store,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


def _cleanup_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConfigStore]:
    if request.param == "sqlite":
        s: ConfigStore = SQLiteConfigStore(tmp_path / "config.db")
        yield s
        s.close()
    else:
        prefix = f"plughost-test-{uuid.uuid4().hex}:"
        s = RedisConfigStore(REDIS_URL, prefix=prefix)
        yield s
        s.close()
        _cleanup_redis(prefix)


def rec(version: int, settings: dict, plugin: str = "p") -> ConfigRecord:
    return ConfigRecord(plugin, version, settings, "set", "test", 1000.0 + version)


def test_store_satisfies_the_protocol(store: ConfigStore) -> None:
    assert isinstance(store, ConfigStore)


def test_empty_store_has_no_records(store: ConfigStore) -> None:
    assert store.latest("p") is None
    assert store.history("p") == []
    assert store.get("p", 1) is None
    assert store.plugins() == []


def test_append_then_read_back_in_order(store: ConfigStore) -> None:
    store.append(rec(1, {"a": 1}))
    store.append(rec(2, {"a": 2, "nested": {"x": [1, 2]}}))
    assert store.latest("p") == rec(2, {"a": 2, "nested": {"x": [1, 2]}})
    assert [r.version for r in store.history("p")] == [1, 2]
    assert store.get("p", 1) == rec(1, {"a": 1})
    assert store.get("p", 3) is None and store.get("p", 0) is None
    assert store.plugins() == ["p"]


def test_append_with_a_stale_version_conflicts_and_changes_nothing(store: ConfigStore) -> None:
    store.append(rec(1, {"a": 1}))
    with pytest.raises(ConfigConflict, match="latest is 1"):
        store.append(rec(1, {"a": "other"}))
    with pytest.raises(ConfigConflict):
        store.append(rec(3, {"a": 3}))
    assert store.history("p") == [rec(1, {"a": 1})]


def test_plugins_are_kept_apart(store: ConfigStore) -> None:
    store.append(rec(1, {"a": 1}, plugin="one"))
    store.append(rec(1, {"b": 1}, plugin="two"))
    assert store.latest("one").settings == {"a": 1}
    assert store.latest("two").settings == {"b": 1}
    assert store.plugins() == ["one", "two"]


def test_schema_round_trips(store: ConfigStore) -> None:
    assert store.load_schema("p") is None
    schema = {"type": "object", "properties": {"k": {"type": "string", "x-secret": True}}}
    store.save_schema("p", schema, {"k": "d"})
    assert store.load_schema("p") == (schema, {"k": "d"})
    store.save_schema("q", None, {})
    assert store.load_schema("q") == (None, {})
    assert store.plugins() == ["p", "q"]


def test_close_is_idempotent(store: ConfigStore) -> None:
    store.close()
    store.close()


def test_open_config_store_picks_the_backend_from_the_location(tmp_path: Path) -> None:
    s = open_config_store(tmp_path / "c.db")
    assert isinstance(s, SQLiteConfigStore)
    s.close()
    r = open_config_store(REDIS_URL)
    assert isinstance(r, RedisConfigStore)
    r.close()
