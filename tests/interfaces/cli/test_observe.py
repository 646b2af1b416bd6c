"""``plughost logs`` against the home's database and against a running server (with -f)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from tests.interfaces.http._server import SRC, ServerProcess, running_server

pytestmark = pytest.mark.timeout(180)

runner = CliRunner()

CHATTY = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    def activate(self, ctx):
        ctx.logger.info("chatty is ready")
        ctx.logger.warning("chatty has no disk quota")

    @command("say")
    def say(self, text):
        self.ctx.logger.error(text)
        return text
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    home = tmp_path / "home"
    plugin = home / "plugins" / "chatty"
    plugin.mkdir(parents=True)
    (plugin / "plugin.toml").write_text(
        'id = "chatty"\nname = "Chatty"\nversion = "1.0.0"\nentry = "main:Main"\n')
    (plugin / "main.py").write_text(textwrap.dedent(CHATTY))
    with running_server(home) as proc:
        yield proc, home
    assert proc.returncode == 0


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_logs_from_a_server_and_from_its_home_database_agree(
    server: tuple[ServerProcess, Path],
) -> None:
    proc, home = server
    r = httpx.post(f"{proc.base_url}/api/v1/commands/chatty.say", json={"args": {"text": "boom"}},
                   headers={"X-Request-ID": "cli-req-1"})
    assert r.status_code == 200, r.text
    remote = runner.invoke(build_app(), ["logs", "chatty", "--level", "warning", "--json",
                                         "--server", proc.base_url])
    assert remote.exit_code == 0, remote.output
    lines = json.loads(remote.stdout)["items"]
    assert [x["message"] for x in lines] == ["chatty has no disk quota", "boom"]
    assert lines[1]["time"].endswith("Z")
    assert lines[1]["correlation_id"] == "cli-req-1" and lines[1]["level"] == "error"
    # the server stored them: the local command reads the same lines from the database
    local = runner.invoke(build_app(), ["logs", "chatty", "--level", "warning", "--json",
                                        "--home", str(home)])
    assert local.exit_code == 0, local.output
    assert [x["message"] for x in json.loads(local.stdout)["items"]] == [
        x["message"] for x in lines]
    human = runner.invoke(build_app(), ["logs", "--grep", "BOOM", "--server", proc.base_url])
    assert human.exit_code == 0 and "chatty" in human.stdout and "boom" in human.stdout
    assert "cli-req-1" in human.stdout


def test_logs_refuses_a_bad_level_naming_the_valid_ones(tmp_path: Path) -> None:
    result = runner.invoke(build_app(), ["logs", "--level", "loud", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert "request.invalid" in result.output and "debug, info, warning" in result.output


def test_logs_follow_prints_new_lines_as_the_server_captures_them(
    server: tuple[ServerProcess, Path],
) -> None:
    proc, _ = server
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    follower = subprocess.Popen(
        [sys.executable, "-m", "plughost", "logs", "chatty", "-f", "--json", "--level", "error",
         "--server", proc.base_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        text=True)
    try:
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while time.monotonic() < deadline and "live line" not in seen:
            httpx.post(f"{proc.base_url}/api/v1/commands/chatty.say",
                       json={"args": {"text": "live line"}})
            assert follower.stdout is not None
            line = follower.stdout.readline()
            if line:
                seen.append(json.loads(line)["message"])
        assert "live line" in seen
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_alerts_and_health_from_a_server(server: tuple[ServerProcess, Path]) -> None:
    proc, home = server
    rules = runner.invoke(build_app(), ["alerts", "--rules", "--json", "--server",
                                        proc.base_url])
    assert rules.exit_code == 0, rules.output
    assert {r["name"] for r in json.loads(rules.stdout)["items"]} >= {"plugin-error-rate",
                                                                      "plugin-unhealthy"}
    active = runner.invoke(build_app(), ["alerts", "--json", "--server", proc.base_url])
    assert active.exit_code == 0 and json.loads(active.stdout)["items"] == []
    table = runner.invoke(build_app(), ["alerts", "--rules", "--server", proc.base_url],
                          env={"COLUMNS": "200"})
    assert "plugin-error-rate" in table.stdout and "default" in table.stdout
    history = runner.invoke(build_app(), ["alerts", "--history", "--json", "--home", str(home)])
    assert history.exit_code == 0 and json.loads(history.stdout)["items"] == []
    checked = runner.invoke(build_app(), ["health", "chatty", "--check", "--json", "--server",
                                          proc.base_url])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["items"][0]["status"] == "healthy"
    shown = runner.invoke(build_app(), ["health", "--server", proc.base_url],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "chatty" in shown.stdout and "healthy" in shown.stdout
    one = runner.invoke(build_app(), ["health", "chatty", "--json", "--server", proc.base_url])
    assert one.exit_code == 0, one.output
    assert [i["plugin_id"] for i in json.loads(one.stdout)["items"]] == ["chatty"]
    unknown = runner.invoke(build_app(), ["health", "nobody", "--server", proc.base_url])
    assert unknown.exit_code == 1 and "nobody" in unknown.output


def test_alerts_now_and_health_need_a_server(tmp_path: Path) -> None:
    for args in (["alerts"], ["health"]):
        result = runner.invoke(build_app(), [*args, "--home", str(tmp_path)])
        assert result.exit_code == 1
        assert "server.required" in result.output and "--server" in result.output
