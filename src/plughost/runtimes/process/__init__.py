"""Subprocess plugins in any language: framing, handshake, JSON-RPC session, supervision.

See ``docs/protocol.md`` for the wire protocol a plugin implements.

The names below load lazily: the Python child runner imports ``framing`` and ``protocol`` from
this package and must not pay for asyncio and the host-side runtime it never uses.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the lean child runner imports this package
if TYPE_CHECKING:
    from typing import Any

    from plughost.runtimes.process.runtime import (
        ProcessInstance,
        ProcessOptions,
        ProcessRuntime,
        SupervisorEvent,
        create_runtime,
    )

__all__ = [
    "ProcessInstance",
    "ProcessOptions",
    "ProcessRuntime",
    "SupervisorEvent",
    "create_runtime",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from plughost.runtimes.process import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
