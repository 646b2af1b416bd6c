"""Native plugins: shared libraries implementing the C ABI of ``include/plughost.h``.

See ``docs/native.md``. :mod:`.library` wraps one library (ctypes) as a plugin object;
:mod:`.runtime` runs it in a supervised child process (default) or, when the operator trusts it,
in the host's own process.

The names below are imported on first use: the child runner of an isolated plugin imports
:mod:`.library` alone, and must not pay for the host side (asyncio, the process runtime) on
every load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plughost.runtimes.native.runtime import (
        ENV_INPROCESS,
        NativeInProcessInstance,
        NativeRuntime,
        create_runtime,
        library_path,
    )

__all__ = ["ENV_INPROCESS", "NativeInProcessInstance", "NativeRuntime", "create_runtime",
           "library_path"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from plughost.runtimes.native import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
