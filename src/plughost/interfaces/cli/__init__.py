"""The ``plughost`` command line (Typer + Rich).

Each command group lives in its own module exposing ``register(app)``; :data:`COMMAND_MODULES`
lists them in the order their commands appear in ``--help``.
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
    "token",
    "devloop",
]


def build_app() -> typer.Typer:
    """Build the Typer application with every command group registered."""
    try:
        import typer
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        from plughost.errors import ExtraNotInstalled

        raise ExtraNotInstalled("The plughost CLI", "cli", "typer") from exc

    app = typer.Typer(
        name="plughost",
        help="plughost: discover, check, install and run plugins; serve the management API.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode="rich",
    )
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(app)
    return app


def main() -> None:
    """Console-script entry point: the one logging setup (colours on a terminal, JSON
    otherwise; ``$PLUGHOST_LOG_FORMAT``), then the command."""
    from plughost.observability.console import configure_logging

    try:
        configure_logging("warning")
    except ValueError as exc:  # a bad $PLUGHOST_LOG_FORMAT
        raise SystemExit(f"error settings.invalid: PLUGHOST_LOG_FORMAT: {exc}") from None
    build_app()()
