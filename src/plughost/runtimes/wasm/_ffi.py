"""The raw wasmtime C calls behind the fast path, and signature-specialised invokers.

wasmtime-py's ``Func.__call__`` introspects the function type, converts every argument into a
``Val`` and back on *every* call (~20-27 µs). The C API underneath has
``wasmtime_func_call_unchecked``: arguments and results share one array of ``wasmtime_val_raw_t``
slots and nothing is checked (~0.5 µs). It is only safe when the caller guarantees the types, so
:func:`make_invoker` looks the export's type up ONCE, refuses signatures it cannot handle, and
generates a small function for exactly that signature that range-checks each Python argument,
writes it into its slot, calls, and reads the results out of typed views of the same buffer.

Prototypes are declared with ``c_void_p`` arguments so calls pass plain integers (addresses)
without ctypes building pointer objects per call. ``CFUNCTYPE`` functions release the GIL while
wasm runs, which the epoch ticker thread needs to make progress during a runaway call.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wasmtime import _bindings as _b
from wasmtime import _func as _wfunc

__all__ = [
    "SLOT_BYTES",
    "RawCall",
    "context_address",
    "engine_address",
    "func_address",
    "increment_epoch",
    "make_invoker",
    "memory_base",
    "memory_size",
    "module_shape",
    "set_epoch_deadline",
    "set_fuel",
    "take_python_exception",
    "take_trap",
    "value_kinds",
]

_vp = ctypes.c_void_p
_DLL: Any = _b.dll  # type: ignore[attr-defined]  # the loaded wasmtime C library

call_unchecked = ctypes.CFUNCTYPE(_vp, _vp, _vp, _vp, ctypes.c_size_t, _vp)(
    ("wasmtime_func_call_unchecked", _DLL)
)
# Setting fuel and the deadline are a few stores into the context: these calls keep the GIL
# (PYFUNCTYPE) instead of releasing and re-acquiring it, which costs more than the call and,
# under a contended GIL, lets the epoch ticker run between reading the epoch and setting a
# deadline relative to it.
set_fuel = ctypes.PYFUNCTYPE(_vp, _vp, ctypes.c_uint64)(("wasmtime_context_set_fuel", _DLL))
set_epoch_deadline = ctypes.PYFUNCTYPE(None, _vp, ctypes.c_uint64)(
    ("wasmtime_context_set_epoch_deadline", _DLL)
)
increment_epoch = ctypes.PYFUNCTYPE(None, _vp)(("wasmtime_engine_increment_epoch", _DLL))
# Reading the fuel left is a load from the context too: it keeps the GIL for the same reason
# (it runs after every call, to count the fuel each call used).
_get_fuel = ctypes.PYFUNCTYPE(_vp, _vp, ctypes.POINTER(ctypes.c_uint64))(
    ("wasmtime_context_get_fuel", _DLL)
)
memory_base = ctypes.PYFUNCTYPE(_vp, _vp, _vp)(("wasmtime_memory_data", _DLL))
memory_size = ctypes.PYFUNCTYPE(ctypes.c_size_t, _vp, _vp)(("wasmtime_memory_data_size", _DLL))

SLOT_BYTES = ctypes.sizeof(_b.wasmtime_val_raw_t)  # 16: the union holds a v128
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 32) - 1  # accept signed and unsigned spellings
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 64) - 1


def context_address(storelike: Any) -> int:
    """The address of a store's (or caller's) ``wasmtime_context_t``."""
    addr = ctypes.cast(storelike._context(), _vp).value
    assert addr is not None
    return addr


def engine_address(engine: Any) -> int:
    """The address of a ``wasmtime.Engine``'s ``wasm_engine_t`` (keep ``engine`` alive)."""
    addr = ctypes.cast(engine.ptr(), _vp).value
    assert addr is not None
    return addr


def func_address(func: Any) -> int:
    """The address of a ``wasmtime.Func``'s ``wasmtime_func_t`` (keep ``func`` alive)."""
    return ctypes.addressof(func._func)


def get_fuel(ctx: int, out: ctypes.c_uint64 | None = None) -> int | None:
    """Fuel left in the store at ``ctx``, or None when fuel is not enabled.

    :param out: a reusable ``c_uint64`` to read into (saves an allocation on the call path).
    """
    if out is None:
        out = ctypes.c_uint64(0)
    err = _get_fuel(ctx, ctypes.byref(out))
    if err:
        _b.wasmtime_error_delete(ctypes.cast(err, ctypes.POINTER(_b.wasmtime_error_t)))
        return None
    return out.value


_VALKINDS = {0: "i32", 1: "i64", 2: "f32", 3: "f64"}
_EXTERNKINDS = {0: "func", 1: "global", 2: "table", 3: "memory"}
Signature = tuple[tuple[str, ...], tuple[str, ...]]
Shape = tuple[str, str, "Signature | None"]


def _reader(name: str, restype: Any = _vp) -> Any:
    # accessors that read a field of a type object: keep the GIL (cheaper than releasing it)
    return ctypes.PYFUNCTYPE(restype, _vp)((name, _DLL))


_valtype_kind = _reader("wasm_valtype_kind", ctypes.c_uint8)
_externtype_kind = _reader("wasm_externtype_kind", ctypes.c_uint8)
_as_functype = _reader("wasm_externtype_as_functype_const")
_params = _reader("wasm_functype_params")
_results = _reader("wasm_functype_results")
_import_module = _reader("wasm_importtype_module")
_import_name = _reader("wasm_importtype_name")
_import_type = _reader("wasm_importtype_type")
_export_name = _reader("wasm_exporttype_name")
_export_type = _reader("wasm_exporttype_type")
_PTR = ctypes.sizeof(_vp)


def _vec(addr: int) -> tuple[int, int]:
    """``(size, data)`` of a ``wasm_*_vec_t`` at ``addr``."""
    size = ctypes.c_size_t.from_address(addr).value
    data = _vp.from_address(addr + _PTR).value or 0
    return size, data


def _items(addr: int) -> list[int]:
    size, data = _vec(addr)
    return [_vp.from_address(data + i * _PTR).value or 0 for i in range(size)]


def _kinds(vec_addr: int) -> tuple[str, ...] | None:
    out = []
    for valtype in _items(vec_addr):
        kind = _VALKINDS.get(_valtype_kind(valtype))
        if kind is None:
            return None
        out.append(kind)
    return tuple(out)


def _shape(name: str, externtype: int) -> Shape:
    kind = _EXTERNKINDS.get(_externtype_kind(externtype), "other")
    if kind != "func":
        return name, kind, None
    functype = _as_functype(externtype)
    params, results = _kinds(_params(functype)), _kinds(_results(functype))
    return name, kind, None if params is None or results is None else (params, results)


def _text(vec_addr: int) -> str:
    size, data = _vec(vec_addr)
    return ctypes.string_at(data, size).decode("utf-8", "replace")


def module_shape(module: Any) -> tuple[list[tuple[str, Shape]], list[Shape]]:
    """A module's imports ``[(module, (name, kind, signature))]`` and exports
    ``[(name, kind, signature)]``, read through the C API in one pass.

    ``kind`` is ``func``, ``global``, ``table`` or ``memory``; ``signature`` is
    ``(params, results)`` for a function of i32/i64/f32/f64 only, else None. wasmtime-py's
    ``Module.imports`` / ``exports`` build a Python object per type and value type, which made
    this check most of the cost of loading a cached module.
    """
    imports: list[tuple[str, Shape]] = []
    exports: list[Shape] = []
    ivec = _b.wasm_importtype_vec_t()
    _b.wasmtime_module_imports(module.ptr(), ctypes.byref(ivec))
    try:
        for imp in _items(ctypes.addressof(ivec)):
            shape = _shape(_text(_import_name(imp)), _import_type(imp))
            imports.append((_text(_import_module(imp)), shape))
    finally:
        _b.wasm_importtype_vec_delete(ctypes.byref(ivec))
    evec = _b.wasm_exporttype_vec_t()
    _b.wasmtime_module_exports(module.ptr(), ctypes.byref(evec))
    try:
        for exp in _items(ctypes.addressof(evec)):
            exports.append(_shape(_text(_export_name(exp)), _export_type(exp)))
    finally:
        _b.wasm_exporttype_vec_delete(ctypes.byref(evec))
    return imports, exports


def value_kinds(types: Sequence[Any]) -> tuple[str, ...] | None:
    """``('i32', 'i64', ...)`` for a list of ``wasmtime.ValType``, or None if one is unsupported."""
    out = []
    for ty in types:
        text = str(ty)
        if text not in ("i32", "i64", "f32", "f64"):
            return None
        out.append(text)
    return tuple(out)


def take_trap(slot: ctypes.c_void_p) -> Any:
    """Turn a trap pointer left in ``slot`` into a ``wasmtime.Trap`` and clear the slot."""
    from wasmtime import Trap

    ptr = slot.value
    slot.value = None
    assert ptr is not None, "take_trap() called without a trap in the slot"
    return Trap._from_ptr(ctypes.cast(ptr, ctypes.POINTER(_b.wasm_trap_t)))


def take_error(ptr: int) -> Any:
    """Turn a returned ``wasmtime_error_t*`` into a ``WasmtimeError`` (which owns it)."""
    from wasmtime import WasmtimeError

    return WasmtimeError._from_ptr(ctypes.cast(ptr, ctypes.POINTER(_b.wasmtime_error_t)))


def take_python_exception() -> BaseException | None:
    """Clear and return the exception a wasmtime-py host trampoline parked globally.

    wasmtime-py stores an exception raised by a host function in a module global and turns it
    into a trap; our fast path bypasses the code that would re-raise it, so we must clear it or a
    later, unrelated wasmtime-py call would raise it.
    """
    exc = _wfunc.LAST_EXCEPTION
    _wfunc.LAST_EXCEPTION = None
    return exc


@dataclass(slots=True)
class RawCall:
    """Everything a generated invoker needs: one slot buffer and one trap slot per function."""

    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    buffer: ctypes.Array[Any]
    trap: ctypes.c_void_p
    nslots: int
    error: list[int | None]

    @classmethod
    def for_signature(cls, name: str, params: tuple[str, ...], results: tuple[str, ...]) -> RawCall:
        nslots = max(len(params), len(results), 1)
        buffer = (ctypes.c_uint8 * (SLOT_BYTES * nslots))()
        return cls(name, params, results, buffer, ctypes.c_void_p(), nslots, [None])


def _bad_argument(name: str, index: int, kind: str, value: Any) -> TypeError:
    return TypeError(
        f"argument {index} of wasm export {name!r} must be an {kind} "
        f"(an int in range for {kind}{' or a float' if kind[0] == 'f' else ''}), got {value!r}"
    )


def make_invoker(raw: RawCall) -> Callable[..., Any]:
    """Return ``invoke(ctx, func_addr, *args)`` for ``raw``'s exact signature.

    The returned function validates and stores each argument, makes the unchecked call and
    returns ``None`` / the single result / a tuple. On a trap or error it returns the sentinel
    ``TRAPPED`` with the trap left in ``raw.trap`` (or the error pointer in ``raw.error[0]``);
    the instance turns that into a plughost error, because only it knows the limits in force.
    The code is generated and compiled once per signature; each call here only binds buffers.
    """
    buf = raw.buffer
    views = {
        "i32": (ctypes.c_int32 * (raw.nslots * SLOT_BYTES // 4)).from_buffer(buf),
        "i64": (ctypes.c_int64 * (raw.nslots * SLOT_BYTES // 8)).from_buffer(buf),
        "f32": (ctypes.c_float * (raw.nslots * SLOT_BYTES // 4)).from_buffer(buf),
        "f64": (ctypes.c_double * (raw.nslots * SLOT_BYTES // 8)).from_buffer(buf),
    }
    factory = _invoker_factory(raw.params, raw.results)
    invoke = factory(
        raw.name,
        ctypes.addressof(buf),
        raw.trap,
        ctypes.addressof(raw.trap),
        raw.error,
        views["i32"],
        views["i64"],
        views["f32"],
        views["f64"],
    )
    invoke.__views__ = views  # keep the buffer views alive as long as the invoker
    return invoke  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def _invoker_factory(params: tuple[str, ...], results: tuple[str, ...]) -> Callable[..., Any]:
    """Compile ``make(NAME, BUF, TRAP, TRAP_ADDR, ERR, v_i32, v_i64, v_f32, v_f64)`` once."""
    nslots = max(len(params), len(results), 1)
    # slot i starts at byte 16*i: index 4*i in 4-byte views, 2*i in 8-byte views
    stride = {
        "i32": SLOT_BYTES // 4,
        "f32": SLOT_BYTES // 4,
        "i64": SLOT_BYTES // 8,
        "f64": SLOT_BYTES // 8,
    }
    args = [f"a{i}" for i in range(len(params))]
    lines = [
        "def make(NAME, BUF, TRAP, TRAP_ADDR, ERR, v_i32, v_i64, v_f32, v_f64):",
        f"  def invoke(ctx, func{''.join(', ' + a for a in args)}):",
    ]
    for i, (arg, kind) in enumerate(zip(args, params, strict=True)):
        if kind in ("i32", "i64"):
            lo, hi = ("I32_MIN", "I32_MAX") if kind == "i32" else ("I64_MIN", "I64_MAX")
            lines.append(
                f"    if type({arg}) is not int or not {lo} <= {arg} <= {hi}:"
                f" raise bad(NAME, {i}, {kind!r}, {arg})"
            )
            # an i32 written through the i64 view keeps the right low 32 bits for both
            # signed and unsigned spellings; the upper half is ignored by wasm
            lines.append(
                f"    v_i64[{stride['i64'] * i}] = {arg} if {arg} <= I64_MAX_S else {arg} - TWO64"
            )
        else:
            lines.append(
                f"    if type({arg}) not in (int, float): raise bad(NAME, {i}, {kind!r}, {arg})"
            )
            lines.append(f"    v_{kind}[{stride[kind] * i}] = {arg}")
    # the length argument is the buffer's CAPACITY in slots (max of params and results):
    # passing the parameter count makes wasmtime abort the process when results > params
    lines.append(f"    err = call(ctx, func, BUF, {nslots}, TRAP_ADDR)")
    lines.append("    if err or TRAP.value:")
    lines.append("      ERR[0] = err")
    lines.append("      return TRAPPED")
    if not results:
        lines.append("    return None")
    elif len(results) == 1:
        lines.append(f"    return v_{results[0]}[0]")
    else:
        outs = ", ".join(f"v_{k}[{stride[k] * i}]" for i, k in enumerate(results))
        lines.append(f"    return ({outs},)")
    lines.append("  invoke.__name__ = NAME")
    lines.append("  return invoke")
    namespace: dict[str, Any] = {
        "bad": _bad_argument,
        "I32_MIN": _I32_MIN,
        "I32_MAX": _I32_MAX,
        "I64_MIN": _I64_MIN,
        "I64_MAX": _I64_MAX,
        "I64_MAX_S": (1 << 63) - 1,
        "TWO64": 1 << 64,
        "call": call_unchecked,
        "TRAPPED": TRAPPED,
    }
    label = f"({', '.join(params)}) -> ({', '.join(results)})"
    exec(compile("\n".join(lines), f"<wasm invoker {label}>", "exec"), namespace)
    return namespace["make"]  # type: ignore[no-any-return]


class _Trapped:
    """Sentinel returned by an invoker when the call trapped or failed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TRAPPED"


TRAPPED: Any = _Trapped()
