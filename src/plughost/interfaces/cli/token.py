"""``plughost token create | list | revoke``: API tokens for the management service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    print_json,
)

__all__ = ["register"]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _token_dict(t: Any) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "role": t.role, "created_at": _iso(t.created_at),
            "expires_at": _iso(t.expires_at), "last_used_at": _iso(t.last_used_at),
            "revoked_at": _iso(t.revoked_at)}


def _authority(home: Path | None) -> Any:
    from plughost.interfaces.cli.serve import settings_for
    from plughost.interfaces.tokens import TokenAuthority
    from plughost.storage.backends import open_storage

    storage = open_storage(settings_for(home))
    return storage, TokenAuthority(storage.repository)


def register(app: typer.Typer) -> None:
    """Add the ``token`` command group."""
    token_app = typer.Typer(help="API tokens: create (secret shown once), list, revoke.",
                            no_args_is_help=True)
    app.add_typer(token_app, name="token")

    @token_app.command("create")
    def create(
        role: Annotated[str, typer.Option(
            "--role", "-r", help="viewer (read), operator (+enable/disable/config) or admin "
                                 "(+install/update/uninstall/permissions/tokens).")],
        name: Annotated[str | None, typer.Option("--name", "-n",
                                                 help="A unique name (default: generated).",
                                                 show_default=False)] = None,
        expires_days: Annotated[int | None, typer.Option(
            "--expires-days", min=1, help="Expire after this many days.",
            show_default=False)] = None,
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Create a token and print its secret (shown once; only a hash is stored)."""
        with handle_errors(as_json=as_json):
            storage, authority = _authority(home)
            with storage:
                expires = timedelta(days=expires_days) if expires_days else None
                record, secret = authority.create(role, name, expires_in=expires)
                storage.repository.append_audit("token.create", actor="cli",
                                                details={"name": record.name,
                                                         "role": record.role})
            if as_json:
                print_json({**_token_dict(record), "secret": secret})
                return
            err_console.print(f"created token [bold]{record.name}[/] (role {record.role}); "
                              "its secret is shown once — store it now:")
            typer.echo(secret)

    @token_app.command("list")
    def list_(
        include_revoked: Annotated[bool, typer.Option("--all",
                                                      help="Include revoked tokens.")] = False,
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """List tokens (never their secrets)."""
        with handle_errors(as_json=as_json):
            storage, authority = _authority(home)
            with storage:
                tokens = authority.list(include_revoked=include_revoked)
            if as_json:
                print_json([_token_dict(t) for t in tokens])
                return
            table = Table(title=f"{len(tokens)} token(s)", title_justify="left")
            for column in ("name", "role", "created", "expires", "last used", "revoked"):
                table.add_column(column)
            for t in tokens:
                table.add_row(t.name, t.role, _iso(t.created_at) or "-",
                              _iso(t.expires_at) or "never", _iso(t.last_used_at) or "-",
                              _iso(t.revoked_at) or "-")
            console.print(table)

    @token_app.command("revoke")
    def revoke(
        name: Annotated[str, typer.Argument(help="The token's name.", metavar="NAME")],
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Revoke a token: requests with it are refused (within two seconds on a running
        server)."""
        with handle_errors(as_json=as_json):
            storage, authority = _authority(home)
            with storage:
                authority.revoke(name)
                storage.repository.append_audit("token.revoke", actor="cli",
                                                details={"name": name})
            if as_json:
                print_json({"revoked": name})
            else:
                console.print(f"revoked token {name}")
