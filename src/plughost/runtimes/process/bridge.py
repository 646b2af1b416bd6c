"""The process transport of the host operations: ``host.*`` JSON-RPC requests → the table.

What a request may do, which permission it needs and which service answers it is
:mod:`plughost.runtimes.hostcalls`; this module only maps the table's refusals onto JSON-RPC
errors (bad parameters → ``-32602``, no such operation or no service → ``-32601``; a
``PermissionDenied`` travels as ``-32001`` through the connection's error mapping).
"""

from __future__ import annotations

from typing import Any

from plughost.runtimes.hostcalls import (
    HostCalls,
    HostHandler,
    HostOpUnserved,
    HostParamsError,
    PermissionCheck,
    check_from_context,
    deny_all,
)
from plughost.runtimes.process.connection import invalid_params, method_not_found

__all__ = [
    "HostCalls",
    "HostHandler",
    "PermissionCheck",
    "check_from_context",
    "deny_all",
    "serve",
]


def serve(calls: HostCalls, method: str, params: Any) -> Any:
    """Answer one ``host.*`` request from a process plugin (a value or an awaitable)."""
    try:
        return calls.dispatch(method, params)
    except HostParamsError as exc:
        raise invalid_params(str(exc)) from None
    except HostOpUnserved as exc:
        raise method_not_found(f"{exc}; see docs/protocol.md") from None
