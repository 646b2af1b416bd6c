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
from typing import Annotated, Any

import typer
from rich.table import Table

from plughost.errors import ConfigurationError
from plughost.interfaces.cli._backend import (
    Remote,
    RemotePermissionManager,
    ServerOption,
    TokenOption,
)
from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    console,
    default_home,
    handle_errors,
    print_json,
)
from plughost.security.audit import SEVERITIES
from plughost.security.permissions import PermissionManager

__all__ = ["parse_since", "register"]

_TRUST_NOTE = (
    "Note: in-process Python plugins are trusted code and can bypass ctx (import os); these "
    "permissions are enforced at the boundary for out-of-process runtimes."
)
_ACTIONS = ("grant", "revoke", "approve", "refuse")


def _manager(home: Path | None, server: str | None = None,
             token: str | None = None) -> PermissionManager:
    if server:  # the same methods, over the HTTP API of that server
        return RemotePermissionManager(Remote(server.rstrip("/"), token or None))  # type: ignore[return-value]
    # A home with a plugin database keeps installed plugins' grants there (one source of
    # truth with `plughost install` and the running service).
    from plughost.services.stores import audit_log_for_home, permission_store_for_home

    return PermissionManager((home or default_home()) / "security.db",
                             store=permission_store_for_home(home),
                             audit=audit_log_for_home(home))  # type: ignore[arg-type]


def parse_since(text: str, *, now: float | None = None) -> float:
    """``"30s"``, ``"10m"``, ``"2h"``, ``"7d"`` ago, or an ISO date/time (UTC if no zone)."""
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
    as_json: JsonOption = False,
) -> None:
    """Show a plugin's permissions, or grant / revoke a scope, or resolve a request."""
    with handle_errors(as_json=as_json):
        manager = _manager(home, server, token)
        try:
            if words[0] in _ACTIONS:
                result = _act(manager, words, reason)
                if as_json:
                    print_json(result)
                else:
                    console.print(result["message"])
                return
            if len(words) != 1:
                raise ConfigurationError(
                    f"unexpected {' '.join(words[1:])!r}; use `plughost perms ID` or "
                    "`plughost perms grant|revoke ID SCOPE`"
                )
            _show(manager, words[0], as_json)
        finally:
            manager.close()


def _act(manager: PermissionManager, words: list[str], reason: str) -> dict[str, Any]:
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


def _show(manager: PermissionManager, plugin_id: str, as_json: bool) -> None:
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
    if as_json:
        print_json(
            {
                "plugin_id": plugin_id,
                "declared": declared,
                "granted": granted,
                "requests": requests,
                "note": _TRUST_NOTE,
            }
        )
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


def audit(
    plugin: Annotated[str | None, typer.Option("--plugin", "-p", help="Only this plugin.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Duration ago (10m, 2h, 7d) or ISO date/time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO date/time or duration ago.")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="fs:read, net, storage, ...")] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", help=f"Minimum severity: {', '.join(SEVERITIES)}.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Newest N rows.")] = 200,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Query the security audit log (denials, grants, revokes, requests)."""
    with handle_errors(as_json=as_json):
        if severity is not None and severity not in SEVERITIES:
            raise ConfigurationError(f"--severity must be one of {', '.join(SEVERITIES)}")
        start = parse_since(since) if since else None
        end = parse_since(until) if until else None
        manager = _manager(home, server, token)
        try:
            rows = manager.audit.query(
                plugin=plugin, kind=kind, min_severity=severity, since=start, until=end, limit=limit
            )
        finally:
            manager.close()
    if as_json:
        print_json({"events": [r.to_dict() for r in rows]})
        return
    table = Table(
        "time (UTC)", "plugin", "action", "kind", "scope / target", "decision", "severity", "reason"
    )
    colour = {"deny": "red", "refused": "red", "granted": "green", "approved": "green"}
    for r in rows:
        c = colour.get(r.decision, "")
        table.add_row(
            datetime.fromtimestamp(r.time, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.plugin,
            r.action,
            r.kind,
            r.target or r.scope,
            f"[{c}]{r.decision}[/]" if c else r.decision,
            r.severity,
            r.reason,
        )
    console.print(table if rows else "no audit events match")


def register(app: typer.Typer) -> None:
    """Add ``perms`` and ``audit``."""
    app.command("perms")(perms)
    app.command("audit")(audit)
