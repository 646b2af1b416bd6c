"""``plughost perms`` and ``plughost audit``: grants, revocations, requests and the audit log.

``perms ID`` shows what a plugin declares, what it is granted and what it has requested;
``perms grant ID SCOPE`` / ``perms revoke ID SCOPE`` change grants (``!SCOPE`` is a deny rule);
``perms approve REQUEST`` / ``perms refuse REQUEST`` resolve a plugin's request. Everything is
written to the audit log, which ``plughost audit`` queries.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plughost.interfaces.cli._backend import (
    RemotePermissionManager,
    ServerOption,
    TokenOption,
    server_for,
)
from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    console,
    default_home,
    handle_errors,
)
from plughost.interfaces.cli._output import (
    Format,
    OutputOption,
    emit,
    emit_page,
    output_format,
)
from plughost.security.audit import SEVERITIES

if TYPE_CHECKING:
    from plughost.security.permissions import PermissionManager

__all__ = ["parse_since", "register"]

_TRUST_NOTE = (
    "Note: in-process Python plugins are trusted code and can bypass ctx (import os); these "
    "permissions are enforced at the boundary for out-of-process runtimes."
)
_ACTIONS = ("grant", "revoke", "approve", "refuse")


def _manager(home: Path | None, server: str | None = None,
             token: str | None = None) -> PermissionManager:
    from plughost.security.permissions import PermissionManager

    remote = server_for(home, server, token)
    if remote is not None:  # the same methods, over the HTTP API of that server
        return RemotePermissionManager(remote)  # type: ignore[return-value]
    # A home with a plugin database keeps installed plugins' grants there (one source of
    # truth with `plughost install` and the running service).
    from plughost.services.stores import audit_log_for_home, permission_store_for_home

    return PermissionManager((home or default_home()) / "security.db",
                             store=permission_store_for_home(home),
                             audit=audit_log_for_home(home))  # type: ignore[arg-type]


def parse_since(text: str, *, now: float | None = None) -> float:
    """``"30s"``, ``"10m"``, ``"2h"``, ``"7d"`` ago, or an ISO date/time (UTC if no zone)."""
    from plughost.errors import ConfigurationError

    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match:
        factor = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return now - float(match.group(1)) * factor
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"--since {text!r} is neither a duration (30s, 10m, 2h, 7d) nor an ISO date/time "
            "(2026-01-31 or 2026-01-31T12:00:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def perms(
    words: Annotated[
        list[str],
        typer.Argument(
            help="ID | grant ID SCOPE | revoke ID SCOPE | approve REQUEST | refuse REQUEST",
            show_default=False,
            metavar="ID | ACTION ...",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")] = "",
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a plugin's permissions, or grant / revoke a scope, or resolve a request."""
    from plughost.errors import ConfigurationError

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        manager = _manager(home, server, token)
        try:
            if words[0] in _ACTIONS:
                result = _act(manager, words, reason)
                plugin_id = result["plugin_id"]
                emit("permission", {
                    **result, "declared": [str(s) for s in manager.declared(plugin_id)],
                    "granted": [str(s) for s in manager.grants(plugin_id)]},
                    fmt, human=lambda: console.print(result["message"]))
                return
            if len(words) != 1:
                raise ConfigurationError(
                    f"unexpected {' '.join(words[1:])!r}; use `plughost perms ID` or "
                    "`plughost perms grant|revoke ID SCOPE`"
                )
            _show(manager, words[0], fmt)
        finally:
            manager.close()


def _act(manager: PermissionManager, words: list[str], reason: str) -> dict[str, Any]:
    from plughost.errors import ConfigurationError

    action = words[0]
    if action in ("grant", "revoke"):
        if len(words) != 3:
            raise ConfigurationError(f"usage: plughost perms {action} ID SCOPE")
        plugin_id, scope = words[1], words[2]
        if action == "grant":
            parsed = manager.grant(plugin_id, scope, actor="cli", reason=reason)
            verb = "denied (deny rule)" if parsed.deny else "granted"
        else:
            parsed = manager.revoke(plugin_id, scope, actor="cli", reason=reason)
            verb = "revoked"
        return {
            "plugin_id": plugin_id,
            "scope": str(parsed),
            "action": action,
            "message": f"{plugin_id}: {parsed} {verb}",
        }
    if len(words) != 2 or not words[1].isdigit():
        raise ConfigurationError(
            f"usage: plughost perms {action} REQUEST_ID (a number; see `plughost perms ID`)"
        )
    req = manager.resolve(int(words[1]), approve=action == "approve", actor="cli")
    return {
        "plugin_id": req.plugin,
        "scope": req.scope,
        "action": action,
        "request": req.id,
        "message": f"{req.plugin}: request {req.id} for {req.scope} {req.status}",
    }


def _show(manager: PermissionManager, plugin_id: str, fmt: Format) -> None:
    from rich.table import Table

    declared = [str(s) for s in manager.declared(plugin_id)]
    granted = [str(s) for s in manager.grants(plugin_id)]
    requests: list[dict[str, Any]] = [
        {
            "id": r.id,
            "scope": r.scope,
            "reason": r.reason,
            "status": r.status,
            "resolved_by": r.resolved_by,
        }
        for r in manager.requests(plugin_id)
    ]
    if fmt != "table":
        emit("permission", {"plugin_id": plugin_id, "declared": declared, "granted": granted,
                            "requests": requests, "note": _TRUST_NOTE}, fmt)
        return
    table = Table("scope", "declared", "granted")
    for scope in sorted(set(declared) | set(granted)):
        table.add_row(
            scope,
            "yes" if scope in declared else "",
            ("[red]deny rule[/]" if scope.startswith("!") else "[green]yes[/]")
            if scope in granted
            else "[yellow]no[/]",
        )
    console.print(f"[bold]{plugin_id}[/] permissions (deny by default)")
    console.print(table)
    if requests:
        req_table = Table("request", "scope", "status", "reason")
        for r in requests:
            req_table.add_row(str(r["id"]), r["scope"], r["status"], r["reason"])
        console.print(req_table)
    console.print(f"[dim]{_TRUST_NOTE}[/]")


def _security_entry(event: Any) -> dict[str, Any]:
    """A permission-log event (a home without a database) as an audit entry."""
    from plughost.services import resources

    return resources.audit_entry({
        "id": event.id, "at": event.time, "actor": event.actor,
        "action": f"permission.{event.action}", "plugin_id": event.plugin or None,
        "outcome": "denied" if event.decision in ("deny", "refused") else "ok",
        "kind": "security",
        "details": {"kind": event.kind, "scope": event.scope, "target": event.target,
                    "decision": event.decision, "severity": event.severity,
                    "reason": event.reason, **dict(event.details)}})


def audit(
    plugin: Annotated[str | None, typer.Option("--plugin", "-p", help="Only this plugin.")] = None,
    kind: Annotated[str | None, typer.Option(
        "--kind", "-k", help="operation (install, update, enable...) or security (grants, "
                             "revocations, denials, requests).")] = None,
    action: Annotated[str | None, typer.Option(
        "--action", "-a", help="Only this action, e.g. plugin.install or permission.deny.")
    ] = None,
    outcome: Annotated[str | None, typer.Option(
        "--outcome", help="Only this outcome: ok, denied, failed.")] = None,
    severity: Annotated[str | None, typer.Option(
        "--severity", help=f"Security decisions of this severity or worse: "
                           f"{', '.join(SEVERITIES)}.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Duration ago (10m, 2h, 7d) or ISO date/time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO date/time or duration ago.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000,
                                       help="Newest N entries.")] = 100,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", help="Continue after the page that returned this next_cursor.",
        show_default=False)] = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """The audit log, newest first: operations (install, update, rollback, enable...) and
    security decisions (grants, revocations, denials, requests), filterable."""
    from plughost.errors import ConfigurationError
    from plughost.services import resources

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        if kind is not None and kind not in ("operation", "security"):
            raise ConfigurationError("--kind must be operation or security")
        if severity is not None and severity not in SEVERITIES:
            raise ConfigurationError(f"--severity must be one of {', '.join(SEVERITIES)}")
        if severity is not None:
            kind = "security"
        start = parse_since(since) if since else None
        end = parse_since(until) if until else None
        from plughost.interfaces.cli.manage import managed_settings

        where = server_for(home, server, token) or managed_settings(home)
        if where is not None:
            from datetime import UTC, datetime

            from plughost.interfaces.cli._backend import run_backend

            def when(ts: float | None) -> datetime | None:
                return None if ts is None else datetime.fromtimestamp(ts, UTC)

            items = run_backend(where, lambda svc: svc.audit(
                plugin_id=plugin, action=action, kind=kind, outcome=outcome, since=when(start),
                until=when(end), limit=limit, before_id=resources.before_id(cursor)))
        else:  # a home without a database: only the permission log exists
            manager = _manager(home, None, None)
            try:
                rows = manager.audit.query(plugin=plugin, since=start, until=end)
            finally:
                manager.close()
            entries = [_security_entry(r) for r in reversed(rows)]
            before = resources.before_id(cursor)
            items = [e for e in entries
                     if (before is None or (e["id"] or 0) < before)
                     and (kind in (None, "security")) and action in (None, e["action"])
                     and outcome in (None, e["outcome"])][:limit]
    if severity is not None:
        worst = SEVERITIES.index(severity)
        items = [e for e in items if e["details"].get("severity") in SEVERITIES[worst:]]
    page = resources.id_page(items, limit)
    emit_page("audit_entry", page["items"], fmt, next_cursor=page["next_cursor"],
              title="audit log (newest first)", empty="no audit entries match")


def register(app: typer.Typer) -> None:
    """Add ``perms`` and ``audit``."""
    app.command("perms")(perms)
    app.command("audit")(audit)
