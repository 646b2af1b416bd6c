"""`plughost new | dev | call`: generated folders really pass check and their own tests, the
dev loop reloads on save and survives a broken one, and call needs no prompt."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from plughost.interfaces.cli.devloop import parse_args, plugin_frames_first

SRC = Path(__file__).resolve().parents[3] / "src"
runner = CliRunner()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.parametrize("runtime", ["python", "process", "wasm"])
def test_new_plugin_passes_check_and_its_own_tests(tmp_path: Path, runtime: str) -> None:
    app = build_app()
    created = runner.invoke(app, ["new", "my-plugin", "--runtime", runtime, "--dir",
                                  str(tmp_path), "--json"], catch_exceptions=False)
    assert created.exit_code == 0, created.output
    folder = tmp_path / "my-plugin"
    files = set(json.loads(created.stdout)["files"])
    assert {"plugin.toml", "README.md", "tests/test_plugin.py"} <= files
    checked = runner.invoke(app, ["check", str(folder)], catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    # the generated test, run the way its README says, in its own folder (not our suite)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests"], cwd=folder, env=_env(), capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


def test_new_refuses_a_bad_id_and_an_existing_folder(tmp_path: Path) -> None:
    app = build_app()
    bad = runner.invoke(app, ["new", "Bad Name", "--dir", str(tmp_path)])
    assert bad.exit_code == 1 and "request.invalid" in bad.output
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    taken = runner.invoke(app, ["new", "taken", "--dir", str(tmp_path)])
    assert taken.exit_code == 1 and "not empty" in taken.output
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    wrong = runner.invoke(app, ["new", "x", "--runtime", "cobol", "--dir", str(tmp_path)])
    assert wrong.exit_code == 1 and "unknown runtime" in wrong.output


def test_call_runs_a_method_without_a_prompt(tmp_path: Path) -> None:
    app = build_app()
    plugins = tmp_path / "plugins"
    runner.invoke(app, ["new", "greeter", "--dir", str(plugins)], catch_exceptions=False)
    result = runner.invoke(app, ["call", "greeter", "greet", "--arg", "name=Ada", "-d",
                                 str(plugins), "--home", str(tmp_path / "home")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Hello, Ada!"
    missing = runner.invoke(app, ["call", "nobody", "greet", "-d", str(plugins), "--home",
                                  str(tmp_path / "home")])
    assert missing.exit_code == 1 and "plugin.not_found" in missing.output


def test_parse_args_decodes_json_values() -> None:
    assert parse_args(["n=3", "flag=true", "name=Ada", "xs=[1,2]"]) == {
        "n": 3, "flag": True, "name": "Ada", "xs": [1, 2]}


def test_plugin_frames_come_first(tmp_path: Path) -> None:
    code = tmp_path / "plug.py"
    code.write_text("def boom():\n    raise ValueError('x')\n")
    namespace: dict[str, object] = {}
    exec(compile(code.read_text(), str(code), "exec"), namespace)
    try:
        namespace["boom"]()  # type: ignore[operator]
    except ValueError as exc:
        lines = plugin_frames_first(exc, [tmp_path])
    assert lines[0].startswith(f"{code}:2 in boom")
    assert any("test_devloop.py" in line for line in lines[1:])


def _reader(stream: object) -> queue.Queue[str | None]:
    """The lines of ``stream`` as they come, then ``None`` at its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str | None], text: str, seen: list[str]) -> str:
    while True:
        line = lines.get(timeout=60)
        assert line is not None, f"the output ended before {text!r}:\n" + "".join(seen)
        seen.append(line)
        if text in line:
            return line


def _read_to_end(lines: queue.Queue[str | None], seen: list[str]) -> None:
    while (line := lines.get(timeout=60)) is not None:
        seen.append(line)


def _start_dev(folder: Path, home: Path) -> subprocess.Popen[str]:
    """`plughost dev FOLDER` with a short debounce, its output (stdout and stderr) piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "plughost", "dev", str(folder), "--debounce", "0.05",
         "--home", str(home)], env={**_env(), "COLUMNS": "200"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def test_dev_reloads_on_save_shows_logs_and_survives_a_broken_save(tmp_path: Path) -> None:
    app = build_app()
    runner.invoke(app, ["new", "greeter", "--dir", str(tmp_path)], catch_exceptions=False)
    folder = tmp_path / "greeter"
    proc = _start_dev(folder, tmp_path / "home")
    seen: list[str] = []
    try:
        lines = _reader(proc.stdout)
        _wait_for(lines, "watching", seen)
        assert any("greeter active" in line for line in seen), seen  # the plugin's own log
        code = (folder / "plugin.py").read_text()
        (folder / "plugin.py").write_text(code.replace('f"{self.greeting}, {name}!"',
                                                       'f"{self.greeting}, {name}!!"'))
        line = _wait_for(lines, "reloaded", seen)
        assert "greeter 0.1.0 → 0.1.0" in line and " ms " in line
        (folder / "plugin.py").write_text(code + "\ndef broken(:\n")
        _wait_for(lines, "reload of greeter failed", seen)
        detail = _wait_for(lines, "plugin.py", seen)
        assert "plugin.py" in detail  # the plugin's own file comes first
        # named as the file the author edits, not the build copy the host ran
        assert f"{folder}/plugin.py" in detail and "/builds/" not in detail, detail
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, "".join(seen)
        _read_to_end(lines, seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # each reload is told once, by the loop's own line (not again by the host's log record)
    assert sum("reloaded" in line or "reload of greeter" in line for line in seen) == 2, seen


def test_dev_serve_runs_a_watching_server_that_call_reaches(tmp_path: Path) -> None:
    app = build_app()
    plugins = tmp_path / "plugins"
    runner.invoke(app, ["new", "greeter", "--dir", str(plugins)], catch_exceptions=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plughost", "dev", str(plugins), "--serve", "--port", "0",
         "--debounce", "0.05", "--home", str(tmp_path / "home")], env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        lines = _reader(proc.stderr)
        line = _wait_for(lines, "listening on", seen)
        url = json.loads(line)["message"].split()[2]

        def call(name: str) -> str:
            result = runner.invoke(app, ["call", "greeter", "greet", "--arg", f"name={name}",
                                         "--server", url])
            assert result.exit_code == 0, result.output
            return result.stdout.strip()

        assert call("Ada") == "Hello, Ada!"
        code = (plugins / "greeter" / "plugin.py").read_text()
        (plugins / "greeter" / "plugin.py").write_text(
            code.replace('f"{self.greeting}, {name}!"', 'f"{self.greeting}, {name}?"'))
        _wait_for(lines, "reloaded", seen)
        assert call("Ada") == "Hello, Ada?"
        missing = runner.invoke(app, ["call", "nobody", "greet", "--server", url])
        assert missing.exit_code == 1 and "not" in missing.output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("runtime", "code", "comment", "message"), [
    ("python", "plugin.py", "\n# saved\n", "greeter active"),
    ("process", "main.js", "\n// saved\n", "greeter active"),
    ("wasm", "plugin.wat", "\n;; saved\n", "wasm plugin activated"),
])
def test_dev_prints_each_plugin_log_line_once(tmp_path: Path, runtime: str, code: str,
                                              comment: str, message: str) -> None:
    """The record each template logs at activation shows once per activation in the
    terminal, not a second time through the root log handler."""
    app = build_app()
    runner.invoke(app, ["new", "greeter", "--runtime", runtime, "--dir", str(tmp_path)],
                  catch_exceptions=False)
    folder = tmp_path / "greeter"
    proc = _start_dev(folder, tmp_path / "home")
    seen: list[str] = []
    try:
        lines = _reader(proc.stdout)
        _wait_for(lines, "watching", seen)
        with (folder / code).open("a") as fh:
            fh.write(comment)
        _wait_for(lines, "reloaded", seen)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, "".join(seen)
        _read_to_end(lines, seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logged = [line for line in seen  # not the "✓ greeter active" of its state
              if message in line and not line.startswith("✓")]
    assert len(logged) == 2, "".join(seen)  # the first activation's and the reload's
    assert all(f" greeter info: {message}" in line for line in logged), logged


def test_new_call_reload_and_nodes_take_output_json_and_plain(tmp_path: Path) -> None:
    """The author's commands and `nodes` take ``--output`` like every other command."""
    from tests.interfaces.cli.test_output import _check, _cut

    app = build_app()
    plugins, home = tmp_path / "plugins", str(tmp_path / "home")

    def run(*args: str, fmt: str, code: int = 0) -> str:
        result = runner.invoke(app, [*args, "--output", fmt], catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result.stdout

    made = json.loads(run("new", "greeter", "--dir", str(plugins), fmt="json"))
    _check("new_plugin", made, page=False)
    assert "plugin.toml" in made["files"]
    assert _cut(run("new", "other", "--dir", str(plugins), fmt="plain"),
                "new_plugin")[0][:2] == ["other", "python"]
    call = ("call", "greeter", "greet", "--arg", "name=Ada", "-d", str(plugins), "--home", home)
    assert run(*call, fmt="plain") == "Hello, Ada!\n"
    assert json.loads(run(*call, fmt="json")) == "Hello, Ada!"
    count = ("call", "greeter", "count", "-d", str(plugins), "--home", home)
    assert run(*count, fmt="plain").strip().isdigit()
    refused = json.loads(run("reload", "greeter", "--home", home, fmt="json", code=1))
    _check("error", refused, page=False)
    assert refused["error"]["code"] == "server.not_running"
    nodes = json.loads(run("nodes", "--home", home, fmt="json"))
    _check("node", nodes, page=True)
    assert run("nodes", "--home", home, fmt="plain") == ""


def test_call_runs_a_folder_plugin_with_the_config_set_for_it(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """`plughost config set ID ... -d DIR` is what `plughost call ID ... -d DIR` runs the
    plugin with (``${VAR}`` from the calling shell), on a plain home and on one with a
    database alike."""
    app = build_app()
    plugins = tmp_path / "plugins" / "greeter"
    plugins.mkdir(parents=True)
    (plugins / "plugin.toml").write_text(
        'id = "greeter"\nversion = "1.0.0"\nentry = "main:Main"\n'
        '[config.schema]\ntype = "object"\nrequired = ["greeting"]\n'
        '[config.schema.properties.greeting]\ntype = "string"\n')
    (plugins / "main.py").write_text(
        "from plughost.sdk import Plugin\n\nclass Main(Plugin):\n"
        "    def activate(self, ctx):\n        self.greeting = ctx.config['greeting']\n\n"
        "    def greet(self, name):\n        return f'{self.greeting}, {name}!'\n")
    monkeypatch.setenv("GREETING", "Hej")
    for home in (tmp_path / "plain-home", tmp_path / "db-home"):
        if home.name == "db-home":
            assert runner.invoke(app, ["db", "upgrade", "--home", str(home)]).exit_code == 0
        where = ["-d", str(plugins.parent), "--home", str(home)]
        unset = runner.invoke(app, ["call", "greeter", "greet", "--arg", "name=Ada", *where,
                                    "--output", "plain"])
        assert unset.exit_code == 1, unset.output  # nothing set yet: it needs its greeting
        done = runner.invoke(app, ["config", "set", "greeter", "greeting=${GREETING}", *where])
        assert done.exit_code == 0, done.output
        result = runner.invoke(app, ["call", "greeter", "greet", "--arg", "name=Ada", *where,
                                     "--output", "plain"])
        assert (result.exit_code, result.stdout) == (0, "Hej, Ada!\n"), (home, result.output)


def test_call_reads_the_settings_of_the_folders_plugins_alone(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """`call` and `dev` read the stored settings of the plugins in their folders, not of every
    plugin the home knows (10,000 installed ones cost three queries each)."""
    from plughost.storage.config_store import SQLiteConfigStore

    app = build_app()
    plugins = tmp_path / "plugins"
    assert runner.invoke(app, ["new", "greeter", "--dir", str(plugins)]).exit_code == 0
    home = tmp_path / "home"
    where = ["-d", str(plugins), "--home", str(home)]
    for other in ("alpha", "beta"):  # settings recorded for plugins not in the folder
        (plugins.parent / "others" / other).mkdir(parents=True)
        (plugins.parent / "others" / other / "plugin.toml").write_text(
            f'id = "{other}"\nversion = "1.0.0"\nentry = "main:Main"\n')
        (plugins.parent / "others" / other / "main.py").write_text(
            "from plughost.sdk import Plugin\n\nclass Main(Plugin):\n    pass\n")
        done = runner.invoke(app, ["config", "set", other, "x=1", "-d",
                                   str(plugins.parent / "others"), "--home", str(home)])
        assert done.exit_code == 0, done.output
    asked: list[str] = []
    latest = SQLiteConfigStore.latest
    monkeypatch.setattr(SQLiteConfigStore, "latest",
                        lambda self, pid: asked.append(pid) or latest(self, pid))
    result = runner.invoke(app, ["call", "greeter", "greet", "--arg", "name=Ada", *where,
                                 "--output", "plain"])
    assert (result.exit_code, result.stdout) == (0, "Hello, Ada!\n"), result.output
    assert asked == ["greeter"]
