"""``plughost logs``, ``plughost alerts``, ``plughost health``: what the server observes.

::

    plughost logs notify-slack -f                 # that plugin's lines, then new ones live
    plughost logs --level error --since 1h        # every plugin's errors of the last hour
    plughost logs --grep timeout --server URL     # through a running server's API
    plughost alerts --server URL                  # alerts pending and firing now
    plughost alerts --history --since 1d          # when alerts fired and resolved
    plughost health --server URL                  # each plugin's last health check
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plughost.interfaces.cli._backend import (
    Remote,
    ServerOption,
    TokenOption,
    home_settings,
    target,
)
from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    OutputOption,
    console,
    handle_errors,
)
from plughost.interfaces.cli._output import Format, emit_page, output_format

if TYPE_CHECKING:
    from plughost.errors import PlughostError

__all__ = ["register"]

_LEVEL_STYLE = {"debug": "dim", "info": "cyan", "warning": "yellow", "error": "red",
                "critical": "bold red"}


def _print_line(item: dict[str, Any], fmt: Format) -> None:
    from rich.markup import escape

    from plughost.services import resources

    if fmt == "json":  # one log_line resource a line (JSON Lines), so `-f` can feed jq
        sys.stdout.write(json.dumps(resources.resource("log_line", item)) + "\n")
        sys.stdout.flush()
        return
    if fmt == "plain":
        emit_page("log_line", [item], fmt)
        return
    when = datetime.fromisoformat(item["time"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    level = item["level"]
    style = _LEVEL_STYLE.get(level, "")
    cid = f" [dim]{escape(item['correlation_id'])}[/]" if item.get("correlation_id") else ""
    console.print(f"[dim]{when}[/] [{style}]{level:<8}[/] [bold]{escape(item['plugin_id'])}[/]"
                  f"  {escape(item['message'])}{cid}", markup=True, highlight=False)


def _local(home: Path | None, params: dict[str, Any], follow: bool, limit: int,
           emit: Callable[[dict[str, Any]], None]) -> None:
    from plughost.observability.logs import LogFilter, parse_since

    flt = LogFilter(plugin_id=params.get("plugin_id"), min_level=params.get("level"),
                    since=parse_since(params.get("since")), grep=params.get("grep"))
    from plughost.storage.backends import open_storage

    with open_storage(home_settings(home)) as storage:
        repo = storage.repository
        items = repo.query_logs(flt, limit=limit)
        for entry in reversed(items):
            emit(entry.to_dict())
        last = items[0].id if items else 0
        while follow:  # the server writes what it captures; read what is new
            time.sleep(0.5)
            newer = repo.query_logs(flt, limit=1000, after_id=last)
            for entry in reversed(newer):
                emit(entry.to_dict())
            if newer:
                last = newer[0].id


def _remote(remote: Remote, params: dict[str, Any], follow: bool, limit: int,
            emit: Callable[[dict[str, Any]], None]) -> None:
    import httpx

    from plughost.interfaces.cli._backend import _SyncApi

    api = _SyncApi(remote)
    try:
        query = {k: v for k, v in params.items() if v is not None}
        page = api.call("GET", "/logs", params={**query, "limit": limit})
        for item in reversed(page["items"]):
            emit(item)
        if not follow:
            return
        stream_params = {k: v for k, v in query.items() if k != "since"}
        headers = {"Accept": "text/event-stream"}
        try:
            with api._client.stream("GET", "/logs/stream", params=stream_params,
                                    headers=headers, timeout=None) as response:
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "log":
                        emit(json.loads(line[6:]))
                    elif line.startswith("data: ") and event == "dropped":
                        count = json.loads(line[6:])["count"]
                        console.print(f"[yellow]... {count} lines dropped (this reader fell "
                                      "behind)[/]", markup=True)
        except httpx.TransportError:
            console.print("[yellow]the server closed the log stream[/]", markup=True)
    finally:
        api.close()


def logs(
    plugin_id: Annotated[str | None, typer.Argument(
        metavar="[ID]", help="Only this plugin's lines.", show_default=False)] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing new lines as they come.")] = False,
    level: Annotated[str | None, typer.Option(
        "--level", "-l", help="This level or more severe: debug, info, warning, error, "
                              "critical.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only lines since a duration ago (30s, 15m, 2h, 7d) or an ISO "
                        "time.")] = None,
    grep: Annotated[str | None, typer.Option(
        "--grep", "-g", help="Only lines containing this text (case-insensitive).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=5000,
                                       help="How many recent lines first.")] = 100,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show plugins' logs (their own logger, a process plugin's stderr, a WebAssembly plugin's
    host.log), oldest first; each line names its plugin, level and the request it served.
    With --output json: a page of log_line objects, or with -f one object per line (JSON
    Lines)."""
    from plughost.observability.logs import LogFilter

    fmt = output_format(output, as_json)
    params = {"plugin_id": plugin_id, "level": level, "since": since, "grep": grep}
    collected: list[dict[str, Any]] | None = [] if fmt == "json" and not follow else None

    def emit(item: dict[str, Any]) -> None:
        if collected is not None:
            collected.append(item)
        else:
            _print_line(item, fmt)

    with handle_errors(as_json=fmt == "json"):
        LogFilter(min_level=level)  # a bad level is refused before anything is opened
        where = target(home, server, token)
        try:
            if isinstance(where, Remote):
                _remote(where, params, follow, limit, emit)
            else:
                _local(home, params, follow, limit, emit)
        except KeyboardInterrupt:
            return
    if collected is not None:
        emit_page("log_line", collected, fmt)


def _server_only(what: str) -> PlughostError:
    from plughost.errors import PlughostError

    return PlughostError(
        f"{what} is known to the running server only: pass --server URL (or set "
        "PLUGHOST_SERVER) to ask `plughost serve`", code="server.required")


def alerts(
    history: Annotated[bool, typer.Option("--history", help=(
        "When alerts fired and resolved (from the home's database without --server)."))
    ] = False,
    rules: Annotated[bool, typer.Option("--rules", help="The rules in force.")] = False,
    rule: Annotated[str | None, typer.Option("--rule", help="History of this rule only.")
                    ] = None,
    plugin_id: Annotated[str | None, typer.Option("--plugin", "-p",
                                                  help="History of this plugin only.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="History since (1h, 7d, ISO).")
                     ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Alerts pending and firing now (default), their history, or the rules in force."""
    from rich.markup import escape
    from rich.table import Table

    from plughost.observability.logs import parse_since

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        where = target(home, server, token)
        remote = where if isinstance(where, Remote) else None
        local = where if not isinstance(where, Remote) else None
        if history:
            params = {"rule": rule, "plugin_id": plugin_id, "since": since, "limit": limit}
            if remote is not None:
                data = _get(remote, "/alerts/history", params)["items"]
            else:
                from plughost.storage.backends import open_storage

                with open_storage(local) as storage:
                    data = storage.repository.query_alert_events(
                        rule=rule, plugin_id=plugin_id, since=parse_since(since), limit=limit)
        elif remote is None:
            raise _server_only("Which alerts fire now" if not rules else "The rules in force")
        else:
            data = _get(remote, "/alerts/rules" if rules else "/alerts", {})
            if rules:
                data = data["items"]  # a page, like every list
    if fmt != "table":
        kind = "alert_rule" if rules and not history else "alert"
        items = data if isinstance(data, list) else data["alerts"]
        emit_page(kind, items, fmt)
        return
    if history:
        table = Table("time (UTC)", "rule", "plugin", "state", "severity", "value", "message")
        for h in data:
            colour = "red" if h["state"] == "firing" else "green"
            table.add_row(h["at"][:19], h["rule"], h["plugin_id"] or "", f"[{colour}]"
                          f"{h['state']}[/]", h["severity"], _num(h["value"]),
                          escape(h["message"]))
    elif rules:
        table = Table("rule", "figure", "condition", "for", "plugin", "severity", "source")
        for r in data:
            table.add_row(r["name"], r["expr"], f"{r['op']} {_num(r['threshold'])}",
                          f"{r['for']:g}s", r["plugin"] or "every", r["severity"], r["source"])
    else:
        table = Table("rule", "plugin", "state", "severity", "value", "condition", "since")
        for a in data["alerts"]:
            colour = "red" if a["state"] == "firing" else "yellow"
            table.add_row(a["rule"], a["plugin_id"] or "", f"[{colour}]{a['state']}[/]",
                          a["severity"], _num(a["value"]),
                          f"{a['expr']} {a['op']} {_num(a['threshold'])}", a["since"])
    console.print(table)


def health(
    plugin_id: Annotated[str | None, typer.Argument(metavar="[ID]", show_default=False,
                                                    help="Only this plugin.")] = None,
    check: Annotated[bool, typer.Option("--check", help=(
        "Run the plugin's health check now (operator)."))] = False,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Each plugin's last health check (healthy, degraded, unknown) and what the policy did;
    exits 1 when a plugin shown is degraded."""
    from rich.markup import escape
    from rich.table import Table

    from plughost.errors import PlughostError

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        where = target(home, server, token)
        if not isinstance(where, Remote):
            raise _server_only("Plugin health")
        if check and plugin_id is None:
            raise PlughostError("--check needs a plugin ID", code="request.invalid")
        if check:
            from plughost.interfaces.cli._backend import _SyncApi

            api = _SyncApi(where)
            try:
                items = [api.call("POST", f"/health/{plugin_id}/check")]
            finally:
                api.close()
        else:
            items = _get(where, "/health", {"plugin_id": plugin_id})["plugins"]
    degraded = any(i["status"] == "degraded" for i in items)
    if fmt != "table":
        emit_page("health", items, fmt)
    else:
        table = Table("plugin", "status", "checked (UTC)", "failures in a row", "message",
                      "last action")
        colours = {"healthy": "green", "degraded": "red", "unknown": "dim"}
        for i in items:
            table.add_row(i["plugin_id"], f"[{colours[i['status']]}]{i['status']}[/]",
                          (i["checked_at"] or "")[:19], str(i["consecutive_failures"]),
                          escape(i["message"]), escape(i["last_action"] or ""))
        console.print(table)
    if degraded:
        raise typer.Exit(1)


def _num(value: Any) -> str:
    return "" if value is None else f"{value:g}"


def _get(remote: Remote, path: str, params: dict[str, Any]) -> Any:
    from plughost.interfaces.cli._backend import _SyncApi

    api = _SyncApi(remote)
    try:
        return api.call("GET", path, params={k: v for k, v in params.items() if v is not None})
    finally:
        api.close()


def register(app: typer.Typer) -> None:
    """Add ``plughost logs``, ``plughost alerts`` and ``plughost health``."""
    app.command("logs")(logs)
    app.command("alerts")(alerts)
    app.command("health")(health)
