"""Start-up reconciliation and live processes: a CLI next to a running server touches nothing the
server owns, and operations a killed server left behind are closed with the reason.

Real processes throughout: ``plughost serve`` in a subprocess receiving a real upload, the real
``plughost list`` CLI in another, and ``kill -9`` (or a crash point, which exits the same way:
no unwinding, no cleanup) at several moments of an install.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plughost.services.crash import CRASH_ENV
from tests.fixtures.databases import DatabaseServers, _wipe
from tests.interfaces.http._server import ServerProcess, running_server

SRC = Path(__file__).resolve().parents[2] / "src"

#: A plugin whose async activation waits for a file: the install stays in flight (upload
#: staged, operation running, plugin lock held) for as long as the test wants.
GATED = """
import asyncio
from pathlib import Path

from plughost.sdk import Plugin

GATE = Path({gate!r})


class Main(Plugin):
    async def activate(self, ctx):
        (GATE.parent / "activating").write_text("yes")
        for _ in range(1200):
            if GATE.exists():
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the test never opened the gate")

    def ping(self):
        return "pong"
"""


def _arcade_zip(folder: Path, gate: Path) -> tuple[Path, str]:
    """A plain zip plus Arcade's ``manifest`` part: the upload is unpacked and repacked in the
    server's staging area, so the staged files exist for the whole install."""
    folder.mkdir(parents=True, exist_ok=True)
    gate.parent.mkdir(parents=True, exist_ok=True)
    out = folder / "gated.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("main.py", GATED.format(gate=str(gate)))
    manifest = {"name": "gated", "version": "1.0.0", "entryPoint": "main:Main"}
    return out, json.dumps(manifest)


def _env(settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGHOST_")}
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env["PLUGHOST_HOME"] = str(settings.home)
    env["PLUGHOST_DATABASE_URL"] = settings.database_url
    env["PLUGHOST_OBJECT_STORE"] = settings.object_store
    return env


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path,
             db_servers: DatabaseServers) -> Iterator[Any]:
    from plughost.settings import HostSettings

    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    if request.param == "sqlite":
        yield HostSettings(home=home, require_signature="never")
        return
    url = db_servers.migrated("postgres")
    _wipe(url)
    yield HostSettings(home=home, require_signature="never", database_url=url)


class _Server:
    """``plughost serve`` on ``settings`` (its environment carries the database URL)."""

    def __init__(self, settings: Any, monkeypatch: pytest.MonkeyPatch,
                 crash: str | None = None) -> None:
        for key, value in _env(settings).items():
            monkeypatch.setenv(key, value)
        if crash is not None:
            monkeypatch.setenv(CRASH_ENV, crash)
        self.settings = settings

    def __enter__(self) -> ServerProcess:
        self._cm = running_server(self.settings.home)
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def _upload(server: ServerProcess, package: Path, manifest: str) -> dict[str, Any]:
    with package.open("rb") as fh:
        r = httpx.post(f"{server.base_url}/api/v1/plugins/install?async=true",
                       data={"source": "local", "manifest": manifest},
                       files={"file": (package.name, fh, "application/zip")}, timeout=60)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _operation(server: ServerProcess, op_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{server.base_url}/api/v1/operations/{op_id}", timeout=30).json())


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _staging(settings: Any) -> list[str]:
    return sorted(p.name for p in settings.staging_dir.iterdir()) \
        if settings.staging_dir.exists() else []


def _cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plughost", *args, "--home",
                           str(settings.home)], env=_env(settings), capture_output=True,
                          text=True, timeout=120)


# -- item: a local CLI next to a running server ---------------------------------------------------

def test_a_cli_next_to_a_server_leaves_its_staged_upload_and_operation_alone(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate" / "open"
    package, manifest = _arcade_zip(tmp_path / "pkg", gate)
    with _Server(settings, monkeypatch) as server:
        op = _upload(server, package, manifest)
        _wait_for(lambda: (gate.parent / "activating").exists(), "the activation to start")
        staged = _staging(settings)
        assert staged, "the upload is staged while the install is in flight"
        assert _operation(server, op["id"])["status"] == "running"

        listed = _cli(settings, "list", "--json")   # reconciles this home at start-up
        assert listed.returncode == 0, listed.stderr
        assert _staging(settings) == staged
        for name in staged:
            assert any((settings.staging_dir / name).rglob("*")), "its files are intact"
        assert _operation(server, op["id"])["status"] == "running"

        gate.write_text("open")
        done = _wait_for(lambda: (o := _operation(server, op["id"]))["status"] not in (
            "pending", "running") and o, "the install to finish")
        assert done["status"] == "succeeded", done
        detail = httpx.get(f"{server.base_url}/api/v1/plugins/gated", timeout=30).json()
        assert detail["state"] == "active"
        assert _staging(settings) == []
    assert server.returncode == 0
    assert not server.records() or all(
        "FileNotFoundError" not in json.dumps(r) for r in server.records())


# -- item: kill -9 during an operation ------------------------------------------------------------

def _reopen(settings: Any) -> tuple[Any, list[Any], list[str]]:
    """Open the home as the next start would (reconciling it); return the report, every
    operation, and the installed plugin ids."""
    import asyncio

    from plughost.services.manager import PluginService

    async def main() -> tuple[Any, list[Any], list[str]]:
        async with PluginService(settings, start=False) as svc:
            ops = svc.repository.list_operations(limit=100)
            return svc.reconcile_report, ops, [p.id for p in svc.installer.all_plugins()]

    return asyncio.run(main())


def _assert_closed_with_the_reason(ops: list[Any], op_id: str) -> Any:
    [op] = [o for o in ops if o.id == op_id]
    assert op.status == "failed", op
    assert op.error["code"] == "operation.interrupted"
    assert "stopped before it finished" in op.error["message"]
    assert op.finished_at is not None
    assert not [o for o in ops if o.status in ("pending", "running")]
    return op


def test_kill_9_while_the_install_is_in_flight_closes_the_operation_at_restart(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate" / "open"
    package, manifest = _arcade_zip(tmp_path / "pkg", gate)
    with _Server(settings, monkeypatch) as server:
        op = _upload(server, package, manifest)
        _wait_for(lambda: (gate.parent / "activating").exists(), "the activation to start")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(30)
    assert server.returncode == -signal.SIGKILL
    report, ops, installed = _reopen(settings)
    _assert_closed_with_the_reason(ops, op["id"])
    assert report.operations_failed == [op["id"]]
    assert installed == []                      # not committed: exactly as before
    assert _staging(settings) == []
    # A second start finds nothing left to do.
    again, _, _ = _reopen(settings)
    assert not again.changed


@pytest.mark.parametrize("settings,point,installed", [
    ("sqlite", "install.after_stage", False),
    ("sqlite", "install.after_blob", False),
    ("sqlite", "install.before_commit", False),
    ("sqlite", "install.after_commit", True),
    pytest.param("postgres", "install.after_commit", True, marks=pytest.mark.postgres),
], indirect=["settings"])
def test_a_server_killed_at_a_crash_point_leaves_no_operation_running(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str,
    installed: bool,
) -> None:
    gate = tmp_path / "gate" / "open"
    package, manifest = _arcade_zip(tmp_path / "pkg", gate)
    gate.write_text("open")  # activation does not wait
    with _Server(settings, monkeypatch, crash=point) as server:
        op = _upload(server, package, manifest)
        server.proc.wait(60)
    assert server.returncode == 99
    monkeypatch.delenv(CRASH_ENV)
    _, ops, ids = _reopen(settings)
    _assert_closed_with_the_reason(ops, op["id"])
    assert ids == (["gated"] if installed else [])
    assert _staging(settings) == []
