"""plughost: a plugin platform for Python applications.

The embedding front door. Everything an application needs is importable from here; the list is
curated and guarded by ``tests/test_exports.py`` so nothing leaks by accident.
"""

from plughost.core.lifecycle import LifecycleEvent, State
from plughost.errors import (
    InvalidTransition,
    ManifestError,
    PermissionDenied,
    PlughostError,
    PluginNotFound,
    PluginTimeout,
    ResolutionError,
)

from plughost._version import __version__

__all__ = [
    "InvalidTransition",
    "LifecycleEvent",
    "ManifestError",
    "PermissionDenied",
    "PlughostError",
    "PluginNotFound",
    "PluginTimeout",
    "ResolutionError",
    "State",
    "__version__",
]
