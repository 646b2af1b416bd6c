"""plughost: a plugin platform for Python applications.

The embedding front door. Everything an application needs is importable from here; the list is
curated and guarded by ``tests/test_exports.py`` so nothing leaks by accident.

    from plughost import PluginHost

    async with PluginHost(["plugins"]) as host:
        report = await host.start()

Names load on first use (PEP 562): ``import plughost.sdk`` in a plugin — in particular in a
plugin subprocess, whose start-up time is budgeted — does not pay for the host, asyncio and
the manifest machinery.
"""

import importlib as _importlib

from plughost._version import __version__

# Not typing.TYPE_CHECKING: importing typing costs a plugin subprocess milliseconds at start-up.
# Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from plughost.core.lifecycle import LifecycleEvent
    from plughost.core.lifecycle import State
    from plughost.core.manifest import Manifest
    from plughost.core.manifest import load_manifest
    from plughost.core.version import Version
    from plughost.core.version import VersionRange
    from plughost.errors import DependentsExist
    from plughost.errors import InvalidTransition
    from plughost.errors import ManifestError
    from plughost.errors import PermissionDenied
    from plughost.errors import PlughostError
    from plughost.errors import PluginCrashed
    from plughost.errors import PluginError
    from plughost.errors import PluginNotFound
    from plughost.errors import PluginTimeout
    from plughost.errors import PluginUnavailable
    from plughost.errors import ReloadError
    from plughost.errors import ResolutionError
    from plughost.host import LoadReport
    from plughost.host import ReloadResult
    from plughost.host import PluginHost
    from plughost.host import SyncPluginHost
    from plughost.host import fail
    from plughost.host import isolate

del TYPE_CHECKING  # not an export

_LAZY: dict[str, str] = {
    "LifecycleEvent": "plughost.core.lifecycle",
    "State": "plughost.core.lifecycle",
    "Manifest": "plughost.core.manifest",
    "load_manifest": "plughost.core.manifest",
    "Version": "plughost.core.version",
    "VersionRange": "plughost.core.version",
    "DependentsExist": "plughost.errors",
    "InvalidTransition": "plughost.errors",
    "ManifestError": "plughost.errors",
    "PermissionDenied": "plughost.errors",
    "PlughostError": "plughost.errors",
    "PluginCrashed": "plughost.errors",
    "PluginError": "plughost.errors",
    "PluginNotFound": "plughost.errors",
    "PluginTimeout": "plughost.errors",
    "PluginUnavailable": "plughost.errors",
    "ReloadError": "plughost.errors",
    "ResolutionError": "plughost.errors",
    "LoadReport": "plughost.host",
    "ReloadResult": "plughost.host",
    "PluginHost": "plughost.host",
    "SyncPluginHost": "plughost.host",
    "fail": "plughost.host",
    "isolate": "plughost.host",
}

__all__ = [
    "DependentsExist",
    "InvalidTransition",
    "LifecycleEvent",
    "LoadReport",
    "Manifest",
    "ManifestError",
    "PermissionDenied",
    "PlughostError",
    "PluginCrashed",
    "PluginError",
    "PluginHost",
    "PluginNotFound",
    "PluginTimeout",
    "PluginUnavailable",
    "ReloadError",
    "ReloadResult",
    "ResolutionError",
    "State",
    "SyncPluginHost",
    "Version",
    "VersionRange",
    "__version__",
    "fail",
    "isolate",
    "load_manifest",
]


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plughost' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value
