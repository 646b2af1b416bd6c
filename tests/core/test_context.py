from __future__ import annotations

from pathlib import Path

import pytest

from plughost.core.context import PluginContext
from plughost.core.manifest import manifest_from_dict
from plughost.errors import PluginUnavailable

MANIFEST = manifest_from_dict({"id": "ctx-test", "name": "C", "version": "1.0.0", "entry": "m:P"})


def test_config_is_read_only() -> None:
    ctx = PluginContext(MANIFEST, config={"a": 1})
    assert ctx.config["a"] == 1
    with pytest.raises(TypeError):
        ctx.config["a"] = 2  # type: ignore[index]


def test_logger_is_named_after_the_plugin() -> None:
    assert PluginContext(MANIFEST).logger.name == "plughost.plugin.ctx-test"


def test_unattached_service_says_what_is_missing() -> None:
    ctx = PluginContext(MANIFEST)
    with pytest.raises(PluginUnavailable, match=r"ctx\.http is not available"):
        _ = ctx.http
    with pytest.raises(AttributeError):
        _ = ctx.no_such_thing


def test_attached_service_is_reachable_and_unknown_names_refused() -> None:
    ctx = PluginContext(MANIFEST)
    marker = object()
    ctx.attach("storage", marker)
    assert ctx.storage is marker and ctx.has("storage")
    with pytest.raises(ValueError, match="unknown context service"):
        ctx.attach("shell", object())


def test_data_dir_is_created_on_demand(tmp_path: Path) -> None:
    ctx = PluginContext(MANIFEST, data_dir=tmp_path / "data" / "ctx-test")
    assert ctx.data_dir.is_dir()
    with pytest.raises(PluginUnavailable, match="without a data directory"):
        _ = PluginContext(MANIFEST).data_dir
