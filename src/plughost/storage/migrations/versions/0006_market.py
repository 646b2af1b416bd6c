"""Marketplace: ratings and reviews, download counts, per-plugin update policies.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plughost.storage.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = plughost.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "market_ratings",
        sa.Column("id", _BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("review", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("moderated_by", sa.String(length=200), nullable=False),
        sa.Column("moderation_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_ratings")),
        sa.UniqueConstraint("plugin_id", "rater",
                            name=op.f("uq_market_ratings_plugin_id_rater")),
    )
    op.create_index(op.f("ix_market_ratings_plugin_id_id"), "market_ratings",
                    ["plugin_id", "id"], unique=False)
    op.create_table(
        "market_downloads",
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("plugin_id", "version", name=op.f("pk_market_downloads")),
    )
    op.create_table(
        "market_update_policies",
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("cooldown_seconds", sa.Integer(), nullable=False),
        sa.Column("maintenance_window", sa.String(length=32), nullable=False),
        sa.Column("notified_version", sa.String(length=100), nullable=False),
        sa.Column("last_checked_at", _UTC, nullable=True),
        sa.Column("last_update_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("plugin_id", name=op.f("pk_market_update_policies")),
    )


def downgrade() -> None:
    op.drop_table("market_update_policies")
    op.drop_table("market_downloads")
    op.drop_index(op.f("ix_market_ratings_plugin_id_id"), table_name="market_ratings")
    op.drop_table("market_ratings")
