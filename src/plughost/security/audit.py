"""The security audit log: every denial, grant, revoke and permission request, persisted.

Rows live in an SQLite file under the plughost home (stdlib :mod:`sqlite3`, so the security
layer needs no extra). The log is append-only from the library's point of view and queryable by
plugin, kind, severity and time range.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["SEVERITIES", "AuditEvent", "AuditLog"]

logger = logging.getLogger(__name__)

#: Severities in increasing order; queries take a minimum severity.
SEVERITIES: Final[tuple[str, ...]] = ("info", "warning", "error", "critical")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    plugin TEXT NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    target TEXT NOT NULL,
    decision TEXT NOT NULL,
    severity INTEGER NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_plugin_time ON audit (plugin, time);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
"""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit row.

    :ivar time: seconds since the epoch (UTC).
    :ivar plugin: the plugin concerned.
    :ivar action: ``check``, ``grant``, ``revoke``, ``request``, ``resolve``.
    :ivar kind: the permission kind (``fs:read``, ``net``, ...).
    :ivar scope: the scope text granted/revoked/requested, or the rule that decided a check.
    :ivar target: what was accessed (a path, ``host:port``, a namespace), ``""`` if none.
    :ivar decision: ``deny``, ``granted``, ``revoked``, ``pending``, ``approved``,
        ``refused``.
    :ivar severity: one of :data:`SEVERITIES`.
    :ivar reason: why, in words.
    :ivar actor: who did it (``operator``, ``policy:<name>``, ``plugin``, ``host``).
    """

    time: float
    plugin: str
    action: str
    kind: str
    scope: str = ""
    target: str = ""
    decision: str = ""
    severity: str = "info"
    reason: str = ""
    actor: str = "host"
    details: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape for ``--json`` output and the HTTP API."""
        return {
            "id": self.id,
            "time": self.time,
            "plugin": self.plugin,
            "action": self.action,
            "kind": self.kind,
            "scope": self.scope,
            "target": self.target,
            "decision": self.decision,
            "severity": self.severity,
            "reason": self.reason,
            "actor": self.actor,
            "details": dict(self.details),
        }


class AuditLog:
    """An append-only, queryable audit log in SQLite.

    :param path: the database file, or ``":memory:"`` for a throwaway log (tests, embedding).
    :param clock: returns the current time in epoch seconds; injectable for tests.
    """

    def __init__(self, path: str | Path = ":memory:", *, clock: Callable[[], float] = time.time):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL") if str(path) != ":memory:" else None
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock
        self._closed = False

    def record(
        self,
        plugin: str,
        action: str,
        kind: str,
        *,
        scope: str = "",
        target: str = "",
        decision: str = "",
        severity: str = "info",
        reason: str = "",
        actor: str = "host",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one row and return it (with its id)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
        event = AuditEvent(
            self._clock(),
            plugin,
            action,
            kind,
            scope,
            target,
            decision,
            severity,
            reason,
            actor,
            dict(details or {}),
        )
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit (time, plugin, action, kind, scope, target, decision, severity,"
                " reason, actor, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    event.time,
                    plugin,
                    action,
                    kind,
                    scope,
                    target,
                    decision,
                    SEVERITIES.index(severity),
                    reason,
                    actor,
                    json.dumps(event.details),
                ),
            )
        logger.log(
            logging.INFO if severity == "info" else logging.WARNING,
            "audit %s %s %s %s %s: %s",
            plugin,
            action,
            kind,
            target or scope,
            decision,
            reason,
        )
        return AuditEvent(**{**_fields(event), "id": cur.lastrowid})

    def query(
        self,
        *,
        plugin: str | None = None,
        kind: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        min_severity: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[AuditEvent]:
        """Rows matching every given filter, oldest first (the newest ``limit`` when given;
        with ``before_id``, older than that row)."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("plugin", plugin),
            ("kind", kind),
            ("action", action),
            ("decision", decision),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if min_severity is not None:
            if min_severity not in SEVERITIES:
                raise ValueError(f"severity {min_severity!r} is not one of {SEVERITIES}")
            where.append("severity >= ?")
            args.append(SEVERITIES.index(min_severity))
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time <= ?")
            args.append(until)
        if before_id is not None:
            where.append("id < ?")
            args.append(before_id)
        sql = (
            "SELECT id, time, plugin, action, kind, scope, target, decision, severity, reason,"
            " actor, details FROM audit"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            AuditEvent(
                time=r[1],
                plugin=r[2],
                action=r[3],
                kind=r[4],
                scope=r[5],
                target=r[6],
                decision=r[7],
                severity=SEVERITIES[r[8]],
                reason=r[9],
                actor=r[10],
                details=json.loads(r[11]),
                id=r[0],
            )
            for r in reversed(rows)
        ]

    def close(self) -> None:
        """Close the database; idempotent."""
        if not self._closed:
            self._closed = True
            self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in AuditEvent.__dataclass_fields__}
