"""The marketplace commands.

Publisher: ``plughost market init REPO``, ``plughost publish PKG --repo REPO``,
``plughost market serve REPO``, ``market timestamp | yank | advise | rotate-key``.

Operator: ``plughost market add NAME URL --root root.json``, ``market list | remove |
refresh``, ``plughost search``, ``plughost market info ID``, ``plughost outdated``,
``plughost update --all`` (``plughost install ID[@RANGE]`` is the install command, which
turns to the marketplaces when its argument is a plugin id rather than a file or URL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    OutputOption,
    console,
    err_console,
    handle_errors,
    print_json,
)
from plughost.interfaces.cli._output import Format, emit, emit_page, output_format
from plughost.runtimes.base import BUILTIN_RUNTIMES

if TYPE_CHECKING:
    from plughost.services.market.service import Market

__all__ = ["install_from_market", "looks_like_request", "register", "update_all"]

T = TypeVar("T")

RepoArgument = Annotated[Path, typer.Argument(help="The repository folder.", metavar="REPO")]

market_app = typer.Typer(
    help="Marketplaces: publish plugins to a TUF-signed repository, serve it, and read "
         "repositories (add, list, refresh).", no_args_is_help=True)


def _settings(home: Path | None) -> Any:
    from plughost.interfaces.cli.manage import cli_settings

    return cli_settings(home)


def _client(home: Path | None) -> Any:
    from plughost.services.market.client import MarketClient

    settings = _settings(home)
    return MarketClient(settings.home, max_package_size=settings.max_plugin_size)


def with_market(home: Path | None, fn: Callable[[Market], Awaitable[T]]) -> T:
    """Open the home's service and its marketplaces, run ``fn``. No plugin runs in this
    process: installs and updates are recorded, and the server on the home (if one runs)
    applies them from the database within its refresh interval."""
    import asyncio

    from plughost.services.manager import PluginService
    from plughost.services.market.service import Market, market_disabled

    settings = _settings(home)
    if not settings.enable_market:
        raise market_disabled()  # the caller's handle_errors prints it in its --output

    async def go() -> T:
        async with PluginService(settings, start=False, run_plugins=False) as svc:
            return await fn(Market(svc))

    return asyncio.run(go())


# ---------------------------------------------------------------------------- publisher


@market_app.command("init")
def init_cmd(
    repo: RepoArgument,
    name: Annotated[str, typer.Option("--name", help="The repository's name.")] = "",
    root_keys: Annotated[int, typer.Option("--root-keys", min=1, max=16,
                                           help="How many root keys to create.")] = 1,
    threshold: Annotated[int, typer.Option("--threshold", min=1, max=16,
                                           help="Root signatures required.")] = 1,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a repository: signing keys, TUF metadata and an empty index."""
    from rich.markup import escape

    from plughost.services.market.repo import MarketRepository

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        created = MarketRepository.init(repo, name=name, root_keys=root_keys,
                                        threshold=threshold)
    if fmt != "table":
        emit("market_change", {"action": "init", "path": str(created.path),
                               "root": str(created.path / "root.json"),
                               "public": str(created.public)}, fmt)
        return
    console.print(f"[green]✓[/] created marketplace repository {escape(str(created.path))}")
    console.print(f"  serve:   plughost market serve {escape(str(created.path))}  "
                  f"(or any static server for {escape(str(created.public))})")
    console.print(f"  trust:   give operators {escape(str(created.path / 'root.json'))} "
                  "(plughost market add NAME URL --root root.json)")
    console.print(f"  keys:    {escape(str(created.keys_dir))} — keep them private, "
                  "back them up")


def publish_cmd(
    package: Annotated[Path, typer.Argument(help="A package (.zip) built by `plughost pack`.",
                                            metavar="PKG")],
    repo: Annotated[Path, typer.Option("--repo", help="The repository folder.",
                                       metavar="REPO")],
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Publish a package without a signature.")] = False,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish a package to a repository (adds the target, rebuilds and signs the index)."""
    from plughost.services.market.repo import MarketRepository

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        result = MarketRepository.open(repo).publish(package, allow_unsigned=allow_unsigned)
    if fmt != "table":
        emit("publication", result.to_dict(), fmt)
        return
    signers = ", ".join(result.signed_by) or "unsigned"
    console.print(f"[green]✓[/] published [bold]{result.plugin_id}[/] {result.version} "
                  f"({signers}); targets metadata version {result.index_version}")


@market_app.command("serve")
def serve_cmd(
    repo: RepoArgument,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one).")] = 8700,
) -> None:
    """Serve a repository's public files over HTTP (a static server; keys are never served)."""
    from rich.markup import escape

    from plughost.services.market.serve import serve_repository

    with handle_errors():
        server = serve_repository(repo, host, port)
    console.print(f"serving {escape(str(repo))} at {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@market_app.command("timestamp")
def timestamp_cmd(repo: RepoArgument, output: OutputOption = None,
                  as_json: JsonOption = False) -> None:
    """Re-sign the timestamp with a new expiry (run it regularly, e.g. daily)."""
    from plughost.services.market.repo import MarketRepository

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        version = MarketRepository.open(repo).refresh_timestamp()
    if fmt != "table":
        emit("market_change", {"action": "timestamp", "path": str(repo),
                               "timestamp_version": version}, fmt)
        return
    console.print(f"[green]✓[/] timestamp re-signed (version {version})")


@market_app.command("yank")
def yank_cmd(
    repo: RepoArgument,
    spec: Annotated[str, typer.Argument(help="ID@VERSION", metavar="ID@VERSION")],
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to users).")] = "",
    undo: Annotated[bool, typer.Option("--undo", help="Un-yank it.")] = False,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Yank a version: kept, but installed only when pinned exactly."""
    from plughost.errors import MarketError
    from plughost.services.market.repo import MarketRepository

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        pid, _, version = spec.partition("@")
        if not version:
            raise MarketError(f"{spec!r}: write ID@VERSION", code="market.invalid")
        targets = MarketRepository.open(repo).yank(pid, version, reason=reason, undo=undo)
    if fmt != "table":
        emit("market_change", {"action": "unyank" if undo else "yank", "id": pid,
                               "version": version, "yanked": not undo,
                               "targets_version": targets}, fmt)
        return
    console.print(f"[green]✓[/] {pid} {version} {'un-yanked' if undo else 'yanked'}")


@market_app.command("advise")
def advise_cmd(
    repo: RepoArgument,
    plugin_id: Annotated[str, typer.Argument(metavar="ID")],
    advisory_id: Annotated[str, typer.Option("--id", help="Advisory id, e.g. PHSA-2026-1.")],
    affected: Annotated[str, typer.Option("--affected", help="Affected range, e.g. <1.2.3.")],
    severity: Annotated[str, typer.Option("--severity")] = "medium",
    summary: Annotated[str, typer.Option("--summary")] = "",
    fixed: Annotated[str, typer.Option("--fixed", help="First fixed version.")] = "",
    force: Annotated[bool, typer.Option("--force", help="Hosts update automatically "
                                                        "whatever their policy.")] = False,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish a security advisory against some versions of a plugin."""
    from plughost.services.market.repo import MarketRepository

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        targets = MarketRepository.open(repo).advise(
            plugin_id, advisory_id, affected, severity=severity, summary=summary,
            fixed=fixed, force=force)
    if fmt != "table":
        emit("market_change", {"action": "advise", "id": plugin_id, "advisory": advisory_id,
                               "targets_version": targets}, fmt)
        return
    console.print(f"[green]✓[/] advisory {advisory_id} published for {plugin_id} {affected}")


@market_app.command("rotate-key")
def rotate_cmd(
    repo: RepoArgument,
    role: Annotated[str, typer.Argument(help="root, targets, snapshot or timestamp")],
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace a role's key; clients follow the new root (signed by old and new root keys)."""
    from plughost.services.market.repo import MarketRepository

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        version = MarketRepository.open(repo).rotate_keys(role)
    if fmt != "table":
        emit("market_change", {"action": "rotate-key", "role": role, "root_version": version},
             fmt)
        return
    console.print(f"[green]✓[/] new {role} key; root version {version}")


# ---------------------------------------------------------------------------- operator


@market_app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="A short name for it.", metavar="NAME")],
    url: Annotated[str, typer.Argument(help="Its URL (the folder holding metadata/ and "
                                            "targets/).", metavar="URL")],
    root: Annotated[Path, typer.Option("--root", help="Its root.json, obtained from the "
                                                      "publisher (the trust anchor).")],
    priority: Annotated[int, typer.Option("--priority", help="Lower is consulted first; an "
                                                             "id is taken from the first "
                                                             "marketplace listing it.")] = 100,
    home: HomeOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a marketplace and fetch its metadata (verified from the given root)."""
    from rich.markup import escape

    from plughost.errors import MarketError

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        try:
            data = root.read_bytes()
        except OSError as exc:
            raise MarketError(f"cannot read {root}: {exc.strerror}",
                              code="market.source") from None
        client = _client(home)
        source = client.add(name, url, data, priority=priority)
        try:
            refreshed = client.refresh(name, allow_offline=False)
        except MarketError:
            client.remove(name)
            raise
        plugins = len(client.index(name).plugins)
    if fmt != "table":
        emit("marketplace", {**source.to_dict(), **refreshed.to_dict(), "plugins": plugins},
             fmt)
        return
    console.print(f"[green]✓[/] added marketplace [bold]{name}[/] ({escape(url)}): "
                  f"{plugins} plugin(s), metadata valid until {refreshed.expires}")


@market_app.command("list")
def list_cmd(home: HomeOption = None, output: OutputOption = None,
             as_json: JsonOption = False) -> None:
    """The marketplaces this home reads, by priority."""
    from rich.markup import escape
    from rich.table import Table

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        sources = _client(home).sources()
    if fmt != "table":
        emit_page("marketplace", [s.to_dict() for s in sources], fmt, total=len(sources))
        return
    table = Table("name", "priority", "url")
    for s in sources:
        table.add_row(s.name, str(s.priority), escape(s.url))
    console.print(table)


@market_app.command("remove")
def remove_cmd(name: Annotated[str, typer.Argument(metavar="NAME")],
               home: HomeOption = None, output: OutputOption = None,
               as_json: JsonOption = False) -> None:
    """Forget a marketplace (installed plugins stay installed)."""
    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        _client(home).remove(name)
    if fmt != "table":
        emit("market_change", {"action": "remove", "name": name, "removed": name}, fmt)
        return
    console.print(f"[green]✓[/] removed marketplace {name}")


@market_app.command("refresh")
def refresh_cmd(name: Annotated[str | None, typer.Argument(metavar="[NAME]")] = None,
                home: HomeOption = None, output: OutputOption = None,
                as_json: JsonOption = False) -> None:
    """Fetch new metadata (all marketplaces, or NAME) through TUF's checks."""
    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        client = _client(home)
        names = [name] if name else [s.name for s in client.sources()]
        results = [client.refresh(n) for n in names]
    if fmt != "table":
        emit_page("market_refresh", [r.to_dict() for r in results], fmt, total=len(results))
        return
    for r in results:
        state = "[yellow]offline, last good metadata[/]" if r.offline else (
            "updated" if r.changed else "unchanged")
        console.print(f"{r.name}: {state} (targets v{r.targets_version}, valid until "
                      f"{r.expires})")


def search_cmd(
    text: Annotated[str, typer.Argument(help="Words to look for.", metavar="[TEXT]")] = "",
    type_: Annotated[str, typer.Option("--type", help="Only this plugin type.")] = "",
    tag: Annotated[str, typer.Option("--tag", help="Only plugins with this tag.")] = "",
    runtime: Annotated[str, typer.Option("--runtime", help="Only plugins needing this "
                                         f"runtime: {', '.join(BUILTIN_RUNTIMES)} or one a "
                                         "host registers.")] = "",
    all_: Annotated[bool, typer.Option("--all", help="Also plugins that cannot run on "
                                                     "this host.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the "
                                                                "previous page.")] = None,
    home: HomeOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the marketplaces (ranked; compatible plugins only unless --all)."""
    from plughost.services.market.index import SearchQuery

    query = SearchQuery(text, type_, tag, runtime, compatible=not all_)

    async def go(market: Market) -> Any:
        page = await market.search(query, limit=limit, cursor=cursor)
        installed = await market.installed_of([h.plugin.id for h in page.hits])
        return page, {k: str(m.version) for k, m in installed.items()}

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        page, installed = with_market(home, go)
    items = [{"id": h.plugin.id, "version": str(h.version.version),
              "description": h.plugin.description, "type": h.plugin.type,
              "tags": list(h.plugin.tags), "runtime": h.version.runtime,
              "downloads": h.plugin.downloads, "source": h.source,
              "installed_version": installed.get(h.plugin.id),
              "yanked": h.version.yanked, "incompatible": h.incompatible}
             for h in page.hits]
    # a table wraps descriptions between words (never cuts them short); json and plain as
    # every page
    emit_page("market_hit", items, fmt, next_cursor=page.next_cursor, total=page.total,
              empty="nothing found")
    if fmt == "table":
        err_console.print(f"{page.total} found")


@market_app.command("info")
def info_cmd(plugin_id: Annotated[str, typer.Argument(metavar="ID")],
             home: HomeOption = None, output: OutputOption = None,
             as_json: JsonOption = False) -> None:
    """Everything a marketplace says about a plugin: versions, compatibility, advisories."""
    from rich.markup import escape
    from rich.table import Table


    async def go(market: Market) -> Any:
        return await market.details(plugin_id)

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        source, plugin = with_market(home, go)
    data = {**plugin.to_dict(), "source": source}
    if fmt != "table":
        emit("market_plugin", data, fmt)
        return
    console.print(f"[bold]{plugin.id}[/] — {escape(plugin.name)} (from {source})")
    if plugin.description:
        console.print(f"  {escape(plugin.description)}")
    table = Table("version", "host", "runtime", "dependencies", "yanked")
    for v in plugin.versions:
        deps = ", ".join(f"{k} {r}" for k, r in v.dependencies.items())
        table.add_row(str(v.version), str(v.host), v.runtime, deps,
                      escape(v.yanked_reason or "yes") if v.yanked else "")
    console.print(table)
    for a in plugin.advisories:
        console.print(f"  [red]advisory {a.id}[/] ({a.severity}) affects {a.affected}: "
                      f"{escape(a.summary)}")


def outdated_cmd(home: HomeOption = None, output: OutputOption = None,
                 as_json: JsonOption = False) -> None:
    """Installed plugins with a newer version or a security advisory in their marketplace."""
    from rich.table import Table


    async def go(market: Market) -> Any:
        return await market.outdated(refresh=True)

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        items = with_market(home, go)
    if fmt != "table":
        emit_page("outdated", [i.to_dict() for i in items], fmt, total=len(items))
        return
    if not items:
        console.print("everything is up to date")
        return
    table = Table("id", "installed", "latest", "market", "advisories")
    for i in items:
        table.add_row(i.plugin_id, i.installed, i.latest or "", i.source,
                      ", ".join(a["id"] for a in i.advisories))
    console.print(table)


@market_app.command("policy")
def policy_cmd(
    plugin_id: Annotated[str, typer.Argument(metavar="ID")],
    policy: Annotated[str | None, typer.Option(
        "--policy", help="manual, notify or auto (omit to show the current one).")] = None,
    cooldown: Annotated[int, typer.Option(
        "--cooldown", min=0, help="auto: seconds a release must be out before it is "
                                  "installed.")] = 0,
    window: Annotated[str, typer.Option(
        "--window", help="auto: HH:MM-HH:MM (UTC) when updates may run.")] = "",
    home: HomeOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show or set how an installed plugin is updated from its marketplace."""
    from plughost.services.market.updates import UpdateScheduler

    async def go(market: Market) -> Any:
        scheduler = UpdateScheduler(market)
        if policy is None:
            return await scheduler.policy(plugin_id)
        return await scheduler.set_policy(plugin_id, policy, cooldown_seconds=cooldown,
                                          window=window)

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        result = with_market(home, go)
    data = {"id": result.plugin_id, "policy": result.policy,
            "cooldown_seconds": result.cooldown_seconds, "window": result.maintenance_window}
    if fmt != "table":
        emit("update_policy", data, fmt)
        return
    extra = (f", cooldown {result.cooldown_seconds} s" if result.cooldown_seconds else "") + (
        f", window {result.maintenance_window} UTC" if result.maintenance_window else "")
    console.print(f"{plugin_id}: {result.policy}{extra}")


@market_app.command("check")
def check_cmd(home: HomeOption = None, output: OutputOption = None,
              as_json: JsonOption = False) -> None:
    """Run the scheduled update check once: apply each plugin's update policy now."""
    from rich.markup import escape

    from plughost.services.market.updates import UpdateScheduler

    async def go(market: Market) -> Any:
        return await UpdateScheduler(market).run_once()

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        decisions = with_market(home, go)
    if fmt != "table":
        emit_page("update_decision", [d.to_dict() for d in decisions], fmt,
                  total=len(decisions))
        return
    if not decisions:
        console.print("everything is up to date")
    for d in decisions:
        console.print(f"{d.plugin_id} {d.installed} → {d.available or '-'}: {d.action}"
                      + (f" ({escape(d.reason)})" if d.reason else ""))


def looks_like_request(source: str) -> bool:
    """True when an install argument names a plugin (``id`` / ``id@range``), not a file or URL."""
    from plughost.services.market.plan import _REQ

    return "://" not in source and not Path(source).exists() and bool(_REQ.match(source))


def install_from_market(request: str, home: Path | None, *, activate: bool,
                        fmt: Format) -> None:
    """``plughost install ID[@RANGE]``: resolve, fetch and install with dependencies."""

    async def go(market: Market) -> Any:
        return await market.install(request, actor="cli", activate=activate)

    with handle_errors(as_json=fmt == "json"):
        result = with_market(home, go)
    if fmt == "json":
        print_json(result.to_dict())
        return
    if fmt == "plain":
        emit_page("installed_package", [r.to_dict() for r in result.installed], fmt)
        return
    for r in result.installed:
        console.print(f"[green]✓[/] installed [bold]{r.plugin_id}[/] {r.version}")
    if result.plan.already_installed:
        console.print(f"  uses installed: {', '.join(result.plan.already_installed)}")
    if result.installed:
        from plughost.interfaces.cli._backend import home_server
        from plughost.interfaces.cli.manage import next_start

        if home_server(home) is not None:
            console.print("  the server running on this home activates the enabled ones "
                          "within its refresh interval")
        else:
            console.print(f"  {next_start('installed', True)}")


def update_all(home: Path | None, fmt: Format, plugin_id: str | None = None) -> None:
    """``plughost update --all`` / ``plughost update ID`` without a source."""
    from rich.markup import escape


    async def go(market: Market) -> Any:
        if plugin_id is not None:
            result = await market.update(plugin_id, actor="cli")
            return [{"id": plugin_id, "ok": True, **result.to_dict()}]
        return await market.update_all(actor="cli")

    with handle_errors(as_json=fmt == "json"):
        outcomes = with_market(home, go)
    if fmt != "table":
        emit_page("update_outcome", outcomes, fmt, total=len(outcomes))
    else:
        if not outcomes:
            console.print("everything is up to date")
        for o in outcomes:
            if o["ok"]:
                console.print(f"[green]✓[/] updated [bold]{o['id']}[/] {o['from_version']} → "
                              f"{o['to_version']}")
            else:
                err = o["error"]
                err_console.print(f"[red]✗[/] {o['id']}: {err['code']}: "
                                  f"{escape(err['message'])}")
    if any(not o["ok"] for o in outcomes):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``market`` (group), ``publish``, ``search`` and ``outdated``."""
    app.add_typer(market_app, name="market")
    app.command("publish")(publish_cmd)
    app.command("search")(search_cmd)
    app.command("outdated")(outdated_cmd)

