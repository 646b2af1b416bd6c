"""The WebAssembly runtime: ``runtime = "wasm"`` plugins run in wasmtime sandboxes.

See ``docs/wasm-abi.md`` for the ABI a plugin module implements. Needs the ``wasm`` extra
(``pip install 'plughost[wasm]'``).
"""

from plughost.errors import ExtraNotInstalled

try:
    import wasmtime as _wasmtime  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ExtraNotInstalled("The WebAssembly runtime", "wasm", "wasmtime") from _exc

from plughost.runtimes.wasm.bindings import FsGrant, PermissionChecker, WasmBindings
from plughost.runtimes.wasm.cache import ModuleCache
from plughost.runtimes.wasm.instance import WasmInstance
from plughost.runtimes.wasm.limits import WasmLimits
from plughost.runtimes.wasm.runtime import (
    WasmRuntime,
    bindings_from_context,
    create_runtime,
    limits_from_manifest,
)

__all__ = [
    "FsGrant",
    "ModuleCache",
    "PermissionChecker",
    "WasmBindings",
    "WasmInstance",
    "WasmLimits",
    "WasmRuntime",
    "bindings_from_context",
    "create_runtime",
    "limits_from_manifest",
]
