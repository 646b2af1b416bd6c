"""plughost token create | list | revoke."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from plughost.interfaces.cli.serve import is_loopback
from plughost.settings import HostSettings
from plughost.storage.backends import open_storage
from plughost.storage.repository import hash_token

runner = CliRunner()


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(build_app(), list(args))


def test_create_prints_the_secret_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    done = _run("token", "create", "--role", "operator", "--name", "deploy",
                "--home", str(tmp_path))
    assert done.exit_code == 0, done.output
    secret = done.stdout.strip()
    assert secret.startswith("ph_")
    assert "shown once" in done.stderr
    with open_storage(HostSettings(home=tmp_path)) as storage:
        [token] = storage.repository.list_tokens()
        assert (token.name, token.role) == ("deploy", "operator")
        assert storage.repository.verify_token(secret) is not None
    db = (tmp_path / "plughost.db").read_bytes()
    assert secret.encode() not in db and hash_token(secret).encode() in db
    piped = _run("token", "create", "--role", "viewer", "--name", "ci", "--output", "plain",
                 "--home", str(tmp_path))
    assert piped.stdout.strip().startswith("ph_") and "\n" not in piped.stdout.strip()
    listed = _run("token", "list", "--json", "--home", str(tmp_path))
    assert [t["name"] for t in json.loads(listed.stdout)["items"]] == ["ci", "deploy"]
    assert secret not in listed.stdout


def test_unknown_role_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    done = _run("token", "create", "--role", "root", "--home", str(tmp_path))
    assert done.exit_code == 1
    assert "unknown role 'root'" in done.stderr and "viewer, operator, admin" in done.stderr
    assert _run("token", "create", "--role", "admin", "--name", "x",
                "--home", str(tmp_path)).exit_code == 0
    again = _run("token", "create", "--role", "admin", "--name", "x", "--home", str(tmp_path))
    assert again.exit_code == 1 and "storage.exists" in again.stderr


def test_revoke(tmp_path: Path) -> None:
    assert _run("token", "create", "--role", "viewer", "--name", "old",
                "--home", str(tmp_path)).exit_code == 0
    done = _run("token", "revoke", "old", "--home", str(tmp_path))
    assert done.exit_code == 0 and "revoked token old" in done.stdout
    assert json.loads(_run("token", "list", "--json", "--home", str(tmp_path)).stdout
                      )["items"] == []
    assert len(json.loads(_run("token", "list", "--all", "--json",
                               "--home", str(tmp_path)).stdout)["items"]) == 1
    again = _run("token", "revoke", "old", "--home", str(tmp_path))
    assert again.exit_code == 1 and "token.not_found" in again.stderr


def test_loopback_detection() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.5", "example.com")))
