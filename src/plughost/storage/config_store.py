"""Where plugin configuration history lives: one Protocol, an SQLite default and Redis.

A store keeps, per plugin, the append-only list of accepted operator settings (each a
:class:`ConfigRecord` with a version starting at 1) and the last known schema/defaults so the
CLI can validate without loading the plugin. Appends are compare-and-set on the version, so two
hosts (or a host and the CLI) sharing a store can never both write version N.

The stores hold raw operator settings (``${VAR}`` placeholders unsubstituted, secrets included:
restoring needs them); redaction happens when anything is *shown*, in
:mod:`plughost.services.config`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from plughost.errors import ConfigConflict, ExtraNotInstalled

__all__ = [
    "ConfigRecord",
    "ConfigStore",
    "RedisConfigStore",
    "SQLiteConfigStore",
    "open_config_store",
]


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    """One accepted configuration change.

    :ivar plugin_id: the plugin.
    :ivar version: 1, 2, 3, ... per plugin.
    :ivar settings: the operator settings after the change (raw, may hold ``${VAR}``).
    :ivar action: ``set``, ``reset``, ``restore <n>``, ``file``.
    :ivar actor: who made it (``operator``, ``cli``, ``file:<path>``).
    :ivar time: epoch seconds.
    """

    plugin_id: str
    version: int
    settings: Mapping[str, Any]
    action: str
    actor: str
    time: float
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "plugin_id": self.plugin_id,
                "version": self.version,
                "settings": self.settings,
                "action": self.action,
                "actor": self.actor,
                "time": self.time,
                "meta": self.meta,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ConfigRecord:
        data = json.loads(text)
        return cls(
            data["plugin_id"],
            data["version"],
            data["settings"],
            data["action"],
            data["actor"],
            data["time"],
            data.get("meta", {}),
        )


@runtime_checkable
class ConfigStore(Protocol):
    """The storage contract every configuration backend satisfies (see the contract tests)."""

    def latest(self, plugin_id: str) -> ConfigRecord | None:
        """The newest record, or ``None`` when the plugin was never configured."""

    def get(self, plugin_id: str, version: int) -> ConfigRecord | None:
        """One version, or ``None`` if it does not exist."""

    def history(self, plugin_id: str) -> list[ConfigRecord]:
        """Every record, oldest first."""

    def append(self, record: ConfigRecord) -> None:
        """Store ``record`` iff the latest version is ``record.version - 1``.

        Raises :class:`ConfigConflict` otherwise, leaving the store unchanged.
        """

    def save_schema(
        self, plugin_id: str, schema: Mapping[str, Any] | None, defaults: Mapping[str, Any]
    ) -> None:
        """Remember a plugin's config schema and manifest defaults (for the CLI)."""

    def load_schema(self, plugin_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
        """``(schema, defaults)`` last saved, or ``None``."""

    def plugins(self) -> list[str]:
        """Every plugin with a schema or a history, sorted."""

    def close(self) -> None:
        """Release connections; idempotent."""


def _conflict(plugin_id: str, wanted: int, latest: int) -> ConfigConflict:
    return ConfigConflict(
        f"config of {plugin_id} changed concurrently: tried to write version {wanted} but the "
        f"latest is {latest}. Reload and apply your change again.",
        plugin_id=plugin_id,
        details={"wanted": wanted, "latest": latest},
    )


_SQL = """
CREATE TABLE IF NOT EXISTS config_history (
    plugin_id TEXT NOT NULL, version INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (plugin_id, version));
CREATE TABLE IF NOT EXISTS config_schema (
    plugin_id TEXT PRIMARY KEY, schema TEXT, defaults TEXT NOT NULL);
"""


class SQLiteConfigStore:
    """The embedded default: an SQLite file under the plughost home (stdlib ``sqlite3``).

    :param path: the database file (``<home>/config.db``) or ``":memory:"``.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=10
        )
        self._db.executescript(_SQL)
        self._lock = threading.Lock()
        self._closed = False

    def latest(self, plugin_id: str) -> ConfigRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM config_history WHERE plugin_id = ? ORDER BY version DESC"
                " LIMIT 1",
                (plugin_id,),
            ).fetchone()
        return ConfigRecord.from_json(row[0]) if row else None

    def get(self, plugin_id: str, version: int) -> ConfigRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM config_history WHERE plugin_id = ? AND version = ?",
                (plugin_id, version),
            ).fetchone()
        return ConfigRecord.from_json(row[0]) if row else None

    def history(self, plugin_id: str) -> list[ConfigRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM config_history WHERE plugin_id = ? ORDER BY version",
                (plugin_id,),
            ).fetchall()
        return [ConfigRecord.from_json(r[0]) for r in rows]

    def append(self, record: ConfigRecord) -> None:
        with self._lock:
            # BEGIN IMMEDIATE takes the write lock first, so the check and the insert are one step
            # even when another process shares the file.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM config_history WHERE plugin_id = ?",
                    (record.plugin_id,),
                ).fetchone()
                if row[0] != record.version - 1:
                    raise _conflict(record.plugin_id, record.version, row[0])
                self._db.execute(
                    "INSERT INTO config_history VALUES (?, ?, ?)",
                    (record.plugin_id, record.version, record.to_json()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def save_schema(
        self, plugin_id: str, schema: Mapping[str, Any] | None, defaults: Mapping[str, Any]
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO config_schema VALUES (?, ?, ?)",
                (
                    plugin_id,
                    json.dumps(schema) if schema is not None else None,
                    json.dumps(dict(defaults)),
                ),
            )

    def load_schema(self, plugin_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT schema, defaults FROM config_schema WHERE plugin_id = ?", (plugin_id,)
            ).fetchone()
        if row is None:
            return None
        return (json.loads(row[0]) if row[0] is not None else None), json.loads(row[1])

    def plugins(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT plugin_id FROM config_schema UNION "
                "SELECT plugin_id FROM config_history ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()


# Compare-and-set append in one server-side step: no other client can slip in between.
_APPEND_LUA = """
local n = redis.call('LLEN', KEYS[1])
if n ~= tonumber(ARGV[1]) then return -1 - n end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return n + 1
"""


class RedisConfigStore:
    """Configuration history in Redis, for several hosts sharing one config.

    Keys (all under ``prefix``): ``config:history:<id>`` a list of JSON records,
    ``config:schema:<id>`` a JSON string, ``config:plugins`` a set. Every append publishes the
    plugin id on ``<prefix>config:changed`` so other hosts can refresh.

    :param url: a Redis URL such as ``redis://127.0.0.1:6379/0``.
    :param prefix: key prefix, so several installations (or tests) can share a server.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "plughost:") -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ExtraNotInstalled("The Redis config store", "redis", "redis") from exc
        self._redis = redis.Redis.from_url(url)
        self._url = url
        self._prefix = prefix
        self._append = self._redis.register_script(_APPEND_LUA)
        self._closed = False

    def _k(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def latest(self, plugin_id: str) -> ConfigRecord | None:
        raw = self._redis.lindex(self._k("config", "history", plugin_id), -1)
        return ConfigRecord.from_json(raw) if raw is not None else None

    def get(self, plugin_id: str, version: int) -> ConfigRecord | None:
        if version < 1:
            return None
        raw = self._redis.lindex(self._k("config", "history", plugin_id), version - 1)
        return ConfigRecord.from_json(raw) if raw is not None else None

    def history(self, plugin_id: str) -> list[ConfigRecord]:
        raws = self._redis.lrange(self._k("config", "history", plugin_id), 0, -1)
        return [ConfigRecord.from_json(r) for r in raws]

    def append(self, record: ConfigRecord) -> None:
        result = int(
            self._append(
                keys=[self._k("config", "history", record.plugin_id), self._k("config", "plugins")],
                args=[record.version - 1, record.to_json(), record.plugin_id],
            )
        )
        if result < 0:
            raise _conflict(record.plugin_id, record.version, -1 - result)
        self._redis.publish(self._k("config", "changed"), record.plugin_id)

    def save_schema(
        self, plugin_id: str, schema: Mapping[str, Any] | None, defaults: Mapping[str, Any]
    ) -> None:
        pipe = self._redis.pipeline()
        pipe.set(
            self._k("config", "schema", plugin_id),
            json.dumps({"schema": schema, "defaults": dict(defaults)}),
        )
        pipe.sadd(self._k("config", "plugins"), plugin_id)
        pipe.execute()

    def load_schema(self, plugin_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
        raw = self._redis.get(self._k("config", "schema", plugin_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return data["schema"], data["defaults"]

    def plugins(self) -> list[str]:
        members = self._redis.smembers(self._k("config", "plugins"))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def changes(self) -> AsyncIterator[str]:
        """Yield the id of every plugin whose config another writer appended (until cancelled)."""
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self._url)
        pubsub = client.pubsub()
        await pubsub.subscribe(self._k("config", "changed"))
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    data = message["data"]
                    yield data.decode() if isinstance(data, bytes) else str(data)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8
            await client.aclose()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._redis.close()


def open_config_store(location: str | Path) -> ConfigStore:
    """A store from a location: ``redis://host:6379/0[?prefix=...]`` or an SQLite file path."""
    text = str(location)
    if text.startswith(("redis://", "rediss://", "unix://")):
        # A ``prefix`` query parameter selects the key prefix (several installations, tests).
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for k, v in query if k == "prefix"), "plughost:")
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        return RedisConfigStore(urlunsplit(parts._replace(query=rest)), prefix=prefix)
    return SQLiteConfigStore(location)
