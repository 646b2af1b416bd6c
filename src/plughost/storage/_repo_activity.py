"""Repository part: the audit log and long-running operations."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, not_, or_, select

from plughost.errors import InvalidRecord, OperationRefused, RecordNotFound
from plughost.storage._repo_base import to_record
from plughost.storage._repo_changes import ChangeLog
from plughost.storage.models import (
    AuditCountRow,
    AuditEventRow,
    OperationRow,
    OperationTotalRow,
)
from plughost.storage.records import OPERATION_STATUSES, AuditEvent, Operation


class ActivityRecords(ChangeLog):
    """What happened and what is happening: audit events, operations."""

    # -- audit -----------------------------------------------------------------------------

    def append_audit(
        self,
        action: str,
        *,
        actor: str = "",
        plugin_id: str | None = None,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append an audit event (``outcome``: ``ok``, ``denied`` or ``error`` by convention)."""
        with self._tx() as s:
            row = AuditEventRow(at=self._now(), actor=actor, action=action, plugin_id=plugin_id,
                                outcome=outcome, details=dict(details or {}))
            s.add(row)
            s.flush()
            s.execute(self._added(AuditCountRow, {"action": action, "outcome": outcome},
                                  {"count": 1}))
            return to_record(AuditEvent, row)

    def _added(self, row: Any, key: Mapping[str, str],
               amounts: Mapping[str, int | float]) -> Insert:
        """An insert of a counts row (``key``: its primary key; ``amounts``: column -> what
        to add) that adds to the row when there is one: an upsert, so that two servers
        counting the first of a kind at once both count."""
        values = {**key, **amounts}
        added = {name: getattr(row, name) + amount for name, amount in amounts.items()}
        dialect = self.database.dialect
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(row).values(values).on_conflict_do_update(
                index_elements=list(key), set_=added)
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            return mysql_insert(row).values(values).on_duplicate_key_update(added)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(row).values(values).on_conflict_do_update(
            index_elements=list(key), set_=added)

    def query_audit(
        self,
        *,
        plugin_id: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
        action_prefixes: Sequence[str] = (),
        other_than: Sequence[str] = (),
    ) -> list[AuditEvent]:
        """Audit events newest first. Page with ``before_id`` = the last id of the previous page.
        ``action_prefixes``: only actions starting with one of them; ``other_than``: only
        actions starting with none of them (filtered in the query, not after it)."""
        stmt = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
        if plugin_id is not None:
            stmt = stmt.where(AuditEventRow.plugin_id == plugin_id)
        if action is not None:
            stmt = stmt.where(AuditEventRow.action == action)
        if action_prefixes:
            stmt = stmt.where(or_(*map(_starting_with, action_prefixes)))
        if other_than:
            stmt = stmt.where(not_(or_(*map(_starting_with, other_than))))
        if actor is not None:
            stmt = stmt.where(AuditEventRow.actor == actor)
        if outcome is not None:
            stmt = stmt.where(AuditEventRow.outcome == outcome)
        if since is not None:
            stmt = stmt.where(AuditEventRow.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEventRow.at < until)
        if before_id is not None:
            stmt = stmt.where(AuditEventRow.id < before_id)
        with self._tx(write=False) as s:
            return [to_record(AuditEvent, r) for r in s.scalars(stmt)]

    # -- operations ------------------------------------------------------------------------

    def create_operation(
        self,
        kind: str,
        *,
        plugin_id: str | None = None,
        actor: str = "",
        message: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> Operation:
        """Record a new pending operation with a fresh id.

        ``details`` is the operation's journal (JSON): what it is about to create or replace
        (object keys, cache directories, the version it replaces), so that recovery after a
        crash knows what to undo. :meth:`update_operation` merges more into it. The row records
        this repository's owner id: no other process recovers it while this one lives.
        """
        now = self._now()
        with self._tx() as s:
            row = OperationRow(id=uuid.uuid4().hex, kind=kind, plugin_id=plugin_id,
                               status="pending", progress=0.0, message=message, error=None,
                               details=dict(details or {}), actor=actor, created_at=now,
                               updated_at=now, owner=self.owner_id)
            s.add(row)
            s.flush()
            return to_record(Operation, row)

    def update_operation(
        self,
        operation_id: str,
        *,
        status: str | None = None,
        progress: float | None = None,
        message: str | None = None,
        error: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Operation:
        """Report progress (0.0-1.0), a message, a new status, the error of a failure, or
        journal entries (``details`` is merged key by key into the stored details).

        :raises RecordNotFound: for an unknown id.
        :raises OperationRefused: when the operation already finished.
        :raises InvalidRecord: for an unknown status or a progress outside 0..1.
        """
        if status is not None and status not in OPERATION_STATUSES:
            raise InvalidRecord(
                f"{status!r} is not an operation status; use one of "
                + ", ".join(OPERATION_STATUSES)
            )
        if progress is not None and not 0.0 <= progress <= 1.0:
            raise InvalidRecord(f"progress must be between 0.0 and 1.0, got {progress}")
        now = self._now()
        with self._tx() as s:
            row = s.get(OperationRow, operation_id, with_for_update=True)
            if row is None:
                raise RecordNotFound(f"there is no operation {operation_id!r}")
            if row.status in ("succeeded", "failed", "cancelled"):
                raise OperationRefused(
                    f"operation {operation_id} already {row.status}; start a new one",
                    plugin_id=row.plugin_id,
                )
            if status is not None:
                row.status = status
                if status == "running" and row.started_at is None:
                    row.started_at = now
                if status in ("succeeded", "failed", "cancelled"):
                    row.finished_at = now
                    if status == "succeeded":
                        row.progress = 1.0
                    seconds = max(0.0, (now - (row.started_at or row.created_at))
                                  .total_seconds())
                    s.execute(self._added(OperationTotalRow,
                                          {"kind": row.kind, "status": status},
                                          {"count": 1, "seconds": seconds}))
            if progress is not None:
                row.progress = progress
            if message is not None:
                row.message = message
            if error is not None:
                row.error = dict(error)
            if details:
                row.details = {**(row.details or {}), **details}
            row.updated_at = now
            s.flush()
            return to_record(Operation, row)

    def get_operation(self, operation_id: str) -> Operation | None:
        """One operation, or ``None``."""
        with self._tx(write=False) as s:
            row = s.get(OperationRow, operation_id)
            return None if row is None else to_record(Operation, row)

    def list_operations(
        self,
        *,
        plugin_id: str | None = None,
        status: str | None = None,
        unfinished: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Operation]:
        """Operations, newest first, after the first ``offset``; ``unfinished=True``: only
        pending and running ones (after a crash: the operations whose owner may have died —
        see docs/storage.md)."""
        stmt = (select(OperationRow)
                .order_by(OperationRow.created_at.desc(), OperationRow.id.desc())
                .limit(limit).offset(offset))
        if plugin_id is not None:
            stmt = stmt.where(OperationRow.plugin_id == plugin_id)
        if status is not None:
            stmt = stmt.where(OperationRow.status == status)
        if unfinished:
            stmt = stmt.where(OperationRow.status.in_(("pending", "running")))
        with self._tx(write=False) as s:
            return [to_record(Operation, r) for r in s.scalars(stmt)]



def _starting_with(prefix: str) -> Any:
    """``action`` starts with ``prefix`` (a ``LIKE`` with ``_`` and ``%`` escaped: a range
    comparison would follow the database's collation, which need not order by code point)."""
    if not prefix:
        raise ValueError("an action prefix cannot be empty")
    return AuditEventRow.action.startswith(prefix, autoescape=True)
