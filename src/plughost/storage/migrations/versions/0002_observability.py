"""Observability: plugin logs, alert rules added through the API, alert history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 14:40:03.226267
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plughost.storage.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = plughost.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "plugin_logs",
        sa.Column("id", _BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("logger", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugin_logs")),
    )
    op.create_index(op.f("ix_plugin_logs_at"), "plugin_logs", ["at"], unique=False)
    op.create_index(
        op.f("ix_plugin_logs_plugin_id_id"), "plugin_logs", ["plugin_id", "id"], unique=False
    )
    op.create_table(
        "alert_rules",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_rules")),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", _BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index(op.f("ix_alert_events_at"), "alert_events", ["at"], unique=False)
    op.create_index(
        op.f("ix_alert_events_rule_id"), "alert_events", ["rule", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_events_rule_id"), table_name="alert_events")
    op.drop_index(op.f("ix_alert_events_at"), table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
    op.drop_index(op.f("ix_plugin_logs_plugin_id_id"), table_name="plugin_logs")
    op.drop_index(op.f("ix_plugin_logs_at"), table_name="plugin_logs")
    op.drop_table("plugin_logs")
