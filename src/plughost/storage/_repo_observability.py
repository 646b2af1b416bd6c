"""Repository part: plugin logs, alert rules added through the API, alert history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select

from plughost.errors import RecordExists, RecordNotFound
from plughost.observability.logs import LEVELS, LogEntry, LogFilter
from plughost.storage._repo_changes import ChangeLog
from plughost.storage.models import (
    AlertEventRow,
    AlertRuleRow,
    AuditCountRow,
    OperationTotalRow,
    PluginLogRow,
)

_LEVEL_ORDER = list(LEVELS)


class ObservabilityRecords(ChangeLog):
    """Plugin log lines (append in batches, query, prune) and alert rules and history."""

    # -- plugin logs -----------------------------------------------------------------------

    def append_logs(self, entries: Sequence[LogEntry]) -> None:
        """Store captured lines in one transaction."""
        if not entries:
            return
        rows = [{"at": datetime.fromtimestamp(e.time, UTC), "plugin_id": e.plugin_id[:64],
                 "level": e.level, "message": e.message,
                 "correlation_id": (e.correlation_id or None) and e.correlation_id[:128],
                 "logger": e.logger[:200]} for e in entries]
        with self._tx() as s:
            s.execute(insert(PluginLogRow), rows)

    def query_logs(self, flt: LogFilter, *, limit: int = 100, before_id: int | None = None,
                   after_id: int | None = None) -> list[LogEntry]:
        """Stored lines matching ``flt``, newest first (page with ``before_id``; follow with
        ``after_id``)."""
        stmt = select(PluginLogRow).order_by(PluginLogRow.id.desc()).limit(limit)
        if flt.plugin_id is not None:
            stmt = stmt.where(PluginLogRow.plugin_id == flt.plugin_id)
        if flt.min_level is not None:
            wanted = _LEVEL_ORDER[_LEVEL_ORDER.index(flt.min_level):]
            stmt = stmt.where(PluginLogRow.level.in_(wanted))
        if flt.since is not None:
            stmt = stmt.where(PluginLogRow.at >= flt.since)
        if flt.correlation_id is not None:
            stmt = stmt.where(PluginLogRow.correlation_id == flt.correlation_id)
        if flt.grep:
            escaped = (flt.grep.replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            stmt = stmt.where(func.lower(PluginLogRow.message).like(
                f"%{escaped.lower()}%", escape="\\"))
        if before_id is not None:
            stmt = stmt.where(PluginLogRow.id < before_id)
        if after_id is not None:
            stmt = stmt.where(PluginLogRow.id > after_id)
        with self._tx(write=False) as s:
            return [LogEntry(r.id, r.at.timestamp(), r.plugin_id, r.level, r.message,
                             r.correlation_id, r.logger) for r in s.scalars(stmt)]

    def prune_logs(self, *, older_than: datetime, keep: int) -> int:
        """Delete lines older than ``older_than`` and all but the newest ``keep``."""
        removed = 0
        with self._tx() as s:
            result: Any = s.execute(delete(PluginLogRow).where(PluginLogRow.at < older_than))
            removed += result.rowcount or 0
            cutoff = s.scalar(select(PluginLogRow.id).order_by(PluginLogRow.id.desc())
                              .offset(keep).limit(1))
            if cutoff is not None:
                result = s.execute(delete(PluginLogRow).where(PluginLogRow.id <= cutoff))
                removed += result.rowcount or 0
        return removed

    # -- alert rules -----------------------------------------------------------------------

    def list_alert_rules(self) -> list[dict[str, Any]]:
        """Rules added through the API, by name: ``{"name", "spec", "created_by", ...}``."""
        with self._tx(write=False) as s:
            rows = s.scalars(select(AlertRuleRow).order_by(AlertRuleRow.name))
            return [{"name": r.name, "spec": dict(r.spec), "created_by": r.created_by,
                     "created_at": r.created_at} for r in rows]

    def add_alert_rule(self, name: str, spec: Mapping[str, Any], *, actor: str = "") -> None:
        """Store a rule; :class:`RecordExists` if the name is taken."""
        with self._tx() as s:
            if s.get(AlertRuleRow, name) is not None:
                raise RecordExists(f"an alert rule named {name!r} exists; delete it first or "
                                   "choose another name", details={"name": name})
            s.add(AlertRuleRow(name=name, spec=dict(spec), created_by=actor,
                               created_at=self._now()))
            s.flush()
            self._record_change(s, "alert_rule", name, "add")

    def delete_alert_rule(self, name: str) -> None:
        """Remove a stored rule; :class:`RecordNotFound` if there is none."""
        with self._tx() as s:
            row = s.get(AlertRuleRow, name)
            if row is None:
                raise RecordNotFound(f"there is no alert rule {name!r} added through the API",
                                     details={"name": name})
            s.delete(row)
            s.flush()
            self._record_change(s, "alert_rule", name, "delete")

    # -- alert history ---------------------------------------------------------------------

    def append_alert_event(self, *, rule: str, state: str, severity: str, threshold: float,
                           value: float | None, plugin_id: str | None,
                           labels: Mapping[str, Any], message: str) -> int:
        """Record that an alert fired or resolved; returns the event id."""
        with self._tx() as s:
            row = AlertEventRow(at=self._now(), rule=rule, state=state, severity=severity,
                                threshold=threshold, value=value, plugin_id=plugin_id,
                                labels=dict(labels), message=message)
            s.add(row)
            s.flush()
            return int(row.id)

    def query_alert_events(self, *, rule: str | None = None, plugin_id: str | None = None,
                           state: str | None = None, since: datetime | None = None,
                           limit: int = 100, before_id: int | None = None
                           ) -> list[dict[str, Any]]:
        """Alert history, newest first."""
        stmt = select(AlertEventRow).order_by(AlertEventRow.id.desc()).limit(limit)
        if rule is not None:
            stmt = stmt.where(AlertEventRow.rule == rule)
        if plugin_id is not None:
            stmt = stmt.where(AlertEventRow.plugin_id == plugin_id)
        if state is not None:
            stmt = stmt.where(AlertEventRow.state == state)
        if since is not None:
            stmt = stmt.where(AlertEventRow.at >= since)
        if before_id is not None:
            stmt = stmt.where(AlertEventRow.id < before_id)
        with self._tx(write=False) as s:
            return [{"id": r.id, "at": r.at.isoformat(), "rule": r.rule, "state": r.state,
                     "severity": r.severity, "plugin_id": r.plugin_id, "value": r.value,
                     "threshold": r.threshold, "labels": dict(r.labels), "message": r.message}
                    for r in s.scalars(stmt)]

    # -- figures for metrics ---------------------------------------------------------------

    def count_audit(self, actions: Sequence[str]) -> list[tuple[str, str, int]]:
        """``(action, outcome, count)`` of the audit events with these actions, from the
        counts kept as they are appended (a few rows, however long the log)."""
        stmt = (select(AuditCountRow.action, AuditCountRow.outcome, AuditCountRow.count)
                .where(AuditCountRow.action.in_(list(actions)))
                .order_by(AuditCountRow.action, AuditCountRow.outcome))
        with self._tx(write=False) as s:
            return [(a, o, int(n)) for a, o, n in s.execute(stmt)]

    def operation_totals(self) -> list[tuple[str, str, int, float]]:
        """``(kind, status, count, seconds)`` of the finished operations, from the totals
        kept as each one finishes (a few rows, however many operations there were)."""
        stmt = (select(OperationTotalRow.kind, OperationTotalRow.status,
                       OperationTotalRow.count, OperationTotalRow.seconds)
                .order_by(OperationTotalRow.kind, OperationTotalRow.status))
        with self._tx(write=False) as s:
            return [(k, st, int(n), float(sec)) for k, st, n, sec in s.execute(stmt)]
