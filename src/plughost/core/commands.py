"""Commands: request/response by name, with timeouts, typed errors and lazy activation.

A plugin registers a command under its namespace (plugin ``hello`` registering ``greet`` serves
``hello.greet``); anyone allowed to executes it by name with keyword arguments::

    undo = commands.register("hello", "greet", greet, timeout=2.0)
    result = await commands.execute("hello.greet", {"name": "Ann"}, caller="ui")

The result is the command's return value, or an error carrying ``code``, ``message`` and
``details`` (the ``PluginResponse`` shape): :class:`~plughost.errors.CommandError` (the plugin's
own code when it raised one, ``command.failed`` for any other exception),
:class:`~plughost.errors.CommandNotFound`, :class:`~plughost.errors.CommandArgumentsError`, or
:class:`~plughost.errors.PluginTimeout` when it outlives its deadline.

Lazy activation: when a name is not registered, the registry awaits the *lazy resolver* the host
installed (``set_lazy_resolver``) — it activates the plugin whose manifest says
``activation = ["command:<name>"]`` — and looks again.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plughost.core.bus import PermissionChecker
from plughost.core.monitoring import Monitor, MonitorSet
from plughost.core.names import qualify
from plughost.errors import (
    CommandArgumentsError,
    CommandConflict,
    CommandError,
    CommandNotFound,
    InvalidExport,
    PlughostError,
    PluginTimeout,
)

__all__ = ["Command", "CommandRegistry", "CommandResponse", "LazyResolver", "qualify"]

logger = logging.getLogger(__name__)

LazyResolver = Callable[[str], Awaitable[Any]]
"""``resolver(command_name)`` activates the plugin that declares it (if any)."""

RemoteCommand = Callable[[Mapping[str, Any], float | None], Awaitable[Any]]





@dataclass(frozen=True, slots=True)
class CommandResponse:
    """The ``PluginResponse`` shape: the outcome of one execution as data.

    :param id: unique per registry.
    :param success: whether the command returned a value.
    :param data: the value when it did.
    :param error: ``{"code", "message", "details"}`` when it did not.
    :param timestamp: seconds since the epoch when the execution finished.
    """

    id: str
    success: bool
    data: Any = None
    error: Mapping[str, Any] | None = None
    timestamp: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "success": self.success,
                               "timestamp": self.timestamp}
        if self.success:
            out["data"] = self.data
        else:
            out["error"] = dict(self.error or {})
        return out


@dataclass(slots=True, eq=False)
class Command:
    """A registered command. Counters are updated in place."""

    name: str
    owner: str | None
    function: Callable[..., Any] | None = None
    remote: RemoteCommand | None = None
    is_async: bool = False
    timeout: float | None = None
    signature: inspect.Signature | None = field(default=None, repr=False)
    calls: int = 0
    failures: int = 0


def _is_async(fn: Any) -> bool:
    while hasattr(fn, "func"):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


def _name_of(cmd: Command, args: Mapping[str, Any], timeout: float | None) -> tuple[str, Any]:
    return cmd.name, args


class CommandRegistry:
    """Every command of one host.

    :param checker: the permission checker (``commands:execute``); ``None`` allows everything.
    :param default_timeout: used when neither the call nor the command sets one.
    :param monitors: shared :class:`~plughost.core.monitoring.MonitorSet`.
    """

    def __init__(
        self,
        *,
        checker: PermissionChecker | None = None,
        default_timeout: float | None = None,
        monitors: MonitorSet | None = None,
    ) -> None:
        self._commands: dict[str, Command] = {}
        self._resolver: LazyResolver | None = None
        self._activating: dict[str, asyncio.Future[Any]] = {}
        self._next_id = map("response-".__add__, map(str, itertools.count(1))).__next__
        self.checker = checker
        self.default_timeout = default_timeout
        self.monitors = monitors if monitors is not None else MonitorSet()
        self._dispatch: Callable[..., Awaitable[Any]] = self._run
        self.monitors.on_change(self._rewrap)

    def _rewrap(self) -> None:
        self._dispatch = self.monitors.wrap_async("command", self._run, _name_of)

    def add_monitor(self, monitor: Monitor) -> Callable[[], None]:
        """Observe every execution; returns the undo."""
        return self.monitors.add(monitor)

    def set_lazy_resolver(self, resolver: LazyResolver | None) -> None:
        """Install the function that activates a lazy plugin declaring a command."""
        self._resolver = resolver

    # -- registration -----------------------------------------------------------------------

    def register(self, owner: str | None, name: str, function: Callable[..., Any], *,
                 timeout: float | None = None) -> Callable[[], None]:
        """Register an in-process command ``<owner>.<name>``; returns the undo.

        Raises :class:`~plughost.errors.CommandConflict` when the name is taken.
        """
        full = qualify(owner, name)
        if not callable(function):
            raise InvalidExport(f"Command {full!r}: {function!r} is not callable.")
        try:
            sig: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):
            sig = None
        return self._add(Command(
            full, owner, function=function, is_async=_is_async(function),
            timeout=_timeout(full, timeout), signature=sig,
        ))

    def register_remote(self, owner: str | None, name: str, call: RemoteCommand, *,
                        timeout: float | None = None) -> Callable[[], None]:
        """Register a command living in another runtime: ``call(args, timeout)`` awaits it."""
        full = qualify(owner, name)
        if not callable(call):
            raise InvalidExport(f"Command {full!r}: {call!r} is not callable.")
        return self._add(Command(full, owner, remote=call, is_async=True,
                                 timeout=_timeout(full, timeout)))

    def _add(self, cmd: Command) -> Callable[[], None]:
        existing = self._commands.get(cmd.name)
        if existing is not None:
            raise CommandConflict(
                f"Command {cmd.name!r} is already registered by "
                f"{existing.owner or 'the host'}; command names are unique. Pick another "
                "name, or unregister the old one first.",
                plugin_id=cmd.owner,
                details={"command": cmd.name, "owner": existing.owner},
            )
        self._commands[cmd.name] = cmd

        def undo() -> None:
            if self._commands.get(cmd.name) is cmd:
                del self._commands[cmd.name]

        return undo

    def unregister_owner(self, owner: str) -> int:
        """Remove every command of ``owner``; the count removed."""
        names = [n for n, c in self._commands.items() if c.owner == owner]
        for n in names:
            del self._commands[n]
        return len(names)

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def names(self, owner: str | None = None) -> list[str]:
        """Registered command names (of ``owner`` when given), sorted."""
        return sorted(n for n, c in self._commands.items() if owner is None or c.owner == owner)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    # -- execution --------------------------------------------------------------------------

    async def execute(self, name: str, args: Mapping[str, Any] | None = None, *,
                      caller: str | None = None, timeout: float | None = None) -> Any:
        """Run command ``name`` with keyword ``args``; returns its result or raises a typed
        error (see the module docstring). ``caller`` is the plugin id asking (``None``: host).
        """
        if self.checker is not None:
            self.checker(caller, "commands:execute", name)
        cmd = self._commands.get(name)
        if cmd is None:
            cmd = await self._lazy(name)
        if args is None:
            args = {}
        elif not isinstance(args, Mapping):
            raise CommandArgumentsError(
                f"Arguments for command {name!r} must be a mapping of names to values, "
                f"got {type(args).__name__}.",
                details={"command": name},
            )
        return await self._dispatch(cmd, args, timeout)

    async def respond(self, name: str, args: Mapping[str, Any] | None = None, *,
                      caller: str | None = None, timeout: float | None = None
                      ) -> CommandResponse:
        """Like :meth:`execute`, but the outcome is a :class:`CommandResponse` (never raises a
        :class:`~plughost.errors.PlughostError`), for bridges and APIs that ship it as JSON."""
        try:
            data = await self.execute(name, args, caller=caller, timeout=timeout)
        except PlughostError as exc:
            return CommandResponse(
                id=self._next_id(), success=False,
                error={"code": exc.code, "message": exc.message, "details": exc.details},
                timestamp=time.time(),
            )
        return CommandResponse(id=self._next_id(), success=True, data=data,
                               timestamp=time.time())

    async def _lazy(self, name: str) -> Command:
        if self._resolver is not None:
            pending = self._activating.get(name)
            if pending is None:
                # One activation per name even when several callers race for it.
                pending = asyncio.ensure_future(self._resolver(name))
                self._activating[name] = pending
                pending.add_done_callback(lambda _: self._activating.pop(name, None))
            await asyncio.shield(pending)
            cmd = self._commands.get(name)
            if cmd is not None:
                return cmd
        known = ", ".join(sorted(self._commands)) or "(none)"
        raise CommandNotFound(
            f"No command named {name!r} is registered and no plugin declares it for lazy "
            f"activation. Registered: {known}.",
            details={"command": name},
        )

    async def _run(self, cmd: Command, args: Mapping[str, Any], timeout: float | None) -> Any:
        cmd.calls += 1
        t = timeout if timeout is not None else (
            cmd.timeout if cmd.timeout is not None else self.default_timeout
        )
        try:
            if cmd.remote is not None:
                aw = cmd.remote(args, t)
            elif cmd.is_async:
                aw = cmd.function(**args)  # type: ignore[misc]
            else:
                # In-process sync code runs inline: it cannot be pre-empted, so no deadline.
                return cmd.function(**args)  # type: ignore[misc]
            if t is None:
                return await aw
            try:
                async with asyncio.timeout(t) as cm:
                    return await aw
            except TimeoutError:
                if cm.expired():
                    raise PluginTimeout(
                        f"Command {cmd.name!r} did not finish within {t:g}s. Raise its timeout "
                        "or make it faster.",
                        plugin_id=cmd.owner,
                        details={"command": cmd.name, "timeout": t},
                    ) from None
                raise
        except PlughostError as exc:
            cmd.failures += 1
            if exc.plugin_id is None:
                exc.plugin_id = cmd.owner
            raise
        except TypeError as exc:
            cmd.failures += 1
            bad = self._bad_args(cmd, args)
            if bad is not None:
                raise CommandArgumentsError(
                    f"Bad arguments for command {cmd.name!r}: {bad}.",
                    plugin_id=cmd.owner,
                    details={"command": cmd.name, "given": sorted(args)},
                ) from None
            raise self._failed(cmd, exc) from exc
        except Exception as exc:
            cmd.failures += 1
            raise self._failed(cmd, exc) from exc

    @staticmethod
    def _bad_args(cmd: Command, args: Mapping[str, Any]) -> str | None:
        if cmd.signature is None:
            return None
        try:
            cmd.signature.bind(**args)
        except TypeError as exc:
            params = ", ".join(cmd.signature.parameters) or "(none)"
            return f"{exc}; it takes: {params}"
        return None

    @staticmethod
    def _failed(cmd: Command, exc: Exception) -> CommandError:
        return CommandError(
            f"Command {cmd.name!r} failed: {type(exc).__name__}: {exc}",
            plugin_id=cmd.owner,
            details={"command": cmd.name, "type": type(exc).__name__},
        )


def _timeout(name: str, timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidExport(f"Command {name!r}: timeout must be a positive number, "
                            f"got {timeout!r}.")
    return float(timeout)
