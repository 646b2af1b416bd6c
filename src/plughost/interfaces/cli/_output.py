"""How every command prints: ``--output table|json|plain`` over one resource model.

* ``json``: the resource (or page of resources) exactly as the HTTP API returns it — the shapes
  of :mod:`plughost.services.resources`, validated against its schemas in the tests.
* ``plain``: one line per item, fields separated by a tab, in the stable column order of the
  kind (:data:`COLUMNS`, documented in ``docs/cli.md``), nothing truncated or wrapped, no
  header, no colour — for ``cut``, ``awk``, ``sort``. Empty values are empty fields.
* ``table``: a Rich table for people; columns that hold ids never wrap (long text wraps at
  word boundaries, never inside a word).

The default is ``$PLUGHOST_OUTPUT`` when set, else ``table`` when stdout is a terminal and
``plain`` when it is piped. Colour is off
when stdout is not a terminal or ``NO_COLOR`` is set (Rich honours both). ``--json`` is short
for ``--output json``.

Other command groups (market, reload, ...) use the same three calls: :data:`OutputOption` and
:data:`JsonOption` as parameters, :func:`output_format` to decide, :func:`emit` to print.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import typer

__all__ = [
    "COLUMNS",
    "Column",
    "Format",
    "JsonOption",
    "OutputOption",
    "emit",
    "emit_page",
    "output_format",
    "plain_cell",
]

Format = Literal["table", "json", "plain"]
FORMATS: Final = ("table", "json", "plain")

OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", metavar="FORMAT", show_default=False,
        help="table (default on a terminal), json (the documented resource shapes) or plain "
             "(tab-separated, stable columns; default when piped).",
    ),
]
OutputLongOption = Annotated[
    str | None,
    typer.Option("--output", metavar="FORMAT", show_default=False,
                 help="table (default on a terminal), json or plain (default when piped)."),
]
"""``--output`` without ``-o``, for commands where ``-o`` already means the output file."""
JsonOption = Annotated[bool, typer.Option("--json", help="Same as --output json.")]


def output_format(output: str | None, as_json: bool = False) -> Format:
    """The format asked for (``--json`` wins, then ``--output``, then ``$PLUGHOST_OUTPUT``),
    else table on a terminal and plain when piped."""
    if as_json:
        return "json"
    if output is None:
        output = os.environ.get("PLUGHOST_OUTPUT") or None
    if output is not None:
        value = output.strip().lower()
        if value not in FORMATS:
            raise typer.BadParameter(f"{output!r} is not a format; use table, json or plain",
                                     param_hint="--output")
        return value  # type: ignore[return-value]
    return "table" if sys.stdout.isatty() else "plain"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a kind: its header, how to read the value, and whether it may wrap."""

    name: str
    key: str | Callable[[Mapping[str, Any]], Any]
    wrap: bool = False
    """Free text (descriptions, messages): wraps at word boundaries in a table."""
    in_table: bool = True
    """Shown in tables too (``False``: only in ``plain``, to keep tables narrow)."""
    drop: int = 0
    """In a table too wide for the terminal, columns with the highest ``drop`` go first
    (0: never dropped)."""
    short: int = 0
    """In tables, show only the first ``short`` characters (long hashes)."""

    def value(self, item: Mapping[str, Any]) -> Any:
        return self.key(item) if callable(self.key) else item.get(self.key)


def _error_code(item: Mapping[str, Any]) -> Any:
    error = item.get("error")
    return error.get("code") if isinstance(error, Mapping) else None


def shown_state(item: Mapping[str, Any]) -> str:
    """A plugin's state as a person reads it: what runs, or — when no server runs on the home
    (``live`` false) — ``enabled (not running)``, ``disabled``, or the last start's failure."""
    state = str(item.get("state", ""))
    if item.get("live", True) or state == "disabled":
        return state
    if state in ("failed", "needs-config"):
        return f"{state} (not running)"
    return "enabled (not running)" if item.get("enabled") else "disabled"


def _signed(item: Mapping[str, Any]) -> str:
    signed = item.get("signed")
    return "" if signed is None else "signed" if signed else "unsigned"


COLUMNS: Final[dict[str, tuple[Column, ...]]] = {
    "plugin": (Column("id", "id"), Column("version", "version"), Column("state", shown_state),
               Column("enabled", "enabled", in_table=False), Column("type", "type", drop=1),
               Column("runtime", "runtime", drop=2),
               Column("signature", _signed, drop=3),
               Column("problem", _error_code, in_table=False),
               Column("description", "description", True)),
    "version": (Column("plugin_id", "plugin_id", in_table=False), Column("version", "version"),
                Column("current", "current"), Column("installed_at", "installed_at", drop=2),
                Column("signed_by", "signed_by", drop=1), Column("sha256", "sha256", short=12,
                                                                   drop=3)),
    "audit_entry": (Column("id", "id", drop=1), Column("at", "at"), Column("kind", "kind", drop=2),
                    Column("action", "action"), Column("plugin_id", "plugin_id"),
                    Column("outcome", "outcome"), Column("actor", "actor", drop=3),
                    Column("details", "details", True, drop=4)),
    "token": (Column("id", "id", drop=4), Column("name", "name"), Column("role", "role"),
              Column("created_at", "created_at", drop=3), Column("expires_at", "expires_at"),
              Column("last_used_at", "last_used_at", drop=2),
              Column("revoked_at", "revoked_at", drop=1)),
    "config": (Column("plugin_id", "plugin_id"), Column("version", "version"),
               Column("config", "config", True)),
    "config_change": (Column("version", "version"), Column("time", "time"),
                      Column("action", "action"), Column("actor", "actor"),
                      Column("settings", "settings", True)),
    "permission": (Column("plugin_id", "plugin_id"), Column("granted", "granted", True),
                   Column("declared", "declared", True)),
    "permission_request": (Column("id", "id"), Column("plugin_id", "plugin_id"),
                           Column("scope", "scope"), Column("status", "status"),
                           Column("reason", "reason", True)),
    "log_line": (Column("time", "time"), Column("plugin_id", "plugin_id"),
                 Column("level", "level"), Column("correlation_id", "correlation_id"),
                 Column("message", "message", True)),
    "alert": (Column("rule", "rule"), Column("plugin_id", "plugin_id"),
              Column("state", "state"), Column("severity", "severity"),
              Column("since", lambda a: a.get("since") or a.get("at")),
              Column("message", "message", True)),
    "removal": (Column("plugin_id", "plugin_id"), Column("versions", "versions")),
    "validation": (Column("valid", "valid"),
                   Column("problems", lambda v: [f"{p['path']}: {p['message']}"
                                                 for p in v.get("problems", [])], True)),
    "alert_rule": (Column("name", "name"), Column("expr", "expr"), Column("op", "op"),
                   Column("threshold", "threshold"), Column("for", "for"),
                   Column("plugin", "plugin"), Column("severity", "severity")),
    "health": (Column("plugin_id", "plugin_id"), Column("status", "status"),
               Column("checked_at", "checked_at"),
               Column("consecutive_failures", "consecutive_failures"),
               Column("message", "message", True)),
    "package": (Column("plugin_id", "plugin_id"), Column("version", "version"),
                Column("sha256", lambda p: p.get("sha256") or p.get("package_sha256"), short=12),
                Column("signed", "signed"), Column("key_id", "key_id"),
                Column("path", "path", True)),
    "key": (Column("key_id", "key_id"), Column("name", "name"),
            Column("added_at", "added_at"), Column("revoked_at", "revoked_at"),
            Column("path", lambda k: k.get("public_key_file") or "", True)),
    "schema_revision": (Column("database", "database"), Column("current", "current"),
                        Column("head", "head"), Column("up_to_date", "up_to_date")),
    "operation": (Column("id", "id"), Column("kind", "kind"), Column("plugin_id", "plugin_id"),
                  Column("status", "status"), Column("progress", "progress"),
                  Column("message", "message", True)),
    "node": (Column("name", lambda n: n["name"] + (" (this)" if n.get("this_node") else "")),
             Column("status", "status"), Column("version", "version"),
             Column("heartbeat_at", "heartbeat_at"), Column("applied_seq", "applied_seq"),
             Column("transport", "transport", drop=1),
             Column("plugins", lambda n: [f"{p['id']}={p['state']}" for p in n["plugins"]],
                    True)),
    "market_hit": (Column("id", "id"), Column("version", "version"), Column("type", "type"),
                   Column("runtime", "runtime", drop=2),
                   Column("installed", "installed_version"), Column("market", "source"),
                   Column("yanked", "yanked", in_table=False),
                   Column("description", "description", True),
                   Column("incompatible", "incompatible", True)),
    "outdated": (Column("id", "id"), Column("installed", "installed_version"),
                 Column("latest", "latest_version"), Column("market", "source"),
                 Column("advisories", lambda o: [a.get("id") for a in o["advisories"]]),
                 Column("force_update", "force_update", in_table=False)),
    "publication": (Column("plugin_id", "plugin_id"), Column("version", "version"),
                    Column("targets_version", "targets_version"),
                    Column("signed_by", "signed_by"),
                    Column("sha256", "sha256", short=12), Column("target", "target", True)),
    "reload": (Column("plugin_id", "plugin_id"), Column("from_version", "from_version"),
               Column("to_version", "to_version"), Column("state", "state"),
               Column("ok", "ok"), Column("seconds", "seconds"),
               Column("problem", _error_code)),
    "new_plugin": (Column("plugin_id", "plugin_id"), Column("runtime", "runtime"),
                   Column("path", "path"), Column("files", "files", True)),
    "marketplace": (Column("name", "name"), Column("priority", "priority"),
                    Column("url", "url", True)),
    "market_refresh": (Column("name", "name"), Column("offline", "offline"),
                       Column("changed", "changed"), Column("targets_version", "targets_version"),
                       Column("expires", "expires"), Column("problem", _error_code)),
    "market_plugin": (Column("id", "id"), Column("name", "name"), Column("market", "source"),
                      Column("versions", lambda p: [v["version"] for v in p["versions"]]),
                      Column("advisories", lambda p: [a["id"] for a in p["advisories"]]),
                      Column("description", "description", True)),
    "market_change": (Column("action", "action"),
                      Column("subject", lambda c: c.get("id") or c.get("role") or c.get("name")
                             or c.get("path")),
                      Column("version", lambda c: c.get("version") or c.get("advisory")),
                      Column("metadata_version", lambda c: c.get("targets_version")
                             or c.get("timestamp_version") or c.get("root_version"))),
    "update_policy": (Column("id", "id"), Column("policy", "policy"),
                      Column("cooldown_seconds", "cooldown_seconds"),
                      Column("window", "window")),
    "update_decision": (Column("id", "id"), Column("installed", "installed_version"),
                        Column("available", "available_version"), Column("policy", "policy"),
                        Column("action", "action"), Column("reason", "reason", True)),
    "update_outcome": (Column("id", "id"), Column("ok", "ok"),
                       Column("from_version", "from_version"),
                       Column("to_version", "to_version"), Column("problem", _error_code)),
    "installed_package": (Column("plugin_id", "plugin_id"), Column("version", "version"),
                          Column("state", "state"), Column("sha256", "sha256", short=12)),
}
"""The columns of each kind, in their stable order (the ``plain`` field order)."""


def plain_cell(value: Any) -> str:
    """One field of a plain line: no tab or newline inside; lists joined by commas; objects as
    compact JSON; booleans ``true``/``false``; nothing for ``None``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = ",".join(plain_cell(v) for v in value)
    elif isinstance(value, Mapping):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    else:
        text = str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (no markup, no wrapping)."""
    _write(json.dumps(data, indent=2, default=str) + "\n")


def _table_cell(value: Any, short: int = 0) -> str:
    from rich.markup import escape

    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = plain_cell(value)
    if short and len(text) > short:
        text = text[:short] + "…"
    return escape(text)


def _table(kind: str, items: Sequence[Mapping[str, Any]], title: str | None) -> None:
    from rich.table import Table

    from plughost.interfaces.cli._common import console

    columns = [c for c in COLUMNS[kind] if c.in_table]
    cells = {c.name: [_table_cell(c.value(i), c.short) for i in items] for c in columns}
    widths = {c.name: 10 if c.wrap else max([len(c.name), *(len(x) for x in cells[c.name])])
              for c in columns}

    def needed() -> int:
        return sum(widths[c.name] + 3 for c in columns) + 1

    # Too wide for the terminal: leave out the least useful columns rather than squeezing the
    # ones that hold ids (plain and json always have every column).
    while needed() > console.width and any(c.drop for c in columns):
        columns.remove(max(columns, key=lambda c: c.drop))
    table = Table(title=title, title_justify="left")
    for column in columns:
        if column.wrap:
            # Wrap between words; a word longer than the column is cut with "…", not split.
            table.add_column(column.name, overflow="ellipsis", ratio=1, min_width=10)
        else:
            table.add_column(column.name, no_wrap=True, min_width=widths[column.name])
    for row in zip(*(cells[c.name] for c in columns), strict=True):
        table.add_row(*row)
    console.print(table)


def emit(kind: str, data: Mapping[str, Any], fmt: Format, *,
         human: Callable[[], None] | None = None) -> None:
    """Print one resource of ``kind``: its JSON, one plain line, or (table) ``human()`` when
    given, else a one-row table."""
    from plughost.services import resources

    item = resources.resource(kind, data)
    if fmt == "json":
        print_json(item)
    elif fmt == "plain":
        _write("\t".join(plain_cell(c.value(item)) for c in COLUMNS[kind]) + "\n")
    elif human is not None:
        human()
    else:
        _table(kind, [item], None)


def emit_page(kind: str, items: Sequence[Mapping[str, Any]], fmt: Format, *,
              next_cursor: str | None = None, total: int | None = None,
              title: str | None = None, empty: str = "nothing to show") -> None:
    """Print a page of ``kind``: ``{"items", "next_cursor"[, "total"]}`` in JSON, one plain
    line per item, or a table (with the title, or ``empty`` when there is nothing)."""
    from plughost.services import resources

    converted = [resources.resource(kind, i) for i in items]
    if fmt == "json":
        print_json(resources.page(converted, next_cursor, total=total))
        return
    shown = f"{len(converted)} of {total}" if total is not None else f"{len(converted)}"
    if fmt == "plain":
        _write("".join("\t".join(plain_cell(c.value(i)) for c in COLUMNS[kind]) + "\n"
                       for i in converted))
        if next_cursor:  # on stderr: the lines on stdout stay one item each
            sys.stderr.write(f"{shown} shown; more: add --cursor {next_cursor}\n")
        return
    from plughost.interfaces.cli._common import console

    if not converted:
        console.print(empty)
        return
    _table(kind, converted, title)
    if next_cursor:
        console.print(f"[dim]{shown} shown; more: add --cursor {next_cursor}[/]")
