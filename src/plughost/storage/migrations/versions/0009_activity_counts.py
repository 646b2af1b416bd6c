"""Counts kept as activity is recorded, so that the metrics read a few rows at every scrape
instead of reading logs that only grow: how many audit events there are of each action and
outcome, and how many operations finished of each kind and status with their seconds in all.
Filled from the audit events and operations already recorded.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_counts",
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("action", "outcome", name=op.f("pk_audit_counts")),
    )
    op.create_table(
        "operation_totals",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "status", name=op.f("pk_operation_totals")),
    )
    conn = op.get_bind()
    events = sa.table("audit_events", sa.column("action", sa.String()),
                      sa.column("outcome", sa.String()))
    counts = sa.table("audit_counts", sa.column("action", sa.String()),
                      sa.column("outcome", sa.String()), sa.column("count", sa.BigInteger()))
    conn.execute(counts.insert().from_select(
        ["action", "outcome", "count"],
        sa.select(events.c.action, events.c.outcome, sa.func.count())
        .group_by(events.c.action, events.c.outcome)))
    # The seconds are summed here, the same on every database (date arithmetic in SQL is not).
    operations = sa.table("operations", sa.column("kind", sa.String()),
                          sa.column("status", sa.String()),
                          sa.column("created_at", sa.DateTime()),
                          sa.column("started_at", sa.DateTime()),
                          sa.column("finished_at", sa.DateTime()))
    totals: dict[tuple[str, str], tuple[int, float]] = {}
    for kind, status, created, started, finished in conn.execute(
            sa.select(operations.c.kind, operations.c.status, operations.c.created_at,
                      operations.c.started_at, operations.c.finished_at)
            .where(operations.c.finished_at.is_not(None))):
        count, seconds = totals.get((kind, status), (0, 0.0))
        totals[(kind, status)] = (count + 1, seconds + _seconds(started or created, finished))
    if totals:
        target = sa.table("operation_totals", sa.column("kind", sa.String()),
                          sa.column("status", sa.String()), sa.column("count", sa.BigInteger()),
                          sa.column("seconds", sa.Float()))
        conn.execute(target.insert(), [
            {"kind": kind, "status": status, "count": count, "seconds": seconds}
            for (kind, status), (count, seconds) in totals.items()])


def _seconds(start: datetime | str | None, finish: datetime | str) -> float:
    if start is None:
        return 0.0
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if isinstance(finish, str):
        finish = datetime.fromisoformat(finish)
    if (start.tzinfo is None) != (finish.tzinfo is None):
        start, finish = start.replace(tzinfo=None), finish.replace(tzinfo=None)
    return max(0.0, (finish - start).total_seconds())


def downgrade() -> None:
    op.drop_table("operation_totals")
    op.drop_table("audit_counts")
