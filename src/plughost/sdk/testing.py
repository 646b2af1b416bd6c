"""Test seams for plugin authors (and plughost's own suite).

    from plughost.sdk.testing import make_test_host

    async def test_greets():
        async with make_test_host("path/to/my-plugin") as host:
            report = await host.start()
            assert report.ok, report
            assert await host.call("hello", "greet", name="Ada") == "Hello, Ada!"

A plugin class defined in a test module works too: ``make_test_host(MyPlugin)`` builds a manifest
for it (id from the class's ``plugin_id`` attribute or its name) and imports it normally.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from plughost.core.manifest import Manifest, manifest_from_dict
from plughost.host import PluginHost
from plughost.runtimes.base import Runtime

__all__ = ["make_test_host", "manifest_for_class"]


def manifest_for_class(cls: type, **fields: Any) -> Manifest:
    """A manifest for a plugin class that has no folder (entry = ``module:QualName``)."""
    default_id = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
    data: dict[str, Any] = {
        "id": getattr(cls, "plugin_id", default_id),
        "name": cls.__name__,
        "version": getattr(cls, "plugin_version", "0.0.0"),
        "entry": f"{cls.__module__}:{cls.__qualname__}",
    }
    data.update(fields)
    return manifest_from_dict(data, source=f"class {cls.__qualname__}")


def make_test_host(
    *plugins: str | Path | type,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    runtimes: Iterable[Runtime] | None = None,
    home: str | Path | None = None,
    on_plugin_error: str = "fail",
    **host_options: Any,
) -> PluginHost:
    """A :class:`PluginHost` over the given plugin folders and/or plugin classes.

    Failures raise by default (``on_plugin_error="fail"``) so a broken plugin fails the test
    loudly. Without ``home`` plugins get no ``ctx.data_dir`` (pass pytest's ``tmp_path``).
    """
    dirs: list[Path] = []
    classes: list[type] = []
    for item in plugins:
        if isinstance(item, type):
            classes.append(item)
        else:
            dirs.append(Path(item))
    host = PluginHost(
        dirs,
        home=home,
        config=config,
        runtimes=runtimes,
        on_plugin_error=on_plugin_error,
        **host_options,
    )
    for cls in classes:
        host.add(manifest_for_class(cls), None, source="test")
    return host
