from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path

import pytest

from plughost.core.context import PluginContext
from plughost.core.manifest import load_manifest
from plughost.errors import PluginLoadError, PluginTimeout, PluginUnavailable
from plughost.runtimes.base import Health, PluginInstance, Runtime
from plughost.runtimes.inprocess import NAMESPACE_ROOT, InProcessRuntime
from tests.conftest import WritePlugin

UTILS_USER = """
from plughost.sdk import Plugin
from . import utils

class Main(Plugin):
    def which(self):
        return utils.WHO
"""


async def load(root: Path):
    manifest = load_manifest(root)
    instance = await InProcessRuntime().load(manifest, root)
    return manifest, instance


def test_runtime_and_instance_satisfy_the_contract() -> None:
    assert isinstance(InProcessRuntime(), Runtime)
    assert InProcessRuntime.enforces == frozenset()


async def test_two_plugins_with_a_utils_module_never_collide(write_plugin: WritePlugin) -> None:
    a = write_plugin("alpha", code=UTILS_USER, files={"utils.py": "WHO = 'alpha'\n"})
    b = write_plugin("beta", code=UTILS_USER, files={"utils.py": "WHO = 'beta'\n"})
    _, ia = await load(a)
    _, ib = await load(b)
    assert isinstance(ia, PluginInstance)
    assert await ia.call("which") == "alpha"
    assert await ib.call("which") == "beta"
    assert "utils" not in sys.modules or getattr(sys.modules["utils"], "WHO", None) is None
    await ia.close()
    await ib.close()


async def test_two_versions_of_one_plugin_load_side_by_side(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    v1 = write_plugin("dual", "1.0.0", code=UTILS_USER, files={"utils.py": "WHO = 'v1'\n"},
                      directory=tmp_path / "v1")
    v2 = write_plugin("dual", "2.0.0", code=UTILS_USER, files={"utils.py": "WHO = 'v2'\n"},
                      directory=tmp_path / "v2")
    _, i1 = await load(v1)
    _, i2 = await load(v2)
    assert (await i1.call("which"), await i2.call("which")) == ("v1", "v2")
    assert i1.namespace != i2.namespace
    await i1.close()
    await i2.close()


async def test_unload_removes_modules_and_every_reference(write_plugin: WritePlugin) -> None:
    root = write_plugin("leaky", code=UTILS_USER, files={"utils.py": "WHO = 'x'\n"})
    manifest, instance = await load(root)
    namespace = instance.namespace
    assert namespace is not None and namespace.startswith(NAMESPACE_ROOT)
    module_ref = weakref.ref(sys.modules[f"{namespace}.main"])
    obj_ref = weakref.ref(instance.plugin_object)
    await instance.start(PluginContext(manifest))
    await instance.stop()
    await instance.close()
    await instance.close()  # idempotent
    gc.collect()
    assert not [k for k in sys.modules if k.startswith(namespace)]
    assert module_ref() is None
    assert obj_ref() is None
    with pytest.raises(PluginUnavailable, match="unloaded"):
        await instance.call("which")


async def test_reload_after_unload_sees_changed_code(write_plugin: WritePlugin) -> None:
    root = write_plugin("changing", code=UTILS_USER, files={"utils.py": "WHO = 'old'\n"})
    _, first = await load(root)
    assert await first.call("which") == "old"
    await first.close()
    (root / "utils.py").write_text("WHO = 'new'\n")
    _, second = await load(root)
    assert await second.call("which") == "new"
    await second.close()


@pytest.mark.parametrize(
    ("code", "entry", "match"),
    [
        ("X = 1\n", "main:Missing", "has no attribute 'Missing'"),
        ("raise RuntimeError('boom at import')\n", "main:Main", "boom at import"),
        ("class Main:\n    def __init__(self, needed):\n        pass\n", "main:Main",
         "no constructor arguments"),
    ],
)
async def test_entry_failures_raise_load_errors_and_leave_no_modules(
    write_plugin: WritePlugin, code: str, entry: str, match: str
) -> None:
    root = write_plugin("broken", code=code, entry=entry)
    before = {k for k in sys.modules if k.startswith(NAMESPACE_ROOT + ".")}
    with pytest.raises(PluginLoadError, match=match) as info:
        await load(root)
    assert info.value.plugin_id == "broken" and info.value.phase == "import"
    after = {k for k in sys.modules if k.startswith(NAMESPACE_ROOT + ".")}
    assert after == before


async def test_start_calls_activate_with_context_and_health_reports(
    write_plugin: WritePlugin,
) -> None:
    code = """
    from plughost.sdk import Plugin, Health
    class Main(Plugin):
        def activate(self, ctx):
            self.seen = ctx.config["k"]
        async def health(self):
            return Health(True, f"seen={self.seen}")
        async def slow(self):
            import asyncio
            await asyncio.sleep(10)
    """
    root = write_plugin("healthy", code=code)
    manifest, instance = await load(root)
    await instance.start(PluginContext(manifest, config={"k": 42}))
    assert await instance.health() == Health(True, "seen=42")
    with pytest.raises(PluginTimeout):
        await instance.call("slow", timeout=0.01)
    await instance.close()
    assert (await instance.health()).ok is False


async def test_private_attributes_are_not_callable_targets(write_plugin: WritePlugin) -> None:
    _, instance = await load(write_plugin("private"))
    assert instance.local_callable("_secret") is None
    with pytest.raises(PluginUnavailable) as info:
        await instance.call("__init__")
    assert info.value.code == "plugin.no_target"
    await instance.close()


async def test_factory_function_entry_is_called(write_plugin: WritePlugin) -> None:
    code = """
    class Thing:
        def hello(self):
            return "made by factory"
    def make():
        return Thing()
    """
    _, instance = await load(write_plugin("factory", code=code, entry="main:make"))
    assert await instance.call("hello") == "made by factory"
    await instance.close()
