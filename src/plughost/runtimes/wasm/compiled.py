"""A compiled, linked wasm plugin module: checked once against the ABI, instantiated many times.

``CompiledPlugin`` holds the ``Module`` and its ``InstancePre`` (imports already resolved against
the runtime's one linker), plus the signatures of its exports, so creating an instance is only
"new store + instantiate" and every fast-path invoker is generated from a known signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import wasmtime

from plughost.errors import PluginLoadError

from . import _ffi, abi

__all__ = ["CompiledPlugin", "Signature", "inspect_module"]

Signature = tuple[tuple[str, ...], tuple[str, ...]]

HANDLER_SIGNATURE: Signature = (("i32", "i32"), ("i64",))
_REQUIRED: dict[str, Signature] = {
    abi.ALLOC: (("i32",), ("i32",)),
    abi.DEALLOC: (("i32", "i32"), ()),
}
_OPTIONAL: dict[str, Signature] = {
    abi.ACTIVATE: HANDLER_SIGNATURE,
    abi.DEACTIVATE: HANDLER_SIGNATURE,
    abi.EXPORTS: HANDLER_SIGNATURE,
    abi.HEALTH: HANDLER_SIGNATURE,
}


@dataclass(slots=True)
class CompiledPlugin:
    """One module, compiled and pre-linked. Shared by every instance of that module."""

    digest: str
    module: wasmtime.Module
    pre: wasmtime.InstancePre
    functions: dict[str, Signature]
    """Every exported function whose signature the fast path supports."""
    uses_wasi: bool
    cache_source: str
    host_imports: frozenset[str] = frozenset()
    """Names of the ``plughost`` host functions the module imports."""

    def is_handler(self, name: str) -> bool:
        """True when ``name`` is a JSON handler export ``(i32, i32) -> i64``."""
        return self.functions.get(name) == HANDLER_SIGNATURE

    @property
    def handlers(self) -> list[str]:
        """Names of the JSON handler exports (including the ``plughost_*`` lifecycle ones)."""
        return sorted(n for n, sig in self.functions.items() if sig == HANDLER_SIGNATURE)

    def close(self) -> None:
        """Release the pre-linked instance and the module (idempotent)."""
        self.pre.close()
        self.module.close()


def inspect_module(
    module: wasmtime.Module, *, name: str
) -> tuple[dict[str, Signature], bool, frozenset[str]]:
    """Check ``module`` against the ABI: its function signatures, WASI use, host imports.

    Raises :class:`PluginLoadError` listing every problem: a missing ``memory``/``alloc``/
    ``dealloc``, a wrong signature, an import the host does not provide.
    """
    problems: list[str] = []
    uses_wasi = False
    host_imports: set[str] = set()
    imports, exports = _ffi.module_shape(module)
    for module_name, (imp_name, _kind, got) in imports:
        if module_name == abi.WASI_MODULE:
            uses_wasi = True
            continue
        if module_name == abi.HOST_MODULE and imp_name in abi.HOST_FUNCTIONS:
            host_imports.add(imp_name)
            want = abi.HOST_FUNCTIONS[imp_name]
            if got != want:
                problems.append(
                    f"imports {abi.HOST_MODULE}.{imp_name} with signature {_show(got)}; "
                    f"the host provides {_show(want)}"
                )
            continue
        problems.append(
            f"imports {module_name}.{imp_name}, which the host does not provide; a plugin may "
            f"import only {abi.HOST_MODULE}.{{{', '.join(sorted(abi.HOST_FUNCTIONS))}}} and "
            f"{abi.WASI_MODULE}.*"
        )
    functions: dict[str, Signature] = {}
    has_memory = False
    for exp_name, kind, sig in exports:
        if kind == "memory" and exp_name == abi.MEMORY:
            has_memory = True
        elif kind == "func" and sig is not None:
            functions[exp_name] = sig
    if not has_memory:
        problems.append(f"does not export its linear memory as {abi.MEMORY!r}")
    for fname, want in {**_REQUIRED, **_OPTIONAL}.items():
        got = functions.get(fname)
        if got is None and fname in _REQUIRED:
            problems.append(f"does not export {fname}{_show(want)}")
        elif got is not None and got != want:
            problems.append(f"exports {fname}{_show(got)}; the ABI requires {fname}{_show(want)}")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PluginLoadError(
            f"{name} does not follow the plughost wasm ABI:\n{listing}\n"
            "See docs/wasm-abi.md for the exports and imports a plugin module must have.",
            phase="load",
            details={"problems": problems},
        )
    return functions, uses_wasi, frozenset(host_imports)


def _signature(ty: object) -> Signature | None:
    if not isinstance(ty, wasmtime.FuncType):
        return None
    params = _ffi.value_kinds(ty.params)
    results = _ffi.value_kinds(ty.results)
    if params is None or results is None:
        return None
    return params, results


def _show(sig: Signature | None) -> str:
    if sig is None:
        return "(unsupported types)"
    params, results = sig
    return f"({', '.join(params)}) -> ({', '.join(results)})"
