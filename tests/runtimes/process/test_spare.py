"""The warm spare: a pre-started Python runner that the next Python plugin (or restart) takes."""

from __future__ import annotations

import pytest

from plughost.errors import PluginCrashed, PluginError
from plughost.runtimes.process.runtime import ProcessRuntime

from .conftest import PLUGINS, Context, eventually, fast_options, make_manifest, pid_alive

PYECHO = PLUGINS / "pyecho"


async def warm(runtime: ProcessRuntime) -> int:
    """Load one plugin cold so the runtime starts a spare; return the spare's pid."""
    first = await runtime.load(make_manifest("pyecho", "pyecho_plugin:Echo"), PYECHO)
    await first.start(Context())
    await eventually(lambda: runtime._spare is not None)
    assert runtime._spare is not None and runtime._spare.pid is not None
    return runtime._spare.pid


async def test_next_python_plugin_starts_in_the_spare_and_a_new_spare_follows(runtime) -> None:
    spare_pid = await warm(runtime)
    second = await runtime.load(make_manifest("pyecho2", "pyecho_plugin:Echo"), PYECHO)
    assert second.pid == spare_pid
    await second.start(Context({"greeting": "warm"}))
    result = await second.call("say", {"text": "from the spare"})
    assert result == {"text": "from the spare", "pid": spare_pid}
    assert await second.call("config", {"key": "greeting"}) == "warm"
    await eventually(lambda: runtime._spare is not None and runtime._spare.pid != spare_pid)


async def test_spare_applies_the_plugins_memory_limit_to_itself(runtime, tmp_path) -> None:
    (tmp_path / "bomb.py").write_text(
        "from plughost.sdk.decorators import command\n"
        "class Bomb:\n"
        "    @command('bomb.run')\n"
        "    def run(self):\n"
        "        hog = []\n"
        "        while True:\n"
        "            hog.append(bytearray(1 << 20))\n"
    )
    spare_pid = await warm(runtime)
    manifest = make_manifest("bomb", "bomb:Bomb", {"memory": 128 * 1024 * 1024})
    bomb = await runtime.load(manifest, tmp_path)
    assert bomb.pid == spare_pid
    await bomb.start(Context())
    with pytest.raises(PluginCrashed, match="memory limit 128 MiB exceeded"):
        await bomb.call("run", timeout=20)


async def test_spare_applies_the_open_files_limit_and_cwd(runtime, tmp_path) -> None:
    (tmp_path / "files.py").write_text(
        "import os\n"
        "from plughost.sdk.decorators import command\n"
        "class Files:\n"
        "    @command('files.open')\n"
        "    def open_many(self, n):\n"
        "        held = [open('files.py') for _ in range(n)]\n"
        "        return [len(held), os.getcwd()]\n"
    )
    await warm(runtime)
    inst = await runtime.load(make_manifest("files", "files:Files", {"open_files": 32}), tmp_path)
    await inst.start(Context())
    assert await inst.call("open_many", {"n": 3}) == [3, str(tmp_path)]
    with pytest.raises(PluginError, match="Too many open files"):
        await inst.call("open_many", {"n": 64})


async def test_restart_after_a_crash_uses_the_spare(runtime) -> None:
    spare_pid = await warm(runtime)
    inst = await runtime.load(make_manifest("crashy", "pyecho_plugin:Echo"), PYECHO)
    await inst.start(Context())
    await eventually(lambda: runtime._spare is not None)
    next_spare = runtime._spare.pid
    with pytest.raises(PluginCrashed):
        await inst.call("exit", {"code": 1})
    assert (await inst.call("say", {"text": "back"}))["pid"] == next_spare
    assert spare_pid != next_spare


async def test_no_spare_when_disabled_and_none_left_after_close() -> None:
    runtime = ProcessRuntime(options=fast_options(warm_spare=False))
    inst = await runtime.load(make_manifest("pyecho", "pyecho_plugin:Echo"), PYECHO)
    assert runtime._spare is None and runtime._spare_task is None
    pid = inst.pid
    assert pid is not None
    await runtime.aclose()
    assert not pid_alive(pid)

    runtime = ProcessRuntime(options=fast_options())
    await warm(runtime)
    spare_pid = runtime._spare.pid
    await runtime.aclose()
    assert not pid_alive(spare_pid)
