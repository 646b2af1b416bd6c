"""Shared CLI plumbing: consoles, the home directory option, JSON output, error exits."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar, cast

import typer

from plughost.interfaces.cli._output import JsonOption, OutputOption, print_json

if TYPE_CHECKING:
    from rich.console import Console

    from plughost.errors import PlughostError

__all__ = [
    "HomeOption",
    "JsonOption",
    "OutputOption",
    "console",
    "default_home",
    "err_console",
    "escape",
    "exit_with",
    "handle_errors",
    "print_json",
    "rich_console",
]

T = TypeVar("T")



class _LazyConsole:
    """A Rich console made on first use: importing Rich costs more than many commands, and
    ``--help`` or ``--output plain`` never print through one."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


console = cast("Console", _LazyConsole(highlight=False, soft_wrap=True))
err_console = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))


def rich_console(console: Console) -> Console:
    """The Rich console itself behind :data:`console` or :data:`err_console`, for Rich objects
    that take one (``Progress(console=...)``)."""
    return console.real() if isinstance(console, _LazyConsole) else console


def escape(text: str) -> str:
    """``text`` with Rich markup escaped (``[plugin-id]`` stays text)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def default_home() -> Path:
    """``$PLUGHOST_HOME``, else ``~/.local/share/plughost``."""
    env = os.environ.get("PLUGHOST_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "plughost"


HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="plughost home directory (default: $PLUGHOST_HOME or ~/.local/share/plughost).",
        show_default=False,
    ),
]


def exit_with(error: PlughostError, *, as_json: bool = False) -> NoReturn:
    """Print ``error`` and exit 1: the error resource (``{"error": {code, message, hint,
    plugin_id, details}}``) on stdout with ``as_json``, else one line on stderr."""
    if as_json:
        from plughost.services.resources import error as error_resource

        print_json(error_resource(error))
    else:
        # Messages are plain text: "[plugin-id] ..." must not be read as Rich markup.
        err_console.print(f"[bold red]error[/] [red]{error.code}[/]: {escape(str(error))}",
                          markup=True)
    raise typer.Exit(1)


@contextmanager
def handle_errors(*, as_json: bool = False) -> Iterator[None]:
    """Turn any PlughostError raised inside into a clean message and exit code 1."""
    from plughost.errors import PlughostError

    try:
        yield
    except PlughostError as exc:
        exit_with(exc, as_json=as_json)


def run_async(fn: Callable[[], Any]) -> Any:
    """Run a coroutine function to completion in a fresh event loop."""
    import asyncio

    return asyncio.run(fn())
