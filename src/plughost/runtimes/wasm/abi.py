"""The plughost wasm ABI in code: names, the (ptr, len) packing and the JSON envelope.

See ``docs/wasm-abi.md`` for the guest's view. In short: a handler export has the signature
``(ptr: i32, len: i32) -> i64`` where ``ptr``/``len`` locate a UTF-8 JSON request the host wrote
into a buffer it obtained from the guest's ``alloc``; the result is ``0`` (meaning
``{"ok": null}``) or ``(out_ptr << 32) | out_len`` locating the guest's UTF-8 JSON envelope,
``{"ok": <value>}`` or ``{"error": {"code": "...", "message": "..."}}``. The host reads the
result, then calls ``dealloc`` on both buffers. Host functions in the ``plughost`` import module
use the same shapes in the other direction.
"""

from __future__ import annotations

import json
from typing import Any

from plughost.errors import PermissionDenied, PlughostError, PluginError, ProtocolError
from plughost.runtimes.hostcalls import HOST_OPS

__all__ = [
    "ABI_VERSION",
    "ACTIVATE",
    "ALLOC",
    "CONFIG_CHANGE",
    "DEACTIVATE",
    "DEALLOC",
    "ENABLED",
    "EXPORTS",
    "EXPORT_STATE",
    "HEALTH",
    "HOST_FUNCTIONS",
    "HOST_MODULE",
    "IMPORT_STATE",
    "MEMORY",
    "WASI_MODULE",
    "decode_envelope",
    "encode_error",
    "encode_ok",
    "import_name",
    "pack",
    "unpack",
]

ABI_VERSION = 1
MEMORY = "memory"
ALLOC = "alloc"
DEALLOC = "dealloc"
ACTIVATE = "plughost_activate"
DEACTIVATE = "plughost_deactivate"
EXPORTS = "plughost_exports"
HEALTH = "plughost_health"
EXPORT_STATE = "plughost_export_state"
IMPORT_STATE = "plughost_import_state"
ENABLED = "plughost_enabled"
CONFIG_CHANGE = "on_config_change"
HOST_MODULE = "plughost"
WASI_MODULE = "wasi_snapshot_preview1"

# name -> (params, results) of every host function the ``plughost`` module offers: one per row
# of the host operations table (``host.storage.get`` is ``storage_get``); ``log`` takes its text
# directly, every other one a JSON request and answers a packed envelope.
def import_name(method: str) -> str:
    """The ``plughost`` import serving host operation ``method``: ``storage_get`` for
    ``host.storage.get``."""
    return method.removeprefix("host.").replace(".", "_")


HOST_FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    import_name(method): (("i32", "i32", "i32"), ())
    if method == "host.log"
    else (("i32", "i32"), ("i64",))
    for method in HOST_OPS
}

_MASK32 = 0xFFFFFFFF

# bound once: json.dumps/json.loads build an encoder/decoder per call when given options
encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decode_json = json.JSONDecoder().decode


def pack(ptr: int, length: int) -> int:
    """``(ptr << 32) | len`` as a signed i64 (what a wasm ``i64`` result holds)."""
    value = ((ptr & _MASK32) << 32) | (length & _MASK32)
    return value - (1 << 64) if value >= 1 << 63 else value


def unpack(value: int) -> tuple[int, int]:
    """Split a packed i64 into ``(ptr, len)``."""
    value &= (1 << 64) - 1
    return value >> 32, value & _MASK32


def encode_ok(value: Any) -> bytes:
    """``{"ok": value}`` as compact UTF-8 JSON."""
    return encode_json({"ok": value}).encode()


def encode_error(exc: BaseException) -> bytes:
    """``{"error": {...}}`` for an exception raised while serving a host call."""
    if isinstance(exc, PlughostError):
        body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    else:
        body = {"code": "host.error", "message": f"{type(exc).__name__}: {exc}"}
    return encode_json({"error": body}).encode()


def decode_envelope(data: bytes, *, what: str) -> Any:
    """Parse a guest envelope; return the ``ok`` value or raise the error it carries.

    A guest error with code ``permission.denied`` (typically a host denial the guest passed on)
    becomes :class:`PermissionDenied`; any other becomes a :class:`PluginError` with code
    ``plugin.error`` and the guest's code in ``details['guest_code']`` (a guest cannot forge
    host error codes such as ``plugin.timeout``).
    """
    try:
        doc = _decode_json(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(
            f"{what} returned invalid JSON ({exc}); a handler must return a UTF-8 JSON "
            'envelope {"ok": value} or {"error": {"code", "message"}}',
            code="protocol.json",
        ) from None
    if isinstance(doc, dict) and len(doc) == 1:
        if "ok" in doc:
            return doc["ok"]
        err = doc.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or "error")
            message = str(err.get("message") or "(no message)")
            if code == PermissionDenied.default_code:
                raise PermissionDenied(f"{what} failed: {message}", details={"guest_error": err})
            raise PluginError(
                f"{what} failed: {message} [{code}]",
                details={"guest_code": code, "guest_error": err},
            )
    raise ProtocolError(
        f'{what} returned {data[:80]!r}, not an envelope: expected {{"ok": value}} or '
        '{"error": {"code": "...", "message": "..."}}',
        code="protocol.abi",
    )
