"""Python process plugins keep compiled bytecode in a cache directory of their own under the
home (``PYTHONPYCACHEPREFIX``), never beside the package's sources, and no plugin can write
another's cache — cold starts and warm spares alike (runtimes/process/launch.py)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from plughost.runtimes.process.runtime import ProcessRuntime
from tests.runtimes.process.conftest import Context, fast_options, make_manifest

PLUGIN = '''
import os
from plughost.sdk import Plugin
import helper_mod


class Probe(Plugin):
    def activate(self, ctx):
        self.ctx = ctx

    def info(self):
        import sys
        return {"prefix": sys.pycache_prefix, "dont_write": sys.dont_write_bytecode,
                "helper": helper_mod.VALUE}

    def write(self, path):
        try:
            with open(path, "w") as f:
                f.write("planted")
        except OSError as exc:
            return type(exc).__name__
        return "written"
'''


def _package(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}_plugin.py").write_text(PLUGIN)
    (folder / "helper_mod.py").write_text("VALUE = 42\n")
    return folder


def _pyc_of(cache: Path, source: Path) -> Path:
    tag = sys.implementation.cache_tag
    return cache / str(source.parent).lstrip("/") / f"{source.stem}.{tag}.pyc"


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm-spare"])
async def test_bytecode_goes_to_the_plugins_own_cache_under_the_home(
    tmp_path: Path, warm: bool
) -> None:
    home = tmp_path / "home"
    root = home / "cache" / "pyc"
    rt = ProcessRuntime(options=fast_options(pycache_root=root, warm_spare=warm,
                                             data_root=home / "data"))
    try:
        if warm:  # the first Python plugin starts cold and leaves a spare for the next one
            first = await rt.load(make_manifest("first", "first_plugin:Probe"),
                                  _package(tmp_path / "pkgs", "first"))
            await first.close()
            while rt._spare is None:  # the spare announces itself with $/spare
                await asyncio.sleep(0.01)
            spare_pid = rt._spare.pid
        folder = _package(tmp_path / "pkgs", "alpha")
        inst = await rt.load(make_manifest("alpha", "alpha_plugin:Probe"), folder)
        if warm:
            assert inst.pid == spare_pid, "the spare was not the one assigned"
        await inst.start(Context())
        info = await inst.call("info")
        cache = root / "alpha"
        assert info == {"prefix": str(cache), "dont_write": False, "helper": 42}
        # the plugin's own modules are compiled into its cache, and nothing beside its sources
        assert _pyc_of(cache, folder / "alpha_plugin.py").is_file()
        assert _pyc_of(cache, folder / "helper_mod.py").is_file()
        assert not list(folder.rglob("__pycache__")), "bytecode written into the package"
        # a second plugin cannot plant bytecode in the first one's cache (Landlock)
        other = await rt.load(make_manifest("beta", "beta_plugin:Probe"),
                              _package(tmp_path / "pkgs", "beta"))
        await other.start(Context())
        planted = _pyc_of(cache, folder / "helper_mod.py")
        assert await other.call("write", {"path": str(planted)}) == "PermissionError"
        assert await other.call("write", {"path": str(cache / "new.pyc")}) == "PermissionError"
        assert await inst.call("write", {"path": str(cache / "own.txt")}) == "written"
        assert await other.call("info") == {"prefix": str(root / "beta"), "dont_write": False,
                                             "helper": 42}
    finally:
        await rt.aclose()


async def test_without_a_cache_directory_no_bytecode_is_written(tmp_path: Path) -> None:
    rt = ProcessRuntime(options=fast_options(warm_spare=False))
    try:
        folder = _package(tmp_path, "gamma")
        inst = await rt.load(make_manifest("gamma", "gamma_plugin:Probe"), folder)
        await inst.start(Context())
        assert await inst.call("info") == {"prefix": None, "dont_write": True, "helper": 42}
        assert not list(folder.rglob("__pycache__"))
    finally:
        await rt.aclose()
