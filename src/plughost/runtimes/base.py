"""Runtime registration: which runtime serves which manifest ``runtime`` value.

The contract itself (:class:`Runtime`, :class:`PluginInstance`, :class:`Export`,
:class:`Health`, :class:`Capability`) lives in :mod:`plughost.core.contract`; its names are
re-exported here so ``from plughost.runtimes.base import Export`` keeps working.

A runtime is one line in :data:`BUILTIN_RUNTIMES`: the manifest ``runtime`` value and the
``module:factory`` that builds it. Factories are imported on first use, so a runtime whose
backend is an optional extra (wasmtime) costs nothing until a plugin asks for it, and its load
error names the extra. See ``docs/runtimes.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from plughost.core.contract import (
    LIMIT_NAMES,
    Capability,
    Export,
    ExportKind,
    Health,
    PluginInstance,
    Runtime,
)

__all__ = [
    "BUILTIN_RUNTIMES",
    "LIMIT_NAMES",
    "Capability",
    "Export",
    "ExportKind",
    "Health",
    "PluginInstance",
    "Runtime",
    "availability",
    "create_runtime",
    "unavailable",
]

RuntimeFactory = Callable[..., Runtime]
"""``factory(home=Path | None, on_event=listener | None) -> Runtime``."""

BUILTIN_RUNTIMES: Final[dict[str, str]] = {
    "python": "plughost.runtimes.inprocess:create_runtime",
    "process": "plughost.runtimes.process.runtime:create_runtime",
    "wasm": "plughost.runtimes.wasm:create_runtime",
    "native": "plughost.runtimes.native:create_runtime",
    "grpc": "plughost.runtimes.grpc:create_runtime",
}
"""Manifest ``runtime`` value → ``module:factory``. Adding a runtime is adding a line here."""


def create_runtime(name: str, *, home: Path | None = None, on_event: Any = None) -> Runtime:
    """Build the built-in runtime serving ``name``.

    :param on_event: a supervisor-event listener (``SupervisorEvent`` → None) for runtimes that
        restart and quarantine their plugins.
    :raises KeyError: no built-in runtime serves ``name``.
    :raises ExtraNotInstalled: its backend is an extra that is not installed (names the extra).
    """
    module_name, _, factory = BUILTIN_RUNTIMES[name].partition(":")
    module = importlib.import_module(module_name)
    make: RuntimeFactory = getattr(module, factory)
    return make(home=home, on_event=on_event)


def unavailable(name: str) -> str | None:
    """Why the built-in runtime ``name`` cannot run on this machine, or ``None``.

    Its module is imported (nothing is started): a backend that is an extra not installed says
    so with the extra to install (``pip install 'plughost[wasm]'``). A name that is not built in
    answers ``None``: the host that loads the plugin may have it registered.
    """
    spec = BUILTIN_RUNTIMES.get(name)
    if spec is None:
        return None
    try:
        importlib.import_module(spec.partition(":")[0])
    except ImportError as exc:  # ExtraNotInstalled is one: its message names the extra
        return getattr(exc, "message", None) or (
            f"the {name!r} runtime cannot be imported here: {exc}")
    return None


def availability(registered: Iterable[str] = ()) -> dict[str, str | None]:
    """Every runtime a host knows, mapped to ``None`` when it can run here, or to why not.

    The built-in runtimes (:data:`BUILTIN_RUNTIMES`, each checked with :func:`unavailable`, so
    a missing extra is named with the ``pip install`` that adds it) and ``registered``: the
    names of runtimes a host was given (``PluginHost(runtimes=...)``, ``add_runtime``), which
    run by definition. A name missing from the answer is a runtime this host does not have.
    """
    out = {name: unavailable(name) for name in BUILTIN_RUNTIMES}
    out.update(dict.fromkeys(registered))
    return out
