from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plughost.errors import ConfigurationError
from plughost.interfaces.cli import build_app
from plughost.interfaces.cli.config import parse_assignments
from tests.conftest import EXAMPLES

runner = CliRunner()
SECRET = "https://hooks.slack.example/T0/SECRETVALUE"


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = build_app()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(
            app, [*args, "--home", str(tmp_path / "home"), "--plugins-dir", str(EXAMPLES)]
        )

    return invoke


def test_set_get_history_restore_reset_round_trip(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("config", "set", "notify-slack", f"webhook_url={SECRET}", "channel=#ops")
    assert result.exit_code == 0, result.output
    assert "version 1" in result.output
    result = cli("config", "get", "notify-slack", "--json")
    data = json.loads(result.stdout)
    assert data["config"] == {"webhook_url": "***", "channel": "#ops"}
    assert data["version"] == 1
    assert cli("config", "set", "notify-slack", "channel=#dev").exit_code == 0
    assert cli("config", "restore", "notify-slack", "1").exit_code == 0
    assert (
        json.loads(cli("config", "get", "notify-slack", "--json").stdout)["config"]["channel"]
        == "#ops"
    )
    # The defaults lack the required webhook_url, so a reset is refused and changes nothing.
    result = cli("config", "reset", "notify-slack")
    assert result.exit_code == 1 and "'webhook_url' is a required property" in result.output
    history = json.loads(cli("config", "history", "notify-slack", "--json").stdout)["items"]
    assert [h["action"] for h in history] == ["set", "set", "restore 1"]
    table = cli("config", "history", "notify-slack")
    assert table.exit_code == 0
    everything = "".join(
        cli(*args).output
        for args in [
            ("config", "get", "notify-slack"),
            ("config", "get", "notify-slack", "--json"),
            ("config", "history", "notify-slack"),
            ("config", "history", "notify-slack", "--json"),
        ]
    )
    assert SECRET not in everything and "SECRETVALUE" not in table.output


def test_invalid_value_is_refused_with_its_path_and_changes_nothing(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("config", "set", "notify-slack", f"webhook_url={SECRET}").exit_code == 0
    result = cli("config", "set", "notify-slack", "channel=5")
    assert result.exit_code == 1
    assert "config.invalid" in result.output and "$.channel" in result.output
    assert json.loads(cli("config", "get", "notify-slack", "--json").stdout)["version"] == 1


def test_set_from_a_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = tmp_path / "s.toml"
    settings.write_text(f'webhook_url = "{SECRET}"\nchannel = "#file"\n')
    assert cli("config", "set", "notify-slack", "--file", str(settings)).exit_code == 0
    assert (
        json.loads(cli("config", "get", "notify-slack", "--json").stdout)["config"]["channel"]
        == "#file"
    )


def test_unknown_plugin_and_bad_version_are_clear_errors(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("config", "get", "no-such-plugin")
    assert result.exit_code == 1 and "plugin.not_found" in result.output
    result = cli("config", "restore", "notify-slack", "7")
    assert result.exit_code == 1 and "config.version" in result.output


def test_parse_assignments_nests_and_parses_json() -> None:
    assert parse_assignments(["a.b=1", "a.c=true", "s=#x", "n=null"]) == {
        "a": {"b": 1, "c": True},
        "s": "#x",
        "n": None,
    }
    with pytest.raises(ConfigurationError, match="KEY=VALUE"):
        parse_assignments(["novalue"])


@pytest.mark.redis
def test_config_commands_work_on_a_redis_store(tmp_path: Path) -> None:
    import uuid

    import redis

    from plughost.services.config import ConfigManager
    from plughost.storage.config_store import open_config_store

    prefix = f"plughost-test-{uuid.uuid4().hex}:"
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    app = build_app()
    args = ["--home", str(tmp_path), "--plugins-dir", str(EXAMPLES), "--store", url]
    try:
        result = runner.invoke(
            app, ["config", "set", "notify-slack", f"webhook_url={SECRET}", *args]
        )
        assert result.exit_code == 0, result.output
        manager = ConfigManager(open_config_store(url), environ={})
        assert manager.get("notify-slack", redact=False)["webhook_url"] == SECRET
        manager.close()
        shown = runner.invoke(app, ["config", "get", "notify-slack", "--json", *args])
        assert json.loads(shown.stdout)["config"]["webhook_url"] == "***"
    finally:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
