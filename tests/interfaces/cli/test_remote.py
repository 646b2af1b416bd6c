"""Management commands with --server/--token go through the HTTP API with the same output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from plughost.security.package import pack
from tests.interfaces.http._server import ServerProcess, running_server

pytestmark = pytest.mark.timeout(180)

runner = CliRunner()
LIVE = ("state", "stats", "updated_at", "updateTime", "warnings", "error")


@pytest.fixture
def server(tmp_path: Path,
           request: pytest.FixtureRequest) -> Iterator[tuple[ServerProcess, Path, str]]:
    """A real server on a home accepting unsigned packages (or the ``require_signature`` a
    test names with ``indirect=True``), and an admin token."""
    home = tmp_path / "home"
    home.mkdir()
    policy = getattr(request, "param", "never")
    (home / "plughost.toml").write_text(f'require_signature = "{policy}"\n')
    app = build_app()
    made = runner.invoke(app, ["token", "create", "--role", "admin", "--name", "cli",
                               "--home", str(home), "--json"])
    assert made.exit_code == 0, made.output
    secret = json.loads(made.stdout)["secret"]
    with running_server(home) as proc:
        yield proc, home, secret
    assert proc.returncode == 0


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(build_app(), list(args), env=env)


def _package(tmp_path: Path, write_plugin: Any, pid: str, version: str) -> Path:
    folder = write_plugin(pid, version, directory=tmp_path / "src" / f"{pid}-{version}",
                          type="notify")
    out = tmp_path / "pkgs"
    out.mkdir(exist_ok=True)
    return pack(folder, out)


def _stable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _stable(v) for k, v in data.items() if k not in LIVE}
    if isinstance(data, list):
        return [_stable(v) for v in data]
    return data


def test_remote_commands_match_local_output(
    server: tuple[ServerProcess, Path, str], tmp_path: Path, write_plugin: Any
) -> None:
    proc, home, secret = server
    remote = ("--server", proc.base_url, "--token", secret)
    v1 = _package(tmp_path, write_plugin, "remote-demo", "1.0.0")
    v2 = _package(tmp_path, write_plugin, "remote-demo", "1.1.0")

    done = _cli("install", str(v1), *remote)
    assert done.exit_code == 0, done.output
    assert "installed remote-demo 1.0.0 (active)" in done.stdout

    local = _cli("info", "remote-demo", "--json", "--home", str(home))
    remote_info = _cli("info", "remote-demo", "--json", *remote)
    assert remote_info.exit_code == 0, remote_info.output
    assert _stable(json.loads(remote_info.stdout)) == _stable(json.loads(local.stdout))

    listed = _cli("list", "--json", *remote)
    assert [p["id"] for p in json.loads(listed.stdout)["items"]] == ["remote-demo"]
    assert _stable(json.loads(listed.stdout)) == _stable(
        json.loads(_cli("list", "--json", "--home", str(home)).stdout))

    done = _cli("update", "remote-demo", str(v2), *remote)
    assert done.exit_code == 0, done.output
    assert "updated remote-demo 1.0.0 → 1.1.0" in done.stdout
    versions = _cli("versions", "remote-demo", "--json", *remote)
    assert versions.stdout == _cli("versions", "remote-demo", "--json",
                                   "--home", str(home)).stdout
    done = _cli("rollback", "remote-demo", "--to", "1.0.0", *remote)
    assert done.exit_code == 0 and "rolled back remote-demo 1.1.0 → 1.0.0" in done.stdout

    done = _cli("disable", "remote-demo", *remote)
    assert "disabled remote-demo 1.0.0 (disabled)" in done.stdout
    done = _cli("enable", "remote-demo", *remote)
    assert "enabled remote-demo 1.0.0 (active)" in done.stdout
    status = _cli("status", *remote)
    assert status.exit_code == 0 and "1 installed plugin(s) (active: 1)" in status.stdout

    done = _cli("uninstall", "remote-demo", *remote)
    assert done.exit_code == 0 and "uninstalled remote-demo" in done.stdout


@pytest.mark.parametrize("server", ["unless-allowlisted"], indirect=True)
def test_remote_install_and_update_allow_unsigned(
    server: tuple[ServerProcess, Path, str], tmp_path: Path, write_plugin: Any
) -> None:
    """``--allow-unsigned`` reaches the server for install and update alike."""
    proc, _, secret = server
    remote = ("--server", proc.base_url, "--token", secret, "--json")
    v1 = _package(tmp_path, write_plugin, "own", "1.0.0")
    v2 = _package(tmp_path, write_plugin, "own", "1.1.0")
    refused = _cli("install", str(v1), *remote)
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["code"] == "signature.missing"
    done = _cli("install", str(v1), "--allow-unsigned", *remote)
    assert done.exit_code == 0, done.output
    refused = _cli("update", "own", str(v2), *remote)
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["code"] == "signature.missing"
    done = _cli("update", "own", str(v2), "--allow-unsigned", *remote)
    assert done.exit_code == 0, done.output
    item = json.loads(done.stdout)
    assert (item["version"], item["signed"], item["state"]) == ("1.1.0", False, "active")


def test_remote_errors_print_like_local_ones(
    server: tuple[ServerProcess, Path, str],
) -> None:
    proc, home, secret = server
    remote = _cli("info", "missing", "--server", proc.base_url, "--token", secret)
    local = _cli("info", "missing", "--home", str(home))
    assert remote.exit_code == local.exit_code == 1
    assert "plugin.not_found" in remote.stderr
    assert remote.stderr == local.stderr


def test_environment_variables_select_the_server_and_token(
    server: tuple[ServerProcess, Path, str],
) -> None:
    proc, _, secret = server
    env = {"PLUGHOST_SERVER": proc.base_url, "PLUGHOST_TOKEN": secret}
    done = _cli("list", "--json", env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["items"] == []
    denied = _cli("list", env={"PLUGHOST_SERVER": proc.base_url, "PLUGHOST_TOKEN": "ph_wrong"})
    assert denied.exit_code == 1
    assert "auth.invalid" in denied.stderr


def test_unreachable_server_is_a_clear_error() -> None:
    done = _cli("list", "--server", "http://127.0.0.1:9")
    assert done.exit_code == 1
    assert "server.unreachable" in done.stderr and "plughost serve" in done.stderr


CONFIG = """
[config.schema]
type = "object"
[config.schema.properties.channel]
type = "string"
[config.schema.properties.token]
type = "string"
x-secret = true
[config.defaults]
channel = "#general"
"""


def test_remote_config_and_perms_match_local_output(
    server: tuple[ServerProcess, Path, str], tmp_path: Path, write_plugin: Any
) -> None:
    proc, home, secret = server
    remote = ("--server", proc.base_url, "--token", secret)
    folder = write_plugin("tuned", "1.0.0", directory=tmp_path / "src" / "tuned", extra=CONFIG,
                          permissions=["net:api.example.com"])
    (tmp_path / "pkgs").mkdir(exist_ok=True)
    assert _cli("install", str(pack(folder, tmp_path / "pkgs")), *remote).exit_code == 0

    done = _cli("config", "set", "tuned", "channel=#ops", "token=s3cr3t", *remote)
    assert done.exit_code == 0, done.output
    match = re.search(r"tuned config is now version (\d+) \(set\)", done.stdout)
    assert match, done.stdout
    version = int(match.group(1))
    remote_get = json.loads(_cli("config", "get", "tuned", "--json", *remote).stdout)
    local_get = json.loads(_cli("config", "get", "tuned", "--json", "--home", str(home)).stdout)
    assert remote_get == local_get
    assert remote_get["config"] == {"channel": "#ops", "token": "***"}
    history = _cli("config", "history", "tuned", "--json", *remote)
    assert history.stdout == _cli("config", "history", "tuned", "--json",
                                  "--home", str(home)).stdout
    assert "s3cr3t" not in history.stdout
    done = _cli("config", "restore", "tuned", str(version), *remote)
    assert done.exit_code == 0, done.output
    assert f"config is now version {version + 1} (restore {version})" in done.stdout

    done = _cli("perms", "grant", "tuned", "fs:read:/srv/data", *remote)
    assert done.exit_code == 0, done.output
    assert "tuned: fs:read:/srv/data granted" in done.stdout
    shown = json.loads(_cli("perms", "tuned", "--json", *remote).stdout)
    assert shown == json.loads(_cli("perms", "tuned", "--json", "--home", str(home)).stdout)
    assert "fs:read:/srv/data" in shown["granted"]
    denied = _cli("perms", "revoke", "tuned", "fs:read:/nowhere", *remote)
    assert denied.exit_code == 1
    local = _cli("perms", "revoke", "tuned", "fs:read:/nowhere", "--home", str(home))
    assert denied.stderr == local.stderr


def test_remote_audit_matches_local(
    server: tuple[ServerProcess, Path, str], tmp_path: Path, write_plugin: Any
) -> None:
    proc, home, secret = server
    remote = ("--server", proc.base_url, "--token", secret)
    folder = write_plugin("audited", "1.0.0", directory=tmp_path / "src" / "audited")
    (tmp_path / "pkgs").mkdir(exist_ok=True)
    assert _cli("install", str(pack(folder, tmp_path / "pkgs")), *remote).exit_code == 0
    assert _cli("perms", "grant", "audited", "net:api.example.com", "--reason", "webhooks",
                *remote).exit_code == 0
    remote_audit = _cli("audit", "--plugin", "audited", "--json", *remote)
    assert remote_audit.exit_code == 0, remote_audit.output
    local_audit = _cli("audit", "--plugin", "audited", "--json", "--home", str(home))
    assert json.loads(remote_audit.stdout) == json.loads(local_audit.stdout)
    events = json.loads(remote_audit.stdout)["items"]
    assert any(e["action"] == "permission.grant" and e["details"]["reason"] == "webhooks"
               for e in events)
    assert any(e["action"] == "plugin.install" and e["kind"] == "operation" for e in events)
    table = _cli("audit", "--plugin", "audited", *remote)
    assert table.stdout == _cli("audit", "--plugin", "audited", "--home", str(home)).stdout


def test_remote_install_reports_upload_progress_and_draws_it_on_a_terminal_only(
    server: tuple[ServerProcess, Path, str], tmp_path: Path, write_plugin: Any
) -> None:
    import asyncio

    from plughost.interfaces.cli._backend import Remote, RemoteBackend

    proc, _home, secret = server
    first = _package(tmp_path, write_plugin, "upload-one", "1.0.0")
    seen: list[tuple[str, int, int | None]] = []

    async def install() -> Any:
        async with RemoteBackend(Remote(proc.base_url, secret)) as backend:
            return await backend.install(first, progress=lambda *a: seen.append(a))

    assert asyncio.run(install()).plugin_id == "upload-one"
    size = first.stat().st_size
    assert seen and seen[-1] == ("upload", size, size)
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)

    remote = ("--server", proc.base_url, "--token", secret)
    piped = _cli("install", str(_package(tmp_path, write_plugin, "upload-two", "1.0.0")),
                 *remote)
    assert piped.exit_code == 0, piped.output
    assert "upload" not in piped.stderr
    # Rich draws on a terminal; TTY_COMPATIBLE=1 tells it the real command's stderr is one.
    third = _package(tmp_path, write_plugin, "upload-three", "1.0.0")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src"),
           "TTY_COMPATIBLE": "1", "TERM": "xterm"}
    drawn = subprocess.run([sys.executable, "-m", "plughost", "install", str(third), *remote],
                           capture_output=True, text=True, env=env, timeout=120)
    assert drawn.returncode == 0, drawn.stderr
    assert "upload" in drawn.stderr and f"{third.stat().st_size} bytes" in drawn.stderr
    assert "installed" in drawn.stdout and "upload-three" in drawn.stdout


def test_nodes_in_every_format_locally_and_through_the_server(
    server: tuple[ServerProcess, Path, str],
) -> None:
    from tests.interfaces.cli.test_output import _check, _cut

    proc, home, secret = server
    local = _cli("nodes", "--home", str(home), "--output", "json")
    remote = _cli("nodes", "--server", proc.base_url, "--token", secret, "--output", "json")
    for result in (local, remote):
        assert result.exit_code == 0, result.output
        _check("node", json.loads(result.stdout), page=True)
    item = json.loads(remote.stdout)["items"][0]
    assert item["status"] == "up" and item["heartbeat_at"].endswith("Z")
    rows = _cut(_cli("nodes", "--home", str(home), "--output", "plain").stdout, "node")
    assert [r[1] for r in rows] == ["up"]


def test_nodes_of_one_plugin_show_its_state_alone_and_refuse_one_not_installed(
    server: tuple[ServerProcess, Path, str], tmp_path: Path, write_plugin: Any
) -> None:
    import time

    proc, home, secret = server
    remote = ("--server", proc.base_url, "--token", secret)
    for pid in ("where-a", "where-b"):
        done = _cli("install", str(_package(tmp_path, write_plugin, pid, "1.0.0")), *remote)
        assert done.exit_code == 0, done.output

    def one(*where: str) -> list[Any]:
        result = _cli("nodes", "--plugin", "where-b", *where, "--output", "json")
        assert result.exit_code == 0, result.output
        return [n["plugins"] for n in json.loads(result.stdout)["items"]]

    deadline = time.monotonic() + 30  # the node writes its plugins' states with its heartbeat
    while one(*remote) != [[{"id": "where-b", "state": "active"}]]:
        assert time.monotonic() < deadline, one(*remote)
        time.sleep(0.2)
    assert one("--home", str(home)) == one(*remote)
    every = _cli("nodes", *remote, "--output", "json")
    assert {p["id"] for p in json.loads(every.stdout)["items"][0]["plugins"]} == {
        "where-a", "where-b"}
    for where in (remote, ("--home", str(home))):
        refused = _cli("nodes", "--plugin", "nowhere", *where)
        assert refused.exit_code != 0
        assert "nowhere" in refused.output and "not installed" in refused.output


def test_remote_metrics_among_some_ids_are_the_servers_entries_of_those_it_has(
    server: tuple[ServerProcess, Path, str], tmp_path: Path, write_plugin: Any
) -> None:
    import asyncio

    from plughost.interfaces.cli._backend import Remote, RemoteBackend

    proc, _home, secret = server

    async def ask() -> tuple[Any, Any, Any]:
        async with RemoteBackend(Remote(proc.base_url, secret)) as backend:
            await backend.install(_package(tmp_path, write_plugin, "counted-among", "1.0.0"))
            one = await backend.metrics("counted-among")
            among = await backend.metrics(among=["counted-among", "nobody-here"])
            every = await backend.metrics()
            return one, among, every

    one, among, every = asyncio.run(ask())
    assert among == one == {"counted-among": every["counted-among"]}
