"""plughost: a plugin platform for Python applications.

The embedding front door. Everything an application needs is importable from here; the list is
curated and guarded by ``tests/test_exports.py`` so nothing leaks by accident.

    from plughost import PluginHost

    async with PluginHost(["plugins"]) as host:
        report = await host.start()
"""

from plughost._version import __version__
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
from plughost.errors import ResolutionError
from plughost.host import LoadReport
from plughost.host import PluginHost
from plughost.host import SyncPluginHost
from plughost.host import fail
from plughost.host import isolate

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
