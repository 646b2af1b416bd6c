"""``plughost config get | set | reset | history | restore``: plugin configuration from the shell.

These commands work on the plughost home (``--home``). A plugin's schema comes from the home's
config store (recorded when the host first activated it) or, failing that, from its manifest in
``<home>/plugins`` / ``--plugins-dir``. Secrets are always shown as ``***``.

A running host does not poll the store; to change a running host live, edit its settings file
(``plughost.toml``, watched), or restart it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plughost.interfaces.cli._backend import (
    RemoteConfigManager,
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
    run_async,
)
from plughost.interfaces.cli._output import (
    Format,
    OutputOption,
    emit,
    emit_page,
    output_format,
)

if TYPE_CHECKING:
    from plughost.services.config import ConfigManager
    from plughost.storage.config_store import ConfigRecord

__all__ = ["parse_assignments", "register"]

PluginsDirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--plugins-dir",
        "-d",
        show_default=False,
        help="Where to find the plugin's manifest if the home has no record of it "
        "(default: <home>/plugins).",
    ),
]


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "x=y"]`` -> ``{"a": {"b": 1}, "x": "y"}``; values are JSON if they parse."""
    from plughost.errors import ConfigurationError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                f"{pair!r} is not KEY=VALUE; write e.g. channel=#ops or server.port=8080 "
                "(values are parsed as JSON when they can be: 8080, true, null, [1,2])"
            )
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigurationError(f"{key!r} conflicts with another assignment to {part!r}")
            node = child
        node[parts[-1]] = value
    return out


def _load_file(path: Path) -> dict[str, Any]:
    import tomllib

    from plughost.errors import ConfigurationError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigurationError(f"{path} does not parse: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold an object/table of settings")
    return data


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="PLUGHOST_CONFIG_STORE",
        show_default=False,
        help="Config store: redis://host:6379/0 for a shared Redis store "
        "(default: <home>/config.db).",
    ),
]


def stored_settings(home: Path | None, plugin_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The operator settings `plughost config set` recorded for each of ``plugin_ids`` on this
    home (``--home``, else the default home) — in its database when it has one, else in
    ``<home>/config.db`` — for the commands that build a host from plugin folders (`call`,
    `dev`), so they run a plugin with the config `config set -d` gave it. Read for those
    plugins alone: what else the home holds (10,000 installed plugins) costs nothing."""
    import os

    from plughost.services.config import substitute_env
    from plughost.services.stores import config_store_for_home
    from plughost.storage.config_store import ConfigStore, SQLiteConfigStore

    store: ConfigStore | None = config_store_for_home(home)
    if store is None:
        path = (home or default_home()) / "config.db"
        if not path.is_file():
            return {}
        store = SQLiteConfigStore(path)
    try:
        out: dict[str, dict[str, Any]] = {}
        for plugin_id in sorted(set(plugin_ids)):
            latest = store.latest(plugin_id)
            if latest is not None and latest.settings:
                # ${VAR} from this shell, as this command's host runs here; an unset one is
                # left for the plugin's config check to name
                saved = store.load_schema(plugin_id)
                out[plugin_id] = substitute_env(dict(latest.settings), os.environ,
                                                schema=saved[0] if saved else None,
                                                problems=[])
        return out
    finally:
        store.close()


def _manager(
    home: Path | None, plugins_dir: list[Path] | None, plugin_id: str, store: str | None = None,
    server: str | None = None, token: str | None = None,
) -> ConfigManager:
    from plughost.errors import PluginNotFound
    from plughost.services.config import ConfigManager
    from plughost.storage.config_store import open_config_store

    remote = None if store or plugins_dir else server_for(home, server, token)
    if remote is not None:  # the same methods, over the HTTP API of that server
        return RemoteConfigManager(remote)  # type: ignore[return-value]
    from plughost.services.stores import config_store_for_home

    database = None if store else config_store_for_home(home)  # installed plugins' config
    home = home or default_home()
    if store:
        manager = ConfigManager(open_config_store(store))
    elif database is not None:
        manager = ConfigManager(database)
    else:
        manager = ConfigManager.open(home)
    if plugin_id in manager.store.plugins():
        return manager
    from plughost.host import PluginHost

    host = PluginHost(plugins_dir or [home / "plugins"], home=home)
    host.discover()
    try:
        record = host.get(plugin_id)
    except PluginNotFound:
        manager.close()
        raise PluginNotFound(
            f"no plugin {plugin_id!r} is known in {home} (no config record, no manifest under "
            f"{', '.join(str(d) for d in host.plugin_dirs)}); check the id with `plughost list`",
            plugin_id=plugin_id,
        ) from None
    manager.register(
        plugin_id,
        record.manifest.config_schema,
        dict(record.manifest.config_defaults),
        strict=False,
    )
    return manager


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def _opened(
    home: Path | None, plugins_dir: list[Path] | None, plugin_id: str, store: str | None,
    server: str | None, token: str | None,
) -> Iterator[ConfigManager]:
    """The config manager for one command, closed when the command is done."""
    manager = _manager(home, plugins_dir, plugin_id, store, server, token)
    try:
        yield manager
    finally:
        manager.close()


def _record_dict(r: ConfigRecord) -> dict[str, Any]:
    return {
        "version": r.version,
        "time": r.time,
        "action": r.action,
        "actor": r.actor,
        "settings": dict(r.settings),
    }


def get(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id.")],
    home: HomeOption = None,
    plugins_dir: PluginsDirOption = None,
    store: StoreOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a plugin's effective configuration (secrets as ***)."""
    fmt = output_format(output, as_json)
    with (
        handle_errors(as_json=fmt == "json"),
        _opened(home, plugins_dir, plugin_id, store, server, token) as manager,
    ):
        data = _config_resource(manager, plugin_id)

    def human() -> None:
        console.print(f"[bold]{plugin_id}[/] config version {data['version']}")
        console.print_json(json.dumps(data["config"]))
        for problem in data["problems"]:
            console.print(f"[yellow]problem[/] {problem['path']}: {problem['message']}")

    emit("config", data, fmt, human=human)


def _config_resource(manager: ConfigManager, plugin_id: str) -> dict[str, Any]:
    """The ``config`` resource: effective config and operator settings (secrets as ***), the
    version, and what is still wrong (a plugin in ``needs-config`` lists what to set)."""
    return {
        "plugin_id": plugin_id,
        "version": manager.version(plugin_id),
        "config": manager.get(plugin_id),
        "settings": manager.settings(plugin_id),
        "problems": [p.to_dict() for p in manager.problems(plugin_id)],
    }


def set_(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id.")],
    assignments: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE pairs; dotted keys nest (server.port=8080); null removes a setting.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Settings from a JSON, TOML or YAML file.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace all operator settings instead of merging.")
    ] = False,
    home: HomeOption = None,
    plugins_dir: PluginsDirOption = None,
    store: StoreOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a plugin's configuration; validated against its schema before it is accepted."""
    from plughost.errors import ConfigurationError

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        if not assignments and file is None:
            raise ConfigurationError("nothing to set: give KEY=VALUE pairs or --file FILE")
        values: dict[str, Any] = _load_file(file) if file is not None else {}
        from plughost.services.config import merge_patch

        values = merge_patch(values, parse_assignments(assignments or []))
        with _opened(home, plugins_dir, plugin_id, store, server, token) as manager:
            if replace:
                record = run_async(lambda: manager.replace(plugin_id, values, actor="cli"))
            else:
                record = run_async(lambda: manager.set(plugin_id, values, actor="cli"))
            _note_state(manager, plugin_id)
            data = _config_resource(manager, plugin_id)
    _done(record, data, fmt)


def _note_state(manager: ConfigManager, plugin_id: str) -> None:
    """A home with a database and no server on it: record whether the installed plugin still
    needs configuration, so `list` and `status` say it before the next start (a server on the
    home judges it itself; a development folder has no recorded state)."""
    from plughost.services.stores import RepositoryConfigStore
    from plughost.services.views import record_config_state

    store = getattr(manager, "store", None)  # none over a server's API: it judges itself
    if isinstance(store, RepositoryConfigStore) and store.repo.get_plugin(plugin_id):
        record_config_state(store.repo, plugin_id, manager.problems(plugin_id))


def _done(record: ConfigRecord, data: dict[str, Any], fmt: Format) -> None:
    def human() -> None:
        console.print(f"[green]{record.plugin_id}[/] config is now version {record.version} "
                      f"({record.action})")
        if data["problems"]:
            for problem in data["problems"]:
                console.print(f"  [yellow]still wrong[/] {problem['path']}: "
                              f"{problem['message']}")
        else:
            console.print("  valid; an enabled plugin that was waiting for it (needs-config) "
                          "starts now on running servers, or when a server starts")

    emit("config", {**data, "action": record.action}, fmt, human=human)


def reset(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id.")],
    home: HomeOption = None,
    plugins_dir: PluginsDirOption = None,
    store: StoreOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Go back to the defaults (recorded as a new version)."""
    fmt = output_format(output, as_json)
    with (
        handle_errors(as_json=fmt == "json"),
        _opened(home, plugins_dir, plugin_id, store, server, token) as manager,
    ):
        record = run_async(lambda: manager.reset(plugin_id, actor="cli"))
        _note_state(manager, plugin_id)
        data = _config_resource(manager, plugin_id)
    _done(record, data, fmt)


def history(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id.")],
    home: HomeOption = None,
    plugins_dir: PluginsDirOption = None,
    store: StoreOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every accepted configuration change, oldest first (secrets as ***)."""
    from rich.table import Table

    fmt = output_format(output, as_json)
    with (
        handle_errors(as_json=fmt == "json"),
        _opened(home, plugins_dir, plugin_id, store, server, token) as manager,
    ):
        records = manager.history(plugin_id)
    if fmt != "table":
        emit_page("config_change", [_record_dict(r) for r in records], fmt,
                  total=len(records))
        return
    table = Table("version", "time (UTC)", "action", "actor", "settings")
    for r in records:
        table.add_row(
            str(r.version), _when(r.time), r.action, r.actor, json.dumps(dict(r.settings))
        )
    console.print(table if records else f"{plugin_id}: no changes yet (defaults only)")


def restore(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id.")],
    version: Annotated[int, typer.Argument(help="The version to make current again.")],
    home: HomeOption = None,
    plugins_dir: PluginsDirOption = None,
    store: StoreOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make an earlier version current again (recorded as a new version)."""
    fmt = output_format(output, as_json)
    with (
        handle_errors(as_json=fmt == "json"),
        _opened(home, plugins_dir, plugin_id, store, server, token) as manager,
    ):
        record = run_async(lambda: manager.restore(plugin_id, version, actor="cli"))
        _note_state(manager, plugin_id)
        data = _config_resource(manager, plugin_id)
    _done(record, data, fmt)


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group."""
    group = typer.Typer(
        name="config", help="Show and change plugin configuration.", no_args_is_help=True
    )
    group.command("get")(get)
    group.command("set")(set_)
    group.command("reset")(reset)
    group.command("history")(history)
    group.command("restore")(restore)
    app.add_typer(group, name="config")
