"""The server advertised in its home: local commands go through it, never act as the host;
server files that cannot be trusted (stale, symbolic links, open permissions) are ignored."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from plughost.interfaces.cli import _homeserver, build_app
from plughost.security.package import pack
from tests.interfaces.http._server import running_server

pytestmark = pytest.mark.timeout(180)

runner = CliRunner()

# Records the process that imports and activates it: the server's, never the CLI's.
CODE = """
import os
from plughost.sdk import Plugin

MARKS = {marks!r}
with open(MARKS, "a") as fh:
    fh.write(f"import {{os.getpid()}}\\n")

class Main(Plugin):
    def activate(self, ctx):
        with open(MARKS, "a") as fh:
            fh.write(f"activate {{os.getpid()}}\\n")
"""


def _cli(*args: object) -> Any:
    return runner.invoke(build_app(), [str(a) for a in args])


def _marks(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(w, int(p)) for w, p in (line.split() for line in path.read_text().splitlines())]


def _notes(home: Path) -> tuple[Any, list[str]]:
    notes: list[str] = []
    return _homeserver.find(home, notes.append, timeout=1.0), notes


# ------------------------------------------------------------------------- real flows


def test_local_commands_go_through_the_server_running_on_the_home(
    tmp_path: Path, write_plugin: Any
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    marks = tmp_path / "marks.txt"
    folder = write_plugin("pidmark", directory=tmp_path / "src", code=CODE.format(marks=str(marks)))
    package = pack(folder, tmp_path)

    # No server: the install is recorded and checked; no plugin code runs in the CLI.
    done = _cli("install", package, "--home", home)
    assert done.exit_code == 0, done.output
    assert "installed pidmark 1.0.0 (enabled (not running))" in done.stdout
    assert "it will be activated when the server starts" in done.stdout
    assert _marks(marks) == []

    with running_server(home) as server:
        pid = server.proc.pid
        advertised = list((home / "run").glob("server-*.json"))
        assert [p.name for p in advertised] == [f"server-{pid}.json"]
        assert stat.S_IMODE(advertised[0].stat().st_mode) == 0o600
        assert stat.S_IMODE((home / "run").stat().st_mode) == 0o700
        assert json.loads(advertised[0].read_text())["url"] == server.base_url
        assert _marks(marks) == [("import", pid), ("activate", pid)]  # the server ran it

        api = httpx.Client(base_url=f"{server.base_url}/api/v1", timeout=30)
        done = _cli("disable", "pidmark", "--home", home)
        assert done.exit_code == 0, done.output
        assert "disabled pidmark 1.0.0 (disabled)" in done.stdout
        assert api.get("/plugins/pidmark").json()["state"] == "disabled"
        done = _cli("enable", "pidmark", "--home", home)
        assert done.exit_code == 0, done.output
        assert "enabled pidmark 1.0.0 (active)" in done.stdout
        shown = api.get("/plugins/pidmark").json()
        assert (shown["state"], shown["live"]) == ("active", True)
        for command, state in (("deactivate", "deactivated"), ("activate", "active"),
                               ("reload", "active")):
            done = _cli(command, "pidmark", "--home", home)
            assert done.exit_code == 0, (command, done.output)
            assert api.get("/plugins/pidmark").json()["state"] == state

        local = _cli("list", "--json", "--home", home)
        remote = _cli("list", "--json", "--server", server.base_url)
        assert local.exit_code == 0, local.output
        assert local.stdout == remote.stdout  # one code path: the server's answer
        assert _cli("status", "--home", home).stdout == _cli(
            "status", "--server", server.base_url).stdout
        audit = json.loads(_cli("audit", "--plugin", "pidmark", "--action", "plugin.enable",
                                "--json", "--home", home).stdout)["items"]
        assert [e["actor"] for e in audit] == [f"token:{_homeserver.LOCAL_PRINCIPAL}"]

        # Every import and activation happened in the server, none in this (CLI) process.
        assert {p for _, p in _marks(marks)} == {pid}
        assert len(_marks(marks)) > 2  # enabled again: activated again, by the server
        api.close()
    assert server.returncode == 0
    assert list((home / "run").glob("*")) == []  # a clean stop withdraws the file

    status = _cli("status", "--home", home)
    assert f"no server is running on {home}" in status.stdout
    assert "pidmark" in _cli("list", "--home", home).stdout
    listing = json.loads(_cli("list", "--json", "--home", home).stdout)["items"]
    assert [(p["state"], p["live"]) for p in listing] == [("installed", False)]
    assert {p for _, p in _marks(marks)} == {pid}


# ------------------------------------------------------------------------- server files


def _advertise(home: Path, url: str = "http://127.0.0.1:9", **kwargs: Any) -> Any:
    return _homeserver.advertise(home, url=url, node="n1", token=_homeserver.new_token(),
                                 started_at="2026-12-03T21:00:00Z", **kwargs)


def test_a_stale_server_file_is_reported_removed_and_ignored(tmp_path: Path) -> None:
    written = _advertise(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = written.path.with_name(f"server-{gone.stdout.strip()}.json")
    data = json.loads(written.path.read_text())
    written.path.rename(dead)
    data["pid"] = int(gone.stdout)
    dead.write_text(json.dumps(data))
    # The CLI says so, and goes on as on a home where no server runs.
    done = _cli("status", "--home", tmp_path)
    assert "stale server file" in done.stderr and f"process {gone.stdout.strip()}" in done.stderr
    assert f"no server is running on {tmp_path}" in done.stdout
    assert not dead.exists()
    found, notes = _notes(tmp_path)
    assert found is None and notes == []


def test_a_live_process_that_does_not_answer_is_ignored_not_removed(tmp_path: Path) -> None:
    written = _advertise(tmp_path)  # this process, at a port nothing listens on
    found, notes = _notes(tmp_path)
    assert found is None
    assert len(notes) == 1 and "no server that wrote it answers at http://127.0.0.1:9" in notes[0]
    assert written.path.exists()
    _homeserver.withdraw(written)
    assert not written.path.exists()


def test_a_server_file_readable_by_others_is_not_trusted(tmp_path: Path) -> None:
    written = _advertise(tmp_path)
    written.path.chmod(0o644)
    found, notes = _notes(tmp_path)
    assert found is None
    assert len(notes) == 1 and "mode 0644" in notes[0] and "0600" in notes[0]


def test_a_server_file_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    # Another user (here: nobody) planting a server file, or owning the run directory, to
    # lead this user's commands to its own server. Changing owners needs root: CI runs as root.
    assert os.getuid() == 0, "this test plants files as another user; run the suite as root"
    nobody = 65534
    written = _advertise(tmp_path)
    os.chown(written.path, nobody, -1)
    found, notes = _notes(tmp_path)
    assert found is None
    assert len(notes) == 1 and f"another user (uid {nobody}, not 0)" in notes[0]
    assert written.path.exists()  # not ours to remove
    os.chown(written.path, 0, -1)
    os.chown(written.path.parent, nobody, -1)
    found, notes = _notes(tmp_path)
    assert found is None and "another user" in notes[0]


def test_a_symbolic_link_is_never_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    elsewhere.chmod(0o600)
    run = tmp_path / "home" / "run"
    run.mkdir(parents=True, mode=0o700)
    (run / "server-1.json").symlink_to(elsewhere)
    found, notes = _notes(tmp_path / "home")
    assert found is None
    assert len(notes) == 1 and "symbolic link" in notes[0]
    # Advertising replaces a planted link; the file it pointed to is left alone.
    link = run / f"server-{os.getpid()}.json"
    link.symlink_to(elsewhere)
    written = _advertise(tmp_path / "home")
    assert not written.path.is_symlink() and elsewhere.read_text() == "{}"
    assert stat.S_IMODE(written.path.stat().st_mode) == 0o600


def test_a_run_directory_that_is_a_link_or_open_to_others_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    home = tmp_path / "home"
    home.mkdir()
    (home / "run").symlink_to(target)
    with pytest.raises(_homeserver.UnsafeServerFile, match="symbolic link"):
        _advertise(home)
    found, notes = _notes(home)
    assert found is None and "symbolic link" in notes[0]
    (home / "run").unlink()
    (home / "run").mkdir()
    (home / "run").chmod(0o777)
    with pytest.raises(_homeserver.UnsafeServerFile, match="mode 0777"):
        _advertise(home)
    assert list(target.iterdir()) == [] and list((home / "run").iterdir()) == []
