"""Decorators a plugin author puts on methods to export them, and ``collect_exports``.

::

    class Filter(Plugin):
        @hookimpl("chat.before_send", before=["chat-filter-links"])
        def scrub(self, message: str) -> str: ...

        @on("chat.message.*", queue=100, when_full="drop")
        async def seen(self, event: Event) -> None: ...

        @command("greet", timeout=2.0)           # served as "<plugin id>.greet"
        async def greet(self, name: str) -> str: ...

        @channel("stream")                       # served as "<plugin id>.stream"
        async def stream(self, ch: Channel) -> None: ...

The decorators only *mark* the function (options are validated on the spot, so a typo fails
where it is written); :func:`collect_exports` turns a decorated object into
:class:`~plughost.runtimes.base.Export` records whose ``target`` is the attribute name, which the
runtime resolves on the plugin object (``PluginInstance.local_callable``) or calls remotely.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any, TypeVar

from plughost.core.names import WhenFull, impl_options, qualify, split_topic
from plughost.errors import InvalidExport
from plughost.runtimes.base import Export, ExportKind

__all__ = ["EXPORTS_ATTR", "ExportMark", "channel", "collect_exports", "command", "hookimpl", "on"]

EXPORTS_ATTR = "__plughost_exports__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ExportMark:
    """What a decorator records on a function: the kind, the name and the options."""

    kind: ExportKind
    name: str
    options: Any = field(default_factory=dict)


def _mark(kind: ExportKind, name: str, options: dict[str, Any]) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        if not callable(fn):
            raise InvalidExport(f"@{kind} must decorate a function, got {fn!r}.")
        marks = list(getattr(fn, EXPORTS_ATTR, ()))
        marks.append(ExportMark(kind, name, MappingProxyType(dict(options))))
        try:
            setattr(fn, EXPORTS_ATTR, tuple(marks))
        except AttributeError:
            raise InvalidExport(
                f"Cannot mark {fn!r}: decorate a plain function or method."
            ) from None
        return fn

    return decorate


def _names(value: Iterable[str] | str) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def hookimpl(
    name: str,
    *,
    priority: float = 0,
    tryfirst: bool = False,
    trylast: bool = False,
    before: Iterable[str] | str = (),
    after: Iterable[str] | str = (),
    wrapper: bool = False,
    timeout: float | None = None,
) -> Callable[[F], F]:
    """Implement extension point ``name``.

    :param priority: higher runs earlier within its band.
    :param tryfirst: run in the first band; ``trylast``: in the last band.
    :param before: plugin ids whose implementations must run after this one.
    :param after: plugin ids whose implementations must run before this one.
    :param wrapper: a generator that runs around the other implementations
        (``result = yield``; return the final result).
    :param timeout: seconds this implementation may take when awaited.
    """
    if not isinstance(name, str) or not name:
        raise InvalidExport(f"@hookimpl needs an extension point name, got {name!r}.")
    where = f"@hookimpl({name!r})"
    opts = impl_options(where, priority, tryfirst, trylast, before, after, wrapper, timeout)
    options: dict[str, Any] = {"priority": opts["priority"]}
    for key in ("tryfirst", "trylast", "wrapper"):
        if opts[key]:
            options[key] = True
    if opts["before"]:
        options["before"] = _names(opts["before"])
    if opts["after"]:
        options["after"] = _names(opts["after"])
    if opts["timeout"] is not None:
        options["timeout"] = opts["timeout"]
    return _mark("hook", name, options)


def on(pattern: str, *, queue: int | None = None, when_full: WhenFull = "block"
       ) -> Callable[[F], F]:
    """Subscribe to events whose topic matches ``pattern`` (``*`` one segment, ``#`` any).

    For async handlers, ``queue`` bounds the handler's queue and ``when_full`` says what happens
    when it is full: ``block`` (the emitter waits) or ``drop`` (discard and count).
    """
    split_topic(pattern, pattern=True)
    if when_full not in ("block", "drop"):
        raise InvalidExport(f"@on({pattern!r}): when_full must be 'block' or 'drop', "
                            f"got {when_full!r}.")
    if queue is not None and (isinstance(queue, bool) or not isinstance(queue, int) or queue < 1):
        raise InvalidExport(f"@on({pattern!r}): queue must be a positive integer, got {queue!r}.")
    options: dict[str, Any] = {"when_full": when_full}
    if queue is not None:
        options["queue"] = queue
    return _mark("event", pattern, options)


def command(name: str, *, timeout: float | None = None) -> Callable[[F], F]:
    """Serve command ``name`` (under the plugin's namespace: ``<plugin id>.<name>``)."""
    qualify(None, name)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or timeout <= 0):
        raise InvalidExport(f"@command({name!r}): timeout must be a positive number, "
                            f"got {timeout!r}.")
    return _mark("command", name, {} if timeout is None else {"timeout": float(timeout)})


def channel(name: str, *, buffer: int | None = None) -> Callable[[F], F]:
    """Serve channel ``name`` (``<plugin id>.<name>``) with ``async def handler(self, ch)``."""
    qualify(None, name)
    if buffer is not None and (isinstance(buffer, bool) or not isinstance(buffer, int)
                               or buffer < 1):
        raise InvalidExport(f"@channel({name!r}): buffer must be a positive integer.")
    return _mark("channel", name, {} if buffer is None else {"buffer": buffer})


def _members(obj: Any) -> list[tuple[str, Any]]:
    """``(attribute name, raw function)`` in definition order, base classes first."""
    if isinstance(obj, ModuleType):
        return list(vars(obj).items())
    cls = obj if isinstance(obj, type) else type(obj)
    seen: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            seen.pop(attr, None)  # an override moves to the subclass's position
            seen[attr] = value
    if not isinstance(obj, type) and hasattr(obj, "__dict__"):
        for attr, value in vars(obj).items():
            if hasattr(value, EXPORTS_ATTR):
                seen[attr] = value
    return list(seen.items())


def collect_exports(obj: Any) -> list[Export]:
    """Turn the decorated methods of ``obj`` (a plugin object, class or module) into Exports.

    ``target`` is the attribute name, so ``getattr(obj, target)`` is the callable.
    """
    exports: list[Export] = []
    for attr, value in _members(obj):
        raw = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        marks: tuple[ExportMark, ...] = getattr(raw, EXPORTS_ATTR, ())
        if not marks or not isinstance(marks, tuple):
            continue
        for mark in marks:
            if not isinstance(mark, ExportMark):
                continue
            exports.append(Export(kind=mark.kind, name=mark.name, target=attr,
                                  options=dict(mark.options)))
    return exports


