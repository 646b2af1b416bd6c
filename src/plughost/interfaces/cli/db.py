"""``plughost db``: apply and inspect database schema migrations."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from plughost.errors import PlughostError

__all__ = ["register"]

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL; default: PLUGHOST_DATABASE_URL or the settings' database_url.",
        show_default=False,
    ),
]


def _url(database_url: str | None) -> str:
    if database_url:
        return database_url
    from plughost.settings import HostSettings

    return HostSettings.from_env().database_url


def _fail(exc: PlughostError) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(
        f"[red]error[/red] [bold]{exc.code}[/bold]: {exc.message}", markup=True, highlight=False
    )
    return typer.Exit(1)


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
        revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    ) -> None:
        """Apply pending migrations (safe to run repeatedly and from several hosts at once)."""
        from plughost.storage import migrations

        console = Console(soft_wrap=True)
        try:
            url = _url(database_url)
            before = migrations.current(url)
            reached = migrations.upgrade(url, revision)
        except PlughostError as exc:
            raise _fail(exc) from None
        where = _hidden(url)
        if before == reached:
            console.print(f"{where} is already at revision {reached}.", highlight=False)
        else:
            console.print(f"Upgraded {where} from {before or '<empty>'} to {reached}.",
                          highlight=False)

    @db_app.command("current")
    def current_cmd(
        database_url: DatabaseUrlOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Show the database's schema revision and whether migrations are pending."""
        from plughost.storage import migrations

        try:
            url = _url(database_url)
            found = migrations.current(url)
            head = migrations.head()
        except PlughostError as exc:
            raise _fail(exc) from None
        data: dict[str, Any] = {
            "database": _hidden(url),
            "current": found,
            "head": head,
            "up_to_date": found == head,
        }
        if as_json:
            typer.echo(json.dumps(data))
            return
        state = "up to date" if found == head else "run `plughost db upgrade`"
        Console(soft_wrap=True).print(
            f"{data['database']}: revision {found or '<empty>'} (head {head}, {state})",
            highlight=False,
        )
