"""The data-access layer services use: plain records in, plain records out.

Every method runs in its own transaction, unless called inside :meth:`Repository.unit_of_work`,
in which case all calls share that one transaction — committed when the block ends normally,
rolled back (leaving nothing) when it raises::

    with repo.lock_plugin("notify-slack"):          # serialise operations on this plugin id
        with repo.unit_of_work():                   # one transaction
            repo.add_plugin(StoredPlugin.from_manifest(manifest, checksum=..., object_key=...))
            repo.add_version(StoredVersion(...))
            repo.set_config("notify-slack", defaults, changed_by="install")

The unit of work is bound to the calling thread / asyncio task (a ``ContextVar``); nested
``unit_of_work()`` blocks join the outer transaction. Audit events written inside a unit of work
roll back with it: record the audit of a *failed* operation after the block.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from plughost.core.lifecycle import State
from plughost.errors import (
    ConcurrentModification,
    InvalidRecord,
    OperationRefused,
    PluginNotFound,
    RecordExists,
    RecordNotFound,
)
from plughost.storage.db import Database
from plughost.storage.locks import FileLock, MemoryLock, RowLock
from plughost.storage.models import (
    ApiTokenRow,
    AuditEventRow,
    ConfigHistoryRow,
    GrantRow,
    OperationRow,
    PermissionRequestRow,
    PluginConfigRow,
    PluginRow,
    PluginVersionRow,
    TrustedKeyRow,
)
from plughost.storage.records import (
    OPERATION_STATUSES,
    ApiToken,
    AuditEvent,
    ConfigChange,
    Grant,
    Operation,
    PermissionRequest,
    StoredConfig,
    StoredPlugin,
    StoredVersion,
    TrustedKey,
)

__all__ = ["Repository", "hash_token"]

R = TypeVar("R")
_MEMORY_LOCKS: weakref.WeakKeyDictionary[Database, MemoryLock] = weakref.WeakKeyDictionary()
_TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)
_PLUGIN_FIELDS = {f.name for f in fields(StoredPlugin)}
_UPDATABLE = _PLUGIN_FIELDS - {"id", "installed_at", "updated_at"}


def hash_token(secret: str) -> str:
    """The SHA-256 hex digest stored for an API token secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _record(cls: type[R], row: Any, **extra: Any) -> R:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = {n: getattr(row, n) for n in names if n not in extra and hasattr(row, n)}
    return cls(**values, **extra)


def _check_state(state: str) -> str:
    try:
        return State(state).value
    except ValueError:
        raise InvalidRecord(
            f"{state!r} is not a plugin state; use one of " + ", ".join(s.value for s in State)
        ) from None


class Repository:
    """Data access for plugins, versions, config, grants, audit, tokens, operations and keys.

    :param database: the :class:`~plughost.storage.db.Database` to use (not closed by this).
    :param lock_dir: where SQLite plugin lock files go; default ``locks/`` beside the database
        file (``<home>/locks`` with the default settings).
    :param clock: returns "now" as an aware UTC datetime (tests inject a fixed clock).
    """

    def __init__(
        self,
        database: Database,
        *,
        lock_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.database = database
        self._now = clock or _utcnow
        self._current: ContextVar[Session | None] = ContextVar(
            f"plughost_uow_{id(self)}", default=None
        )
        self._locks: FileLock | MemoryLock | RowLock
        if not database.is_sqlite:
            self._locks = RowLock(database)
        elif database.sqlite_path is not None:
            self._locks = FileLock(lock_dir or database.sqlite_path.parent / "locks")
        else:
            self._locks = _MEMORY_LOCKS.setdefault(database, MemoryLock())

    # -- transactions and locks ------------------------------------------------------------

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[Repository]:
        """Run every repository call in the block in ONE transaction (see the module doc)."""
        if self._current.get() is not None:
            yield self  # join the outer unit of work
            return
        with self.database.transaction(write=True) as session:
            token = self._current.set(session)
            try:
                yield self
            finally:
                self._current.reset(token)

    @property
    def in_unit_of_work(self) -> bool:
        """True inside :meth:`unit_of_work` (in this thread / task)."""
        return self._current.get() is not None

    @contextlib.contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Session]:
        session = self._current.get()
        if session is not None:
            yield session
            return
        with self.database.transaction(write=write) as session:
            yield session

    def lock_plugin(
        self, plugin_id: str, *, timeout: float = 30.0
    ) -> contextlib.AbstractContextManager[None]:
        """Serialise operations on ``plugin_id`` across threads and processes (module
        :mod:`plughost.storage.locks` explains how). Not re-entrant.

        :raises LockTimeout: when another holder keeps the lock longer than ``timeout`` seconds.
        """
        return self._locks.hold(plugin_id, timeout=timeout)

    # -- plugins ---------------------------------------------------------------------------

    def add_plugin(self, plugin: StoredPlugin) -> StoredPlugin:
        """Insert a new plugin row.

        :raises RecordExists: when a plugin with that id is already installed.
        """
        now = self._now()
        values = {n: getattr(plugin, n) for n in _PLUGIN_FIELDS}
        values["state"] = _check_state(plugin.state)
        values["installed_at"] = plugin.installed_at or now
        values["updated_at"] = plugin.updated_at or values["installed_at"]
        for key in ("manifest", "config_schema", "default_config"):
            if values[key] is not None:
                values[key] = dict(values[key])
        with self._tx() as s:
            if s.get(PluginRow, plugin.id) is not None:
                raise RecordExists(
                    f"plugin {plugin.id!r} is already installed; use update to change its "
                    "version or uninstall it first",
                    plugin_id=plugin.id,
                )
            row = PluginRow(**values)
            s.add(row)
            self._flush(s, f"plugin {plugin.id!r} is already installed", plugin.id)
            return _record(StoredPlugin, row)

    def get_plugin(self, plugin_id: str) -> StoredPlugin | None:
        """The plugin's record, or ``None`` when it is not installed."""
        with self._tx(write=False) as s:
            row = s.get(PluginRow, plugin_id)
            return None if row is None else _record(StoredPlugin, row)

    def require_plugin(self, plugin_id: str) -> StoredPlugin:
        """The plugin's record. :raises PluginNotFound: when it is not installed."""
        found = self.get_plugin(plugin_id)
        if found is None:
            raise self._not_found(plugin_id)
        return found

    def _plugin_filter(
        self,
        stmt: Select[Any],
        type: str | None,
        state: str | None,
        enabled: bool | None,
        q: str | None,
    ) -> Select[Any]:
        if type is not None:
            stmt = stmt.where(PluginRow.type == type)
        if state is not None:
            stmt = stmt.where(PluginRow.state == _check_state(state))
        if enabled is not None:
            stmt = stmt.where(PluginRow.enabled == enabled)
        if q:
            needle = q.lower()
            stmt = stmt.where(
                or_(
                    func.lower(PluginRow.id).contains(needle, autoescape=True),
                    func.lower(PluginRow.name).contains(needle, autoescape=True),
                    func.lower(PluginRow.description).contains(needle, autoescape=True),
                )
            )
        return stmt

    def list_plugins(
        self,
        *,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredPlugin]:
        """Installed plugins ordered by id, filtered by type, state, enabled flag and a
        case-insensitive text ``q`` matched against id, name and description."""
        if limit < 0 or offset < 0:
            raise InvalidRecord(f"limit and offset must be >= 0, got {limit} and {offset}")
        stmt = self._plugin_filter(select(PluginRow), type, state, enabled, q)
        stmt = stmt.order_by(PluginRow.id).limit(limit).offset(offset)
        with self._tx(write=False) as s:
            return [_record(StoredPlugin, r) for r in s.scalars(stmt)]

    def count_plugins(
        self,
        *,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
    ) -> int:
        """How many plugins :meth:`list_plugins` would return without limit/offset."""
        stmt = self._plugin_filter(select(func.count(PluginRow.id)), type, state, enabled, q)
        with self._tx(write=False) as s:
            return int(s.scalar(stmt) or 0)

    def update_plugin(self, plugin_id: str, **changes: Any) -> StoredPlugin:
        """Change columns of an installed plugin; ``updated_at`` is set to now.

        :raises PluginNotFound: when it is not installed.
        :raises InvalidRecord: for unknown column names or an unknown state.
        """
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown:
            raise InvalidRecord(
                f"cannot update {', '.join(unknown)}; updatable fields: "
                + ", ".join(sorted(_UPDATABLE))
            )
        if "state" in changes:
            changes["state"] = _check_state(changes["state"])
        with self._tx() as s:
            row = self._plugin_row(s, plugin_id)
            for key, value in changes.items():
                setattr(row, key, dict(value) if isinstance(value, Mapping) else value)
            row.updated_at = self._now()
            s.flush()
            return _record(StoredPlugin, row)

    def set_state(
        self,
        plugin_id: str,
        state: str,
        *,
        failure_reason: str | None = None,
        failure_phase: str | None = None,
    ) -> StoredPlugin:
        """Record the plugin's lifecycle state; the failure reason/phase are kept only for
        ``failed`` and cleared otherwise. Transition rules are the host's job, not checked here."""
        state = _check_state(state)
        failed = state == State.FAILED.value
        return self.update_plugin(
            plugin_id,
            state=state,
            failure_reason=failure_reason if failed else None,
            failure_phase=failure_phase if failed else None,
        )

    def set_enabled(self, plugin_id: str, enabled: bool) -> StoredPlugin:
        """Persist the enabled flag (a disabled plugin is not loaded at start)."""
        return self.update_plugin(plugin_id, enabled=enabled)

    def set_current_version(self, plugin_id: str, version: str) -> StoredPlugin:
        """Make a kept version the plugin's current one (after update or for rollback):
        copies its manifest-derived columns, checksum, object key and source."""
        with self._tx() as s:
            row = self._plugin_row(s, plugin_id)
            ver = self._version_row(s, plugin_id, version)
            fresh = StoredPlugin.from_manifest(
                ver.manifest,
                checksum=ver.checksum,
                object_key=ver.object_key,
                source=ver.source,
                source_uri=ver.source_uri,
            )
            for name in ("name", "description", "author", "type", "runtime", "entry_point",
                         "config_schema", "default_config", "icon", "repository",
                         "documentation", "checksum", "source", "source_uri", "object_key",
                         "manifest"):
                setattr(row, name, getattr(fresh, name))
            row.version = ver.version
            row.updated_at = self._now()
            s.flush()
            return _record(StoredPlugin, row)

    def delete_plugin(self, plugin_id: str) -> bool:
        """Delete the plugin and, by cascade, its versions, config, history, grants and
        permission requests. Audit events and operations stay. Returns False if absent."""
        with self._tx() as s:
            row = s.get(PluginRow, plugin_id)
            if row is None:
                return False
            s.delete(row)
            s.flush()
            return True

    # -- versions --------------------------------------------------------------------------

    def add_version(self, version: StoredVersion) -> StoredVersion:
        """Record a kept version of an installed plugin.

        :raises PluginNotFound: when the plugin row does not exist (add it first).
        :raises RecordExists: when that version is already recorded.
        """
        with self._tx() as s:
            self._plugin_row(s, version.plugin_id)
            if self._find_version(s, version.plugin_id, version.version) is not None:
                raise RecordExists(
                    f"version {version.version} of {version.plugin_id!r} is already installed",
                    plugin_id=version.plugin_id,
                )
            values = {f.name: getattr(version, f.name) for f in fields(StoredVersion)}
            values.pop("id")
            values["manifest"] = dict(version.manifest)
            values["installed_at"] = version.installed_at or self._now()
            row = PluginVersionRow(**values)
            s.add(row)
            self._flush(
                s, f"version {version.version} of {version.plugin_id!r} is already installed",
                version.plugin_id,
            )
            return _record(StoredVersion, row)

    def get_version(self, plugin_id: str, version: str) -> StoredVersion | None:
        """One kept version, or ``None``."""
        with self._tx(write=False) as s:
            row = self._find_version(s, plugin_id, version)
            return None if row is None else _record(StoredVersion, row)

    def list_versions(self, plugin_id: str) -> list[StoredVersion]:
        """Kept versions of a plugin, most recently installed first."""
        stmt = (
            select(PluginVersionRow)
            .where(PluginVersionRow.plugin_id == plugin_id)
            .order_by(PluginVersionRow.installed_at.desc(), PluginVersionRow.id.desc())
        )
        with self._tx(write=False) as s:
            return [_record(StoredVersion, r) for r in s.scalars(stmt)]

    def set_version_cache_path(
        self, plugin_id: str, version: str, cache_path: str | None
    ) -> StoredVersion:
        """Record where a version is unpacked (or ``None`` once the cache is gone)."""
        with self._tx() as s:
            row = self._version_row(s, plugin_id, version)
            row.cache_path = cache_path
            s.flush()
            return _record(StoredVersion, row)

    def delete_version(self, plugin_id: str, version: str) -> bool:
        """Forget one kept version (not the current one). Returns False if it was not there.

        :raises OperationRefused: for the plugin's current version.
        """
        with self._tx() as s:
            plugin = s.get(PluginRow, plugin_id)
            if plugin is not None and plugin.version == version:
                raise OperationRefused(
                    f"{version} is the current version of {plugin_id!r}; roll back or update "
                    "to another version first",
                    plugin_id=plugin_id,
                )
            row = self._find_version(s, plugin_id, version)
            if row is None:
                return False
            s.delete(row)
            s.flush()
            return True

    def prune_versions(
        self, plugin_id: str, keep: int = 3, *, protect: Iterable[str] = ()
    ) -> list[StoredVersion]:
        """Forget all but the ``keep`` most recently installed versions and return the removed
        ones (the caller deletes their blobs and cache directories). The current version and
        those in ``protect`` are always kept and count towards ``keep``."""
        if keep < 1:
            raise InvalidRecord(f"keep must be at least 1 (the current version), got {keep}")
        with self._tx() as s:
            plugin = self._plugin_row(s, plugin_id)
            rows = list(
                s.scalars(
                    select(PluginVersionRow)
                    .where(PluginVersionRow.plugin_id == plugin_id)
                    .order_by(PluginVersionRow.installed_at.desc(), PluginVersionRow.id.desc())
                )
            )
            kept = {plugin.version, *protect}
            for row in rows:
                if len(kept) >= keep:
                    break
                kept.add(row.version)
            removed = [row for row in rows if row.version not in kept]
            records = [_record(StoredVersion, r) for r in removed]
            for row in removed:
                s.delete(row)
            s.flush()
            return records

    # -- configuration ---------------------------------------------------------------------

    def get_config(self, plugin_id: str) -> StoredConfig | None:
        """The plugin's current configuration, or ``None`` if none was ever set."""
        with self._tx(write=False) as s:
            row = s.get(PluginConfigRow, plugin_id)
            return None if row is None else _record(StoredConfig, row)

    def set_config(
        self,
        plugin_id: str,
        config: Mapping[str, Any],
        *,
        changed_by: str = "",
        expected_revision: int | None = None,
    ) -> StoredConfig:
        """Replace the configuration (revision + 1) and append it to the history.

        :param expected_revision: the revision the caller read (0 = none yet); when given and
            different from the stored one, nothing changes and ConcurrentModification is raised.
        :raises PluginNotFound: when the plugin is not installed.
        """
        now = self._now()
        with self._tx() as s:
            self._plugin_row(s, plugin_id)
            row = s.get(PluginConfigRow, plugin_id, with_for_update=True)
            current = 0 if row is None else row.revision
            if expected_revision is not None and expected_revision != current:
                raise ConcurrentModification(
                    f"the configuration of {plugin_id!r} is at revision {current}, not "
                    f"{expected_revision}: someone changed it meanwhile; reload and retry",
                    plugin_id=plugin_id,
                    details={"current_revision": current, "expected_revision": expected_revision},
                )
            data = dict(config)
            if row is None:
                row = PluginConfigRow(plugin_id=plugin_id, config=data, revision=1,
                                      updated_by=changed_by, updated_at=now)
                s.add(row)
            else:
                row.config = data
                row.revision = current + 1
                row.updated_by = changed_by
                row.updated_at = now
            s.add(ConfigHistoryRow(plugin_id=plugin_id, revision=row.revision, config=data,
                                   changed_by=changed_by, changed_at=now))
            s.flush()
            return _record(StoredConfig, row)

    def config_history(self, plugin_id: str, *, limit: int = 50) -> list[ConfigChange]:
        """Past configurations, newest first."""
        stmt = (
            select(ConfigHistoryRow)
            .where(ConfigHistoryRow.plugin_id == plugin_id)
            .order_by(ConfigHistoryRow.revision.desc())
            .limit(limit)
        )
        with self._tx(write=False) as s:
            return [_record(ConfigChange, r) for r in s.scalars(stmt)]

    # -- grants and permission requests ----------------------------------------------------

    def grant(self, plugin_id: str, scope: str, *, granted_by: str = "") -> Grant:
        """Grant ``scope`` to the plugin; returns the existing grant if already in force."""
        with self._tx() as s:
            self._plugin_row(s, plugin_id)
            return self._grant(s, plugin_id, scope, granted_by)

    def _grant(self, s: Session, plugin_id: str, scope: str, granted_by: str) -> Grant:
        existing = s.scalars(
            select(GrantRow).where(GrantRow.plugin_id == plugin_id, GrantRow.scope == scope,
                                   GrantRow.revoked_at.is_(None))
        ).first()
        if existing is not None:
            return _record(Grant, existing)
        row = GrantRow(plugin_id=plugin_id, scope=scope, granted_by=granted_by,
                       granted_at=self._now())
        s.add(row)
        s.flush()
        return _record(Grant, row)

    def revoke_grant(self, plugin_id: str, scope: str, *, revoked_by: str = "") -> bool:
        """Revoke an active grant (kept as history). Returns False when none was in force."""
        with self._tx() as s:
            rows = list(s.scalars(
                select(GrantRow).where(GrantRow.plugin_id == plugin_id, GrantRow.scope == scope,
                                       GrantRow.revoked_at.is_(None))
            ))
            for row in rows:
                row.revoked_at = self._now()
                row.revoked_by = revoked_by
            s.flush()
            return bool(rows)

    def list_grants(self, plugin_id: str, *, include_revoked: bool = False) -> list[Grant]:
        """The plugin's grants, oldest first."""
        stmt = select(GrantRow).where(GrantRow.plugin_id == plugin_id).order_by(GrantRow.id)
        if not include_revoked:
            stmt = stmt.where(GrantRow.revoked_at.is_(None))
        with self._tx(write=False) as s:
            return [_record(Grant, r) for r in s.scalars(stmt)]

    def request_permission(
        self, plugin_id: str, scope: str, *, reason: str = ""
    ) -> PermissionRequest:
        """Record that the plugin asks for ``scope``; a pending request for it is reused."""
        with self._tx() as s:
            self._plugin_row(s, plugin_id)
            existing = s.scalars(
                select(PermissionRequestRow).where(
                    PermissionRequestRow.plugin_id == plugin_id,
                    PermissionRequestRow.scope == scope,
                    PermissionRequestRow.status == "pending",
                )
            ).first()
            if existing is not None:
                return _record(PermissionRequest, existing)
            row = PermissionRequestRow(plugin_id=plugin_id, scope=scope, reason=reason,
                                       status="pending", requested_at=self._now())
            s.add(row)
            s.flush()
            return _record(PermissionRequest, row)

    def list_permission_requests(
        self, *, plugin_id: str | None = None, status: str | None = "pending"
    ) -> list[PermissionRequest]:
        """Permission requests, oldest first; ``status=None`` lists every status."""
        stmt = select(PermissionRequestRow).order_by(PermissionRequestRow.id)
        if plugin_id is not None:
            stmt = stmt.where(PermissionRequestRow.plugin_id == plugin_id)
        if status is not None:
            stmt = stmt.where(PermissionRequestRow.status == status)
        with self._tx(write=False) as s:
            return [_record(PermissionRequest, r) for r in s.scalars(stmt)]

    def decide_permission_request(
        self, request_id: int, *, approve: bool, decided_by: str = ""
    ) -> PermissionRequest:
        """Approve (granting the scope in the same transaction) or deny a pending request.

        :raises RecordNotFound: for an unknown request id.
        :raises OperationRefused: when the request was already decided.
        """
        with self._tx() as s:
            row = s.get(PermissionRequestRow, request_id, with_for_update=True)
            if row is None:
                raise RecordNotFound(f"there is no permission request {request_id}")
            if row.status != "pending":
                raise OperationRefused(
                    f"permission request {request_id} was already {row.status}",
                    plugin_id=row.plugin_id,
                )
            row.status = "approved" if approve else "denied"
            row.decided_by = decided_by
            row.decided_at = self._now()
            if approve:
                self._grant(s, row.plugin_id, row.scope, decided_by)
            s.flush()
            return _record(PermissionRequest, row)

    # -- audit -----------------------------------------------------------------------------

    def append_audit(
        self,
        action: str,
        *,
        actor: str = "",
        plugin_id: str | None = None,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append an audit event (``outcome``: ``ok``, ``denied`` or ``error`` by convention)."""
        with self._tx() as s:
            row = AuditEventRow(at=self._now(), actor=actor, action=action, plugin_id=plugin_id,
                                outcome=outcome, details=dict(details or {}))
            s.add(row)
            s.flush()
            return _record(AuditEvent, row)

    def query_audit(
        self,
        *,
        plugin_id: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Audit events newest first. Page with ``before_id`` = the last id of the previous page."""
        stmt = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
        if plugin_id is not None:
            stmt = stmt.where(AuditEventRow.plugin_id == plugin_id)
        if action is not None:
            stmt = stmt.where(AuditEventRow.action == action)
        if actor is not None:
            stmt = stmt.where(AuditEventRow.actor == actor)
        if outcome is not None:
            stmt = stmt.where(AuditEventRow.outcome == outcome)
        if since is not None:
            stmt = stmt.where(AuditEventRow.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEventRow.at < until)
        if before_id is not None:
            stmt = stmt.where(AuditEventRow.id < before_id)
        with self._tx(write=False) as s:
            return [_record(AuditEvent, r) for r in s.scalars(stmt)]

    # -- API tokens ------------------------------------------------------------------------

    def create_token(
        self, name: str, role: str, *, expires_at: datetime | None = None
    ) -> tuple[ApiToken, str]:
        """Create a token; returns its record and the secret (shown once, stored hashed).

        :raises RecordExists: when a token with that name exists (revoked ones included).
        """
        secret = "ph_" + secrets.token_urlsafe(32)
        with self._tx() as s:
            if s.scalars(select(ApiTokenRow.id).where(ApiTokenRow.name == name)).first():
                raise RecordExists(f"a token named {name!r} exists; choose another name")
            row = ApiTokenRow(name=name, role=role, token_hash=hash_token(secret),
                              created_at=self._now(), expires_at=expires_at)
            s.add(row)
            self._flush(s, f"a token named {name!r} exists; choose another name", None)
            return _record(ApiToken, row), secret

    def verify_token(self, secret: str) -> ApiToken | None:
        """The active, unexpired token with that secret, or ``None``. Records its last use
        (at most once a minute, so busy clients do not write on every request)."""
        now = self._now()
        with self._tx() as s:
            row = s.scalars(
                select(ApiTokenRow).where(ApiTokenRow.token_hash == hash_token(secret))
            ).first()
            if row is None or row.revoked_at is not None:
                return None
            if row.expires_at is not None and row.expires_at <= now:
                return None
            if row.last_used_at is None or now - row.last_used_at >= _TOKEN_TOUCH_INTERVAL:
                row.last_used_at = now
                s.flush()
            return _record(ApiToken, row)

    def list_tokens(self, *, include_revoked: bool = False) -> list[ApiToken]:
        """Tokens by name (never their secrets)."""
        stmt = select(ApiTokenRow).order_by(ApiTokenRow.name)
        if not include_revoked:
            stmt = stmt.where(ApiTokenRow.revoked_at.is_(None))
        with self._tx(write=False) as s:
            return [_record(ApiToken, r) for r in s.scalars(stmt)]

    def revoke_token(self, name: str) -> bool:
        """Revoke a token by name. Returns False when no active token has that name."""
        with self._tx() as s:
            row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).first()
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self._now()
            s.flush()
            return True

    # -- operations ------------------------------------------------------------------------

    def create_operation(
        self, kind: str, *, plugin_id: str | None = None, actor: str = "", message: str = ""
    ) -> Operation:
        """Record a new pending operation with a fresh id."""
        now = self._now()
        with self._tx() as s:
            row = OperationRow(id=uuid.uuid4().hex, kind=kind, plugin_id=plugin_id,
                               status="pending", progress=0.0, message=message, error=None,
                               actor=actor, created_at=now, updated_at=now)
            s.add(row)
            s.flush()
            return _record(Operation, row)

    def update_operation(
        self,
        operation_id: str,
        *,
        status: str | None = None,
        progress: float | None = None,
        message: str | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> Operation:
        """Report progress (0.0-1.0), a message, a new status, or the error of a failure.

        :raises RecordNotFound: for an unknown id.
        :raises OperationRefused: when the operation already finished.
        :raises InvalidRecord: for an unknown status or a progress outside 0..1.
        """
        if status is not None and status not in OPERATION_STATUSES:
            raise InvalidRecord(
                f"{status!r} is not an operation status; use one of "
                + ", ".join(OPERATION_STATUSES)
            )
        if progress is not None and not 0.0 <= progress <= 1.0:
            raise InvalidRecord(f"progress must be between 0.0 and 1.0, got {progress}")
        now = self._now()
        with self._tx() as s:
            row = s.get(OperationRow, operation_id, with_for_update=True)
            if row is None:
                raise RecordNotFound(f"there is no operation {operation_id!r}")
            if row.status in ("succeeded", "failed", "cancelled"):
                raise OperationRefused(
                    f"operation {operation_id} already {row.status}; start a new one",
                    plugin_id=row.plugin_id,
                )
            if status is not None:
                row.status = status
                if status == "running" and row.started_at is None:
                    row.started_at = now
                if status in ("succeeded", "failed", "cancelled"):
                    row.finished_at = now
                    if status == "succeeded":
                        row.progress = 1.0
            if progress is not None:
                row.progress = progress
            if message is not None:
                row.message = message
            if error is not None:
                row.error = dict(error)
            row.updated_at = now
            s.flush()
            return _record(Operation, row)

    def get_operation(self, operation_id: str) -> Operation | None:
        """One operation, or ``None``."""
        with self._tx(write=False) as s:
            row = s.get(OperationRow, operation_id)
            return None if row is None else _record(Operation, row)

    def list_operations(
        self, *, plugin_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Operation]:
        """Operations, newest first."""
        stmt = select(OperationRow).order_by(OperationRow.created_at.desc()).limit(limit)
        if plugin_id is not None:
            stmt = stmt.where(OperationRow.plugin_id == plugin_id)
        if status is not None:
            stmt = stmt.where(OperationRow.status == status)
        with self._tx(write=False) as s:
            return [_record(Operation, r) for r in s.scalars(stmt)]

    # -- trusted keys ----------------------------------------------------------------------

    def add_trusted_key(self, key: TrustedKey) -> TrustedKey:
        """Add a publisher key to the trust store.

        :raises RecordExists: when the key id is known — revoked keys stay revoked; publish a
            new key instead.
        """
        with self._tx() as s:
            existing = s.get(TrustedKeyRow, key.key_id)
            if existing is not None:
                state = "revoked" if existing.revoked_at is not None else "trusted"
                raise RecordExists(
                    f"key {key.key_id!r} is already in the trust store ({state}); a revoked key "
                    "cannot be trusted again, use a new key"
                )
            values = {f.name: getattr(key, f.name) for f in fields(TrustedKey)}
            values["added_at"] = key.added_at or self._now()
            row = TrustedKeyRow(**values)
            s.add(row)
            self._flush(s, f"key {key.key_id!r} is already in the trust store", None)
            return _record(TrustedKey, row)

    def get_trusted_key(self, key_id: str) -> TrustedKey | None:
        """A key of the trust store (revoked ones included), or ``None``."""
        with self._tx(write=False) as s:
            row = s.get(TrustedKeyRow, key_id)
            return None if row is None else _record(TrustedKey, row)

    def list_trusted_keys(self, *, include_revoked: bool = False) -> list[TrustedKey]:
        """Keys of the trust store ordered by id."""
        stmt = select(TrustedKeyRow).order_by(TrustedKeyRow.key_id)
        if not include_revoked:
            stmt = stmt.where(TrustedKeyRow.revoked_at.is_(None))
        with self._tx(write=False) as s:
            return [_record(TrustedKey, r) for r in s.scalars(stmt)]

    def revoke_trusted_key(self, key_id: str) -> bool:
        """Revoke a key. Returns False when it is unknown or already revoked."""
        with self._tx() as s:
            row = s.get(TrustedKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self._now()
            s.flush()
            return True

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _not_found(plugin_id: str) -> PluginNotFound:
        return PluginNotFound(
            f"plugin {plugin_id!r} is not installed; `plughost list` shows installed plugins",
            plugin_id=plugin_id,
        )

    def _plugin_row(self, s: Session, plugin_id: str) -> PluginRow:
        row = s.get(PluginRow, plugin_id)
        if row is None:
            raise self._not_found(plugin_id)
        return row

    @staticmethod
    def _find_version(s: Session, plugin_id: str, version: str) -> PluginVersionRow | None:
        return s.scalars(
            select(PluginVersionRow).where(PluginVersionRow.plugin_id == plugin_id,
                                           PluginVersionRow.version == version)
        ).first()

    def _version_row(self, s: Session, plugin_id: str, version: str) -> PluginVersionRow:
        row = self._find_version(s, plugin_id, version)
        if row is None:
            raise RecordNotFound(
                f"version {version} of {plugin_id!r} is not kept; `plughost versions "
                f"{plugin_id}` lists the kept ones",
                plugin_id=plugin_id,
            )
        return row

    @staticmethod
    def _flush(s: Session, exists_message: str, plugin_id: str | None) -> None:
        # The pre-checks above see committed rows; a concurrent writer can still win the race
        # between check and insert, which the unique constraint reports here.
        try:
            s.flush()
        except sa_exc.IntegrityError as exc:
            raise RecordExists(exists_message, plugin_id=plugin_id) from exc
