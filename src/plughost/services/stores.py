"""One source of truth: the permission and config managers keep installed plugins' state in the
plughost database (the repository's ``grants``, ``permission_requests``, ``plugin_config`` and
``config_history`` tables), next to the plugin rows the installer writes.

:class:`RepositoryPermissionStore` satisfies :class:`~plughost.security.grant_store.PermissionStore`
and :class:`RepositoryConfigStore` satisfies :class:`~plughost.storage.config_store.ConfigStore`.
Plugins that are not installed — development folders under ``plugins_dir`` — have no row to hang
state on; theirs goes to a fallback store (in memory by default: they are re-granted by the
policy at each start, as a development folder should be).

Declared scopes of an installed plugin are those of its stored manifest (written by install and
update in the same transaction as the version). Grants at install and update are written by the
installer, in its transaction, under the grant policy; the permission manager then never applies
the policy to installed plugins itself (see :func:`installed_aware_policy`), so a failed update
cannot leave grants behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from plughost.errors import ConcurrentModification, ConfigConflict
from plughost.security.audit import SEVERITIES, AuditEvent
from plughost.security.grant_store import PermissionStore, RequestRow, SQLitePermissionStore
from plughost.security.scopes import parse_scopes
from plughost.settings import managed_settings
from plughost.storage.config_store import ConfigRecord, ConfigStore, SQLiteConfigStore
from plughost.storage.repository import Repository

__all__ = [
    "RepositoryAuditLog",
    "RepositoryConfigStore",
    "RepositoryPermissionStore",
    "audit_log_for_home",
    "config_store_for_home",
    "declared_scopes",
    "installed_aware_policy",
    "managed_settings",
    "permission_store_for_home",
]

#: Request statuses: the permission manager says ``refused`` where the repository says ``denied``.
_TO_REPO = {"refused": "denied"}
_FROM_REPO = {"denied": "refused"}
_SEP = "|"


def declared_scopes(plugin_id: str, permissions: Iterable[str]) -> list[str]:
    """A manifest's ``permissions`` as canonical scope strings, as the host checks them (a bare
    ``storage`` means the plugin's own namespace). :raises ScopeError: for a malformed one."""
    raw = [f"{s.strip()}:{plugin_id}" if s.strip() in ("storage", "!storage") else s
           for s in permissions]
    return [str(s) for s in parse_scopes(raw, plugin_id=plugin_id)]


def installed_aware_policy(
    policy: Callable[[str, Sequence[Any]], Sequence[Any]], repository: Repository
) -> Callable[[str, Sequence[Any]], list[Any]]:
    """Wrap a grant policy so the permission manager applies it only to plugins that are not
    installed: installed ones got their grants from the installer, in its transaction."""

    def apply(plugin_id: str, declared: Sequence[Any]) -> list[Any]:
        if repository.get_plugin(plugin_id) is not None:
            return []
        return list(policy(plugin_id, declared))

    apply.__name__ = getattr(policy, "__name__", "policy")
    return apply


class RepositoryPermissionStore:
    """:class:`PermissionStore` over the repository (installed plugins) and a fallback."""

    def __init__(self, repository: Repository, *,
                 fallback: PermissionStore | None = None) -> None:
        self.repo = repository
        self.fallback: PermissionStore = fallback or SQLitePermissionStore(":memory:")

    def _installed(self, plugin_id: str) -> Any:
        return self.repo.get_plugin(plugin_id)

    def declared(self, plugin_id: str) -> list[str]:
        row = self._installed(plugin_id)
        if row is None:
            return self.fallback.declared(plugin_id)
        return sorted(declared_scopes(plugin_id, row.manifest.get("permissions") or ()))

    def set_declared(self, plugin_id: str, scopes: list[str]) -> None:
        if self._installed(plugin_id) is None:
            self.fallback.set_declared(plugin_id, scopes)
        # Installed: the stored manifest is the declaration; nothing to write.

    def grants(self, plugin_id: str) -> list[str]:
        if self._installed(plugin_id) is None:
            return self.fallback.grants(plugin_id)
        return [g.scope for g in self.repo.list_grants(plugin_id)]

    def add_grant(self, plugin_id: str, scope: str, actor: str) -> None:
        if self._installed(plugin_id) is None:
            self.fallback.add_grant(plugin_id, scope, actor)
        else:
            self.repo.grant(plugin_id, scope, granted_by=actor)

    def remove_grant(self, plugin_id: str, scope: str, actor: str) -> bool:
        if self._installed(plugin_id) is None:
            return self.fallback.remove_grant(plugin_id, scope, actor)
        return bool(self.repo.revoke_grant(plugin_id, scope, revoked_by=actor))

    # Requests of installed plugins have the repository's (positive) ids; those of the fallback
    # are shown negated so the two never collide.

    def add_request(self, plugin_id: str, scope: str, reason: str) -> int:
        if self._installed(plugin_id) is None:
            return -self.fallback.add_request(plugin_id, scope, reason)
        return int(self.repo.request_permission(plugin_id, scope, reason=reason).id)

    @staticmethod
    def _row(request: Any) -> RequestRow:
        return (int(request.id), request.plugin_id, request.scope, request.reason,
                _FROM_REPO.get(request.status, request.status),
                request.requested_at.timestamp(), request.decided_by or "")

    @staticmethod
    def _negated(row: RequestRow) -> RequestRow:
        return (-row[0], *row[1:])

    def get_request(self, request_id: int) -> RequestRow | None:
        if request_id < 0:
            row = self.fallback.get_request(-request_id)
            return None if row is None else self._negated(row)
        for request in self.repo.list_permission_requests(status=None):
            if request.id == request_id:
                return self._row(request)
        return None

    def list_requests(self, plugin_id: str | None, status: str | None) -> list[RequestRow]:
        repo_status = None if status is None else _TO_REPO.get(status, status)
        rows = [self._row(r) for r in
                self.repo.list_permission_requests(plugin_id=plugin_id, status=repo_status)]
        rows += [self._negated(r) for r in self.fallback.list_requests(plugin_id, status)]
        return sorted(rows, key=lambda r: r[5])

    def set_request_status(self, request_id: int, status: str, actor: str) -> None:
        if request_id < 0:
            self.fallback.set_request_status(-request_id, status, actor)
        else:
            self.repo.decide_permission_request(request_id, approve=status == "approved",
                                                decided_by=actor)

    def plugins(self) -> list[str]:
        installed = set(self.repo.plugin_ids())
        return sorted(installed | set(self.fallback.plugins()))

    def knows(self, plugin_id: str) -> bool:
        return self._installed(plugin_id) is not None or self.fallback.knows(plugin_id)

    def forget(self, plugin_id: str) -> None:
        # An uninstalled plugin's grants and requests went with its row (ON DELETE CASCADE).
        self.fallback.forget(plugin_id)

    def close(self) -> None:
        self.fallback.close()


def _encode_by(actor: str, action: str) -> str:
    return f"{actor}{_SEP}{action}"


def _decode_by(text: str) -> tuple[str, str]:
    actor, sep, action = text.rpartition(_SEP)
    return (actor, action) if sep else (text, "set")


class RepositoryConfigStore:
    """:class:`ConfigStore` over the repository's ``plugin_config`` / ``config_history``
    (installed plugins; schema and defaults come from the plugin row) and a fallback."""

    def __init__(self, repository: Repository, *, fallback: ConfigStore | None = None) -> None:
        self.repo = repository
        self.fallback: ConfigStore = fallback or SQLiteConfigStore(":memory:")

    def _installed(self, plugin_id: str) -> Any:
        return self.repo.get_plugin(plugin_id)

    @staticmethod
    def _record(plugin_id: str, version: int, settings: Mapping[str, Any], by: str,
                at: Any) -> ConfigRecord:
        actor, action = _decode_by(by)
        return ConfigRecord(plugin_id=plugin_id, version=version, settings=dict(settings),
                            action=action, actor=actor, time=at.timestamp())

    def latest(self, plugin_id: str) -> ConfigRecord | None:
        if self._installed(plugin_id) is None:
            return self.fallback.latest(plugin_id)
        current = self.repo.get_config(plugin_id)
        if current is None:
            return None
        return self._record(plugin_id, current.revision, current.config, current.updated_by,
                            current.updated_at)

    def get(self, plugin_id: str, version: int) -> ConfigRecord | None:
        for record in self.history(plugin_id):
            if record.version == version:
                return record
        return None

    def history(self, plugin_id: str) -> list[ConfigRecord]:
        if self._installed(plugin_id) is None:
            return self.fallback.history(plugin_id)
        changes = self.repo.config_history(plugin_id, limit=1_000_000)
        return [self._record(plugin_id, c.revision, c.config, c.changed_by, c.changed_at)
                for c in reversed(changes)]

    def append(self, record: ConfigRecord) -> None:
        if self._installed(record.plugin_id) is None:
            self.fallback.append(record)
            return
        try:
            self.repo.set_config(record.plugin_id, record.settings,
                                 changed_by=_encode_by(record.actor, record.action),
                                 expected_revision=record.version - 1)
        except ConcurrentModification as exc:
            raise ConfigConflict(
                f"config of {record.plugin_id} changed concurrently: tried to write version "
                f"{record.version} but the latest is {exc.details.get('current_revision')}. "
                "Reload and apply your change again.",
                plugin_id=record.plugin_id,
                details={"wanted": record.version,
                         "latest": exc.details.get("current_revision")}) from None

    def save_schema(self, plugin_id: str, schema: Mapping[str, Any] | None,
                    defaults: Mapping[str, Any]) -> None:
        if self._installed(plugin_id) is None:
            self.fallback.save_schema(plugin_id, schema, defaults)
        # Installed: the plugin row holds the schema and defaults of the current version.

    def load_schema(self, plugin_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
        row = self._installed(plugin_id)
        if row is None:
            return self.fallback.load_schema(plugin_id)
        schema = dict(row.config_schema) if row.config_schema is not None else None
        return schema, dict(row.default_config or {})

    def plugins(self) -> list[str]:
        installed = set(self.repo.plugin_ids())
        return sorted(installed | set(self.fallback.plugins()))

    def close(self) -> None:
        self.fallback.close()


_AUDIT_PREFIX = "permission."


def _outcome(decision: str) -> str:
    return "denied" if decision in ("deny", "refused") else "ok"


def security_entry(event: AuditEvent) -> dict[str, Any]:
    """A permission decision as the one audit log shows it (an ``audit_entry`` resource of
    kind ``security``): the row :class:`RepositoryAuditLog` stores for it, the same whichever
    log recorded it."""
    from plughost.services.resources import audit_entry

    return audit_entry({
        "id": event.id, "at": event.time, "actor": event.actor,
        "action": _AUDIT_PREFIX + event.action, "plugin_id": event.plugin or None,
        "outcome": _outcome(event.decision), "kind": "security",
        "details": {"kind": event.kind, "scope": event.scope, "target": event.target,
                    "decision": event.decision, "severity": event.severity,
                    "reason": event.reason, "details": dict(event.details)}})


class RepositoryAuditLog:
    """The permission manager's audit log (:class:`~plughost.security.audit.AuditLog`'s
    ``record`` / ``query``) in the repository's ``audit_events`` table, beside the install,
    update and uninstall events: actions are stored as ``permission.<action>`` with the kind,
    scope, target, decision, severity and reason in ``details``."""

    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    def record(
        self,
        plugin: str,
        action: str,
        kind: str,
        *,
        scope: str = "",
        target: str = "",
        decision: str = "",
        severity: str = "info",
        reason: str = "",
        actor: str = "host",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event and return it (with its id)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
        extra = dict(details or {})
        row = self.repo.append_audit(
            _AUDIT_PREFIX + action, actor=actor, plugin_id=plugin or None,
            outcome=_outcome(decision),
            details={"kind": kind, "scope": scope, "target": target, "decision": decision,
                     "severity": severity, "reason": reason, "details": extra})
        return AuditEvent(time=row.at.timestamp(), plugin=plugin, action=action, kind=kind,
                          scope=scope, target=target, decision=decision, severity=severity,
                          reason=reason, actor=actor, details=extra, id=row.id)

    def query(
        self,
        *,
        plugin: str | None = None,
        kind: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        min_severity: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[AuditEvent]:
        """Events matching every given filter, oldest first (the newest ``limit`` when given;
        with ``before_id``, older than that event). Read newest first, a page at a time, from
        the permission events alone (the query skips the operations between them); the
        filters on what ``details`` holds apply to each page."""
        from datetime import UTC, datetime

        if min_severity is not None and min_severity not in SEVERITIES:
            raise ValueError(f"severity {min_severity!r} is not one of {SEVERITIES}")
        batch = 1_000_000 if limit is None else max(limit, 200)
        out: list[AuditEvent] = []
        while limit is None or len(out) < limit:
            rows = self.repo.query_audit(
                plugin_id=plugin, action=None if action is None else _AUDIT_PREFIX + action,
                since=None if since is None else datetime.fromtimestamp(since, UTC),
                before_id=before_id, limit=batch, action_prefixes=(_AUDIT_PREFIX,))
            for row in rows:  # newest first
                event = self._event(row)
                if kind is not None and event.kind != kind:
                    continue
                if decision is not None and event.decision != decision:
                    continue
                if min_severity is not None and (SEVERITIES.index(event.severity)
                                                 < SEVERITIES.index(min_severity)):
                    continue
                if until is not None and event.time > until:
                    continue
                out.append(event)
                if limit is not None and len(out) >= limit:
                    break
            if len(rows) < batch:
                break
            before_id = rows[-1].id
        return list(reversed(out))

    @staticmethod
    def _event(row: Any) -> AuditEvent:
        d = row.details
        return AuditEvent(
            time=row.at.timestamp(), plugin=row.plugin_id or "",
            action=row.action[len(_AUDIT_PREFIX):], kind=d.get("kind", ""),
            scope=d.get("scope", ""), target=d.get("target", ""),
            decision=d.get("decision", ""), severity=d.get("severity", "info"),
            reason=d.get("reason", ""), actor=row.actor, details=d.get("details", {}),
            id=row.id)

    def close(self) -> None:
        """Nothing to release (the repository belongs to its owner)."""


# ---------------------------------------------------------------------- for the CLI

def _repository_for_home(home: Path | None) -> Repository | None:
    settings = managed_settings(home)
    if settings is None:
        return None
    from plughost.storage.backends import open_storage

    return open_storage(settings).repository


def permission_store_for_home(home: Path | None) -> RepositoryPermissionStore | None:
    """What ``plughost perms`` should use in a home with a database (installed plugins' grants
    live there), or ``None`` for a plain home (the SQLite file default)."""
    repo = _repository_for_home(home)
    return None if repo is None else RepositoryPermissionStore(repo)


def config_store_for_home(home: Path | None) -> RepositoryConfigStore | None:
    """What ``plughost config`` should use in a home with a database, or ``None``: the
    database for installed plugins, ``<home>/config.db`` for plugins in development folders
    (as the server reads them: :func:`home_config_store`)."""
    settings = managed_settings(home)
    if settings is None:
        return None
    from plughost.storage.backends import open_storage

    return home_config_store(open_storage(settings).repository, settings.home)


def home_config_store(repository: Repository, home: Path) -> RepositoryConfigStore:
    """The config store of a home with a database: installed plugins' config in the
    database, development folders' in ``<home>/config.db`` (kept across commands, so
    `plughost config set ID -d DIR` is what the server and `plughost call`/`dev` run with)."""
    return RepositoryConfigStore(repository,
                                 fallback=SQLiteConfigStore(Path(home) / "config.db"))


def audit_log_for_home(home: Path | None) -> RepositoryAuditLog | None:
    """What ``plughost perms`` / ``plughost audit`` should log to in a home with a database."""
    repo = _repository_for_home(home)
    return None if repo is None else RepositoryAuditLog(repo)
