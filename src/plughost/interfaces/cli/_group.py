"""The root Click group of ``plughost``: a command is converted when it is first used.

Typer turns every registered function into a Click command by reading its signature and
annotations; done for every command on every run, that costs more than most commands do.
:class:`LazyGroup` keeps the registrations and converts only the command that runs. The command
list of ``--help`` is made from the functions' docstrings alone (Click's own short-help rule,
applied to a parameterless stand-in), so ``plughost --help`` converts none.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import typer
import typer.main
import typer.models
from typer.core import TyperCommand, TyperGroup

__all__ = ["LazyGroup", "lazy_group"]

Registration = typer.models.CommandInfo | typer.models.TyperInfo


def _name(info: Registration) -> str:
    if isinstance(info, typer.models.TyperInfo):
        return typer.main.solve_typer_info_defaults(info).name or ""
    assert info.callback is not None, "a command needs a function"
    return info.name or typer.main.get_command_name(info.callback.__name__)


class _Commands(MutableMapping[str, Any]):
    """The group's commands by name, in registration order; each is converted from its Typer
    registration to a Click command the first time it is looked up."""

    def __init__(self, group: LazyGroup, registrations: list[Registration]) -> None:
        self._group = group
        self.registrations: dict[str, Registration | None] = {_name(r): r
                                                              for r in registrations}
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            info = self.registrations[name]  # KeyError: no such command
            assert info is not None  # added as a built command: in _built
            self._built[name] = self._group.convert(info)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:  # Click's add_command
        self.registrations.setdefault(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.registrations[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.registrations)

    def __len__(self) -> int:
        return len(self.registrations)


class LazyGroup(TyperGroup):
    """A Typer group over the commands registered on :attr:`catalogue` (see the module doc).
    Use :func:`lazy_group` to make one for an app."""

    catalogue: ClassVar[typer.Typer]

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self, [*self.catalogue.registered_commands,
                                         *self.catalogue.registered_groups])

    def convert(self, info: Registration) -> Any:
        """The Click command (or group) for one registration, as Typer builds it."""
        short = self.catalogue.pretty_exceptions_short
        if isinstance(info, typer.models.TyperInfo):
            return typer.main.get_group_from_info(
                info, pretty_exceptions_short=short, rich_markup_mode=self.rich_markup_mode,
                suggest_commands=self.suggest_commands)
        return typer.main.get_command_from_info(
            info, pretty_exceptions_short=short, rich_markup_mode=self.rich_markup_mode)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The ``Commands`` section of ``--help`` from the docstrings, converting none."""
        assert isinstance(self.commands, _Commands)
        rows: list[tuple[str, Any]] = []
        for name, info in self.commands.registrations.items():
            if info is None:
                command = self.commands[name]
            elif isinstance(info, typer.models.TyperInfo):
                solved = typer.main.solve_typer_info_defaults(info)
                command = TyperCommand(name=name, help=solved.help,
                                       short_help=solved.short_help, hidden=solved.hidden)
            else:
                assert info.callback is not None
                text = info.help or inspect.getdoc(info.callback)
                command = TyperCommand(name=name, help=inspect.cleandoc(text) if text else None,
                                       short_help=info.short_help, hidden=info.hidden)
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in rows])


def lazy_group(catalogue: typer.Typer) -> type[LazyGroup]:
    """A :class:`LazyGroup` class (Typer's ``cls=``) over ``catalogue``'s registrations."""
    return type("PlughostGroup", (LazyGroup,), {"catalogue": catalogue})
