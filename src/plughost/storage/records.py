"""Plain frozen records the repository takes and returns (no ORM objects leak out of storage).

JSON-ish fields (``manifest``, ``config``...) are plain dicts; treat them as read-only.
Timestamps are timezone-aware UTC datetimes. No SQLAlchemy import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from plughost.core.lifecycle import State
from plughost.errors import InvalidRecord

__all__ = [
    "FACETS",
    "ApiToken",
    "AuditEvent",
    "Change",
    "ConfigChange",
    "Grant",
    "MarketRating",
    "Operation",
    "PermissionRequest",
    "StoredConfig",
    "StoredNode",
    "StoredPlugin",
    "StoredVersion",
    "TrustedKey",
    "UpdatePolicy",
    "check_state",
]

#: Operation statuses, in lifecycle order.
OPERATION_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
#: Change log kinds whose ``key`` is a plugin id (the others: ``token``, ``trusted_key``,
#: ``alert_rule``).
PLUGIN_CHANGE_KINDS = frozenset({"plugin", "version", "config", "grant", "permission_request"})
#: Permission request statuses.
REQUEST_STATUSES = ("pending", "approved", "denied")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class StoredPlugin:
    """An installed plugin as recorded in ``plugins`` (Arcade's ``t_plugin`` columns and more).

    ``installed_at`` / ``updated_at`` left ``None`` are set by the repository on insert.
    """

    id: str
    name: str
    version: str
    manifest: Mapping[str, Any]
    state: str = "installed"
    enabled: bool = True
    description: str = ""
    author: str = ""
    type: str = ""
    runtime: str = "python"
    entry_point: str = ""
    config_schema: Mapping[str, Any] | None = None
    default_config: Mapping[str, Any] | None = None
    icon: str = ""
    repository: str = ""
    documentation: str = ""
    checksum: str = ""
    source: str = "local"
    source_uri: str = ""
    object_key: str = ""
    failure_reason: str | None = None
    failure_phase: str | None = None
    installed_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_manifest(
        cls,
        manifest: Mapping[str, Any] | Any,
        *,
        checksum: str = "",
        object_key: str = "",
        source: str = "local",
        source_uri: str = "",
        state: str = "installed",
        enabled: bool = True,
    ) -> StoredPlugin:
        """Fill the descriptive columns from a :class:`~plughost.core.manifest.Manifest` or its
        ``to_dict()`` (the manifest is stored whole, as JSON, in ``manifest``).

        Accepts the config schema/defaults either as ``config = {schema, defaults}`` (TOML
        shape) or as top-level ``config_schema`` / ``config_defaults``.
        """
        if not isinstance(manifest, Mapping):
            manifest = manifest.to_dict()
        config = manifest.get("config")
        config = config if isinstance(config, Mapping) else {}
        schema = manifest.get("config_schema", config.get("schema"))
        defaults = manifest.get("config_defaults", config.get("defaults"))
        return cls(
            id=_text(manifest.get("id")),
            name=_text(manifest.get("name") or manifest.get("id")),
            version=_text(manifest.get("version")),
            manifest=dict(manifest),
            state=state,
            enabled=enabled,
            description=_text(manifest.get("description")),
            author=_text(manifest.get("author")),
            type=_text(manifest.get("type")),
            runtime=_text(manifest.get("runtime") or "python"),
            entry_point=_text(manifest.get("entry")),
            config_schema=dict(schema) if isinstance(schema, Mapping) else None,
            default_config=dict(defaults) if isinstance(defaults, Mapping) else None,
            icon=_text(manifest.get("icon")),
            repository=_text(manifest.get("repository")),
            documentation=_text(manifest.get("documentation")),
            checksum=checksum,
            source=source,
            source_uri=source_uri,
            object_key=object_key,
        )


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One kept version of a plugin: its package blob, manifest and unpacked cache directory."""

    plugin_id: str
    version: str
    checksum: str
    object_key: str
    manifest: Mapping[str, Any]
    size: int = 0
    cache_path: str | None = None
    source: str = "local"
    source_uri: str = ""
    signed_by: str | None = None
    installed_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredConfig:
    """A plugin's current configuration and its revision number (1 for the first)."""

    plugin_id: str
    config: Mapping[str, Any]
    revision: int
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One entry of a plugin's configuration history."""

    plugin_id: str
    revision: int
    config: Mapping[str, Any]
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class Grant:
    """A permission scope granted to a plugin; ``revoked_at`` set means no longer in force."""

    id: int
    plugin_id: str
    scope: str
    granted_by: str
    granted_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """True while the grant has not been revoked."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A scope a plugin asked for at run time; ``status`` is pending, approved or denied."""

    id: int
    plugin_id: str
    scope: str
    reason: str
    status: str
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit log entry. ``outcome`` is ``ok``, ``denied`` or ``error`` by convention."""

    id: int
    at: datetime
    actor: str
    action: str
    plugin_id: str | None
    outcome: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's record; the secret itself is shown once at creation and never stored."""

    id: int
    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """True unless revoked (expiry is checked by :meth:`Repository.verify_token`)."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Operation:
    """A long-running operation clients can poll; ``progress`` goes from 0.0 to 1.0."""

    id: str
    kind: str
    plugin_id: str | None
    status: str
    progress: float
    message: str
    error: Mapping[str, Any] | None
    actor: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    owner: str | None = None
    """The owner id of the process running it (``None``: recorded before owners were)."""

    @property
    def done(self) -> bool:
        """True once the operation has succeeded, failed or been cancelled."""
        return self.status in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A publisher key in the trust store; ``revoked_at`` set means signatures are refused."""

    key_id: str
    public_key: str
    name: str = ""
    algorithm: str = "ed25519"
    added_by: str = ""
    added_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MarketRating:
    """A rating and review of a marketplace plugin by one token holder."""

    id: int
    plugin_id: str
    rater: str
    rating: int
    review: str
    created_at: datetime
    updated_at: datetime
    hidden: bool = False
    moderated_by: str = ""
    moderation_reason: str = ""


#: Update policies of marketplace plugins.
UPDATE_POLICIES = ("manual", "notify", "auto")


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    """How an installed plugin is updated from its marketplace (see ``UPDATE_POLICIES``).

    ``cooldown_seconds``: an ``auto`` update waits this long after a version is published;
    ``maintenance_window``: ``"HH:MM-HH:MM"`` (UTC) when ``auto`` updates may run, or ``""``.
    """

    plugin_id: str
    policy: str = "notify"
    cooldown_seconds: int = 0
    maintenance_window: str = ""
    notified_version: str = ""
    last_checked_at: datetime | None = None
    last_update_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredNode:
    """A ``plughost serve`` sharing the database, as of its last heartbeat."""

    id: str
    """Its owner id: the node lives while its owner lease is held."""
    name: str
    url: str
    version: str
    started_at: datetime
    heartbeat_at: datetime
    applied_seq: int
    plugins: Mapping[str, str]
    """``{plugin id: live state}`` on that node."""
    info: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log: ``kind`` / ``key`` say what changed, ``action`` how;
    ``seq`` orders all changes (gap-free, commit order). Re-read the entity to apply it."""

    seq: int
    at: datetime
    kind: str
    key: str
    action: str
    details: Mapping[str, Any] = field(default_factory=dict)
    origin: str | None = None

    @property
    def plugin_id(self) -> str | None:
        """The plugin the change is about, or ``None`` (tokens, keys, alert rules)."""
        return self.key if self.kind in PLUGIN_CHANGE_KINDS else None


FACETS: Final = ("type", "state", "runtime", "source")
"""The plugin columns whose values the plugin list counts for its filter menus
(``Repository.plugin_counts``)."""


def check_state(state: str) -> str:
    """The canonical lifecycle state value, or InvalidRecord naming the valid ones."""
    try:
        return State(state).value
    except ValueError:
        raise InvalidRecord(
            f"{state!r} is not a plugin state; use one of " + ", ".join(s.value for s in State)
        ) from None
