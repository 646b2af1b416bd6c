"""Where declared scopes, grants and permission requests persist: a Protocol and an SQLite default.

:class:`~plughost.security.permissions.PermissionManager` only talks to a
:class:`PermissionStore`, so a host that keeps its state in the SQLAlchemy repository (PostgreSQL,
MySQL) can back the manager with an adapter instead of the embedded :class:`SQLitePermissionStore`.
Scopes are stored as their canonical text.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["PermissionStore", "RequestRow", "SQLitePermissionStore"]

#: (id, plugin, scope, reason, status, created, resolved_by)
RequestRow = tuple[int, str, str, str, str, float, str]


@runtime_checkable
class PermissionStore(Protocol):
    """Persistence contract of the permission manager."""

    def declared(self, plugin_id: str) -> list[str]:
        """Declared scopes, sorted."""

    def set_declared(self, plugin_id: str, scopes: list[str]) -> None:
        """Replace the declared scopes atomically."""

    def grants(self, plugin_id: str) -> list[str]:
        """Granted scopes (deny rules included), in grant order."""

    def add_grant(self, plugin_id: str, scope: str, actor: str) -> None:
        """Grant (idempotent)."""

    def remove_grant(self, plugin_id: str, scope: str, actor: str) -> bool:
        """Revoke; ``False`` if it was not granted (then nothing changes)."""

    def add_request(self, plugin_id: str, scope: str, reason: str) -> int:
        """Record a pending request; returns its id."""

    def get_request(self, request_id: int) -> RequestRow | None:
        """One request."""

    def list_requests(self, plugin_id: str | None, status: str | None) -> list[RequestRow]:
        """Requests, oldest first."""

    def set_request_status(self, request_id: int, status: str, actor: str) -> None:
        """Resolve a request."""

    def plugins(self) -> list[str]:
        """Every plugin with declarations, grants or requests, sorted."""

    def knows(self, plugin_id: str) -> bool:
        """Whether ``plugin_id`` is one of :meth:`plugins` (one lookup, not a listing)."""

    def forget(self, plugin_id: str) -> None:
        """Drop declarations, grants and requests of a plugin."""

    def close(self) -> None:
        """Release the connection; idempotent."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS declared (plugin TEXT NOT NULL, scope TEXT NOT NULL,
    PRIMARY KEY (plugin, scope));
CREATE TABLE IF NOT EXISTS grants (plugin TEXT NOT NULL, scope TEXT NOT NULL, time REAL NOT NULL,
    actor TEXT NOT NULL, PRIMARY KEY (plugin, scope));
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT, plugin TEXT NOT NULL,
    scope TEXT NOT NULL, reason TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL,
    resolved_by TEXT NOT NULL DEFAULT '');
"""

_REQUEST_COLUMNS = "id, plugin, scope, reason, status, created, resolved_by"


class SQLitePermissionStore:
    """The embedded default: tables in an SQLite file (``<home>/security.db``) or in memory."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=10
        )
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._closed = False

    def declared(self, plugin_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT scope FROM declared WHERE plugin = ? ORDER BY scope", (plugin_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def set_declared(self, plugin_id: str, scopes: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM declared WHERE plugin = ?", (plugin_id,))
                self._db.executemany(
                    "INSERT OR IGNORE INTO declared VALUES (?, ?)", [(plugin_id, s) for s in scopes]
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def grants(self, plugin_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT scope FROM grants WHERE plugin = ? ORDER BY time, rowid", (plugin_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def add_grant(self, plugin_id: str, scope: str, actor: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO grants VALUES (?, ?, ?, ?)",
                (plugin_id, scope, time.time(), actor),
            )

    def remove_grant(self, plugin_id: str, scope: str, actor: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM grants WHERE plugin = ? AND scope = ?", (plugin_id, scope)
            )
        return cur.rowcount > 0

    def add_request(self, plugin_id: str, scope: str, reason: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO requests (plugin, scope, reason, status, created) VALUES (?,?,?,?,?)",
                (plugin_id, scope, reason, "pending", time.time()),
            )
        return int(cur.lastrowid or 0)

    def get_request(self, request_id: int) -> RequestRow | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,)
            ).fetchone()
        return tuple(row) if row else None

    def list_requests(self, plugin_id: str | None, status: str | None) -> list[RequestRow]:
        sql = f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE 1=1"
        args: list[str] = []
        if plugin_id is not None:
            sql += " AND plugin = ?"
            args.append(plugin_id)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [tuple(r) for r in rows]

    def set_request_status(self, request_id: int, status: str, actor: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE requests SET status = ?, resolved_by = ? WHERE id = ?",
                (status, actor, request_id),
            )

    def plugins(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT plugin FROM declared UNION SELECT plugin FROM grants"
                " UNION SELECT plugin FROM requests ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def knows(self, plugin_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM declared WHERE plugin = ? UNION SELECT 1 FROM grants WHERE"
                " plugin = ? UNION SELECT 1 FROM requests WHERE plugin = ? LIMIT 1",
                (plugin_id, plugin_id, plugin_id)).fetchone()
        return row is not None

    def forget(self, plugin_id: str) -> None:
        with self._lock:
            for table in ("declared", "grants", "requests"):
                self._db.execute(f"DELETE FROM {table} WHERE plugin = ?", (plugin_id,))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()
