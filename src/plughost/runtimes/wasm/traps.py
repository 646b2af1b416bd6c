"""Why a wasm call stopped, as the plughost error the caller gets.

Fuel exhaustion and the epoch deadline are timeouts; a trap while the linear memory is at its
cap is the memory limit; an exception a host function raised is passed on as is; anything else
(``unreachable``, out-of-bounds access, stack overflow, division by zero) is a crash. Every error
made here is marked as a trap, so the instance discards the store that produced it.
"""

from __future__ import annotations

from typing import Any

import wasmtime

from plughost.errors import PluginCrashed, PluginError, PluginTimeout

from .limits import PAGE, WasmLimits, format_bytes

__all__ = ["first_line", "memory_exceeded", "trap_error"]


def trap_error(
    plugin_id: str,
    what: str,
    limits: WasmLimits,
    seconds: float | None,
    *,
    trap: wasmtime.Trap | None,
    error: Any,
    parked: BaseException | None,
    memory_size: int,
    grow_refused: tuple[int, int] | None = None,
) -> PluginError:
    """The error for a call of ``what`` that trapped (or failed) under ``limits``.

    :param seconds: the call's deadline, when it differed from ``limits.timeout``.
    :param trap: the trap wasmtime reported, if any; ``error`` the wasmtime error otherwise.
    :param parked: an exception a host function raised during the call, if any.
    :param memory_size: the linear memory's size when the call stopped.
    :param grow_refused: ``(size, asked)`` of a ``memory.grow`` past the memory limit refused
        during the call (whatever its size): a trap that follows is the memory limit's doing.
    """
    exc: PluginError
    if isinstance(parked, PluginError):
        exc = parked  # raised inside a host function (e.g. a nested timeout): keep it
    else:
        code = trap.trap_code if trap is not None else None
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            exc = PluginTimeout(
                f"{what} used all of its {limits.fuel} fuel units and was stopped; "
                "raise limits.fuel if the work is legitimate",
                plugin_id=plugin_id,
                details={"limit": "fuel", "fuel": limits.fuel},
            )
        elif code == wasmtime.TrapCode.INTERRUPT:
            exc = PluginTimeout(
                f"{what} ran past its {seconds if seconds is not None else limits.timeout}"
                " s deadline and was stopped; raise limits.timeout if the work is legitimate",
                plugin_id=plugin_id,
                details={"limit": "timeout", "timeout": seconds},
            )
        elif parked is not None:
            exc = PluginCrashed(
                f"{what} failed inside a host function: {type(parked).__name__}: {parked}",
                plugin_id=plugin_id,
            )
        else:
            # the message walks the backtrace: only read it when it is what the caller gets
            detail = first_line(trap if trap is not None else error)
            if grow_refused or (limits.memory is not None and memory_size + PAGE > limits.memory):
                asked = grow_refused[1] if grow_refused else None
                exc = memory_exceeded(plugin_id, limits.memory or 0, memory_size, detail, asked)
            else:
                exc = PluginCrashed(
                    f"{what} trapped: {detail}", plugin_id=plugin_id, details={"trap": detail}
                )
    exc._wasm_trapped = True  # type: ignore[attr-defined]
    return exc


def memory_exceeded(
    plugin_id: str, cap: int, size: int, detail: str = "", asked: int | None = None
) -> PluginCrashed:
    """The memory limit's error: ``memory limit 16 MiB exceeded``."""
    growth = (
        f"growing it to {format_bytes(asked)} was refused"
        if asked is not None
        else "it cannot grow"
    )
    details: dict[str, object] = {"limit": "memory", "memory": cap, "size": size}
    if asked is not None:
        details["asked"] = asked
    exc = PluginCrashed(
        f"{plugin_id}: memory limit {format_bytes(cap)} exceeded (linear memory is "
        f"{format_bytes(size)}; {growth}){'; ' + detail if detail else ''}; raise "
        "limits.memory if the plugin needs more",
        plugin_id=plugin_id,
        details=details,
    )
    exc._wasm_trapped = True  # type: ignore[attr-defined]
    return exc


def first_line(exc: object) -> str:
    """The line of a wasmtime error that says what happened (it puts the backtrace first)."""
    text = str(exc) if exc is not None else "unknown failure"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("wasm trap:") or "trap" in ln:
            return ln
    return lines[0] if lines else "unknown failure"
