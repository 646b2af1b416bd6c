"""Subprocess plugins in any language: framing, handshake, JSON-RPC session, supervision.

See ``docs/protocol.md`` for the wire protocol a plugin implements; :mod:`plughost.core.wire`
implements it for both ends (this package is the host's end, :mod:`plughost.sdk.child` the
Python plugin's).

The names below load lazily: importing a submodule (``launch``, ``protocol``) does not pay for
asyncio and the supervised runtime.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: keeps importing a submodule cheap
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
