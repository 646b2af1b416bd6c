from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plughost.errors import ConfigurationError
from plughost.interfaces.cli import build_app
from plughost.interfaces.cli.perms import parse_since
from plughost.security.permissions import PermissionManager

runner = CliRunner()


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = build_app()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, [*args, "--home", str(tmp_path)])

    return invoke


def test_grant_show_revoke_and_audit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("perms", "grant", "p", "net:api.example.com:443", "--reason", "album art")
    assert result.exit_code == 0, result.output
    assert cli("perms", "grant", "p", "!fs:read:/etc").exit_code == 0
    shown = json.loads(cli("perms", "p", "--json").stdout)
    assert shown["granted"] == ["net:api.example.com:443", "!fs:read:/etc"]
    assert "trusted code" in shown["note"]
    assert "deny rule" in cli("perms", "p").output
    assert cli("perms", "revoke", "p", "net:api.example.com:443").exit_code == 0
    with PermissionManager(tmp_path / "security.db") as m:
        assert not m.allowed("p", "net", "api.example.com:443")
    events = json.loads(cli("audit", "--plugin", "p", "--json").stdout)["items"]
    assert [(e["action"], e["actor"], e["kind"]) for e in events] == [
        ("permission.revoke", "cli", "security"),
        ("permission.grant", "cli", "security"),
        ("permission.grant", "cli", "security"),
    ]
    assert events[-1]["details"]["reason"] == "album art"
    assert "revoke" in cli("audit", "--since", "1h").output


def test_bad_scope_and_revoke_of_ungranted_scope_fail_cleanly(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("perms", "grant", "p", "fs:read:relative")
    assert result.exit_code == 1 and "permission.scope" in result.output
    result = cli("perms", "revoke", "p", "storage:x")
    assert result.exit_code == 1 and "operation.refused" in result.output


def test_requests_are_listed_and_approved(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with PermissionManager(tmp_path / "security.db") as m:
        req = m.request("p", "storage:shared", "share the cache")
    assert "share the cache" in cli("perms", "p").output
    assert cli("perms", "approve", str(req.id)).exit_code == 0
    with PermissionManager(tmp_path / "security.db") as m:
        assert m.allowed("p", "storage", "shared")


def test_audit_filters_by_severity_and_kind(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with PermissionManager(tmp_path / "security.db") as m:
        m.audit.record("p", "check", "net", target="10.0.0.1:80", decision="deny", severity="error")
        m.audit.record("q", "check", "storage", target="x", decision="deny", severity="warning")
    rows = json.loads(cli("audit", "--severity", "error", "--json").stdout)["items"]
    assert [r["plugin_id"] for r in rows] == ["p"]
    rows = json.loads(cli("audit", "--kind", "security", "--outcome", "denied", "--json"
                          ).stdout)["items"]
    assert [r["plugin_id"] for r in rows] == ["q", "p"]
    assert json.loads(cli("audit", "--kind", "operation", "--json").stdout)["items"] == []
    assert cli("audit", "--severity", "loud").exit_code == 1
    assert cli("audit", "--kind", "storage").exit_code == 1
    assert cli("audit", "--since", "yesterday-ish").exit_code == 1


def test_parse_since() -> None:
    assert parse_since("10m", now=1000.0) == 400.0
    assert parse_since("2026-01-01T00:00:00") == 1767225600.0
    with pytest.raises(ConfigurationError):
        parse_since("soon")
