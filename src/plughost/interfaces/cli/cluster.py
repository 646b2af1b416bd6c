"""``plughost nodes``: the servers sharing this home's database, and what each one runs."""

from __future__ import annotations

from typing import Annotated, Any

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


def _local(settings: Any, plugin_id: str | None) -> list[dict[str, Any]]:
    from plughost.services.cluster import list_nodes
    from plughost.storage.backends import open_storage

    with open_storage(settings) as storage:
        if plugin_id is not None:
            storage.repository.require_plugin(plugin_id)  # PluginNotFound: not installed
        return [n.to_dict() for n in list_nodes(storage.repository, plugin_id=plugin_id)]


def nodes(
    plugin_id: Annotated[str | None, typer.Option(
        "--plugin", "-p", help="This plugin's state on each node, not every plugin's.")
                         ] = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every `plughost serve` on this database: version, last heartbeat, the change it applied,
    and each plugin's state on it (or one plugin's: --plugin). `down` means its process is
    gone."""
    from rich.markup import escape
    from rich.table import Table

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        where = target(home, server, token)
        if isinstance(where, Remote):
            from plughost.interfaces.cli._backend import _SyncApi

            api = _SyncApi(where)
            try:
                params: dict[str, Any] = {"limit": 1000}
                if plugin_id is not None:
                    params["plugin_id"] = plugin_id
                items = api.call("GET", "/nodes", params=params)["items"]
            finally:
                api.close()
        else:
            items = _local(where, plugin_id)
    if fmt != "table":
        emit_page("node", items, fmt, total=len(items))
        return
    table = Table("node", "status", "version", "heartbeat (UTC)", "applied", "hears changes by",
                  "plugins")
    for n in items:
        colour = _COLOURS.get(n["status"], "dim")
        plugins = _plugins_cell(n["plugins"])
        name = n["name"] + (" (this)" if n.get("this_node") else "")
        table.add_row(escape(name), f"[{colour}]{n['status']}[/]", n["version"],
                      n["heartbeat_at"][:19], str(n["applied_seq"]), n["transport"],
                      escape(plugins))
    console.print(table)
    if not items:
        console.print("no server has reported on this database yet (`plughost serve` does)")


#: Beyond this many plugins a node's cell counts them by state (a table of 10,000 ids is
#: read by nobody); ``--plugin ID`` or ``--output json`` show each.
LIST_AT_MOST = 10


def _plugins_cell(plugins: list[dict[str, str]]) -> str:
    """A node's plugins for the table: each ``id=state`` when there are a few, else how many
    are in each state, most first."""
    if not plugins:
        return "-"
    if len(plugins) <= LIST_AT_MOST:
        return ", ".join(f"{p['id']}={p['state']}" for p in plugins)
    counts: dict[str, int] = {}
    for p in plugins:
        counts[p["state"]] = counts.get(p["state"], 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{count:,} {state}" for state, count in ranked)


def register(app: typer.Typer) -> None:
    """Add ``plughost nodes``."""
    app.command("nodes")(nodes)
