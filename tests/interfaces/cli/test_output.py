"""Every command, driven as a script would: ``--output json`` validated against the resource
schema of its kind (plughost.services.resources), and ``--output plain`` piped through ``cut``
with the documented number of tab-separated columns on every line."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from plughost.interfaces.cli._output import COLUMNS
from plughost.services.resources import SCHEMAS, page_schema

runner = CliRunner()
pytestmark = pytest.mark.timeout(300)  # one long real scenario: every command, twice

CODE = """
from plughost.sdk import Plugin

class Main(Plugin):
    def ping(self):
        return "pong"
"""
CONFIG = """
[config.schema]
type = "object"
[config.schema.properties.greeting]
type = "string"
"""


def _check(kind: str, data: Any, *, page: bool) -> None:
    schema = page_schema(kind) if page else SCHEMAS[kind]
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(data)


def _cut(plain: str, kind: str) -> list[list[str]]:
    """``plain`` piped through ``cut -f1-``: every line must have the kind's columns."""
    piped = subprocess.run(["cut", "-f", f"1-{len(COLUMNS[kind])}"], input=plain, text=True,
                           capture_output=True, check=True).stdout
    rows = [line.split("\t") for line in piped.splitlines()]
    assert piped == plain, "plain output has more fields than its kind's columns"
    assert all(len(r) == len(COLUMNS[kind]) for r in rows), rows
    return rows


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("PLUGHOST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PLUGHOST_OUTPUT", raising=False)
    monkeypatch.chdir(tmp_path)
    app: typer.Typer = build_app()

    def run(*args: object, kind: str, page: bool = False, plain: bool = False,
            code: int = 0) -> Any:
        fmt = "plain" if plain else "json"
        result = runner.invoke(app, [*map(str, args), "--output", fmt])
        assert result.exit_code == code, (args, result.output)
        if plain:
            return _cut(result.stdout, kind)
        data = json.loads(result.stdout)
        _check(kind, data, page=page)
        return data

    return run


def _source(tmp_path: Path, version: str) -> Path:
    src = tmp_path / "src" / version
    src.mkdir(parents=True)
    (src / "plugin.toml").write_text(
        f'id = "hello"\nversion = "{version}"\nentry = "main:Main"\n'
        'permissions = ["net:api.example.com"]\n' + CONFIG)
    (src / "main.py").write_text(textwrap.dedent(CODE))
    return src


def test_every_command_prints_its_documented_shape(cli: Callable[..., Any],
                                                   tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    # packages and signatures
    assert cli("keygen", "--out", keys, "--name", "pub", kind="key")["key_id"]
    other = cli("keygen", "--out", keys, "--name", "other", kind="key", plain=True)[0][0]
    cli("trust", "add", keys / "pub.pub", "--name", "publisher", kind="key")
    cli("trust", "add", keys / "other.pub", "--name", "other", kind="key", plain=True)
    assert cli("trust", "list", kind="key", page=True)["total"] == 2
    assert len(cli("trust", "list", kind="key", plain=True)) == 2
    assert cli("trust", "revoke", other, kind="key")["revoked_at"].endswith("Z")
    src1, src2 = _source(tmp_path, "1.0.0"), _source(tmp_path, "1.1.0")
    assert cli("check", src1, kind="validation")["valid"] is True
    assert cli("check", src1, kind="validation", plain=True) == [["true", ""]]
    dist = tmp_path / "dist"
    dist.mkdir()
    v1 = Path(cli("pack", src1, "-o", dist, kind="package")["path"])
    v2 = Path(cli("pack", src2, "-o", dist, kind="package", plain=True)[0][5])
    cli("sign", v1, "--key", keys / "pub.key", kind="package")
    cli("sign", v2, "--key", keys / "pub.key", kind="package", plain=True)
    assert cli("verify", v1, kind="package")["trusted"] is True
    assert cli("verify", v2, kind="package", plain=True)[0][:2] == ["hello", "1.1.0"]

    # install and the plugin commands
    installed = cli("install", v1, kind="plugin")
    # No server runs on this home: recorded, not run (a server's answers: test_remote.py).
    assert (installed["state"], installed["live"], installed["pluginId"],
            installed["isEnabled"]) == ("installed", False, "hello", 1)
    assert cli("list", kind="plugin", page=True)["items"][0]["id"] == "hello"
    assert cli("list", kind="plugin", plain=True)[0][:3] == ["hello", "1.0.0",
                                                             "enabled (not running)"]
    assert cli("info", "hello", kind="plugin")["signed"] is True
    cli("info", "hello", kind="plugin", plain=True)
    cli("status", kind="plugin", page=True)
    cli("status", kind="plugin", plain=True)
    cli("status", "hello", kind="plugin")
    cli("status", "hello", kind="plugin", plain=True)
    assert cli("update", "hello", v2, kind="plugin")["to_version"] == "1.1.0"
    assert [r[1] for r in cli("versions", "hello", kind="version", plain=True)] == [
        "1.1.0", "1.0.0"]
    assert cli("versions", "hello", kind="version", page=True)["total"] == 2
    assert cli("rollback", "hello", kind="plugin")["version"] == "1.0.0"
    assert cli("rollback", "hello", kind="plugin", plain=True)[0][1] == "1.1.0"
    for command in ("disable", "enable"):
        cli(command, "hello", kind="plugin")
        cli(command, "hello", kind="plugin", plain=True)
    for command in ("deactivate", "activate"):  # nothing runs here to switch
        refused = cli(command, "hello", kind="error", code=1)
        assert refused["error"]["code"] == "server.not_running"

    # config and permissions
    assert cli("config", "set", "hello", "greeting=hi", kind="config")["config"] == {
        "greeting": "hi"}
    cli("config", "set", "hello", "greeting=hey", kind="config", plain=True)
    cli("config", "get", "hello", kind="config")
    cli("config", "get", "hello", kind="config", plain=True)
    history = cli("config", "history", "hello", kind="config_change", page=True)
    assert history["items"][0]["time"].endswith("Z")
    cli("config", "history", "hello", kind="config_change", plain=True)
    cli("config", "restore", "hello", "1", kind="config")
    cli("config", "restore", "hello", "1", kind="config", plain=True)
    cli("config", "reset", "hello", kind="config")
    cli("config", "reset", "hello", kind="config", plain=True)
    assert cli("perms", "hello", kind="permission")["granted"] == ["net:api.example.com"]
    cli("perms", "hello", kind="permission", plain=True)
    cli("perms", "grant", "hello", "fs:read:/srv", kind="permission")
    cli("perms", "revoke", "hello", "fs:read:/srv", kind="permission", plain=True)
    audit = cli("audit", "--plugin", "hello", kind="audit_entry", page=True)
    assert {e["kind"] for e in audit["items"]} == {"operation", "security"}
    assert cli("audit", "--kind", "security", kind="audit_entry", plain=True)[0][2] == "security"
    first = cli("audit", "--limit", "2", kind="audit_entry", page=True)
    more = cli("audit", "--limit", "2", "--cursor", first["next_cursor"], kind="audit_entry",
               page=True)
    assert first["items"][-1]["id"] > more["items"][0]["id"]

    # observation from the home's database
    cli("logs", kind="log_line", page=True)
    cli("logs", kind="log_line", plain=True)
    cli("alerts", "--history", kind="alert", page=True)
    cli("alerts", "--history", kind="alert", plain=True)

    # the service's own records
    token = cli("token", "create", "--role", "viewer", "--name", "ci", kind="token")
    assert token["secret"].startswith("ph_")
    cli("token", "list", kind="token", page=True)
    assert cli("token", "list", kind="token", plain=True)[0][1] == "ci"
    cli("token", "revoke", "ci", kind="token")
    cli("db", "current", kind="schema_revision")
    cli("db", "current", kind="schema_revision", plain=True)
    cli("db", "upgrade", kind="schema_revision")
    cli("db", "upgrade", kind="schema_revision", plain=True)

    # errors: one shape, plugin_id in one place
    error = cli("info", "nope", kind="error", code=1)
    assert error["error"]["code"] == "plugin.not_found"
    assert error["error"]["plugin_id"] == "nope" and "plugin_id" not in error["error"]["details"]

    # uninstall last
    removed = cli("uninstall", "hello", kind="removal", page=True)
    assert [r["plugin_id"] for r in removed["items"]] == ["hello"]
    assert cli("list", kind="plugin", page=True) == {"items": [], "next_cursor": None,
                                                     "total": 0}
    assert cli("list", kind="plugin", plain=True) == []


def test_piped_output_defaults_to_plain_and_json_flag_is_an_alias(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLUGHOST_OUTPUT", raising=False)
    examples = Path(__file__).resolve().parents[3] / "examples"
    app = build_app()
    piped = runner.invoke(app, ["list", "-d", str(examples)])
    rows = _cut(piped.stdout, "plugin")
    assert "chat-filter-links" in [r[0] for r in rows]  # whole ids, never split
    assert "\x1b[" not in piped.stdout
    as_json = json.loads(runner.invoke(app, ["list", "-d", str(examples), "--json"]).stdout)
    _check("plugin", as_json, page=True)
    bad = runner.invoke(app, ["list", "-d", str(examples), "--output", "yaml"])
    assert bad.exit_code == 2 and "table, json or plain" in bad.output
