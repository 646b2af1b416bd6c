"""The change log: every state-changing write numbered by a gap-free, commit-ordered sequence.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 17:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plughost.storage.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_change_log")),
    )
    op.create_table(
        "change_sequence",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_sequence")),
    )
    op.bulk_insert(
        sa.table("change_sequence", sa.column("id", sa.Integer()),
                 sa.column("last_seq", sa.BigInteger()),
                 sa.column("pruned_through", sa.BigInteger())),
        [{"id": 1, "last_seq": 0, "pruned_through": 0}],
    )


def downgrade() -> None:
    op.drop_table("change_sequence")
    op.drop_table("change_log")
