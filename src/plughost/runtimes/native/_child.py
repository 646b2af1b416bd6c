"""The native plugin as the process child runner sees it (imported only in that child).

The child runner (:mod:`plughost.sdk.child`) is started with the entry
``plughost.runtimes.native._child:plugin``: importing this module loads the library named by
``$PLUGHOST_NATIVE_LIBRARY`` and checks its ABI, so a bad library fails the load (in the child,
never in the host), before anything else in it is called.
"""

from __future__ import annotations

from plughost.runtimes.native.library import from_environment

plugin = from_environment()
