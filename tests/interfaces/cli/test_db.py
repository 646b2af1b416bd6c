"""``plughost db upgrade`` / ``plughost db current``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from plughost.interfaces.cli import COMMAND_MODULES
from plughost.interfaces.cli import db as db_cli
from plughost.storage import migrations


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    db_cli.register(app)
    return app


def test_db_is_a_registered_command_group_of_the_real_app() -> None:
    from plughost.interfaces.cli import build_app

    assert "db" in COMMAND_MODULES
    result = CliRunner().invoke(build_app(), ["db", "--help"])
    assert result.exit_code == 0 and "upgrade" in result.stdout and "current" in result.stdout


def test_upgrade_then_current_reports_head(app: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    result = runner.invoke(app, ["db", "current", "--database-url", url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "database": url, "current": None, "head": migrations.head(), "up_to_date": False,
    }
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"from <empty> to {migrations.head()}" in result.stdout
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url, "--json"])
    head = migrations.head()
    assert json.loads(result.stdout) == {"database": url, "from": head, "to": head,
                                         "current": head, "head": head, "up_to_date": True}
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert "already at revision" in result.stdout
    result = runner.invoke(app, ["db", "current", "--database-url", url])
    assert "up to date" in result.stdout


def test_upgrade_uses_the_home_from_the_environment(
    app: typer.Typer, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PLUGHOST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PLUGHOST_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "plughost.db").exists()
    assert migrations.current(f"sqlite:///{tmp_path / 'home' / 'plughost.db'}") == migrations.head()


def test_home_option_picks_the_database_in_that_home(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--home", str(tmp_path / "h2")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "h2" / "plughost.db").exists()


def test_errors_print_code_and_message_and_exit_1(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", "oracle://x/y"])
    assert result.exit_code == 1
    assert "settings.invalid" in result.stderr and "does not support" in result.stderr


def test_json_errors_are_json(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["db", "current", "--database-url", "oracle://x/y", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "settings.invalid"
