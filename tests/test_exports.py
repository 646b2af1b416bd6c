"""The front doors export exactly what they list (as httpx's test_exported_members does)."""

from __future__ import annotations

import plughost
import plughost.sdk

EXPECTED_ROOT = {
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
}


def test_root_exports_exactly_the_curated_list() -> None:
    assert set(plughost.__all__) == EXPECTED_ROOT
    for name in plughost.__all__:
        assert hasattr(plughost, name), name


def test_public_names_are_all_exported() -> None:
    public = {n for n in vars(plughost) if not n.startswith("_")}
    # Subpackages appear as attributes once imported; they are not exports.
    modules = {"core", "errors", "host", "runtimes", "sdk", "interfaces", "security", "storage",
               "services", "observability", "settings", "watch"}
    assert public - modules <= set(plughost.__all__)


def test_sdk_exports() -> None:
    assert {"Plugin", "PluginContext", "Health"} <= set(plughost.sdk.__all__)
    for name in plughost.sdk.__all__:
        assert hasattr(plughost.sdk, name), name


def test_core_and_sdk_import_only_the_standard_library_and_resolvelib() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parent.parent / "src"

    code = (
        "import sys\n"
        "baseline = set(sys.modules)  # whatever site hooks (.pth files) import anyway\n"
        "import plughost, plughost.sdk, plughost.sdk.testing\n"
        "import plughost.core.resolver, plughost.core.discovery\n"
        "new = set(sys.modules) - baseline\n"
        "third = {m.split('.')[0] for m in new} - set(sys.stdlib_module_names)\n"
        "third -= {'plughost', 'resolvelib', '_plughost_plugins'}\n"
        "print(sorted(m for m in third if not m.startswith('_')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(src)}).stdout.strip()
    assert out == "[]"
