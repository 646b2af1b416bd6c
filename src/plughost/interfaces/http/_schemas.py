"""Request and response models of the management API (they make the OpenAPI document).

Field names follow the service facade's ``to_dict()`` shapes (snake_case), so the CLI prints
the same thing locally and remotely. Plugin objects also carry Arcade's names —
``pluginId``, ``pluginType`` and ``status`` (0 disabled, 1 enabled, 2 error) — so Arcade clients
keep working.
"""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from plughost.core.hookcall import SAMPLE as HOOK_SAMPLE
from plughost.core.lifecycle import State

__all__ = [
    "NEXT_CURSOR",
    "ArcadeStatus",
    "AuditEventOut",
    "AuditKind",
    "AuditPage",
    "CommandIn",
    "CommandOut",
    "CommandPage",
    "ConfigChangeIn",
    "ConfigHistoryEntry",
    "ConfigHistoryPage",
    "ConfigOut",
    "ConfigRestoreIn",
    "CursorQuery",
    "ErrorResponse",
    "HealthCheckOut",
    "HealthOut",
    "InstallOut",
    "ManifestProblem",
    "MetricOut",
    "NodeOut",
    "NodePage",
    "OnePluginQuery",
    "OperationOut",
    "OperationPage",
    "PermissionRequestOut",
    "PermissionRequestPage",
    "PermissionsOut",
    "PluginCountsOut",
    "PluginDetailOut",
    "PluginOut",
    "PluginPage",
    "ReadyOut",
    "RoleName",
    "RollbackIn",
    "ScopeIn",
    "StateName",
    "TokenCreateIn",
    "TokenCreatedOut",
    "TokenOut",
    "TokenPage",
    "UninstallOut",
    "UpdateOut",
    "ValidateManifestOut",
    "VersionOut",
    "VersionPage",
    "WhoAmIOut",
]

StateName = Enum("StateName", {s.name: s.value for s in State}, type=str)  # type: ignore[misc]
StateName.__doc__ = "A lifecycle state."


class ArcadeStatus(IntEnum):
    """Arcade's ``status`` (its ``is_enabled`` column): 0 disabled, 1 enabled, 2 error."""

    disabled = 0
    enabled = 1
    error = 2


class RoleName(StrEnum):
    """API token roles, weakest first."""

    viewer = "viewer"
    operator = "operator"
    admin = "admin"


NEXT_CURSOR: Any = Field(None, description="Pass as ?cursor= to read the next page; null at "
                                           "the end.")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. plugin.not_found.")
    message: str = Field(description="What went wrong and what to do.")
    hint: str | None = Field(None, description="The command or setting that fixes it, if any.")
    plugin_id: str | None = Field(None, description="The plugin concerned, if any.")
    details: dict[str, Any] = Field(default_factory=dict, description="Facts for machines "
                                    "(phase, problems, ...).")


class ErrorResponse(BaseModel):
    """Every error response."""

    error: ErrorDetail


class HealthOut(BaseModel):
    status: str = Field(examples=["ok"])


class ReadyOut(BaseModel):
    ready: bool
    reason: str = ""
    plugins: int = 0
    active: int = 0
    failed: int = 0


class NodePluginOut(BaseModel):
    id: str
    state: str = Field(description="The plugin's live state on that node.")


class NodeOut(BaseModel):
    """A ``plughost serve`` sharing this database."""

    id: str = Field(description="The node's owner id (its lease in the database).")
    name: str
    url: str = ""
    version: str = Field(description="The plughost version it runs.")
    status: str = Field(description="`up`; `stale` (heartbeat late); `down` (its process is "
                                    "gone: its lease in the database is free).")
    this_node: bool = Field(description="The node that answered this request.")
    started_at: str
    heartbeat_at: str = Field(description="Its last heartbeat (UTC).")
    applied_seq: int = Field(description="The last change (sequence number) it applied.")
    transport: str = Field(description="How it hears about changes: redis, postgres or "
                                       "polling.")
    plugins: list[NodePluginOut] = Field(default_factory=list)
    package_cache: dict[str, Any] = Field(
        default_factory=dict, description="Hits and misses of each package cache tier.")


class NodePage(BaseModel):
    items: list[NodeOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class PluginOut(_Out):
    """One installed plugin: stored record + live state."""

    id: str
    pluginId: str = Field(description="Arcade name of `id`.")
    name: str
    version: str
    description: str = ""
    author: str = ""
    type: str = ""
    pluginType: str = Field("", description="Arcade name of `type`.")
    runtime: str = "python"
    state: str = Field(description="Live lifecycle state.")
    status: ArcadeStatus = Field(description="Arcade status: 0 disabled, 1 enabled, 2 error.")
    enabled: bool
    source: str = ""
    source_uri: str = ""
    sha256: str = ""
    installed_at: str | None = None
    updated_at: str | None = None
    error: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    live: bool = Field(True, description="`state` is what this server runs now (always true "
                                         "here; false in the CLI on a home no server runs "
                                         "on: the state the next start begins from).")
    checksum: str = Field("", description="Arcade name of `sha256`.")
    installTime: str | None = Field(None, description="Arcade name of `installed_at`.")
    updateTime: str | None = Field(None, description="Arcade name of `updated_at`.")
    isEnabled: ArcadeStatus = Field(description="Arcade name of `status`: 0 disabled, "
                                                "1 enabled, 2 error.")
    isBuiltin: int = Field(0, description="Arcade's built-in flag: always 0 (every plugin "
                                          "can be uninstalled).")


class PluginPage(BaseModel):
    items: list[PluginOut]
    next_cursor: str | None = NEXT_CURSOR
    total: int = Field(description="How many plugins match the filters.")


class PluginCountsOut(BaseModel):
    total: int = Field(description="How many plugins match every filter.")
    by: dict[str, dict[str, int]] = Field(description=(
        "For each of type, state, runtime and source: how many plugins have each value, "
        "among those matching every other filter."))


class VersionOut(_Out):
    plugin_id: str
    version: str
    current: bool
    sha256: str = ""
    size: int = 0
    source: str = ""
    source_uri: str = ""
    signed_by: str | None = None
    installed_at: str | None = None
    cache_path: str | None = None


class VersionPage(BaseModel):
    items: list[VersionOut]
    next_cursor: str | None = NEXT_CURSOR
    total: int


class PluginDetailOut(PluginOut):
    manifest: dict[str, Any]
    path: str | None = None
    versions: list[VersionOut] = Field(default_factory=list)
    dependencies: dict[str, str] = Field(default_factory=dict)
    dependents: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    config_revision: int = 0
    grants: list[str] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    entryPoint: str = Field("", description="Arcade name of the manifest's `entry`.")
    configSchema: dict[str, Any] | None = Field(
        None, description="Arcade name of the manifest's `config.schema`.")
    paramsSchema: dict[str, Any] | None = Field(
        None, description="Arcade name of the manifest's `params-schema`.")
    defaultConfig: dict[str, Any] = Field(
        default_factory=dict, description="Arcade name of the manifest's `config.defaults`.")
    icon: str = ""
    repository: str = ""
    documentation: str = Field("", description="The documentation URL (else the homepage).")
    s3Path: str = Field("", description="The package's key in the object store.")


class InstallOut(_Out):
    plugin_id: str
    pluginId: str
    version: str
    sha256: str
    size: int
    enabled: bool
    state: str
    signed: bool
    signed_by: str | None = None
    cache_path: str = ""
    object_key: str = ""
    source: str = ""
    source_uri: str = ""
    granted: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    message: str = ""


class UpdateOut(_Out):
    plugin_id: str
    from_version: str
    to_version: str
    state: str
    pruned: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    message: str = ""


class ReloadOut(_Out):
    plugin_id: str
    from_version: str
    to_version: str
    state: str
    ok: bool
    swapped: bool = True
    seconds: float = 0.0
    load_seconds: float = 0.0
    switch_seconds: float = 0.0
    warnings: list[str] = Field(default_factory=list)
    message: str = ""


class UninstallOut(_Out):
    removed: list[str]
    versions: dict[str, list[str]] = Field(default_factory=dict)
    message: str = ""


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = Field(None, description="Version to go back to; default: the previous one.")
    build: str | None = Field(
        None, max_length=64,
        description="A development plugin: the kept good build to reload (digest prefix or "
                    "version; 'previous' for the one before the current).")


class MetricOut(_Out):
    """Arcade's metrics entry plus the host's counters."""

    id: str
    name: str
    type: str
    version: str
    path: str | None = None
    description: str = ""
    state: str
    runtime: str = Field("", description="The runtime the plugin runs on (python, process, ...).")
    calls: int = Field(0, description="Every dispatch to the plugin: the sum of the next five.")
    direct_calls: int = Field(0, description="Direct calls (``host.call``).")
    commands: int = Field(0, description="Commands the plugin ran.")
    hooks: int = Field(0, description="Extension-point implementations of the plugin run.")
    events: int = Field(0, description="Events delivered to the plugin's subscriptions.")
    channels: int = Field(0, description="Channels the plugin served.")
    errors: int = Field(0, description="Dispatches that raised.")
    busy_seconds: float = Field(0.0, description=(
        "Time spent in those dispatches. Extension-point (hook) time is sampled: one "
        f"synchronous hook call in {HOOK_SAMPLE} is timed (asynchronous ones every time) "
        "and only the timed calls are added, so for hooks this is a sample, not the total."))


class ManifestProblem(BaseModel):
    path: str
    code: str
    message: str


class ValidateManifestOut(BaseModel):
    valid: bool = Field(description="True when install would accept this manifest.")
    problems: list[ManifestProblem] = Field(
        default_factory=list, description="Everything install would refuse: the manifest, its "
        "permission scopes, host-version compatibility (`host`, Arcade `minVersion`), "
        "dependencies and the runtime.")
    manifest: dict[str, Any] | None = Field(None, description="The normalised manifest.")
    warnings: list[str] = Field(default_factory=list,
                                description="Not a problem of the manifest, but worth knowing "
                                            "(e.g. the plugin is already installed).")


class OperationOut(BaseModel):
    id: str
    kind: str
    plugin_id: str | None = None
    status: str = Field(description="pending, running, succeeded, failed or cancelled.")
    progress: float
    message: str = ""
    error: dict[str, Any] | None = None
    actor: str = ""
    result: Any = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class OperationPage(BaseModel):
    items: list[OperationOut]
    next_cursor: str | None = NEXT_CURSOR


class AuditKind(StrEnum):
    """What an audit entry records."""

    operation = "operation"
    security = "security"


class AuditEventOut(_Out):
    """One audit entry (the ``audit_entry`` resource)."""

    id: int | None
    at: str | None = Field(description="ISO 8601 UTC time.")
    actor: str
    action: str
    plugin_id: str | None = None
    outcome: str
    kind: AuditKind = Field(description="operation (install, update...) or security "
                                        "(grants, revocations, denials, requests).")
    details: dict[str, Any] = Field(default_factory=dict)


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None = NEXT_CURSOR


CursorQuery = Annotated[str | None, Query(
    max_length=1000, description="The next_cursor of the previous page (omit for the first).")]

#: A list of every plugin's entry asked for one plugin's alone (the metrics, the health).
OnePluginQuery = Annotated[str | None, Query(
    min_length=1, max_length=64,
    description="Only this plugin's entry (404 if there is none): what asking about one "
                "plugin costs, whatever is installed.")]


class HealthCheckOut(BaseModel):
    """The health answer, from the plugin's own ``health()``."""

    plugin_id: str
    healthy: bool
    state: str
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class ConfigOut(_Out):
    plugin_id: str
    version: int = Field(description="0: never changed (defaults only).")
    config: dict[str, Any] = Field(description="Effective configuration, secrets redacted.")
    settings: dict[str, Any] = Field(description="The operator's settings, secrets redacted.")
    schema_: dict[str, Any] | None = Field(None, alias="schema",
                                           description="The JSON Schema, if any.")


class ConfigChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: dict[str, Any] = Field(description="Settings to merge (null removes a key).")
    replace: bool = Field(False, description="Replace the settings instead of merging.")


class ConfigRestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31, description="The version to make current again.")


class ConfigHistoryEntry(_Out):
    version: int
    settings: dict[str, Any]
    action: str
    actor: str
    time: str | None = Field(description="ISO 8601 UTC time.")


class ConfigHistoryPage(BaseModel):
    items: list[ConfigHistoryEntry]
    next_cursor: str | None = NEXT_CURSOR
    total: int


class ScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str = Field(min_length=1, max_length=500,
                       examples=["net:api.example.com", "fs:read:/data"])
    reason: str = Field("", max_length=500)


class PermissionRequestOut(_Out):
    id: int
    plugin_id: str
    scope: str
    reason: str = ""
    status: str
    created: str | None = Field(None, description="ISO 8601 UTC time.")
    resolved_by: str | None = None


class PermissionRequestPage(BaseModel):
    items: list[PermissionRequestOut]
    next_cursor: str | None = NEXT_CURSOR
    total: int


class PermissionsOut(BaseModel):
    plugin_id: str
    declared: list[str]
    granted: list[str]
    requests: list[PermissionRequestOut]


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")
    timeout: float | None = Field(None, gt=0, le=3600, description="Seconds to wait.")


class CommandOut(BaseModel):
    command: str
    result: Any = Field(None, description="What the command returned (JSON).")


class CommandPage(BaseModel):
    items: list[str] = Field(description="Command names (plugin.command).")
    next_cursor: str | None = NEXT_CURSOR
    total: int


class TokenCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName
    name: str | None = Field(None, min_length=1, max_length=64)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    created_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None


class TokenPage(BaseModel):
    items: list[TokenOut]
    next_cursor: str | None = NEXT_CURSOR
    total: int


class TokenCreatedOut(TokenOut):
    secret: str = Field(description="The bearer secret. Shown once; store it now.")


class WhoAmIOut(_Out):
    signed_in: bool = Field(description="A token was sent and accepted.")
    token_required: bool = Field(description="Requests without a token are refused.")
    name: str | None = Field(description="The token's name (null without one).")
    role: str | None = Field(description="viewer, operator or admin; null when not signed in.")
    roles: list[str] = Field(description="Every role, weakest first.")
    operations: list[str] = Field(description=(
        "The operations this caller may call, as \"METHOD /path\" (path templates as in "
        "this document)."))
