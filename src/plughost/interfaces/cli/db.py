"""``plughost db``: apply and inspect database schema migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    console,
    handle_errors,
)
from plughost.interfaces.cli._output import OutputOption, emit, output_format

__all__ = ["register"]

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL (default: $PLUGHOST_DATABASE_URL, the settings file, or the SQLite "
        "database in the home).",
        show_default=False,
    ),
]


def _url(database_url: str | None, home: Path | None) -> str:
    if database_url:
        return database_url
    from plughost.settings import HostSettings

    if home is not None:
        return HostSettings.from_env({"PLUGHOST_HOME": str(home)}).database_url
    return HostSettings.from_env().database_url


def _hidden(url: str) -> str:
    from plughost.storage.db import normalize_database_url

    return normalize_database_url(url).render_as_string(hide_password=True)


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    db_app = typer.Typer(
        help="Database schema: upgrade to the latest version, show the current one.",
        no_args_is_help=True,
    )
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def upgrade_cmd(
        database_url: DatabaseUrlOption = None,
        home: HomeOption = None,
        revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
        output: OutputOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Apply pending migrations (safe to repeat, and to run from several hosts at once)."""
        from plughost.storage import migrations

        fmt = output_format(output, as_json)
        with handle_errors(as_json=fmt == "json"):
            url = _url(database_url, home)
            where = _hidden(url)
            before = migrations.current(url)
            reached = migrations.upgrade(url, revision)
            head = migrations.head()
        if fmt != "table":
            emit("schema_revision", {"database": where, "from": before, "to": reached,
                                     "current": reached, "head": head,
                                     "up_to_date": reached == head}, fmt)
        elif before == reached:
            console.print(f"{where} is already at revision {reached}.")
        else:
            console.print(f"Upgraded {where} from {before or '<empty>'} to {reached}.")

    @db_app.command("current")
    def current_cmd(
        database_url: DatabaseUrlOption = None,
        home: HomeOption = None,
        output: OutputOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Show the database's schema revision and whether migrations are pending."""
        from plughost.storage import migrations

        fmt = output_format(output, as_json)
        with handle_errors(as_json=fmt == "json"):
            url = _url(database_url, home)
            found = migrations.current(url)
            head = migrations.head()
        data: dict[str, Any] = {
            "database": _hidden(url),
            "current": found,
            "head": head,
            "up_to_date": found == head,
        }
        if fmt != "table":
            emit("schema_revision", data, fmt)
            return
        state = "up to date" if found == head else "run `plughost db upgrade`"
        console.print(f"{data['database']}: revision {found or '<empty>'} (head {head}, {state})")
