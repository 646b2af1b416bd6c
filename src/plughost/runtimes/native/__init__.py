"""Native plugins: shared libraries implementing the C ABI of ``include/plughost.h``.

See ``docs/native.md``. :mod:`.library` wraps one library (ctypes) as a plugin object;
:mod:`.runtime` runs it in a supervised child process (default) or, when the operator trusts it,
in the host's own process.
"""

from __future__ import annotations

from plughost.runtimes.native.runtime import (
    ENV_INPROCESS,
    NativeInProcessInstance,
    NativeRuntime,
    create_runtime,
    library_path,
)

__all__ = ["ENV_INPROCESS", "NativeInProcessInstance", "NativeRuntime", "create_runtime",
           "library_path"]
