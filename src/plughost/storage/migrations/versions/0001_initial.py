"""Initial schema: plugins, versions, config, grants, audit, tokens, operations, keys, locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:08:51.260332
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plughost.storage.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"], unique=False)
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"], unique=False)
    op.create_index(
        op.f("ix_audit_events_plugin_id_id"), "audit_events", ["plugin_id", "id"], unique=False
    )

    op.create_table(
        "operations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index(op.f("ix_operations_plugin_id"), "operations", ["plugin_id"], unique=False)
    op.create_index(op.f("ix_operations_status"), "operations", ["status"], unique=False)

    op.create_table(
        "plugin_locks",
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plugin_id", name=op.f("pk_plugin_locks")),
    )
    op.create_table(
        "plugins",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("runtime", sa.String(length=32), nullable=False),
        sa.Column("entry_point", sa.String(length=500), nullable=False),
        sa.Column("config_schema", sa.JSON(), nullable=True),
        sa.Column("default_config", sa.JSON(), nullable=True),
        sa.Column("icon", sa.String(length=500), nullable=False),
        sa.Column("repository", sa.String(length=500), nullable=False),
        sa.Column("documentation", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("object_key", sa.String(length=500), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("failure_phase", sa.String(length=32), nullable=True),
        sa.Column(
            "installed_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("updated_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugins")),
    )
    op.create_index(op.f("ix_plugins_source"), "plugins", ["source"], unique=False)
    op.create_index(op.f("ix_plugins_state"), "plugins", ["state"], unique=False)
    op.create_index(op.f("ix_plugins_type"), "plugins", ["type"], unique=False)

    op.create_table(
        "trusted_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("added_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_trusted_keys")),
    )
    op.create_table(
        "config_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("changed_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plugin_id"],
            ["plugins.id"],
            name=op.f("fk_config_history_plugin_id_plugins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_history")),
        sa.UniqueConstraint(
            "plugin_id", "revision", name=op.f("uq_config_history_plugin_id_revision")
        ),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("granted_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("revoked_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["plugin_id"],
            ["plugins.id"],
            name=op.f("fk_grants_plugin_id_plugins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    op.create_index(
        op.f("ix_grants_plugin_id_scope"), "grants", ["plugin_id", "scope"], unique=False
    )

    op.create_table(
        "permission_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column(
            "requested_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["plugin_id"],
            ["plugins.id"],
            name=op.f("fk_permission_requests_plugin_id_plugins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permission_requests")),
    )
    op.create_index(
        op.f("ix_permission_requests_plugin_id"), "permission_requests", ["plugin_id"], unique=False
    )
    op.create_index(
        op.f("ix_permission_requests_status"), "permission_requests", ["status"], unique=False
    )

    op.create_table(
        "plugin_config",
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plugin_id"],
            ["plugins.id"],
            name=op.f("fk_plugin_config_plugin_id_plugins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plugin_id", name=op.f("pk_plugin_config")),
    )
    op.create_table(
        "plugin_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("object_key", sa.String(length=500), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("cache_path", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("signed_by", sa.String(length=64), nullable=True),
        sa.Column(
            "installed_at", plughost.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["plugin_id"],
            ["plugins.id"],
            name=op.f("fk_plugin_versions_plugin_id_plugins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugin_versions")),
        sa.UniqueConstraint(
            "plugin_id", "version", name=op.f("uq_plugin_versions_plugin_id_version")
        ),
    )


def downgrade() -> None:
    op.drop_table("plugin_versions")
    op.drop_table("plugin_config")
    op.drop_index(op.f("ix_permission_requests_status"), table_name="permission_requests")
    op.drop_index(op.f("ix_permission_requests_plugin_id"), table_name="permission_requests")

    op.drop_table("permission_requests")
    op.drop_index(op.f("ix_grants_plugin_id_scope"), table_name="grants")

    op.drop_table("grants")
    op.drop_table("config_history")
    op.drop_table("trusted_keys")
    op.drop_index(op.f("ix_plugins_type"), table_name="plugins")
    op.drop_index(op.f("ix_plugins_state"), table_name="plugins")
    op.drop_index(op.f("ix_plugins_source"), table_name="plugins")

    op.drop_table("plugins")
    op.drop_table("plugin_locks")
    op.drop_index(op.f("ix_operations_status"), table_name="operations")
    op.drop_index(op.f("ix_operations_plugin_id"), table_name="operations")

    op.drop_table("operations")
    op.drop_index(op.f("ix_audit_events_plugin_id_id"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_action"), table_name="audit_events")

    op.drop_table("audit_events")
    op.drop_table("api_tokens")
