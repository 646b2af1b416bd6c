"""TEMP stub of plughost.sdk.decorators (another engineer's real module replaces it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plughost.runtimes.base import Export

_MARK = "__plughost_export__"


def _mark(kind: str, name: str | None, **options: Any) -> Callable[[Any], Any]:
    def deco(fn: Any) -> Any:
        setattr(fn, _MARK, (kind, name or fn.__name__, options))
        return fn

    return deco


def hookimpl(name: str | None = None, **options: Any) -> Callable[[Any], Any]:
    """Mark an extension-point implementation."""
    return _mark("hook", name, **options)


def command(name: str | None = None, **options: Any) -> Callable[[Any], Any]:
    """Mark a command handler."""
    return _mark("command", name, **options)


def on(topic: str, **options: Any) -> Callable[[Any], Any]:
    """Mark an event subscription."""
    return _mark("event", topic, **options)


def channel(name: str, **options: Any) -> Callable[[Any], Any]:
    """Mark a channel handler."""
    return _mark("channel", name, **options)


def collect_exports(obj: Any) -> list[Export]:
    """Every marked method of ``obj`` as an Export whose target is the attribute name."""
    out: list[Export] = []
    for attr in dir(type(obj)):
        fn = getattr(type(obj), attr, None)
        mark = getattr(fn, _MARK, None)
        if mark:
            kind, name, options = mark
            out.append(Export(kind, name, attr, options))
    return out
