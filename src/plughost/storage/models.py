"""SQLAlchemy 2 models: the persistent state of a plughost installation.

These ORM classes stay inside :mod:`plughost.storage`; services see the frozen records of
:mod:`plughost.storage.records` returned by the repository.

Portability rules kept here: JSON via :class:`sqlalchemy.JSON`; timestamps via
:class:`~plughost.storage.types.UTCDateTime`; indexed strings short enough for MySQL's 3072-byte
InnoDB index limit under utf8mb4 (4 bytes a character); constraint names from one naming
convention so migrations name them the same on every backend.

Deleting a plugin row removes its versions, config, config history, grants and permission
requests (``ON DELETE CASCADE`` in the database and ``cascade="all, delete-orphan"`` in the ORM).
Audit events and operations keep the plugin id as plain text: they outlive the plugin on purpose.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from plughost.storage.types import BigIntPK, UTCDateTime

__all__ = [
    "AlertEventRow",
    "AlertRuleRow",
    "ApiTokenRow",
    "AuditEventRow",
    "Base",
    "ChangeRow",
    "ChangeSequenceRow",
    "ClusterNodeRow",
    "ConfigHistoryRow",
    "GrantRow",
    "MarketDownloadRow",
    "MarketRatingRow",
    "MarketUpdatePolicyRow",
    "OperationRow",
    "PermissionRequestRow",
    "PluginConfigRow",
    "PluginKVIndexEntryRow",
    "PluginKVIndexRow",
    "PluginKVRow",
    "PluginLockRow",
    "PluginLogRow",
    "PluginRequirementRow",
    "PluginRow",
    "PluginVersionRow",
    "TrustedKeyRow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Lengths. Plugin ids follow the manifest rule ^[a-z0-9][a-z0-9._-]{0,63}$.
ID_LEN = 64
VERSION_LEN = 100
NAME_LEN = 200
URL_LEN = 500
SCOPE_LEN = 500
SHA256_LEN = 64
SHORT_LEN = 32
#: Plugin storage namespaces (``storage:<namespace>``).
NAMESPACE_LEN = 200
#: Text that may be large (plugin storage values): LONGTEXT on MySQL, whose TEXT stops at 64 KiB.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class PluginRow(Base):
    """One installed plugin and its *current* version (Arcade's ``t_plugin``)."""

    __tablename__ = "plugins"
    # Every filter the plugin list offers, then id: a keyset page is one index range scan.
    __table_args__ = (Index(None, "type", "id"), Index(None, "state", "id"),
                      Index(None, "enabled", "id"), Index(None, "runtime", "id"),
                      Index(None, "source", "id"))

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    version: Mapped[str] = mapped_column(String(VERSION_LEN))
    description: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    type: Mapped[str] = mapped_column(String(ID_LEN), default="")
    runtime: Mapped[str] = mapped_column(String(SHORT_LEN), default="python")
    entry_point: Mapped[str] = mapped_column(String(URL_LEN), default="")
    config_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    default_config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    icon: Mapped[str] = mapped_column(String(URL_LEN), default="")
    repository: Mapped[str] = mapped_column(String(URL_LEN), default="")
    documentation: Mapped[str] = mapped_column(String(URL_LEN), default="")
    state: Mapped[str] = mapped_column(String(SHORT_LEN))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    checksum: Mapped[str] = mapped_column(String(SHA256_LEN), default="")
    source: Mapped[str] = mapped_column(String(SHORT_LEN), default="local", index=True)
    source_uri: Mapped[str] = mapped_column(Text, default="")
    object_key: Mapped[str] = mapped_column(String(URL_LEN), default="")
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_phase: Mapped[str | None] = mapped_column(String(SHORT_LEN), nullable=True)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    versions: Mapped[list[PluginVersionRow]] = relationship(
        back_populates="plugin", cascade="all, delete-orphan", passive_deletes=True
    )
    config: Mapped[PluginConfigRow | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    config_history: Mapped[list[ConfigHistoryRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    grants: Mapped[list[GrantRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    permission_requests: Mapped[list[PermissionRequestRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    requirements: Mapped[list[PluginRequirementRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class PluginRequirementRow(Base):
    """One dependency of a plugin's *current* manifest (``dependencies``, not the optional
    ones), kept in step with ``plugins.manifest`` by the repository: which installed plugins
    require a given id is one index range scan, not a look inside every stored manifest."""

    __tablename__ = "plugin_requirements"
    __table_args__ = (Index(None, "requires", "plugin_id"),)

    plugin_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("plugins.id", ondelete="CASCADE"), primary_key=True
    )
    requires: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)


class PluginVersionRow(Base):
    """Every kept version of a plugin: the package blob and the unpacked cache directory."""

    __tablename__ = "plugin_versions"
    __table_args__ = (UniqueConstraint("plugin_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("plugins.id", ondelete="CASCADE")
    )
    version: Mapped[str] = mapped_column(String(VERSION_LEN))
    checksum: Mapped[str] = mapped_column(String(SHA256_LEN))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    object_key: Mapped[str] = mapped_column(String(URL_LEN))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    cache_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(SHORT_LEN), default="local")
    source_uri: Mapped[str] = mapped_column(Text, default="")
    signed_by: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime)

    plugin: Mapped[PluginRow] = relationship(back_populates="versions")


class PluginConfigRow(Base):
    """A plugin's current configuration; ``revision`` grows by one on every change."""

    __tablename__ = "plugin_config"

    plugin_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("plugins.id", ondelete="CASCADE"), primary_key=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConfigHistoryRow(Base):
    """Every configuration a plugin has had, for audit and for undo."""

    __tablename__ = "config_history"
    __table_args__ = (UniqueConstraint("plugin_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("plugins.id", ondelete="CASCADE")
    )
    revision: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GrantRow(Base):
    """A permission scope granted to a plugin; revoking sets ``revoked_at`` (history is kept)."""

    __tablename__ = "grants"
    __table_args__ = (Index(None, "plugin_id", "scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("plugins.id", ondelete="CASCADE")
    )
    scope: Mapped[str] = mapped_column(String(SCOPE_LEN))
    granted_by: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PermissionRequestRow(Base):
    """A scope a plugin asked for at run time, waiting for an operator's decision."""

    __tablename__ = "permission_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("plugins.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(SCOPE_LEN))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(SHORT_LEN), default="pending", index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEventRow(Base):
    """An append-only record of who did what to which plugin, and how it ended."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "plugin_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    action: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    plugin_id: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)
    outcome: Mapped[str] = mapped_column(String(SHORT_LEN), default="ok")
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditCountRow(Base):
    """How many audit events there are of each action and outcome, kept in the transaction
    that appends each one: what the metrics read at every scrape instead of counting a log
    that only grows."""

    __tablename__ = "audit_counts"

    action: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class OperationTotalRow(Base):
    """How many operations finished of each kind and final status, and their seconds in all
    (from start, or creation when they never started, to finish), kept as each one finishes:
    what the metrics read at every scrape instead of reading the operations."""

    __tablename__ = "operation_totals"

    kind: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    status: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class ApiTokenRow(Base):
    """An API token of the management service; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    role: Mapped[str] = mapped_column(String(SHORT_LEN))
    token_hash: Mapped[str] = mapped_column(String(SHA256_LEN), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OperationRow(Base):
    """A long-running operation (install, update, ...) that clients can poll."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    kind: Mapped[str] = mapped_column(String(SHORT_LEN))
    plugin_id: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(SHORT_LEN), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The operation's journal: what it created or replaced, for recovery after a crash.
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The owner id of the process running it (see plughost.storage.locks): while that owner
    #: lives, no other process reconciles the operation.
    owner: Mapped[str | None] = mapped_column(String(SHORT_LEN), nullable=True)


class TrustedKeyRow(Base):
    """A publisher's public signing key in the trust store (``revoked_at`` set = distrusted)."""

    __tablename__ = "trusted_keys"

    key_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    algorithm: Mapped[str] = mapped_column(String(SHORT_LEN), default="ed25519")
    public_key: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PluginLockRow(Base):
    """One row per plugin id ever locked; ``SELECT ... FOR UPDATE`` on it serialises operations.

    Not a foreign key: an install takes the lock before the plugin row exists.
    """

    __tablename__ = "plugin_locks"

    plugin_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PluginLogRow(Base):
    """One captured plugin log line (kept for the retention period; plugin id as plain text so
    the logs of an uninstalled plugin can still be read until they expire)."""

    __tablename__ = "plugin_logs"
    __table_args__ = (Index(None, "plugin_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    plugin_id: Mapped[str] = mapped_column(String(ID_LEN))
    level: Mapped[str] = mapped_column(String(SHORT_LEN))
    message: Mapped[str] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(SHORT_LEN * 4), nullable=True)
    logger: Mapped[str] = mapped_column(String(NAME_LEN), default="")


class AlertRuleRow(Base):
    """An alert rule added through the API (rules from ``plughost.toml`` are not stored)."""

    __tablename__ = "alert_rules"

    name: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    #: The rule as the API accepted it (expr, op, threshold, for, severity, labels, ...).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertEventRow(Base):
    """Alert history: each time an alert starts firing or resolves."""

    __tablename__ = "alert_events"
    __table_args__ = (Index(None, "rule", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    rule: Mapped[str] = mapped_column(String(NAME_LEN))
    state: Mapped[str] = mapped_column(String(SHORT_LEN))
    severity: Mapped[str] = mapped_column(String(SHORT_LEN))
    plugin_id: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")


class MarketRatingRow(Base):
    """A rating (1-5) and optional review of a marketplace plugin: one per token holder per
    plugin (a new one replaces it); admins hide abusive ones (kept, with who and why)."""

    __tablename__ = "market_ratings"
    __table_args__ = (UniqueConstraint("plugin_id", "rater"), Index(None, "plugin_id", "id"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    plugin_id: Mapped[str] = mapped_column(String(ID_LEN))
    rater: Mapped[str] = mapped_column(String(NAME_LEN))
    rating: Mapped[int] = mapped_column(Integer)
    review: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    moderated_by: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    moderation_reason: Mapped[str] = mapped_column(Text, default="")


class MarketDownloadRow(Base):
    """How many times this server installed (or served) each marketplace plugin version."""

    __tablename__ = "market_downloads"

    plugin_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    version: Mapped[str] = mapped_column(String(VERSION_LEN), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class MarketUpdatePolicyRow(Base):
    """How an installed plugin is updated from its marketplace: ``manual``, ``notify`` or
    ``auto`` (with a cooldown after a release and an optional UTC maintenance window)."""

    __tablename__ = "market_update_policies"

    plugin_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    policy: Mapped[str] = mapped_column(String(SHORT_LEN))
    cooldown_seconds: Mapped[int] = mapped_column(Integer, default=0)
    maintenance_window: Mapped[str] = mapped_column(String(SHORT_LEN), default="")
    notified_version: Mapped[str] = mapped_column(String(VERSION_LEN), default="")
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PluginKVRow(Base):
    """One value of plugin key-value storage (``ctx.storage``) in a namespace.

    Keys are looked up by their SHA-256 (``key_hash``): keys may be 1,024 characters, longer
    than MySQL can index, and MySQL's default collation would compare ``"A"`` equal to ``"a"``.
    """

    __tablename__ = "plugin_kv"

    ns: Mapped[str] = mapped_column(String(NAMESPACE_LEN), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(SHA256_LEN), primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(LongText)


class PluginKVIndexRow(Base):
    """A secondary index of a storage namespace: a name and the dotted key path it indexes."""

    __tablename__ = "plugin_kv_indexes"

    ns: Mapped[str] = mapped_column(String(NAMESPACE_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    path: Mapped[str] = mapped_column(Text)


class PluginKVIndexEntryRow(Base):
    """One (index, indexed value) -> key entry of a secondary index (values by their SHA-256)."""

    __tablename__ = "plugin_kv_index_entries"
    __table_args__ = (Index(None, "ns", "key_hash"),)

    ns: Mapped[str] = mapped_column(String(NAMESPACE_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    value_hash: Mapped[str] = mapped_column(String(SHA256_LEN), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(SHA256_LEN), primary_key=True)


class ClusterNodeRow(Base):
    """One ``plughost serve`` sharing this database: what it runs and when it last reported.

    ``id`` is the node's owner id (:mod:`plughost.storage.locks`): whether the node still lives
    is answered by its owner lease, not by the heartbeat alone.
    """

    __tablename__ = "cluster_nodes"

    id: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    url: Mapped[str] = mapped_column(String(URL_LEN), default="")
    version: Mapped[str] = mapped_column(String(VERSION_LEN))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: The last change sequence this node applied (0 before the first).
    applied_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    #: ``{plugin id: live state}`` written by nodes older than the ``cluster_node_plugins``
    #: table (``{}`` from later ones): read for a node with no row there, during an upgrade.
    plugins: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``{"redis": bool, ...}``: how the node hears about changes, its cache figures.
    info: Mapped[dict[str, Any]] = mapped_column(JSON)


class ClusterNodePluginRow(Base):
    """One plugin's live state on one node, as of the node's last heartbeat that changed it: a
    row each, so that a heartbeat writes the plugins whose state changed (not every installed
    plugin's), and where one plugin runs is read by its index."""

    __tablename__ = "cluster_node_plugins"
    __table_args__ = (Index(None, "plugin_id"),)

    node_id: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    plugin_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    state: Mapped[str] = mapped_column(String(SHORT_LEN))


class ChangeRow(Base):
    """The change log: one row per state-changing write, numbered by ``seq``.

    ``seq`` is assigned from :class:`ChangeSequenceRow` while holding its row lock until commit,
    so sequence numbers are gap-free and become visible in order: a reader that has seen ``n``
    never later finds a row below ``n`` (see :mod:`plughost.storage._repo_changes`).
    """

    __tablename__ = "change_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(SHORT_LEN))
    key: Mapped[str] = mapped_column(String(NAME_LEN))
    action: Mapped[str] = mapped_column(String(SHORT_LEN))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)


class ChangeSequenceRow(Base):
    """One row (``id`` 1): the last change sequence number handed out, and how far the log
    has been pruned. Writers lock it last, just before commit, so it orders commits."""

    __tablename__ = "change_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)
