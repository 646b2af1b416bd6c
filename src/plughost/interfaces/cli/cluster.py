"""``plughost nodes``: the servers sharing this home's database, and what each one runs."""

from __future__ import annotations

from typing import Any

import typer

from plughost.interfaces.cli._backend import Remote, ServerOption, TokenOption, target
from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    OutputOption,
    console,
    handle_errors,
)
from plughost.interfaces.cli._output import emit_page, output_format

__all__ = ["register"]

_COLOURS = {"up": "green", "stale": "yellow", "down": "red"}


def _local(settings: Any) -> list[dict[str, Any]]:
    from plughost.services.cluster import list_nodes
    from plughost.storage.backends import open_storage

    with open_storage(settings) as storage:
        return [n.to_dict() for n in list_nodes(storage.repository)]


def nodes(
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every `plughost serve` on this database: version, last heartbeat, the change it applied,
    and each plugin's state on it. `down` means its process is gone."""
    from rich.markup import escape
    from rich.table import Table

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        where = target(home, server, token)
        if isinstance(where, Remote):
            from plughost.interfaces.cli._backend import _SyncApi

            api = _SyncApi(where)
            try:
                items = api.call("GET", "/nodes", params={"limit": 1000})["items"]
            finally:
                api.close()
        else:
            items = _local(where)
    if fmt != "table":
        emit_page("node", items, fmt, total=len(items))
        return
    table = Table("node", "status", "version", "heartbeat (UTC)", "applied", "hears changes by",
                  "plugins")
    for n in items:
        colour = _COLOURS.get(n["status"], "dim")
        plugins = ", ".join(f"{p['id']}={p['state']}" for p in n["plugins"]) or "-"
        name = n["name"] + (" (this)" if n.get("this_node") else "")
        table.add_row(escape(name), f"[{colour}]{n['status']}[/]", n["version"],
                      n["heartbeat_at"][:19], str(n["applied_seq"]), n["transport"],
                      escape(plugins))
    console.print(table)
    if not items:
        console.print("no server has reported on this database yet (`plughost serve` does)")


def register(app: typer.Typer) -> None:
    """Add ``plughost nodes``."""
    app.command("nodes")(nodes)
