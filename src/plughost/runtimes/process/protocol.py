"""Which permission a ``host.*`` request needs, checked at the process boundary.

The wire protocol itself (framing, methods, message shapes, codes, handshake) is
:mod:`plughost.core.wire`, shared by the host and the Python child runner.
"""

from __future__ import annotations

from typing import Any

__all__ = ["required_permission"]


# --- permissions at the host boundary -------------------------------------------------------
def _need_str(params: dict[str, Any], key: str, method: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{method} needs a non-empty string {key!r}")
    return value


_FS_READ = frozenset({"host.files.read", "host.files.list", "host.files.stat"})
_FS_WRITE = frozenset({"host.files.write", "host.files.delete", "host.files.mkdir"})


def required_permission(
    method: str, params: dict[str, Any], plugin_id: str
) -> tuple[str, str] | None:
    """The ``(kind, target)`` a ``host.*`` request must be granted, or ``None`` if it needs none.

    Raises ``ValueError`` when the parameters that name the target are missing (the caller
    answers ``invalid params``). Kinds match the permission scopes: ``events:emit``,
    ``commands:execute``, ``fs:read``, ``fs:write``, ``net``, ``storage``.
    """
    if method == "host.emit":
        return ("events:emit", _need_str(params, "topic", method))
    if method == "host.execute":
        return ("commands:execute", _need_str(params, "command", method))
    if method in _FS_READ:
        return ("fs:read", _need_str(params, "path", method))
    if method in _FS_WRITE:
        return ("fs:write", _need_str(params, "path", method))
    if method.startswith("host.http."):
        from urllib.parse import urlsplit  # host side only; keeps the child lean

        url = _need_str(params, "url", method)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{method} needs an absolute http(s) URL, got {url[:100]!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return ("net", f"{parts.hostname}:{port}")
    if method.startswith("host.storage."):
        namespace = params.get("namespace") or plugin_id
        if not isinstance(namespace, str):
            raise ValueError(f"{method}: 'namespace' must be a string")
        return ("storage", namespace)
    return None
