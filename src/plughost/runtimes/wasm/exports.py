"""What a wasm plugin provides: from its ``plughost_exports`` answer, or from its manifest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from plughost.errors import PluginActivationError
from plughost.runtimes.base import Export, ExportKind

from . import abi
from .compiled import HANDLER_SIGNATURE, CompiledPlugin

__all__ = ["declared_exports", "parse_exports"]

_KINDS = {
    "commands": ("command", "name"),
    "hooks": ("hook", "name"),
    "events": ("event", "topic"),
    "channels": ("channel", "name"),
}


def declared_exports(
    commands: Sequence[str], compiled: CompiledPlugin, plugin_id: str
) -> list[Export]:
    """One command export per command id the manifest declares.

    ``my-plugin.greet`` is served by the handler ``my-plugin.greet``, or else ``greet``.
    """
    exports: list[Export] = []
    prefix = f"{plugin_id}."
    for command in commands:
        short = command.removeprefix(prefix)
        target = command if compiled.is_handler(command) else short
        if not compiled.is_handler(target):
            raise PluginActivationError(
                f"{plugin_id} declares command {command!r} but exports no handler "
                f"{command!r} or {short!r}; export one with the signature "
                f"(ptr: i32, len: i32) -> i64, or describe the mapping in {abi.EXPORTS}",
                plugin_id=plugin_id,
                phase="activate",
            )
        exports.append(Export("command", command, target))
    return exports


def parse_exports(doc: Any, compiled: CompiledPlugin, plugin_id: str) -> list[Export]:
    """The exports described by a ``plughost_exports`` answer; every problem listed at once."""
    problems: list[str] = []
    out: list[Export] = []
    if not isinstance(doc, dict):
        doc, problems = {}, [f"{abi.EXPORTS} must return an object, got {type(doc).__name__}"]
    for key in doc:
        if key not in _KINDS:
            problems.append(f"unknown key {key!r} (expected {', '.join(_KINDS)})")
    for key, (kind, name_key) in _KINDS.items():
        entries = doc.get(key, [])
        if not isinstance(entries, list):
            problems.append(f"{key} must be a list")
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get(name_key), str):
                problems.append(f"{key}[{i}] needs a string {name_key!r}")
                continue
            target = entry.get("export", entry[name_key])
            if not isinstance(target, str) or not compiled.is_handler(target):
                problems.append(
                    f"{key}[{i}] names export {target!r}, which is not a handler "
                    f"{HANDLER_SIGNATURE[0]} -> {HANDLER_SIGNATURE[1]}"
                )
                continue
            options = entry.get("options", {})
            out.append(
                Export(
                    cast(ExportKind, kind),
                    entry[name_key],
                    target,
                    options if isinstance(options, dict) else {},
                )
            )
    if problems:
        raise PluginActivationError(
            f"{plugin_id}: {abi.EXPORTS} returned an invalid description:\n"
            + "\n".join(f"  - {p}" for p in problems),
            plugin_id=plugin_id,
            phase="activate",
            details={"problems": problems},
        )
    return out
