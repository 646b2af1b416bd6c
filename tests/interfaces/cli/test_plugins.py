from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from tests.conftest import EXAMPLES, WritePlugin

runner = CliRunner()


@pytest.fixture
def app():  # type: ignore[no-untyped-def]
    return build_app()


def invoke(app, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_every_command(app) -> None:  # type: ignore[no-untyped-def]
    result = invoke(app, "--help")
    assert result.exit_code == 0
    for command in ("list", "info", "status", "check"):
        assert command in result.output
    for command in ("list", "info", "status", "check"):
        sub = invoke(app, command, "--help")
        assert sub.exit_code == 0, command
        assert "Usage" in sub.output


def test_list_shows_examples_and_filters_by_type(app) -> None:  # type: ignore[no-untyped-def]
    result = invoke(app, "list", "--plugins-dir", str(EXAMPLES), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ids = [p["id"] for p in data["items"]]
    assert {"hello", "notify-slack", "music-local", "lyrics-lrc"} <= set(ids)
    assert {p["state"] for p in data["items"]} == {"resolved"}
    notify = invoke(app, "list", "-d", str(EXAMPLES), "--type", "notify", "--json")
    assert [p["id"] for p in json.loads(notify.stdout)["items"]] == ["notify-slack"]
    python = invoke(app, "list", "-d", str(EXAMPLES), "--runtime", "python", "--json")
    shown = json.loads(python.stdout)["items"]
    assert shown and {p["runtime"] for p in shown} == {"python"}
    assert json.loads(python.stdout)["total"] == len(shown)
    none = invoke(app, "list", "-d", str(EXAMPLES), "--source", "market", "--json")
    assert json.loads(none.stdout)["items"] == []
    table = invoke(app, "list", "-d", str(EXAMPLES))
    assert "hello" in table.output and "music-source" in table.output


def test_list_refuses_unknown_state(app) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["list", "-d", str(EXAMPLES), "--state", "sleeping"])
    assert result.exit_code == 2
    assert "unknown state" in result.output


def test_info_shows_dependencies_dependents_and_trust_note(app) -> None:  # type: ignore[no-untyped-def]
    result = invoke(app, "info", "music-local", "-d", str(EXAMPLES), "--json")
    data = json.loads(result.stdout)
    assert data["dependents"] == ["lyrics-lrc"]
    assert "trusted code" in data["enforcement"]
    text = invoke(app, "info", "lyrics-lrc", "-d", str(EXAMPLES))
    assert "music-local ^1.0" in text.output


def test_info_unknown_plugin_exits_1_with_code(app) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["info", "nope", "-d", str(EXAMPLES)])
    assert result.exit_code == 1
    assert "plugin.not_found" in result.output


def test_status_activates_and_reports_failures_with_hints(
    app, write_plugin: WritePlugin, plugins_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    write_plugin("fine")
    write_plugin("broken", code="raise RuntimeError('kaput')\n")
    result = runner.invoke(app, ["status", "-d", str(plugins_dir), "--activate"])
    assert result.exit_code == 1
    assert "broken" in result.output and "kaput" in result.output and "hint" in result.output
    assert "trial start in this process" in result.output  # not a host that keeps running
    one = runner.invoke(app, ["status", "fine", "-d", str(plugins_dir), "--activate", "--json"])
    assert one.exit_code == 0
    assert json.loads(one.stdout)["state"] == "active"


def test_status_says_how_a_process_plugin_is_confined(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    escapee = Path(__file__).parents[2] / "runtimes" / "process" / "plugins" / "escapee"
    shutil.copytree(escapee, tmp_path / "escapee")
    result = invoke(app, "status", "escapee", "-d", str(tmp_path), "--activate")
    assert result.exit_code == 0, result.output
    assert "confinement: cgroup+landlock+seccomp" in result.output


def test_check_valid_plugin_exits_0(app) -> None:  # type: ignore[no-untyped-def]
    for name in ("hello", "notify-slack", "music-local", "lyrics-lrc"):
        result = invoke(app, "check", str(EXAMPLES / name))
        assert result.exit_code == 0, result.output
        assert "valid plugin" in result.output


def test_check_lists_every_problem_and_exits_1(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plugin.toml").write_text(
        'id = "Bad Id"\nversion = "1.0"\nentry = "nope"\ncolour = "red"\n'
    )
    result = runner.invoke(app, ["check", str(bad), "--json"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    paths = {p["path"] for p in problems}
    assert {"id", "version", "colour"} <= paths
    text = runner.invoke(app, ["check", str(bad)])
    assert "problem(s)" in text.output


def test_check_missing_path(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["check", str(tmp_path / "absent")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_python_dash_m_plughost_runs(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[3] / "src"
    out = subprocess.run(
        [sys.executable, "-m", "plughost", "check", str(EXAMPLES / "hello")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)}, timeout=60,
    )
    assert out.returncode == 0, out.stderr
