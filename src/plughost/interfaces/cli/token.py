"""``plughost token create | list | revoke``: API tokens for the management service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    OutputOption,
    console,
    err_console,
    handle_errors,
    print_json,
)
from plughost.interfaces.cli._output import emit, emit_page, output_format

__all__ = ["register"]


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
        output: OutputOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Create a token and print its secret (shown once; only a hash is stored)."""
        from plughost.services import resources

        fmt = output_format(output, as_json)
        with handle_errors(as_json=fmt == "json"):
            storage, authority = _authority(home)
            with storage:
                expires = timedelta(days=expires_days) if expires_days else None
                record, secret = authority.create(role, name, expires_in=expires)
                storage.repository.append_audit("token.create", actor="cli",
                                                details={"name": record.name,
                                                         "role": record.role})
            if fmt == "json":
                print_json({**resources.token(record), "secret": secret})
                return
            if fmt == "plain":  # the secret alone, so `$(plughost token create ...)` works
                typer.echo(secret)
                return
            err_console.print(f"created token [bold]{record.name}[/] (role {record.role}); "
                              "its secret is shown once — store it now:")
            typer.echo(secret)

    @token_app.command("list")
    def list_(
        include_revoked: Annotated[bool, typer.Option("--all",
                                                      help="Include revoked tokens.")] = False,
        home: HomeOption = None,
        output: OutputOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """List tokens (never their secrets)."""
        from plughost.services import resources

        fmt = output_format(output, as_json)
        with handle_errors(as_json=fmt == "json"):
            storage, authority = _authority(home)
            with storage:
                tokens = authority.list(include_revoked=include_revoked)
        emit_page("token", [resources.token(t) for t in tokens], fmt, total=len(tokens),
                  title=f"{len(tokens)} token(s)", empty="no tokens")

    @token_app.command("revoke")
    def revoke(
        name: Annotated[str, typer.Argument(help="The token's name.", metavar="NAME")],
        home: HomeOption = None,
        output: OutputOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Revoke a token: requests with it are refused (within two seconds on a running
        server)."""
        from plughost.services import resources

        fmt = output_format(output, as_json)
        with handle_errors(as_json=fmt == "json"):
            storage, authority = _authority(home)
            with storage:
                authority.revoke(name)
                storage.repository.append_audit("token.revoke", actor="cli",
                                                details={"name": name})
                revoked = next(t for t in authority.list(include_revoked=True)
                               if t.name == name)
        emit("token", resources.token(revoked), fmt,
             human=lambda: console.print(f"revoked token {name}"))
