"""The ``plughost`` command line (Typer + Rich).

Each command group lives in its own module exposing ``register(app)``; :data:`COMMAND_MODULES`
lists them in the order their commands appear in ``--help``.

Starting fast is part of the interface. The command modules import only Typer and the standard
library at their top, and everything else (Rich, the services, the database, asyncio) inside the
command that needs it; the root group (:mod:`._group`) builds a command's parameters only when
that command runs. ``tests/interfaces/cli/test_app.py`` checks what ``--help`` imports. Help is
plain Click help (``rich_markup_mode=None``): Typer's Rich help imports Rich's Markdown,
traceback and syntax highlighting, several times the cost of all the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

__all__ = ["COMMAND_MODULES", "build_app", "main"]

COMMAND_MODULES: list[str] = [
    "plugins",
    "packaging",
    "db",
    "manage",
    "config",
    "perms",
    "observe",
    "serve",
    "cluster",
    "token",
    "market",
    "devloop",
]


def _version_callback(value: bool) -> None:
    if value:
        import typer

        from plughost._version import __version__

        typer.echo(f"plughost {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """Build the Typer application with every command group registered."""
    try:
        import rich  # noqa: F401  (the CLI's tables and progress bars)
        import typer
    except ImportError as exc:  # exercised by tests/interfaces/cli/test_app.py in a child
        from plughost.errors import ExtraNotInstalled

        raise ExtraNotInstalled("The plughost command line", "cli", exc.name or "typer") \
            from None
    from plughost.interfaces.cli._group import lazy_group

    catalogue = typer.Typer()  # where the modules register; the app's group converts lazily
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(catalogue)
    app = typer.Typer(
        name="plughost",
        help="plughost: discover, check, install and run plugins; serve the management API.",
        no_args_is_help=True,
        add_completion=True,
        rich_markup_mode=None,
        cls=lazy_group(catalogue),
    )

    @app.callback()
    def root(
        version: bool = typer.Option(False, "--version", help="Print the plughost version.",
                                     callback=_version_callback, is_eager=True),
    ) -> None:
        """plughost: discover, check, install and run plugins; serve the management API."""

    return app


def main() -> None:
    """Console-script entry point: the one logging setup (colours on a terminal, JSON
    otherwise; ``$PLUGHOST_LOG_FORMAT``), then the command. Without the ``cli`` extra it says
    which one line to run instead of a traceback."""
    import sys

    from plughost.errors import ExtraNotInstalled

    try:
        app = build_app()
    except ExtraNotInstalled as exc:
        sys.stderr.write(f"error {exc.code}: {exc.message}\n")
        raise SystemExit(1) from None
    from plughost.observability.console import configure_logging

    try:
        configure_logging("warning")
    except ValueError as exc:  # a bad $PLUGHOST_LOG_FORMAT
        raise SystemExit(f"error settings.invalid: PLUGHOST_LOG_FORMAT: {exc}") from None
    app()
