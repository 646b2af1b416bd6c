"""The plugin author's loop: ``plughost new | dev | call``.

* ``plughost new NAME --runtime python|process|wasm`` writes a plugin folder from the templates
  in :mod:`plughost.sdk.templates` (a manifest that passes ``plughost check``, the code, a
  README and a test that passes with ``python -m pytest``).
* ``plughost dev PATH...`` runs a host on the folder(s) with hot reload: every save reloads the
  plugin (the old version keeps serving when the new one is broken), and one compact stream
  shows the plugin's own logs, each reload with its timing, and errors with the plugin's own
  frames first. ``--serve`` runs ``plughost serve --watch`` with the dashboard instead.
* ``plughost call ID METHOD --arg k=v`` calls a plugin without a prompt: on a host built from
  the folders, or on a server (``--server``: the command ``ID.METHOD``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import sys
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plughost.interfaces.cli._backend import ServerOption, TokenOption
from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    OutputOption,
    console,
    handle_errors,
    print_json,
    run_async,
)
from plughost.interfaces.cli._output import emit, output_format

if TYPE_CHECKING:
    import asyncio

    from plughost.host import PluginHost, ReloadResult

__all__ = ["register"]

RUNTIMES = ("python", "process", "wasm")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


# ------------------------------------------------------------------------------------ new


def render_template(runtime: str, plugin_id: str, dest: Path) -> list[Path]:
    """Write the ``runtime`` template for ``plugin_id`` into ``dest`` (which must not exist or
    be empty); returns the files written."""
    from plughost.errors import OperationRefused

    if runtime not in RUNTIMES:
        raise OperationRefused(f"unknown runtime {runtime!r}; use {', '.join(RUNTIMES)}",
                               code="request.invalid")
    if not _ID.match(plugin_id):
        raise OperationRefused(
            f"{plugin_id!r} is not a plugin id: use lowercase letters, digits, '.', '_' and "
            "'-', starting with a letter or digit (at most 64 characters)",
            code="request.invalid")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise OperationRefused(f"{dest} already exists and is not empty; choose another name "
                               "or --dir", code="request.invalid")
    words = re.split(r"[._-]+", plugin_id)
    values = {"id": plugin_id, "name": " ".join(w.capitalize() for w in words if w),
              "crate": re.sub(r"[^a-z0-9_]", "_", plugin_id)}
    root = resources.files("plughost.sdk.templates") / runtime
    written: list[Path] = []

    def copy(node: Any, rel: Path) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                if child.name != "__pycache__":
                    copy(child, rel / child.name)
                continue
            if not child.name.endswith(".tmpl"):
                continue
            text = child.read_text(encoding="utf-8")
            for key, value in values.items():
                text = text.replace("{{" + key + "}}", value)
            target = dest / rel / child.name.removesuffix(".tmpl")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(target)

    dest.mkdir(parents=True, exist_ok=True)
    copy(root, Path())
    return written


def new(
    name: Annotated[str, typer.Argument(help="The plugin id (also the folder name).")],
    runtime: Annotated[str, typer.Option(
        "--runtime", "-r", help="python (in-process), process (Node.js) or wasm (WAT).")
    ] = "python",
    directory: Annotated[Path, typer.Option(
        "--dir", help="Where to create the plugin folder.")] = Path("."),
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a plugin folder: manifest, code, README and a test (`python -m pytest`)."""
    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        dest = directory / name
        files = render_template(runtime, name, dest)
    if fmt != "table":
        emit("new_plugin", {"plugin_id": name, "runtime": runtime, "path": str(dest),
                            "files": [str(f.relative_to(dest)) for f in files]}, fmt)
        return
    console.print(f"[green]✓[/] created {dest} ({runtime})")
    for f in files:
        console.print(f"  {f.relative_to(dest)}")
    console.print(f"next: plughost check {dest} && python -m pytest {dest / 'tests'} && "
                  f"plughost dev {dest}")


# ------------------------------------------------------------------------------------ dev


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def plugin_frames_first(error: BaseException, roots: list[Path]) -> list[str]:
    """The traceback of ``error`` (and what caused it) with the frames in the plugin's own
    files first, then the rest; one line per frame."""
    import traceback

    ours: list[str] = []
    others: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in traceback.extract_tb(current.__traceback__):
            line = f"{frame.filename}:{frame.lineno} in {frame.name}"
            if frame.line:
                line += f": {frame.line.strip()}"
            in_plugin = any(_inside(Path(frame.filename), r) for r in roots)
            (ours if in_plugin else others).append(line)
        if isinstance(current, SyntaxError) and current.filename:
            ours.insert(0, f"{current.filename}:{current.lineno}: {current.msg}")
        current = current.__cause__ or current.__context__
    return ours + others


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _not_a_reload(record: logging.LogRecord) -> bool:
    """Leave out the host's own line about a reload: the loop prints its ↻/✗ line for it."""
    return not hasattr(record, "reload_of")


class _PluginLogs(logging.Handler):
    """Prints every plugin's log records as one compact line each."""

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name.removeprefix("plughost.plugin.")
        try:
            message = record.getMessage()
        except Exception:  # a broken format string in a plugin's log call
            message = str(record.msg)
        console.print(f"[dim]{_stamp()}[/] [cyan]{name}[/] {record.levelname.lower()}: "
                      f"{message}", markup=True, highlight=False)


def _print_reload(result: ReloadResult, host: PluginHost) -> None:
    ms = result.seconds * 1000
    if result.ok:
        console.print(
            f"[dim]{_stamp()}[/] [green]↻ reloaded[/] {result.plugin_id} {result.from_version} "
            f"→ {result.to_version} in {ms:.0f} ms (load {result.load_seconds * 1000:.0f}, "
            f"switch {result.switch_seconds * 1000:.0f}; after a {host.debounce * 1000:.0f} ms "
            "debounce)")
        return
    error = result.error
    console.print(f"[dim]{_stamp()}[/] [red]✗ reload of {result.plugin_id} failed[/]; "
                  f"{result.from_version} keeps serving")
    if error is None:
        return
    from rich.markup import escape

    source = host.source_of(result.plugin_id)
    roots = [p for p in (source,) if p is not None]
    record = host.registry.find(result.plugin_id)
    builds = record.root.parent if record is not None and record.root is not None else None
    if builds is not None:
        roots.append(builds)  # the builds of this plugin

    def shown(text: str) -> str:
        return as_source(text, builds, source)

    console.print(f"  [red]{error.code}[/]: {escape(shown(error.message))}", markup=True,
                  highlight=False)
    for line in plugin_frames_first(error, roots)[:12]:
        console.print(f"    {shown(line)}", markup=False, highlight=False)


def as_source(text: str, builds: Path | None, source: Path | None) -> str:
    """``text`` with each path into a build of the plugin (``<builds>/<digest>/file``, the copy
    the host runs) written as the file the author edits (``<source>/file``)."""
    if builds is None or source is None:
        return text
    build = re.escape(str(builds)) + r"/[0-9a-f]{8,}(?![0-9a-zA-Z_.-])"
    return re.sub(build, lambda _: str(source), text)


async def run_dev(paths: list[Path], home: Path, debounce: float,
                  stop: asyncio.Event, config: dict[str, dict[str, Any]] | None = None) -> int:
    """The ``dev`` loop on an event loop; returns the exit code when ``stop`` is set.
    ``config``: the operator settings per plugin (what `plughost config set` recorded)."""
    from plughost.host import PluginHost

    handler = _PluginLogs()
    plugin_log = logging.getLogger("plughost.plugin")
    plugin_log.addHandler(handler)
    previous_level, previous_propagate = plugin_log.level, plugin_log.propagate
    plugin_log.setLevel(logging.DEBUG)
    # this handler prints the plugins' records; passed on, the root handler would print each
    # one a second time
    plugin_log.propagate = False
    host_log = logging.getLogger("plughost.host")
    host_log.addFilter(_not_a_reload)
    try:
        async with PluginHost(paths, home=home, watch=True, debounce=debounce,
                              config=config) as host:
            host.on_reload(lambda result: _print_reload(result, host))
            report = await host.start()
            for outcome in report.outcomes:
                mark = "[green]✓[/]" if outcome.ok else "[red]✗[/]"
                console.print(f"{mark} {outcome.plugin_id} {outcome.state.value}")
                if outcome.error is not None:
                    console.print(f"  [red]{outcome.error.code}[/]: {outcome.error.message}",
                                  markup=True, highlight=False)
                    for line in plugin_frames_first(outcome.error, list(paths))[:12]:
                        console.print(f"    {line}", markup=False, highlight=False)
            console.print(f"[dim]{_stamp()}[/] watching {', '.join(map(str, paths))} "
                          "(Ctrl-C to stop)")
            sys.stdout.flush()
            await stop.wait()
    finally:
        plugin_log.removeHandler(handler)
        plugin_log.setLevel(previous_level)
        plugin_log.propagate = previous_propagate
        host_log.removeFilter(_not_a_reload)
    return 0


def dev(
    paths: Annotated[list[Path], typer.Argument(
        help="Plugin folders, or folders of plugin folders.")],
    debounce: Annotated[float, typer.Option(
        help="Seconds without a change that end a burst of saves.", min=0.0, max=60.0)] = 0.2,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Run `plughost serve --watch` (API + dashboard) on the folders.")
    ] = False,
    port: Annotated[int, typer.Option(
        help="With --serve: the port (0: any free port, logged at start).", min=0, max=65535)
    ] = 8080,
    home: HomeOption = None,
) -> None:
    """Run the plugin(s) with hot reload: each save reloads, logs and errors show here."""
    import asyncio
    import tempfile

    from plughost.errors import OperationRefused

    with handle_errors():
        missing = [p for p in paths if not p.is_dir()]
        if missing:
            raise OperationRefused(f"{', '.join(map(str, missing))} is not a folder; give "
                                   "plugin folders", code="request.invalid")
        if serve:
            _serve(paths, home, debounce, port)
            return
        from plughost.interfaces.cli.config import stored_settings

        # What `plughost config set [-d]` recorded for the plugins in these folders.
        settings = stored_settings(home, folder_plugin_ids(paths))
        with contextlib.ExitStack() as stack:
            where = home if home is not None else Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="plughost-dev-")))

            async def main() -> int:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(sig, stop.set)
                return await run_dev([p.resolve() for p in paths], where, debounce, stop,
                                     settings)

            code = run_async(main)
    raise typer.Exit(code)


def _serve(paths: list[Path], home: Path | None, debounce: float, port: int) -> None:
    """``serve --watch`` with the given folders as the development plugin folders."""
    from plughost.errors import OperationRefused
    from plughost.interfaces.cli.serve import serve

    if len(paths) != 1:
        raise OperationRefused("--serve takes one folder of plugin folders (it becomes the "
                               "server's plugins_dir)", code="request.invalid")
    import os

    os.environ["PLUGHOST_PLUGINS_DIR"] = str(paths[0].resolve())
    os.environ["PLUGHOST_RELOAD_DEBOUNCE"] = str(debounce)
    serve(home=home, watch=True, port=port)


def folder_plugin_ids(directories: list[Path]) -> list[str]:
    """The ids of the plugins in these folders (each a plugin folder or a folder of them), as
    a host built from them discovers them; the ones whose manifest is invalid are left out
    (the host reports them)."""
    from plughost.core.discovery import discover_directories

    return [found.manifest.id for found in discover_directories(directories)
            if found.manifest is not None]


# ------------------------------------------------------------------------------------ call


def parse_args(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs into keyword arguments; a value that is JSON (``3``, ``true``,
    ``[1,2]``, ``"x"``) is decoded, anything else is a string."""
    from plughost.errors import OperationRefused

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise OperationRefused(f"--arg {pair!r}: write NAME=VALUE (NAME a Python "
                                   "identifier)", code="request.invalid")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def call(
    plugin_id: Annotated[str, typer.Argument(help="The plugin id.")],
    method: Annotated[str, typer.Argument(help="What to call on it.")],
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", "-a", help="NAME=VALUE (JSON values are decoded); repeat.")] = None,
    plugins_dir: Annotated[list[Path] | None, typer.Option(
        "--plugins-dir", "-d", help="Plugin folders to load (default: <home>/plugins).")
    ] = None,
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Call a plugin and print the result: on a host built from the folders, or on a server
    (--server runs the command ID.METHOD)."""
    from plughost.errors import PluginNotFound
    from plughost.host import PluginHost

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        kwargs = parse_args(arg or [])
        if server:
            from plughost.interfaces.cli._backend import Remote, _SyncApi

            api = _SyncApi(Remote(server.rstrip("/"), token or None))
            try:
                answer = api.call("POST", f"/commands/{plugin_id}.{method}",
                                  json={"args": kwargs})
            finally:
                api.close()
            result = answer.get("result") if isinstance(answer, dict) else answer
        else:
            from plughost.interfaces.cli._common import default_home

            base = home if home is not None else default_home()
            dirs = plugins_dir or [base / "plugins"]

            from plughost.interfaces.cli.config import stored_settings

            # What `plughost config set` recorded for the plugins in these folders.
            settings = stored_settings(home, folder_plugin_ids(dirs))

            async def once() -> Any:
                async with PluginHost(dirs, home=base, config=settings) as host:
                    report = await host.start()
                    if plugin_id not in {o.plugin_id for o in report.outcomes}:
                        raise PluginNotFound(
                            f"no plugin {plugin_id!r} in {', '.join(map(str, dirs))}; give "
                            "its folder with --plugins-dir", plugin_id=plugin_id)
                    return await host.call(plugin_id, method, **kwargs)

            result = run_async(once)
    # What the plugin returned, as it is: JSON, or in plain one line (text as it is, other
    # values as compact JSON); a table shows text as text.
    if fmt == "json" or (fmt == "table" and not isinstance(result, str)):
        print_json(result)
    elif fmt == "plain":
        text = result if isinstance(result, str) else json.dumps(
            result, separators=(",", ":"), default=str)
        sys.stdout.write(text + "\n")
    else:
        console.print(result, markup=False, highlight=False)


def reload(
    plugin_id: Annotated[str, typer.Argument(help="The plugin id.")],
    home: HomeOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hot reload a plugin from its files (development plugins too); on failure the running
    version keeps serving and the error is shown."""
    from plughost.interfaces.cli._backend import run_backend, target

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        result = run_backend(target(home, server, token),
                             lambda svc: svc.reload(plugin_id, actor="cli"))
    if fmt != "table":
        emit("reload", result.to_dict(), fmt)
        return
    console.print(f"[green]↻[/] reloaded [bold]{result.plugin_id}[/] {result.from_version} → "
                  f"{result.to_version} in {result.seconds * 1000:.0f} ms ({result.state})")


def register(app: typer.Typer) -> None:
    app.command("new")(new)
    app.command("dev")(dev)
    app.command("call")(call)
    app.command("reload")(reload)
