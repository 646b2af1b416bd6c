"""``WasmLimits``: the limits one wasm instance runs under, validated once."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAGE", "WasmLimits", "format_bytes"]

PAGE = 65536
MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class WasmLimits:
    """Limits in force for one wasm instance (the manifest's, filled in with runtime defaults).

    :param timeout: wall-clock seconds per call (epoch deadline); also bounds activation.
    :param memory: bytes of linear memory the store may hold; growth past it is refused.
    :param fuel: fuel units per call (roughly one per wasm instruction); None = unmetered.
    :param output: bytes/s of log output (``log`` host calls and WASI stdout/stderr).
    :param max_message: largest JSON message, in bytes, accepted in either direction.
    """

    timeout: float = 10.0
    memory: int | None = 64 * MiB
    fuel: int | None = None
    output: int = 64 * 1024
    max_message: int = 4 * MiB

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"wasm timeout must be positive seconds, got {self.timeout!r}")
        if self.memory is not None and self.memory < PAGE:
            raise ValueError(
                f"wasm memory limit must be at least one 64 KiB page, got {self.memory}"
            )
        if self.fuel is not None and self.fuel <= 0:
            raise ValueError(f"wasm fuel must be a positive number of units, got {self.fuel!r}")


def format_bytes(n: int) -> str:
    """``16 MiB``, ``64 KiB`` or ``1000 bytes``: sizes as a person reads them."""
    if n % MiB == 0:
        return f"{n // MiB} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"
