"""Cluster state: plugin key-value storage in the database, and the nodes sharing it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import plughost.storage.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = plughost.storage.types.UTCDateTime(timezone=True)
_LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "plugin_kv",
        sa.Column("ns", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", _LONG_TEXT, nullable=False),
        sa.PrimaryKeyConstraint("ns", "key_hash", name=op.f("pk_plugin_kv")),
    )
    op.create_table(
        "plugin_kv_indexes",
        sa.Column("ns", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("ns", "name", name=op.f("pk_plugin_kv_indexes")),
    )
    op.create_table(
        "plugin_kv_index_entries",
        sa.Column("ns", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("ns", "name", "value_hash", "key_hash",
                                name=op.f("pk_plugin_kv_index_entries")),
    )
    op.create_index(op.f("ix_plugin_kv_index_entries_ns_key_hash"), "plugin_kv_index_entries",
                    ["ns", "key_hash"], unique=False)
    op.create_table(
        "cluster_nodes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("started_at", _UTC, nullable=False),
        sa.Column("heartbeat_at", _UTC, nullable=False),
        sa.Column("applied_seq", sa.BigInteger(), nullable=False),
        sa.Column("plugins", sa.JSON(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_nodes")),
    )
    op.create_index(op.f("ix_cluster_nodes_heartbeat_at"), "cluster_nodes", ["heartbeat_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cluster_nodes_heartbeat_at"), table_name="cluster_nodes")
    op.drop_table("cluster_nodes")
    op.drop_index(op.f("ix_plugin_kv_index_entries_ns_key_hash"),
                  table_name="plugin_kv_index_entries")
    op.drop_table("plugin_kv_index_entries")
    op.drop_table("plugin_kv_indexes")
    op.drop_table("plugin_kv")
