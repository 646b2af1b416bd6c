"""The plugin wire protocol, sans-IO: versions, handshake, message shapes, error codes.

Shared by the host (:mod:`plughost.runtimes.process.connection`) and the Python child runner
(:mod:`plughost.sdk.child`); ``docs/protocol.md`` is the normative description. Nothing here does
I/O or imports asyncio, so the child stays lean.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: the lean child runner does not import typing
if TYPE_CHECKING:
    from typing import Any

    from plughost.errors import PlughostError, PluginCrashed

# plughost.errors is imported inside the functions that raise or map errors: the Python child
# runner imports this module on every start and only needs the error tree when something fails.

__all__ = [
    "APP_PROTOCOL_VERSION",
    "ASSIGN",
    "CANCEL",
    "ENV_APP_PROTOCOL",
    "ENV_MAX_FRAME",
    "ENV_PLUGIN_ID",
    "ENV_PROTOCOL",
    "ENV_SPARE",
    "ENV_TOKEN",
    "EXIT",
    "HELLO",
    "PROTOCOL_VERSION",
    "SPARE_READY",
    "WireCode",
    "check_hello",
    "dumps",
    "enable_fast_json",
    "encode_hello",
    "error_from_wire",
    "error_to_wire",
    "hello_params",
    "loads",
]

PROTOCOL_VERSION = 1
"""Core protocol: framing, JSON-RPC envelope, handshake, cancellation, shutdown."""

APP_PROTOCOL_VERSION = 1
"""Application protocol: the ``plugin.*`` / ``host.*`` method set and their parameters."""

ENV_PROTOCOL = "PLUGHOST_PROTOCOL"
ENV_APP_PROTOCOL = "PLUGHOST_APP_PROTOCOL"
ENV_PLUGIN_ID = "PLUGHOST_PLUGIN_ID"
ENV_TOKEN = "PLUGHOST_TOKEN"
ENV_MAX_FRAME = "PLUGHOST_MAX_FRAME"

HELLO = "$/hello"
ASSIGN = "$/assign"  # plughost's own Python runner only: a warm spare is given its plugin
SPARE_READY = "$/spare"  # ... and the spare says it has finished its imports and waits
ENV_SPARE = "PLUGHOST_SPARE"
CANCEL = "$/cancelRequest"
EXIT = "$/exit"


class WireCode:
    """JSON-RPC ``error.code`` values used on the wire (see docs/protocol.md, "Errors")."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    REQUEST_CANCELLED = -32800
    PLUGIN_ERROR = -32000
    PERMISSION_DENIED = -32001
    TIMEOUT = -32002
    UNAVAILABLE = -32003
    NOT_FOUND = -32004


# --- JSON: the stdlib, or orjson (several times faster) once a session asks for it ---------------
_encode: Any = None


def _std_dumps(obj: Any) -> bytes:
    global _encode
    if _encode is None:
        import json

        _encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode
    return _encode(obj).encode("utf-8")  # type: ignore[no-any-return]


def _std_loads(body: bytes) -> Any:
    import json

    return json.loads(body)


# json is imported on first use: with orjson the child runner never imports it (nor re).
_dumps: Any = _std_dumps
_loads: Any = _std_loads
_DecodeError: type[Exception] = ValueError


def enable_fast_json() -> bool:
    """Use orjson for every message from now on if it is installed; return whether it is.

    Called when a session starts rather than at import, so importing plughost never pulls in a
    third-party module (orjson is an optional speed-up, not a dependency).
    """
    global _dumps, _loads, _DecodeError
    if _dumps is not _std_dumps:
        return True
    try:
        import orjson
    except ImportError:
        return False
    _dumps, _loads, _DecodeError = orjson.dumps, orjson.loads, orjson.JSONDecodeError
    return True


def dumps(obj: Any) -> bytes:
    """Serialise one message body to UTF-8 JSON bytes."""
    out: bytes = _dumps(obj)
    return out


def loads(body: bytes) -> Any:
    """Parse one message body."""
    return _loads(body)


def decode_message(body: bytes) -> dict[str, Any]:
    """Parse one frame body into a JSON-RPC message; raise ``protocol.json`` if it is not one."""
    try:
        msg = _loads(body)
    except (_DecodeError, ValueError, UnicodeDecodeError) as exc:
        from plughost.errors import ProtocolError

        raise ProtocolError(
            f"frame body is not valid JSON ({exc}); starts {body[:60]!r}",
            code="protocol.json",
        ) from None
    if type(msg) is not dict or msg.get("jsonrpc") != "2.0":
        from plughost.errors import ProtocolError

        raise ProtocolError(
            f'frame body is not a JSON-RPC 2.0 object (need {{"jsonrpc": "2.0", ...}}); '
            f"starts {body[:60]!r}",
            code="protocol.json",
        )
    return msg


# --- handshake ------------------------------------------------------------------------------
def hello_params(
    *,
    plugin_id: str,
    token: str,
    implementation: str,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``$/hello`` parameters a child sends as its first message."""
    params: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "app_protocol": APP_PROTOCOL_VERSION,
        "plugin_id": plugin_id,
        "token": token,
        "pid": os.getpid(),
        "implementation": implementation,
    }
    if error is not None:
        params["error"] = error
    return params


def _plain(text: str) -> bool:
    return all(32 <= ord(c) < 127 and c not in '"\\' for c in text)


def encode_hello(params: dict[str, Any]) -> bytes:
    """The ``$/hello`` body, built without importing a JSON module when the values allow.

    The Python runner sends it before anything else and counts every millisecond of start-up;
    flat ASCII strings and integers need no escaping, anything else goes through :func:`dumps`.
    """
    parts = []
    for key, value in params.items():
        if type(value) is int:
            parts.append(f'"{key}":{value}')
        elif type(value) is str and _plain(value) and _plain(key):
            parts.append(f'"{key}":"{value}"')
        else:
            return dumps({"jsonrpc": "2.0", "method": HELLO, "params": params})
    head = '{"jsonrpc":"2.0","method":"' + HELLO + '","params":{'
    return (head + ",".join(parts) + "}}").encode()


def check_hello(
    msg: dict[str, Any],
    *,
    plugin_id: str,
    token: str,
    protocol: int = PROTOCOL_VERSION,
    app_protocol: int = APP_PROTOCOL_VERSION,
) -> dict[str, Any]:
    """Validate the child's first message; return its params or raise ``ProtocolError``.

    Versions are checked before the token so a plugin built for another plughost gets the
    message that helps (both versions named), not "bad token".
    """
    from plughost.errors import ProtocolError

    if msg.get("method") != HELLO or "id" in msg:
        raise ProtocolError(
            f"the plugin's first message must be the {HELLO!r} notification, got "
            f"{str(msg.get('method') or 'a response')[:60]!r}; see docs/protocol.md 'Handshake'",
            code="protocol.handshake",
            plugin_id=plugin_id,
        )
    params = msg.get("params")
    if type(params) is not dict:
        raise ProtocolError(
            f"{HELLO} needs an object of params", code="protocol.handshake", plugin_id=plugin_id
        )
    theirs = params.get("protocol")
    if theirs != protocol:
        raise ProtocolError(
            f"protocol version mismatch: the plugin speaks core protocol {theirs!r}, this host "
            f"speaks {protocol}. Update the plugin (or its SDK) to protocol {protocol}.",
            code="protocol.version",
            plugin_id=plugin_id,
            details={"plugin": theirs, "host": protocol, "kind": "core"},
        )
    theirs_app = params.get("app_protocol")
    if theirs_app != app_protocol:
        raise ProtocolError(
            f"application protocol mismatch: the plugin speaks app protocol {theirs_app!r}, "
            f"this host speaks {app_protocol}. Update the plugin to app protocol {app_protocol}.",
            code="protocol.version",
            plugin_id=plugin_id,
            details={"plugin": theirs_app, "host": app_protocol, "kind": "app"},
        )
    import hmac  # host side only; hashlib would cost the child import time

    if not isinstance(params.get("token"), str) or not hmac.compare_digest(
        params["token"].encode(), token.encode()
    ):
        raise ProtocolError(
            "handshake token does not match the one this launch passed in "
            f"${ENV_TOKEN}; the plugin must echo it unchanged",
            code="protocol.handshake",
            plugin_id=plugin_id,
        )
    if params.get("plugin_id") != plugin_id:
        raise ProtocolError(
            f"handshake names plugin {params.get('plugin_id')!r} but {plugin_id!r} was launched; "
            f"echo ${ENV_PLUGIN_ID}",
            code="protocol.handshake",
            plugin_id=plugin_id,
        )
    return params


# --- errors ---------------------------------------------------------------------------------
def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """The JSON-RPC ``error`` object for an exception raised while serving a request."""
    from plughost.errors import PermissionDenied, PlughostError, PluginTimeout, PluginUnavailable

    wire = WireCode.PLUGIN_ERROR
    for cls, num in (
        (PermissionDenied, WireCode.PERMISSION_DENIED),
        (PluginTimeout, WireCode.TIMEOUT),
        (PluginUnavailable, WireCode.UNAVAILABLE),
    ):
        if isinstance(exc, cls):
            wire = num
            break
    data: dict[str, Any] = {"type": type(exc).__name__}
    if isinstance(exc, PlughostError):
        data["code"] = exc.code
        if exc.details:
            data["details"] = exc.details
        message = exc.message
    else:
        # A refusal the plugin did not handle (the child's HostError carries the host's code)
        # travels back with that code, so the caller sees e.g. PermissionDenied, not "error".
        code = getattr(exc, "code", None)
        data["code"] = code if isinstance(code, str) and "." in code else "plugin.error"
        if data["code"] == "permission.denied":
            wire = WireCode.PERMISSION_DENIED
        message = str(exc) or type(exc).__name__
    return {"code": wire, "message": message, "data": data}


def error_from_wire(err: Any, *, plugin_id: str, method: str) -> PlughostError:
    """Rebuild the host-side exception for an ``error`` object received from a plugin."""
    from plughost.errors import (
        PermissionDenied,
        PluginError,
        PluginTimeout,
        PluginUnavailable,
        ProtocolError,
    )

    if type(err) is not dict:
        return ProtocolError(
            f"{method}: error member is not an object", code="protocol.json", plugin_id=plugin_id
        )
    num = err.get("code")
    message = str(err.get("message") or "no message")
    raw = err.get("data")
    data: dict[str, Any] = raw if type(raw) is dict else {}
    code = data.get("code") if isinstance(data.get("code"), str) else None
    details = {"wire_code": num, "method": method, **{k: v for k, v in data.items() if k != "code"}}
    if num == WireCode.PERMISSION_DENIED:
        return PermissionDenied(message, plugin_id=plugin_id, details=details)
    if num == WireCode.TIMEOUT:
        return PluginTimeout(message, plugin_id=plugin_id, details=details)
    if num == WireCode.UNAVAILABLE:
        return PluginUnavailable(message, plugin_id=plugin_id, details=details)
    if num == WireCode.REQUEST_CANCELLED:
        return PluginError(message, code="plugin.cancelled", plugin_id=plugin_id, details=details)
    if num == WireCode.NOT_FOUND:  # as the in-process runtime says it: no such target
        return PluginUnavailable(
            message, code="plugin.no_target", plugin_id=plugin_id, details=details
        )
    if num == WireCode.METHOD_NOT_FOUND:
        return PluginError(
            f"{method}: {message}", code="plugin.method", plugin_id=plugin_id, details=details
        )
    return PluginError(message, code=code or "plugin.error", plugin_id=plugin_id, details=details)


def crashed(plugin_id: str, reason: str, **details: Any) -> PluginCrashed:
    """A :class:`PluginCrashed` with the reason the supervisor recorded."""
    from plughost.errors import PluginCrashed

    return PluginCrashed(
        f"plugin process ended: {reason}",
        plugin_id=plugin_id,
        details={"reason": reason, **details},
    )
