"""How many audit events there are of each action and outcome, kept as they are appended, so
that the metrics read a few rows at every scrape instead of counting an audit log that only
grows. Filled from the audit events already recorded.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

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
    events = sa.table("audit_events", sa.column("action", sa.String()),
                      sa.column("outcome", sa.String()))
    counts = sa.table("audit_counts", sa.column("action", sa.String()),
                      sa.column("outcome", sa.String()), sa.column("count", sa.BigInteger()))
    op.get_bind().execute(counts.insert().from_select(
        ["action", "outcome", "count"],
        sa.select(events.c.action, events.c.outcome, sa.func.count())
        .group_by(events.c.action, events.c.outcome)))


def downgrade() -> None:
    op.drop_table("audit_counts")
