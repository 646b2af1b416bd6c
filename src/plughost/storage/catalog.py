"""The installed plugins of a SQLite home, read with the standard library alone.

A CLI command that only reads the catalogue (``plughost list``) would spend most of its time
importing SQLAlchemy and declaring the ORM models (about 0.4 s here) to run three queries. On
the default database — a SQLite file, already at the schema this plughost ships — it reads
through :class:`Catalog` instead: a read-only ``sqlite3`` connection answering the same three
reads as :class:`~plughost.storage.repository.Repository` (``list_plugins``,
``count_plugins``, ``signed_plugins``, inside ``reading()``), returning the same
:class:`~plughost.storage.records.StoredPlugin` records, so
:func:`plughost.services.views.list_stored` serves both. ``tests/storage/test_catalog.py``
holds the two to the same answers on one database.

:func:`open_catalog` returns ``None`` — the caller takes the repository's way, which migrates
or explains — whenever this reader cannot answer exactly as the repository would: another
database URL (PostgreSQL, MySQL, a URI or in-memory SQLite), no database file yet, or a schema
older or newer than the shipped one. The connection is opened read-only (``mode=ro``): it
never creates, migrates or writes the database, and in WAL mode it reads beside a writer.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from plughost.storage.records import StoredPlugin, check_state

__all__ = ["Catalog", "PluginReads", "open_catalog"]

_JSON = frozenset({"manifest", "config_schema", "default_config"})
_TIMES = frozenset({"installed_at", "updated_at"})
# The plugins table's columns a StoredPlugin is made of, in the record's order.
_COLUMNS = tuple(StoredPlugin.__dataclass_fields__)
_BUSY_MS = 30_000


class PluginReads(Protocol):
    """The reads of the plugin list, as the repository and :class:`Catalog` both answer."""

    def reading(self) -> contextlib.AbstractContextManager[PluginReads]: ...

    def list_plugins(self, *, type: str | None = None, state: str | None = None,
                     enabled: bool | None = None, q: str | None = None,
                     runtime: str | None = None, source: str | None = None, limit: int = 100,
                     offset: int = 0) -> list[StoredPlugin]: ...

    def count_plugins(self, *, type: str | None = None, state: str | None = None,
                      enabled: bool | None = None, q: str | None = None,
                      runtime: str | None = None, source: str | None = None) -> int: ...

    def signed_plugins(self, ids: Iterable[str]) -> dict[str, bool]: ...


def sqlite_file(database_url: str) -> Path | None:
    """The file of a plain ``sqlite:///<path>`` URL (no query, no URI form), else ``None``."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        return None
    rest = database_url[len(prefix):]
    if not rest or "?" in rest or rest.startswith("file:") or rest == ":memory:":
        return None
    return Path(rest).expanduser()


def open_catalog(database_url: str) -> Catalog | None:
    """A :class:`Catalog` on the SQLite file ``database_url`` names, when it is at the schema
    revision this plughost ships; ``None`` otherwise (see the module doc)."""
    from plughost.storage.migrations import _shipped_head

    path = sqlite_file(database_url)
    if path is None or not path.is_file():
        return None
    shipped = _shipped_head()
    if shipped is None:
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        found = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error:
        conn.close()
        return None  # not a plughost database, or one never migrated: the long way
    if found != [shipped]:
        conn.close()
        return None
    return Catalog(conn)


class Catalog:
    """Read-only reads of the ``plugins`` table (see the module doc). Close it when done (or
    use it as a context manager)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Catalog]:
        """The reads in the block see one snapshot of the database (one read transaction)."""
        if self._conn.in_transaction:
            yield self
            return
        self._conn.execute("BEGIN")
        try:
            yield self
        finally:
            self._conn.execute("ROLLBACK")

    @staticmethod
    def _where(type: str | None, state: str | None, enabled: bool | None,
               q: str | None, runtime: str | None = None,
               source: str | None = None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("type", type), ("runtime", runtime), ("source", source)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if state is not None:
            clauses.append("state = ?")
            params.append(check_state(state))
        if enabled is not None:
            clauses.append("enabled = ?")
            params.append(1 if enabled else 0)
        if q:
            # As the repository's contains(..., autoescape=True): '/' escapes % and _.
            needle = "%" + q.lower().replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
            clauses.append("(lower(id) LIKE ? ESCAPE '/' OR lower(name) LIKE ? ESCAPE '/' "
                           "OR lower(description) LIKE ? ESCAPE '/')")
            params += [needle, needle, needle]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_plugins(self, *, type: str | None = None, state: str | None = None,
                     enabled: bool | None = None, q: str | None = None,
                     runtime: str | None = None, source: str | None = None, limit: int = 100,
                     offset: int = 0) -> list[StoredPlugin]:
        """As ``Repository.list_plugins``."""
        if limit < 0 or offset < 0:
            from plughost.errors import InvalidRecord

            raise InvalidRecord(f"limit and offset must be >= 0, got {limit} and {offset}")
        where, params = self._where(type, state, enabled, q, runtime, source)
        rows = self._conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM plugins{where} ORDER BY id LIMIT ? OFFSET ?",
            [*params, limit, offset])
        return [_record(row) for row in rows]

    def count_plugins(self, *, type: str | None = None, state: str | None = None,
                      enabled: bool | None = None, q: str | None = None,
                      runtime: str | None = None, source: str | None = None) -> int:
        """As ``Repository.count_plugins``."""
        where, params = self._where(type, state, enabled, q, runtime, source)
        return int(self._conn.execute(f"SELECT count(id) FROM plugins{where}",
                                      params).fetchone()[0])

    def signed_plugins(self, ids: Iterable[str]) -> dict[str, bool]:
        """As ``Repository.signed_plugins``."""
        wanted = list(ids)
        out: dict[str, bool] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = self._conn.execute(
                "SELECT v.plugin_id, v.signed_by FROM plugin_versions AS v JOIN plugins AS p "
                "ON p.id = v.plugin_id AND p.version = v.version "
                f"WHERE p.id IN ({', '.join('?' * len(chunk))})", chunk)
            out.update({pid: key is not None for pid, key in rows})
        return out


def _record(row: tuple[Any, ...]) -> StoredPlugin:
    values: dict[str, Any] = {}
    for name, value in zip(_COLUMNS, row, strict=True):
        if value is not None and name in _JSON:
            value = json.loads(value)
        elif value is not None and name in _TIMES:
            value = datetime.fromisoformat(value + "+00:00")
        elif name == "enabled":
            value = bool(value)
        values[name] = value
    return StoredPlugin(**values)
