"""The ``plughost`` application: what ``--help`` costs (by what it imports, not by a clock), and
the root group that builds a command only when it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app

SRC = Path(__file__).resolve().parents[3] / "src"

#: What printing help must never import: the server, the event loop, the database, the
#: services and the host, Rich's Markdown and syntax highlighting (Typer's Rich help).
FORBIDDEN = ("asyncio", "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "httpx",
             "rich.markdown", "rich.console", "pygments", "plughost.services", "plughost.host",
             "plughost.storage", "plughost.core.manifest")
#: Typer (0.2x) checks every parameter it parses with a pydantic TypeAdapter, and pydantic
#: looks up its plugins with importlib.metadata: the root ``--help`` parses none.
FORBIDDEN_AT_ROOT = (*FORBIDDEN, "pydantic", "importlib.metadata")


def _imported_by(*args: str) -> set[str]:
    """The modules a real ``python -m plughost ARGS`` run has imported when it exits."""
    probe = ("import atexit, json, runpy, sys\n"
             "atexit.register(lambda: sys.__stderr__.write('MODULES ' + json.dumps("
             "sorted(sys.modules)) + '\\n'))\n"
             "sys.argv = ['plughost', *sys.argv[1:]]\n"
             "runpy.run_module('plughost', run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout or "Usage:" in done.stdout
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def test_help_imports_no_server_database_event_loop_or_rich_markdown() -> None:
    for args in (["--help"], ["list", "--help"], ["install", "--help"]):
        modules = _imported_by(*args)
        forbidden = FORBIDDEN_AT_ROOT if args == ["--help"] else FORBIDDEN
        leaked = sorted(m for m in modules
                        if any(m == f or m.startswith(f + ".") for f in forbidden))
        assert leaked == [], f"plughost {' '.join(args)} imported {leaked}"


def test_help_lists_every_command_without_building_any() -> None:
    app = build_app()
    group = typer.main.get_command(app)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    names = list(group.commands)  # type: ignore[attr-defined]
    assert {"list", "install", "serve", "config", "db", "token", "market"} <= set(names)
    for name in names:
        assert f"  {name} " in result.stdout, name
    assert group.commands._built == {}  # type: ignore[attr-defined]


def test_each_command_is_built_on_first_use_exactly_as_typer_builds_it() -> None:
    app = build_app()
    group = typer.main.get_command(app)
    ctx = group.make_context("plughost", ["list"])
    listed = group.list_commands(ctx)  # type: ignore[attr-defined]
    for name in listed:
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None and command.name == name
        assert group.get_command(ctx, name) is command  # built once  # type: ignore[attr-defined]
    # The one-line help in the list is the command's own short help.
    short = {n: group.get_command(ctx, n).get_short_help_str(200)  # type: ignore[attr-defined]
             for n in listed}
    out = CliRunner().invoke(app, ["--help"], terminal_width=400).stdout
    for name, text in short.items():
        assert f"{name}  " in out and text[:40] in out, name
    assert group.get_command(ctx, "no-such-command") is None  # type: ignore[attr-defined]


def test_a_mistyped_command_suggests_the_right_one() -> None:
    result = CliRunner().invoke(build_app(), ["lst"])
    assert result.exit_code == 2
    assert "No such command 'lst'" in result.output and "'list'" in result.output


def test_version_completion_and_a_missing_cli_extra() -> None:
    """`--version`, shell completion in the help, and one clean line naming the `cli` extra
    (no traceback) when the command line's packages are not installed."""
    from plughost._version import __version__

    app = build_app()
    assert CliRunner().invoke(app, ["--version"]).stdout == f"plughost {__version__}\n"
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).stdout
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    probe = ("import sys; sys.modules['typer'] = None; sys.argv = ['plughost', 'list']\n"
             "from plughost.interfaces.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 1
    assert done.stderr == ("error extra.missing: The plughost command line needs the 'typer' "
                           "package, which is not installed. Install it with: "
                           "pip install 'plughost[cli]'\n")
