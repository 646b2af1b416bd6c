from __future__ import annotations

import sys
from pathlib import Path

import pytest

from plughost.errors import PluginLoadError
from plughost.runtimes.process.launch import (
    ProcessOptions,
    build_argv,
    child_env,
    declares_network,
)

from .conftest import make_manifest


def test_module_class_entry_runs_the_python_runner_with_the_hosts_interpreter(tmp_path) -> None:
    argv, python_child = build_argv("pkg.mod:Plugin", tmp_path, ProcessOptions())
    assert python_child
    assert argv[0] == sys.executable and argv[1] == "-S"
    assert "main(['pkg.mod:Plugin'])" in argv[-1]


def test_command_line_entry_is_split_like_a_shell_but_never_run_by_one(tmp_path) -> None:
    argv, python_child = build_argv("python worker.py --name 'a b'", tmp_path, ProcessOptions())
    assert not python_child
    assert argv == [sys.executable, "worker.py", "--name", "a b"]


def test_relative_program_is_resolved_in_the_plugin_folder(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "plugin").write_text("#!/bin/sh\n")
    argv, _ = build_argv("./bin/plugin --x", tmp_path, ProcessOptions())
    assert argv == [str(tmp_path / "bin" / "plugin"), "--x"]
    with pytest.raises(PluginLoadError, match="not found in"):
        build_argv("./bin/missing", tmp_path, ProcessOptions())


@pytest.mark.parametrize("entry", ["", "node 'unterminated"])
def test_bad_entries_are_load_errors_that_say_why(tmp_path, entry: str) -> None:
    with pytest.raises(PluginLoadError):
        build_argv(entry, tmp_path, ProcessOptions())


def test_child_environment_does_not_leak_host_secrets(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = child_env(ProcessOptions(), "demo", "tok", python_child=False)
    assert "DATABASE_URL" not in env
    assert env["LANG"] == "C.UTF-8"
    assert env["PLUGHOST_PLUGIN_ID"] == "demo" and env["PLUGHOST_TOKEN"] == "tok"
    assert "PYTHONPATH" not in env
    assert "PYTHONPATH" in child_env(ProcessOptions(), "demo", "tok", python_child=True)


def test_only_a_declared_net_permission_keeps_direct_network() -> None:
    assert not declares_network(make_manifest("a", "m:C"))
    assert declares_network(make_manifest("a", "m:C", permissions=["net:api.example.com:443"]))
    assert not declares_network(make_manifest("a", "m:C", permissions=["events:emit:x.y"]))
