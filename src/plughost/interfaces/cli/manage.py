"""``plughost install | uninstall | update | rollback | versions | enable | disable | activate |
deactivate``.

The CLI never acts as the host. With a server running on the home (or named with ``--server``)
each command goes through its HTTP API, and the server does the work: ``install`` and
``update`` activate the plugin they touch there (one that cannot activate is refused, nothing
kept) unless told not to. With no server, a command opens the home's
:class:`~plughost.services.manager.PluginService` without running plugins, records the intent
(installed, enabled, disabled, the new version) and says what the next start will do;
``activate``, ``deactivate`` and ``reload`` are refused, since nothing runs. Errors print their
code and message in red and exit 1; ``--json`` prints data.

Also here: the database-backed views ``plughost list | info | status`` switch to when the home
has a database (:func:`managed_settings`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import typer

from plughost.interfaces.cli._backend import (
    Remote,
    ServerOption,
    TokenOption,
    run_backend,
    target,
)
from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    OutputOption,
    console,
    err_console,
    handle_errors,
    print_json,
    rich_console,
)
from plughost.interfaces.cli._output import Format, emit, emit_page, output_format, shown_state

if TYPE_CHECKING:
    from rich.progress import TaskID

    from plughost.services.views import PluginInfo, PluginManagement
    from plughost.settings import HostSettings

__all__ = ["cli_settings", "managed_settings", "register"]

T = TypeVar("T")

_STATE_STYLE = {"active": "green", "failed": "bold red", "disabled": "dim", "resolved": "cyan",
                "loaded": "cyan", "deactivated": "yellow", "installed": "blue"}

IdArgument = Annotated[str, typer.Argument(help="The plugin id.", metavar="ID")]
SourceArgument = Annotated[
    str, typer.Argument(help="A package file (.zip from `plughost pack`) or an https:// URL.",
                        metavar="SOURCE")]
Sha256Option = Annotated[
    str | None, typer.Option("--sha256", help="Refuse the package unless its SHA-256 is this.",
                             metavar="HEX", show_default=False)]
AllowPrivateOption = Annotated[
    bool, typer.Option("--allow-private-urls", hidden=True,
                       help="Allow URLs on loopback/private addresses (trusted networks).")]
AllowHttpOption = Annotated[
    bool, typer.Option("--allow-http", hidden=True, help="Allow plain http:// URLs.")]
AllowUnsignedOption = Annotated[bool, typer.Option(
    "--allow-unsigned",
    help="Accept this package even though it is not signed (for your own plugins in "
         "development). Recorded in the audit log; `list` and `info` show it as unsigned.")]


def cli_settings(home: Path | None) -> Any:
    """Settings from the environment (and ``plughost.toml``), with ``--home`` winning."""
    from plughost.settings import HostSettings

    env = dict(os.environ)
    if home is not None:
        env["PLUGHOST_HOME"] = str(home)
    return HostSettings.from_env(env)


def managed_settings(home: Path | None) -> Any | None:
    """The home's settings when it has a plugin database (else ``None``: plain folders)."""
    from plughost.settings import managed_settings as find

    return find(home)


def _state(item: Mapping[str, Any]) -> str:
    """A plugin resource's state for a person, styled (see :func:`shown_state`)."""
    state, shown = str(item.get("state", "")), shown_state(item)
    style = _STATE_STYLE.get(state, "") if item.get("live", True) or state == "failed" else ""
    return f"[{style}]{shown}[/]" if style else shown


def _with_service(where: HostSettings | Remote, fn: Callable[[PluginManagement], Awaitable[T]],
                  **options: Any) -> T:
    """Run ``fn`` against the home's service, or the server when ``where`` is remote."""
    return run_backend(where, fn, **options)


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int | None], None] | None]:
    """Rich progress bars for upload / download / extract / store on stderr when it is a
    terminal (whatever the output format: they go away when done), else nothing."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if not err_console.is_terminal:
        yield None
        return
    bars = Progress(TextColumn("{task.description:<9}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=rich_console(err_console),
                    transient=True)
    tasks: dict[str, TaskID] = {}

    def report(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)
        if total is not None and done >= total:
            bars.refresh()  # a finished stage is drawn finished, however fast it went

    with bars:
        yield report


def install_cmd(
    source: SourceArgument,
    sha256: Sha256Option = None,
    no_enable: Annotated[bool, typer.Option(
        "--no-enable", help="Install it disabled (not loaded at start).")] = False,
    no_activate: Annotated[bool, typer.Option(
        "--no-activate", help="Do not activate it now (it is still checked and recorded).")
    ] = False,
    allow_unsigned: AllowUnsignedOption = False,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    allow_private_urls: AllowPrivateOption = False,
    allow_http: AllowHttpOption = False,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify, unpack, resolve, record and enable a plugin package (file or https URL), or
    install ID[@RANGE] from the marketplaces with its dependencies."""
    from plughost.interfaces.cli.market import install_from_market, looks_like_request

    fmt = output_format(output, as_json)
    if server is None and sha256 is None and not no_enable and looks_like_request(source):
        install_from_market(source, home, activate=not no_activate, fmt=fmt)
        return
    with handle_errors(as_json=fmt == "json"), _progress() as progress:
        result, info = _with_service(
            target(home, server, token),
            lambda svc: _then_info(svc, svc.install(
                source, sha256=sha256, enable=not no_enable, activate=not no_activate,
                progress=progress, actor="cli", allow_unsigned=allow_unsigned)),
            allow_private_urls=allow_private_urls, allow_http_urls=allow_http)

    def human() -> None:
        signed = f"signed by key {result.signed_by}" if result.signed_by else (
            "signed (key not trusted, allowed by policy)" if result.signed else "unsigned")
        console.print(f"[green]✓[/] installed [bold]{result.plugin_id}[/] {result.version} "
                      f"({_state(info.to_dict())}), {signed}")
        console.print(f"  sha256 {result.sha256}")
        if result.granted:
            console.print(f"  granted: {', '.join(result.granted)}")
        _explain(info)

    emit("plugin", {**info.to_dict(), "granted": list(result.granted),
                    "timings": dict(result.timings)}, fmt, human=human)


class _OnePlugin(Protocol):
    @property
    def plugin_id(self) -> str: ...


R = TypeVar("R", bound=_OnePlugin)


async def _then_info(svc: PluginManagement, operation: Awaitable[R]) -> tuple[R, PluginInfo]:
    """Run ``operation`` (on one plugin), then read that plugin's resource."""
    result = await operation
    return result, (await svc.get(str(result.plugin_id))).info


def _explain(info: PluginInfo) -> None:
    """What a person should know about a plugin that is not running as asked."""
    from rich.markup import escape

    if info.state == "needs-config" and info.error:
        err_console.print(f"  [yellow]needs configuration[/]: {escape(info.error['message'])}")
        if info.error.get("hint"):
            err_console.print(f"  hint: {escape(info.error['hint'])}")
    elif info.error:
        err_console.print(f"  [red]{info.error['code']}[/]: {escape(info.error['message'])}")
        if info.error.get("hint"):
            err_console.print(f"  hint: {escape(info.error['hint'])}")
    for note in info.warnings:
        err_console.print(f"  [yellow]note[/]: {escape(note)}")
    if not info.live:
        console.print(f"  {next_start(info.state, info.enabled)}")


NO_SERVER = "no server is running on this home"


def next_start(state: str, enabled: bool) -> str:
    """What the next start does with a plugin, said where no server runs (nothing runs)."""
    if not enabled or state == "disabled":
        return f"it stays disabled when the server starts ({NO_SERVER})"
    if state in ("failed", "needs-config"):
        return (f"not running ({NO_SERVER}); the server tries again when it starts, once the "
                "problem above is fixed")
    return f"it will be activated when the server starts ({NO_SERVER}; `plughost serve`)"


def update_cmd(
    plugin_id: Annotated[str | None, typer.Argument(
        help="The plugin id (omit with --all).", metavar="ID")] = None,
    source: Annotated[str | None, typer.Argument(
        help="A package file or https:// URL; omitted: the newest compatible version from "
             "the marketplaces.", metavar="[SOURCE]")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Update every plugin with a newer version in its marketplace.")
    ] = False,
    sha256: Sha256Option = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    allow_private_urls: AllowPrivateOption = False,
    allow_http: AllowHttpOption = False,
    output: OutputOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Reinstall even when this version is already installed.")] = False,
    allow_unsigned: AllowUnsignedOption = False,
    as_json: JsonOption = False,
) -> None:
    """Install a new version beside the current one and switch to it (state handed over);
    without SOURCE, from the marketplaces (``--all``: every outdated plugin)."""
    from plughost.errors import RequestInvalid
    from plughost.interfaces.cli.market import update_all

    fmt = output_format(output, as_json)
    if all_ or (source is None and plugin_id is not None and server is None):
        if all_ and (plugin_id or source):
            with handle_errors(as_json=fmt == "json"):
                raise RequestInvalid("--all updates every plugin; give no ID or SOURCE with it")
        update_all(home, fmt, None if all_ else plugin_id)
        return
    if plugin_id is None or source is None:
        with handle_errors(as_json=fmt == "json"):
            raise RequestInvalid("give ID and SOURCE, ID alone (from the marketplaces) or "
                                 "--all")
    pid, src = plugin_id or "", source or ""
    with handle_errors(as_json=fmt == "json"), _progress() as progress:
        result = _with_service(
            target(home, server, token),
            lambda svc: _then_info(svc, svc.update(pid, src, sha256=sha256,
                                                   progress=progress, actor="cli",
                                                   force=force,
                                                   allow_unsigned=allow_unsigned)),
            allow_private_urls=allow_private_urls, allow_http_urls=allow_http)
    _print_switch(result, "updated", fmt)


def _print_switch(outcome: tuple[Any, PluginInfo], verb: str, fmt: Format) -> None:
    result, info = outcome

    def human() -> None:
        console.print(f"[green]✓[/] {verb} [bold]{result.plugin_id}[/] {result.from_version} "
                      f"→ {result.to_version} ({_state(info.to_dict())})")
        if result.pruned:
            console.print(f"  no longer kept: {', '.join(result.pruned)}")
        _explain(info)

    emit("plugin", {**info.to_dict(), "from_version": result.from_version,
                    "to_version": result.to_version, "pruned": list(result.pruned)},
         fmt, human=human)


def rollback_cmd(
    plugin_id: IdArgument,
    to: Annotated[str | None, typer.Option(
        "--to", help="The kept version to return to (default: the previous one).",
        metavar="VERSION", show_default=False)] = None,
    build: Annotated[str | None, typer.Option(
        "--build", help="A development plugin on a server watching its folder: reload a kept "
        "good build (digest prefix, version, or 'previous').", metavar="REF",
        show_default=False)] = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Return to a kept version (`plughost versions ID` lists them), or with --build to a
    kept good build of a development plugin."""
    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        if build is not None:
            ref = None if build == "previous" else build
            reloaded = _with_service(
                target(home, server, token),
                lambda svc: svc.rollback_build(plugin_id, ref, actor="cli"))
            if fmt == "json":
                print_json(reloaded.to_dict())
            else:
                console.print(f"{plugin_id} back to build {build} "
                              f"({reloaded.from_version} -> {reloaded.to_version})")
            return
        result = _with_service(target(home, server, token), lambda svc: _then_info(
            svc, svc.rollback(plugin_id, to, actor="cli")))
    _print_switch(result, "rolled back", fmt)


def versions_cmd(plugin_id: IdArgument, home: HomeOption = None,
                 server: ServerOption = None, token: TokenOption = None,
                 output: OutputOption = None, as_json: JsonOption = False) -> None:
    """List the kept versions of a plugin, newest install first."""
    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        versions = _with_service(target(home, server, token), lambda svc: svc.versions(plugin_id),
                                 reconcile=False)
    emit_page("version", [v.to_dict() for v in versions], fmt, total=len(versions),
              title=f"{plugin_id}: {len(versions)} kept version(s)")


def uninstall_cmd(
    plugin_id: IdArgument,
    cascade: Annotated[bool, typer.Option(
        "--cascade", help="Also uninstall the enabled plugins that depend on it.")] = False,
    keep_data: Annotated[bool, typer.Option(
        "--keep-data", help="Keep the plugin's private data directory.")] = False,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a plugin: rows, package blobs, unpacked files and its data (refused while
    needed)."""
    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        result = _with_service(target(home, server, token),
                               lambda svc: svc.uninstall(plugin_id, cascade=cascade,
                                                         keep_data=keep_data, actor="cli"))
    removed = [{"plugin_id": pid, "versions": list(result.versions.get(pid, ()))}
               for pid in result.removed]
    if fmt != "table":
        emit_page("removal", removed, fmt, total=len(removed))
        return
    for item in removed:
        console.print(f"[green]✓[/] uninstalled [bold]{item['plugin_id']}[/] "
                      f"({', '.join(item['versions']) or 'no versions'})")


def _switch_cmd(verb: str, plugin_id: str, home: Path | None, server: str | None,
                token: str | None, output: str | None, as_json: bool,
                op: Callable[[PluginManagement], Awaitable[PluginInfo]]) -> None:
    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        info = _with_service(target(home, server, token), op)
    _print_info(info, verb, fmt)


def enable_cmd(plugin_id: IdArgument, home: HomeOption = None,
               server: ServerOption = None, token: TokenOption = None,
               output: OutputOption = None, as_json: JsonOption = False) -> None:
    """Enable a plugin: it is loaded at start again (and activated now when a host runs)."""
    _switch_cmd("enabled", plugin_id, home, server, token, output, as_json,
                lambda svc: svc.enable(plugin_id, actor="cli"))


def disable_cmd(plugin_id: IdArgument, home: HomeOption = None,
                server: ServerOption = None, token: TokenOption = None,
                output: OutputOption = None, as_json: JsonOption = False) -> None:
    """Disable a plugin: not loaded at start, still installed (refused while needed)."""
    _switch_cmd("disabled", plugin_id, home, server, token, output, as_json,
                lambda svc: svc.disable(plugin_id, actor="cli"))


def activate_cmd(plugin_id: IdArgument, home: HomeOption = None,
                 server: ServerOption = None, token: TokenOption = None,
                 output: OutputOption = None, as_json: JsonOption = False) -> None:
    """Activate an enabled plugin in the running host now (its dependencies first)."""
    _switch_cmd("activated", plugin_id, home, server, token, output, as_json,
                lambda svc: svc.activate(plugin_id))


def deactivate_cmd(
    plugin_id: IdArgument,
    cascade: Annotated[bool, typer.Option(
        "--cascade", help="Also deactivate the active plugins that depend on it.")] = False,
    home: HomeOption = None, server: ServerOption = None, token: TokenOption = None,
    output: OutputOption = None, as_json: JsonOption = False,
) -> None:
    """Deactivate a plugin in the running host (it stays enabled: it runs again at the next
    start)."""
    _switch_cmd("deactivated", plugin_id, home, server, token, output, as_json,
                lambda svc: svc.deactivate(plugin_id, cascade=cascade))


def _print_info(info: PluginInfo, verb: str, fmt: Format) -> None:
    def human() -> None:
        console.print(f"[green]✓[/] {verb} [bold]{info.id}[/] {info.version} "
                      f"({_state(info.to_dict())})")
        _explain(info)

    emit("plugin", info.to_dict(), fmt, human=human)


# ---------------------------------------------------------------------- list / info / status

def list_installed(settings: Any, *, type_: str | None, state: str | None,
                   fmt: Format, runtime: str | None = None, source: str | None = None,
                   limit: int = 100, cursor: str | None = None) -> None:
    """``plughost list`` for a home with a database (or a server): installed plugins with
    their state. A home is read from its database alone, as the service lists it (one read
    transaction, no host, no plugin files; on the default SQLite database with the standard
    library alone, see :mod:`plughost.storage.catalog`), unless it has development folders,
    which only a host can list beside the installed plugins."""
    from plughost.services import resources

    offset = resources.offset_of(cursor)
    with handle_errors(as_json=fmt == "json"):
        # No server here: nothing runs, so the states are what the next start begins from
        # (idle_info); a state filter then applies to those, which the service does.
        if isinstance(settings, Remote) or settings.development_dirs() or state is not None:
            page = _with_service(settings, lambda svc: svc.list_plugins(
                type=type_, state=state, runtime=runtime, source=source, limit=limit,
                offset=offset), reconcile=False)
        else:
            from plughost.services.views import idle_info, list_stored
            from plughost.storage.catalog import open_catalog

            catalog = open_catalog(settings.database_url)
            if catalog is not None:  # the default SQLite home, at this plughost's schema
                with catalog:
                    page = list_stored(catalog, type=type_, runtime=runtime,
                                       source=source, limit=limit, offset=offset,
                                       info=idle_info)
            else:
                from plughost.storage.backends import open_storage

                with open_storage(settings) as storage:
                    page = list_stored(storage.repository, type=type_, runtime=runtime,
                                       source=source, limit=limit,
                                       offset=offset, info=idle_info)
    idle = "" if isinstance(settings, Remote) else (
        f"; no server is running on {settings.home}, nothing runs")
    emit_page("plugin", [p.to_dict() for p in page.items], fmt, total=page.total,
              next_cursor=resources.offset_cursor(page.offset, len(page.items), page.total),
              title=f"{page.total} installed plugin(s){idle}",
              empty=f"no plugins installed{idle}")


def info_installed(settings: Any, plugin_id: str, *, fmt: Format) -> None:
    """``plughost info ID`` for an installed plugin."""
    from rich.markup import escape
    from rich.table import Table

    with handle_errors(as_json=fmt == "json"):
        detail = _with_service(settings, lambda svc: svc.get(plugin_id), reconcile=False)

    def human() -> None:
        i = detail.info
        console.print(f"[bold]{escape(i.name)}[/] ({i.id}) [cyan]{i.version}[/]")
        if i.description:
            console.print(escape(i.description))
        table = Table(show_header=False, box=None)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        signed = detail.to_dict().get("signed")
        for key, value in (
            ("state", _state(i.to_dict())), ("enabled", "yes" if i.enabled else "no"),
            ("type", i.type or "-"), ("runtime", i.runtime), ("path", detail.path or "-"),
            ("source", i.source_uri or i.source), ("sha256", i.sha256),
            ("signature", "-" if signed is None else "signed" if signed else "unsigned"),
            ("versions", ", ".join(v.version + (" (current)" if v.current else "")
                                   for v in detail.versions)),
            ("dependencies",
             ", ".join(f"{k} {v}" for k, v in detail.dependencies.items()) or "-"),
            ("needed by", ", ".join(detail.dependents) or "-"),
            ("grants", ", ".join(detail.grants) or "-"),
        ):
            table.add_row(key, value)
        console.print(table)
        _explain(i)

    emit("plugin", detail.to_dict(), fmt, human=human)


def status_installed(settings: Any, plugin_id: str | None, *, activate: bool,
                     fmt: Format) -> None:
    """``plughost status [ID]`` for a home with a database."""
    from rich.markup import escape


    async def collect(svc: PluginManagement) -> dict[str, Any]:
        page = await svc.list_plugins(limit=10_000)
        return {"items": [p.to_dict() for p in page.items], "total": page.total,
                "one": (await svc.get(plugin_id)).to_dict() if plugin_id else None}

    local = not isinstance(settings, Remote)
    with handle_errors(as_json=fmt == "json"):
        if activate and local:
            from plughost.errors import OperationRefused

            raise OperationRefused(
                f"no server is running on {settings.home}, and `status --activate` will not run "
                "plugins inside this command; start the server (`plughost serve`), which "
                "activates every enabled plugin, then run `plughost status`",
                code="server.not_running")
        data = _with_service(settings, collect, reconcile=False)
    if plugin_id is not None:
        one = data["one"]

        def human_one() -> None:
            console.print(f"{plugin_id}: {_state(one)}")
            if one.get("error"):
                console.print(f"  [red]{one['error']['code']}[/]: "
                              f"{escape(one['error']['message'])}")
                if one["error"].get("hint"):
                    console.print(f"  hint: {escape(one['error']['hint'])}")
            if (one.get("stats") or {}).get("confinement"):
                console.print(f"  confinement: {one['stats']['confinement']}")

        emit("plugin", one, fmt, human=human_one)
        if one["state"] == "failed":
            raise typer.Exit(1)
        return
    items = data["items"]
    failed = [p for p in items if p["state"] == "failed"]
    if fmt != "table":
        emit_page("plugin", items, fmt, total=data["total"])
    else:
        counts: dict[str, int] = {}
        for p in items:
            counts[shown_state(p)] = counts.get(shown_state(p), 0) + 1
        text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
        if local:
            console.print(f"no server is running on {settings.home}: no plugin runs "
                          "(`plughost serve` starts the enabled ones)")
        console.print(f"{data['total']} installed plugin(s) ({text})")
        for p in items:
            if p.get("error"):
                mark = "[yellow]…" if p["state"] == "needs-config" else "[red]✗"
                console.print(f"{mark} {p['id']}[/] {p['error'].get('code', '')}: "
                              f"{escape(p['error'].get('message', ''))}")
                if p["error"].get("hint"):
                    console.print(f"  hint: {escape(p['error']['hint'])}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("install")(install_cmd)
    app.command("update")(update_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("versions")(versions_cmd)
    app.command("uninstall")(uninstall_cmd)
    app.command("enable")(enable_cmd)
    app.command("disable")(disable_cmd)
    app.command("activate")(activate_cmd)
    app.command("deactivate")(deactivate_cmd)
