"""TEMP stub of plughost.sdk.decorators (the communications engineer's module replaces it).

Same API and marks: ``hookimpl(name, **options)``, ``on(pattern, **options)``,
``command(name, **options)``, ``channel(name, **options)``, ``collect_exports(obj)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from plughost.runtimes.base import Export

__all__ = ["EXPORTS_ATTR", "ExportMark", "channel", "collect_exports", "command", "hookimpl", "on"]

EXPORTS_ATTR = "__plughost_exports__"


@dataclass(frozen=True, slots=True)
class ExportMark:
    """What a decorator records on a function."""

    kind: Any
    name: str
    options: Any = field(default_factory=dict)


def _mark(kind: str, name: str, options: dict[str, Any]) -> Callable[[Any], Any]:
    def decorate(fn: Any) -> Any:
        marks = (*getattr(fn, EXPORTS_ATTR, ()), ExportMark(kind, name, MappingProxyType(options)))
        setattr(fn, EXPORTS_ATTR, marks)
        return fn

    return decorate


def hookimpl(name: str, **options: Any) -> Callable[[Any], Any]:
    """Implement extension point ``name``."""
    return _mark("hook", name, options)


def on(pattern: str, **options: Any) -> Callable[[Any], Any]:
    """Subscribe to events matching ``pattern``."""
    return _mark("event", pattern, options)


def command(name: str, **options: Any) -> Callable[[Any], Any]:
    """Serve command ``name``."""
    return _mark("command", name, options)


def channel(name: str, **options: Any) -> Callable[[Any], Any]:
    """Serve channel ``name``."""
    return _mark("channel", name, options)


def collect_exports(obj: Any) -> list[Export]:
    """The decorated methods of ``obj`` as Exports whose target is the attribute name."""
    cls = obj if inspect.isclass(obj) else type(obj)
    seen: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            seen.pop(attr, None)
            seen[attr] = value
    exports: list[Export] = []
    for attr, value in seen.items():
        for mark in getattr(value, EXPORTS_ATTR, ()):
            exports.append(Export(mark.kind, mark.name, attr, dict(mark.options)))
    return exports
