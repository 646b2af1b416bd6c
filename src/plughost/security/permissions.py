"""Permissions: deny by default; grants, deny rules, runtime grant/revoke, requests, audit.

The model:

* A plugin **declares** scopes in its manifest (``permissions = ["fs:read:/data", ...]``). They
  are parsed at install/discovery with :func:`~plughost.security.scopes.parse_scopes`; a
  malformed one refuses the plugin with :class:`~plughost.errors.ScopeError`.
* A **grant policy** (a named callable, :func:`grant_declared_at_install` or
  :func:`require_approval`) decides which declared scopes are granted at install.
* The operator **grants** and **revokes** scopes at runtime; a grant starting with ``!`` is a
  deny rule, and deny rules beat allow rules.
* A plugin can **request** a scope with a reason; the request is recorded and resolved by a
  request policy or later by the operator.
* Every access through the host is **checked** with a compiled :class:`PermissionSet`; every
  denial, grant, revoke and request is written to the :class:`~plughost.security.audit.AuditLog`.

Grants, declarations and requests persist in SQLite next to the audit log, so the CLI and a
running host see the same state.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from plughost.errors import OperationRefused, PermissionDenied
from plughost.security.audit import AuditLog
from plughost.security.grant_store import PermissionStore, SQLitePermissionStore
from plughost.security.scopes import KINDS, Scope, parse_scope, parse_scopes

__all__ = [
    "Checker",
    "GrantPolicy",
    "PermissionManager",
    "PermissionRequest",
    "PermissionSet",
    "RequestPolicy",
    "approve_declared_requests",
    "grant_declared_at_install",
    "leave_requests_to_operator",
    "require_approval",
]

logger = logging.getLogger(__name__)

#: The hook shape the communication layer and the host services call: raises PermissionDenied.
Checker = Callable[[str, str], None]

_CACHE_LIMIT: Final = 4096
_PATH_KINDS: Final = frozenset(k for k, style in KINDS.items() if style == "path")


class PermissionSet:
    """The compiled, immutable rules of one plugin, with a per-(kind, target) decision cache.

    A new set is built on every grant or revoke, so a cached decision can never outlive the rules
    it was computed from (that is the invalidation).

    :param allow: allow rules (grants, implicit grants).
    :param deny: deny rules.
    :param private: storage namespaces no rule can open: the private namespaces of the *other*
        plugins (each plugin's own namespace is its id), so no grant — ``storage:*``,
        ``storage:kv-*`` or even the exact name — reaches another plugin's storage.
    """

    __slots__ = ("_allow", "_cache", "_deny", "_private")

    def __init__(
        self,
        allow: Iterable[Scope] = (),
        deny: Iterable[Scope] = (),
        *,
        private: Iterable[str] = (),
    ) -> None:
        self._allow: dict[str, tuple[Scope, ...]] = _by_kind(allow)
        self._deny: dict[str, tuple[Scope, ...]] = _by_kind(deny)
        self._private = frozenset(private)
        self._cache: dict[tuple[str, str], bool] = {}

    def check(self, kind: str, target: str = "") -> bool:
        """``True`` if ``kind`` on ``target`` is allowed. File paths are resolved first."""
        if kind in _PATH_KINDS:
            real = _realpath(target)
            if real is None:
                return False
            target = real
        key = (kind, target)
        decision = self._cache.get(key)
        if decision is None:
            decision = self.explain(kind, target)[0]
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def explain(self, kind: str, target: str = "") -> tuple[bool, Scope | None, str]:
        """(allowed, deciding rule or None, reason) — the uncached slow path, for messages."""
        if kind not in KINDS:
            return False, None, f"unknown permission kind {kind!r}"
        if kind in _PATH_KINDS:
            real = _realpath(target)
            if real is None:
                return False, None, "the path changed while it was being resolved"
            target = real
        if kind == "storage" and target in self._private:
            return False, None, (
                f"{target!r} is the private storage namespace of the plugin {target}; only that "
                "plugin can use it (share data through a namespace that is no plugin's id)"
            )
        for rule in self._deny.get(kind, ()):
            if rule.matches(target):
                return False, rule, f"denied by rule {rule}"
        for rule in self._allow.get(kind, ()):
            if rule.matches(target):
                return True, rule, f"allowed by {rule}"
        what = f"{kind} {target}".strip()
        return False, None, f"no grant covers {what}"

    def grant_root(self, kind: str, path: str) -> str | None:
        """For a path kind: the deepest granted directory that allows ``path`` (already
        resolved), or ``None`` when the access is not allowed. File access opens this directory
        and walks beneath it (:mod:`plughost.security.beneath`), so what is opened can only lie
        inside the grant that allowed it."""
        if kind not in _PATH_KINDS or not os.path.isabs(path):
            return None
        # ``path`` is already resolved: matched as given, not resolved again (that would be a
        # second, racy look at the filesystem).
        if any(rule.matches(path) for rule in self._deny.get(kind, ())):
            return None
        roots = [rule.pattern for rule in self._allow.get(kind, ()) if rule.matches(path)]
        return max(roots, key=len) if roots else None

    def allows_explicitly(self, kind: str, predicate: Callable[[Scope], bool]) -> bool:
        """Whether a non-denied allow rule of ``kind`` satisfies ``predicate`` (used for SSRF)."""
        return any(predicate(rule) for rule in self._allow.get(kind, ()))

    @property
    def rules(self) -> list[Scope]:
        """Every rule, deny rules first."""
        return [s for rules in self._deny.values() for s in rules] + [
            s for rules in self._allow.values() for s in rules
        ]


def _realpath(path: str) -> str | None:
    """``os.path.realpath``, or ``None`` when the path changes while it is being resolved (a
    component swapped between ``lstat`` and ``readlink``): such a target is denied."""
    try:
        return os.path.realpath(path)
    except OSError:
        return None


def _by_kind(scopes: Iterable[Scope]) -> dict[str, tuple[Scope, ...]]:
    out: dict[str, list[Scope]] = {}
    for scope in scopes:
        out.setdefault(scope.kind, []).append(scope)
    return {kind: tuple(rules) for kind, rules in out.items()}


# --------------------------------------------------------------------------- policies

#: Given (plugin id, declared scopes), return the scopes to grant at install.
GrantPolicy = Callable[[str, Sequence[Scope]], Sequence[Scope]]


def grant_declared_at_install(plugin_id: str, declared: Sequence[Scope]) -> Sequence[Scope]:
    """Grant everything the manifest declares (the operator trusted it by installing it)."""
    return list(declared)


def require_approval(plugin_id: str, declared: Sequence[Scope]) -> Sequence[Scope]:
    """Grant nothing at install; the operator approves each scope (``plughost perms grant``)."""
    return []


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A plugin's request for a scope at runtime.

    :ivar status: ``pending``, ``approved`` or ``refused``.
    """

    id: int
    plugin: str
    scope: str
    reason: str
    status: str
    created: float
    resolved_by: str = ""


#: Given a request and the plugin's declared scopes: True approve, False refuse, None leave pending.
RequestPolicy = Callable[[PermissionRequest, Sequence[Scope]], "bool | None"]


def leave_requests_to_operator(request: PermissionRequest, declared: Sequence[Scope]) -> None:
    """Keep every request pending until the operator resolves it."""
    return None


def approve_declared_requests(request: PermissionRequest, declared: Sequence[Scope]) -> bool | None:
    """Approve a request for a scope the manifest declared; leave anything else to the operator."""
    return True if parse_scope(request.scope) in declared else None


# --------------------------------------------------------------------------- manager


class PermissionManager:
    """Holds every plugin's declared scopes, grants and requests; checks and audits access.

    :param path: SQLite file for grants, declarations, requests and the audit log (usually
        ``<home>/security.db``), or ``":memory:"``; ignored for what ``store``/``audit`` provide.
    :param policy: the :data:`GrantPolicy` applied by :meth:`declare`.
    :param request_policy: the :data:`RequestPolicy` applied by :meth:`request`.
    :param store: a :class:`PermissionStore` (e.g. an adapter over the host's database);
        default an :class:`SQLitePermissionStore` at ``path``.
    :param audit: an :class:`AuditLog` to use; by default one in the same file.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        policy: GrantPolicy = grant_declared_at_install,
        request_policy: RequestPolicy = leave_requests_to_operator,
        store: PermissionStore | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.store: PermissionStore = store if store is not None else SQLitePermissionStore(path)
        self._owns_store = store is None
        self._lock = threading.RLock()
        self.audit = audit if audit is not None else AuditLog(path)
        self._owns_audit = audit is None
        self.policy = policy
        self.request_policy = request_policy
        self._sets: dict[str, PermissionSet] = {}
        self._implicit: dict[str, list[Scope]] = {}

    # ---- declarations and grants

    def declare(
        self, plugin_id: str, scopes: Iterable[str], *, apply_policy: bool = True
    ) -> list[Scope]:
        """Record the scopes a manifest declares and apply the grant policy to new ones.

        Raises :class:`ScopeError` listing every malformed scope; nothing is recorded then.
        Scopes already granted or declared before are left as they are (re-discovery is a no-op).
        """
        parsed = parse_scopes(scopes, plugin_id=plugin_id)
        with self._lock:
            self._learn(plugin_id)
            before = set(self.declared(plugin_id))
            self.store.set_declared(plugin_id, [str(s) for s in parsed])
            if apply_policy:
                new = [s for s in parsed if s not in before]
                name = getattr(self.policy, "__name__", "policy")
                for scope in self.policy(plugin_id, new):
                    self.grant(
                        plugin_id,
                        str(scope),
                        actor=f"policy:{name}",
                        reason="declared in the manifest",
                    )
        return parsed

    def declared(self, plugin_id: str) -> list[Scope]:
        """The scopes the plugin's manifest declares."""
        return [parse_scope(s) for s in self.store.declared(plugin_id)]

    def grants(self, plugin_id: str) -> list[Scope]:
        """The scopes granted to the plugin (deny rules included, with ``deny=True``)."""
        return [parse_scope(s) for s in self.store.grants(plugin_id)]

    def plugins(self) -> list[str]:
        """Every plugin with declarations, grants or requests."""
        return self.store.plugins()

    def grant(
        self, plugin_id: str, scope: str, *, actor: str = "operator", reason: str = ""
    ) -> Scope:
        """Grant a scope (``!scope`` adds a deny rule). Audited; takes effect at once."""
        parsed = parse_scope(scope)
        with self._lock:
            self._learn(plugin_id)
            self.store.add_grant(plugin_id, str(parsed), actor)
            self._sets.pop(plugin_id, None)
        self.audit.record(
            plugin_id,
            "grant",
            parsed.kind,
            scope=str(parsed),
            decision="granted",
            reason=reason or "granted",
            actor=actor,
            severity="warning" if not parsed.deny and parsed.is_wildcard else "info",
        )
        return parsed

    def revoke(
        self, plugin_id: str, scope: str, *, actor: str = "operator", reason: str = ""
    ) -> Scope:
        """Revoke a granted scope. Audited; takes effect at once.

        Raises :class:`OperationRefused` (nothing changes) when the scope was not granted.
        """
        parsed = parse_scope(scope)
        with self._lock:
            if not self.store.remove_grant(plugin_id, str(parsed), actor):
                granted = ", ".join(str(s) for s in self.grants(plugin_id)) or "none"
                raise OperationRefused(
                    f"{parsed} is not granted to {plugin_id}; granted scopes: {granted}. "
                    f"To forbid it even if granted later, grant the deny rule !{parsed}",
                    plugin_id=plugin_id,
                    details={"scope": str(parsed)},
                )
            self._sets.pop(plugin_id, None)
        self.audit.record(
            plugin_id,
            "revoke",
            parsed.kind,
            scope=str(parsed),
            decision="revoked",
            reason=reason or "revoked",
            actor=actor,
        )
        return parsed

    def set_implicit(self, plugin_id: str, scopes: Iterable[str]) -> None:
        """Allow rules the host adds by itself (the private data dir, the own storage namespace).

        They are not persisted and not listed as grants; an operator deny rule still beats them.
        """
        parsed = [parse_scope(s) for s in scopes]
        with self._lock:
            self._learn(plugin_id)
            self._implicit[plugin_id] = parsed
            self._sets.pop(plugin_id, None)

    def refresh(self, plugin_id: str | None = None) -> None:
        """Drop the compiled rules of one plugin (or all), so the next check reads the store
        again: another writer (the installer's transaction, another process sharing the
        database) changed its grants."""
        with self._lock:
            if plugin_id is None:
                self._sets.clear()
            else:
                self._sets.pop(plugin_id, None)

    def forget(self, plugin_id: str) -> None:
        """Drop everything about an uninstalled plugin except its audit history."""
        with self._lock:
            self.store.forget(plugin_id)
            self._implicit.pop(plugin_id, None)
            self._sets.pop(plugin_id, None)

    def _known_plugins(self) -> set[str]:
        """Every plugin this manager knows (declared, granted or running): whose storage
        namespaces are private."""
        return set(self.store.plugins()) | set(self._implicit)

    def _learn(self, plugin_id: str) -> None:
        """A plugin not known before: every other plugin's compiled rules must now keep out of
        its storage namespace, so they are rebuilt."""
        if plugin_id not in self._implicit and not self.store.knows(plugin_id):
            self._sets.clear()

    # ---- checks

    def permission_set(self, plugin_id: str) -> PermissionSet:
        """The compiled rules for a plugin (rebuilt after any grant or revoke)."""
        pset = self._sets.get(plugin_id)
        if pset is None:
            with self._lock:
                rules = self.grants(plugin_id)
                allow = [s for s in rules if not s.deny] + self._implicit.get(plugin_id, [])
                deny = [s for s in rules if s.deny]
                others = self._known_plugins() - {plugin_id}
                pset = self._sets[plugin_id] = PermissionSet(allow, deny, private=others)
        return pset

    def allowed(self, plugin_id: str, kind: str, target: str = "") -> bool:
        """Whether the access would be allowed; no audit row (use :meth:`check` for access)."""
        return self.permission_set(plugin_id).check(kind, target)

    def check(self, plugin_id: str, kind: str, target: str = "") -> None:
        """Allow silently, or audit the denial and raise :class:`PermissionDenied`."""
        pset = self._sets.get(plugin_id) or self.permission_set(plugin_id)
        if not pset.check(kind, target):
            self.deny(plugin_id, kind, target, pset.explain(kind, target)[2])

    def check_path(self, plugin_id: str, kind: str, path: str) -> str:
        """Check a resolved path like :meth:`check`; return the granted directory to open it
        beneath (see :meth:`PermissionSet.grant_root`)."""
        pset = self._sets.get(plugin_id) or self.permission_set(plugin_id)
        root = pset.grant_root(kind, path)
        if root is None:
            denied = next(
                (r for r in pset.rules if r.deny and r.kind == kind and r.matches(path)), None
            )
            reason = f"denied by rule {denied}" if denied else f"no grant covers {kind} {path}"
            self.deny(plugin_id, kind, path, reason)
        assert root is not None
        return root

    def deny(
        self, plugin_id: str, kind: str, target: str, reason: str, *, severity: str = "warning"
    ) -> None:
        """Audit a denial and raise :class:`PermissionDenied` (also used by the services)."""
        # A target may come from a plugin and hold anything (a lone surrogate cannot be stored
        # as text): keep it readable and storable.
        target = target.encode("utf-8", "backslashreplace").decode("utf-8")[:4096]
        self.audit.record(
            plugin_id,
            "check",
            kind,
            target=target,
            decision="deny",
            severity=severity,
            reason=reason,
        )
        raise PermissionDenied(
            f"{plugin_id} may not {kind} {target}: {reason}. "
            f"An operator can allow it with: plughost perms grant {plugin_id} "
            f"{_suggest(kind, target)}",
            plugin_id=plugin_id,
            details={"kind": kind, "target": target, "reason": reason},
        )

    def checker(self, plugin_id: str) -> Checker:
        """A ``check(kind, target)`` callable for one plugin: the communication layer's hook.

        It raises :class:`PermissionDenied` on denial and returns ``None`` otherwise. It always
        consults the current rules, so grants and revokes apply to checkers handed out earlier.
        """
        sets = self._sets
        build = self.permission_set
        deny = self.deny

        def check(kind: str, target: str = "") -> None:
            pset = sets.get(plugin_id) or build(plugin_id)
            if not pset.check(kind, target):
                deny(plugin_id, kind, target, pset.explain(kind, target)[2])

        return check

    def host_checker(self) -> Callable[[str | None, str, str], None]:
        """The communication layer's single hook: ``check(plugin_id | None, action, target)``.

        ``None`` is the host itself and is always allowed; a plugin is checked and audited like
        :meth:`check`. Install it with ``Communications.set_permission_checker``.
        """
        sets = self._sets
        build = self.permission_set
        deny = self.deny

        def check(plugin_id: str | None, kind: str, target: str) -> None:
            if plugin_id is None:
                return
            pset = sets.get(plugin_id) or build(plugin_id)
            if not pset.check(kind, target):
                deny(plugin_id, kind, target, pset.explain(kind, target)[2])

        return check

    # ---- requests

    def request(self, plugin_id: str, scope: str, reason: str) -> PermissionRequest:
        """Record a plugin's request for a scope; the request policy may resolve it at once."""
        parsed = parse_scope(scope)
        if not reason.strip():
            raise OperationRefused(
                "a permission request needs a reason the operator can read", plugin_id=plugin_id
            )
        req_id = self.store.add_request(plugin_id, str(parsed), reason)
        self.audit.record(
            plugin_id,
            "request",
            parsed.kind,
            scope=str(parsed),
            decision="pending",
            reason=reason,
            actor="plugin",
        )
        req = self._request(req_id)
        verdict = self.request_policy(req, self.declared(plugin_id))
        if verdict is not None:
            name = getattr(self.request_policy, "__name__", "policy")
            req = self.resolve(req_id, approve=verdict, actor=f"policy:{name}")
        return req

    def requests(
        self, plugin_id: str | None = None, *, status: str | None = None
    ) -> list[PermissionRequest]:
        """Recorded requests, oldest first."""
        return [PermissionRequest(*row) for row in self.store.list_requests(plugin_id, status)]

    def resolve(
        self, request_id: int, *, approve: bool, actor: str = "operator"
    ) -> PermissionRequest:
        """Approve (grant the scope) or refuse a pending request. Audited."""
        req = self._request(request_id)
        if req.status != "pending":
            raise OperationRefused(
                f"request {request_id} is already {req.status}", plugin_id=req.plugin
            )
        status = "approved" if approve else "refused"
        self.store.set_request_status(request_id, status, actor)
        self.audit.record(
            req.plugin,
            "resolve",
            parse_scope(req.scope).kind,
            scope=req.scope,
            decision=status,
            reason=req.reason,
            actor=actor,
        )
        if approve:
            self.grant(
                req.plugin, req.scope, actor=actor, reason=f"request {request_id}: {req.reason}"
            )
        return self._request(request_id)

    def _request(self, request_id: int) -> PermissionRequest:
        row = self.store.get_request(request_id)
        if row is None:
            raise OperationRefused(
                f"there is no permission request {request_id}; list them with `plughost perms ID`"
            )
        return PermissionRequest(*row)

    def close(self) -> None:
        """Close the databases this manager opened; idempotent."""
        if self._owns_store:
            self.store.close()
        if self._owns_audit:
            self.audit.close()

    def __enter__(self) -> PermissionManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _suggest(kind: str, target: str) -> str:
    if kind == "process:spawn":
        return "process:spawn"
    if kind in _PATH_KINDS:
        return f"{kind}:{os.path.dirname(target) or target}"
    return f"{kind}:{target}" if target else kind
