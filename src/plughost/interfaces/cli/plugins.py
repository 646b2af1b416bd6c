"""``plughost list | info | status | check``: what plugins there are and whether they are sound."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plughost.core.lifecycle import State
from plughost.interfaces.cli import manage
from plughost.interfaces.cli._backend import ServerOption, TokenOption, server_for
from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    OutputOption,
    console,
    default_home,
    err_console,
    escape,
    handle_errors,
    print_json,
    run_async,
)
from plughost.interfaces.cli._output import emit, emit_page, output_format

if TYPE_CHECKING:
    from plughost.errors import Problem
    from plughost.host import PluginHost

__all__ = ["register"]

PluginsDirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--plugins-dir",
        "-d",
        help="A folder of plugin folders; repeat for several (default: <home>/plugins).",
        show_default=False,
    ),
]

_STATE_STYLE = {
    "active": "green",
    "failed": "bold red",
    "disabled": "dim",
    "resolved": "cyan",
    "loaded": "cyan",
    "deactivated": "yellow",
    "installed": "blue",
}

_TRUST_NOTE = (
    "In-process Python plugins are trusted code: they run in the host's interpreter and can "
    "bypass the context (import os, open files). Permissions and limits are enforced only for "
    "the process and wasm runtimes."
)


def _managed(home: Path | None, server: str | None = None, token: str | None = None) -> Any:
    # A server (--server, or the one running on the home) or a home with a plugin database
    # lists what is installed there (plughost install ...); --plugins-dir always means plain
    # folders.
    remote = server_for(home, server, token)
    if remote is not None:
        return remote
    with handle_errors():
        return manage.managed_settings(home)


def _host(plugins_dir: list[Path] | None, home: Path | None) -> PluginHost:
    from plughost.host import PluginHost

    home = home or default_home()
    dirs = plugins_dir or [home / "plugins"]
    return PluginHost(dirs, home=home)


def _discover(plugins_dir: list[Path] | None, home: Path | None) -> PluginHost:
    host = _host(plugins_dir, home)
    host.discover()
    host.resolve()
    return host


def _state_text(state: str) -> str:
    style = _STATE_STYLE.get(state, "")
    return f"[{style}]{state}[/]" if style else state


def list_plugins(
    plugins_dir: PluginsDirOption = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    type_: Annotated[
        str | None, typer.Option("--type", "-t", help="Only plugins of this type (e.g. notify).")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            "-s",
            help=f"Only plugins in this state ({', '.join(s.value for s in State)}).",
        ),
    ] = None,
    runtime: Annotated[
        str | None, typer.Option("--runtime", help="Only plugins of this runtime (python, "
                                                    "process, wasm, grpc, native).")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Only plugins installed from this source "
                                                   "(local, url, market), or found in a "
                                                   "development folder (directory).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000,
                                       help="At most this many plugins (a page; the rest "
                                            "with --cursor).")] = 100,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", help="Continue after the page that returned this next_cursor.",
        show_default=False)] = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """List plugins with their version, state, type and runtime."""
    from plughost.services import resources

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        if state is not None and state not in {s.value for s in State}:
            err_console.print(
                f"[red]error[/]: unknown state {state!r}; "
                f"choose from {', '.join(s.value for s in State)}"
            )
            raise typer.Exit(2)
        if plugins_dir is None and (managed := _managed(home, server, token)) is not None:
            return manage.list_installed(managed, type_=type_, state=state, fmt=fmt,
                                         runtime=runtime, source=source, limit=limit,
                                         cursor=cursor)
        from plughost.services import resources
        from plughost.services.views import info_from_record

        offset = resources.offset_of(cursor)
        host = _discover(plugins_dir, home)
        records = [r for r in host.list(type=type_, state=state)
                   if (runtime is None or r.manifest.runtime == runtime)
                   and (source is None or r.source == source)]
        items = [info_from_record(r).to_dict() for r in records[offset:offset + limit]]
        nxt = resources.offset_cursor(offset, len(items), len(records))
        if fmt == "json":
            print_json({**resources.page([resources.plugin(i) for i in items], nxt,
                                         total=len(records)),
                        "problems": host.status()["problems"]})
            return
        emit_page("plugin", items, fmt, next_cursor=nxt, total=len(records),
                  title=f"{len(records)} plugin(s) in {', '.join(map(str, host.plugin_dirs))}",
                  empty="no plugins found")
        _print_problems(host)


def _print_problems(host: PluginHost) -> None:
    for problem in host.problems:
        err = problem.error
        err_console.print(
            f"[red]✗[/] {escape(str(problem.location))}: [red]{err.code if err else '?'}[/] "
            f"{escape(err.message) if err else ''}"
        )


def info(
    plugin_id: Annotated[str, typer.Argument(help="The plugin id.", metavar="ID")],
    plugins_dir: PluginsDirOption = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show everything about one plugin: manifest, dependencies, dependents, permissions."""
    from rich.markup import escape
    from rich.table import Table

    fmt = output_format(output, as_json)
    if plugins_dir is None and (managed := _managed(home, server, token)) is not None:
        return manage.info_installed(managed, plugin_id, fmt=fmt)
    with handle_errors(as_json=fmt == "json"):
        from plughost.services.views import info_from_record

        host = _discover(plugins_dir, home)
        record = host.get(plugin_id)
        m = record.manifest
        data: dict[str, Any] = {
            **info_from_record(record).to_dict(),
            "manifest": m.to_dict(),
            "dependents": host.dependents(plugin_id),
            "enforcement": (
                _TRUST_NOTE
                if m.runtime == "python"
                else f"runs isolated in the {m.runtime!r} runtime; permissions and limits apply"
            ),
        }
        if fmt != "table":
            emit("plugin", data, fmt)
            return
        console.print(f"[bold]{escape(m.name)}[/] ({m.id}) [cyan]{m.version}[/]")
        if m.description:
            console.print(m.description)
        rows = [
            ("state", _state_text(record.state.value)),
            ("type", m.type or "-"),
            ("runtime", m.runtime),
            ("entry", m.entry),
            ("path", str(record.root) if record.root else record.source),
            ("author", m.author or "-"),
            ("license", m.license or "-"),
            ("host", str(m.host)),
            ("activation", ", ".join(m.activation)),
            ("dependencies", ", ".join(f"{k} {v}" for k, v in m.dependencies.items()) or "-"),
            (
                "optional",
                ", ".join(f"{k} {v}" for k, v in m.optional_dependencies.items()) or "-",
            ),
            ("needed by", ", ".join(data["dependents"]) or "-"),
            ("provides", _provides(m) or "-"),
            ("permissions", ", ".join(m.permissions) or "-"),
            ("limits", ", ".join(sorted(m.limits.declared())) or "-"),
            ("tags", ", ".join(m.tags) or "-"),
            ("enforcement", data["enforcement"]),
        ]
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
        if record.error is not None:
            console.print(f"[bold red]failed in {record.phase}[/]: {escape(str(record.error))}")
            if record.hint:
                console.print(f"[yellow]hint[/]: {escape(record.hint)}")
        for warning in record.warnings:
            console.print(f"[yellow]warning[/]: {escape(warning)}")


def _provides(manifest: Any) -> str:
    p = manifest.provides
    parts = [f"extension {x}" for x in p.extension_points]
    parts += [f"command {x}" for x in p.commands]
    parts += [f"event {x}" for x in p.events]
    parts += [f"channel {x}" for x in p.channels]
    return ", ".join(parts)


def status(
    plugin_id: Annotated[
        str | None, typer.Argument(help="A plugin id (default: the whole host).", metavar="[ID]")
    ] = None,
    plugins_dir: PluginsDirOption = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    activate: Annotated[
        bool,
        typer.Option(
            "--activate",
            help="A trial start: load and activate the startup plugins in this process, "
                 "report, then stop them (`plughost dev DIR` keeps them running).",
        ),
    ] = False,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the host's state: counts by state, failures with their phase and a suggested fix."""
    from plughost.services import resources

    fmt = output_format(output, as_json)
    if plugins_dir is None and (managed := _managed(home, server, token)) is not None:
        return manage.status_installed(managed, plugin_id, activate=activate, fmt=fmt)
    with handle_errors(as_json=fmt == "json"):
        from plughost.services.views import info_from_record

        host = _host(plugins_dir, home)

        async def go() -> Any:
            try:
                if activate:
                    report = await host.start()
                else:
                    host.discover()
                    host.resolve()
                    report = host.report()
                one = host.status(plugin_id) if plugin_id else host.status()
                return report, one, [info_from_record(r, live=activate).to_dict()
                                     for r in host.list()]
            finally:
                await host.aclose()

        report, data, items = run_async(go)
        if activate and fmt == "table":
            console.print("trial start in this process: the states below are what activation "
                          "gave; the plugins are stopped again now")
        if plugin_id is not None:
            if fmt != "table":
                emit("plugin", {**next(i for i in items if i["id"] == plugin_id),
                                "stats": data.get("stats", {})}, fmt)
            else:
                console.print(f"{plugin_id}: {_state_text(data['state'])}")
                if data.get("error"):
                    e = data["error"]
                    console.print(f"  [red]{e['code']}[/] in {e['phase']}: "
                                  f"{escape(e['message'])}")
                    if e.get("hint"):
                        console.print(f"  [yellow]hint[/]: {escape(e['hint'])}")
                for w in data.get("warnings", []):
                    console.print(f"  [yellow]warning[/]: {escape(w)}")
                if (data.get("stats") or {}).get("confinement"):
                    console.print(f"  confinement: {data['stats']['confinement']}")
            if data["state"] == "failed":
                raise typer.Exit(1)
            return
        if fmt == "json":
            print_json({**resources.page([resources.plugin(i) for i in items], None,
                                         total=len(items)),
                        "host_version": data["host_version"], "report": report.to_dict()})
        elif fmt == "plain":
            emit_page("plugin", items, fmt)
        else:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(data["states"].items())) or "none"
            if plugins_dir is None and not activate:
                console.print(f"no server is running on {home or default_home()}: no plugin "
                              "runs (`plughost serve` starts them)")
            console.print(
                f"plughost {data['host_version']} — {data['plugins']} plugin(s) ({counts})"
            )
            for outcome in report.failed:
                console.print(
                    f"[red]✗ {outcome.plugin_id}[/] {escape(f'[{outcome.phase}]')} "
                    f"{outcome.error.code if outcome.error else ''}: "
                    f"{escape(outcome.error.message) if outcome.error else ''}"
                )
                if outcome.hint:
                    console.print(f"    [yellow]hint[/]: {escape(outcome.hint)}")
        if not report.ok:
            raise typer.Exit(1)


def check(
    path: Annotated[
        Path,
        typer.Argument(
            help="A plugin folder, or a plugin.toml / manifest.json file.",
            exists=False,
        ),
    ],
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a plugin folder or manifest: exit 0 if valid, 1 with every problem listed."""
    from plughost.core.manifest import validate_manifest_file

    fmt = output_format(output, as_json)
    if not path.exists():
        message = f"{path} does not exist; give a plugin folder or a manifest file."
        problems_out = [{"path": "", "code": "manifest.missing", "message": message}]
        if fmt != "table":
            emit("validation", {"valid": False, "problems": problems_out}, fmt)
        else:
            err_console.print(f"[red]error[/] manifest.missing: {message}")
        raise typer.Exit(1)
    problems = validate_manifest_file(path) or runtime_problems(path)
    if fmt != "table":
        emit("validation", {"valid": not problems,
                            "problems": [p.to_dict() for p in problems]}, fmt)
    elif problems:
        err_console.print(f"[bold red]{path}: {len(problems)} problem(s)[/]")
        for p in problems:
            err_console.print(f"  [red]✗[/] {escape(p.path or '<root>')}: {escape(p.message)} "
                              f"[dim]{p.code}[/]")
    else:
        console.print(f"[green]✓[/] {path} is a valid plugin")
    if problems:
        raise typer.Exit(1)


def runtime_problems(path: Path) -> list[Problem]:
    """A valid manifest with no way to run on this machine: its platforms do not include it,
    or its runtime's extra is not installed (and no alternative fits instead)."""
    from plughost.core import platforms
    from plughost.core.manifest import load_manifest
    from plughost.errors import Problem
    from plughost.runtimes.base import unavailable

    choice = platforms.select(load_manifest(path), unavailable)
    if not isinstance(choice, list):
        return []
    code = "runtime.platform" if any(" is for " in r for r in choice) else "runtime.unavailable"
    return [Problem("runtime", code, f"no way to run on {platforms.current()}: "
                                     f"{'; '.join(choice)}")]


def register(app: typer.Typer) -> None:
    app.command("list")(list_plugins)
    app.command("info")(info)
    app.command("status")(status)
    app.command("check")(check)
