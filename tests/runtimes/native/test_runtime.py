"""The native runtime through the host's real flows: the C example in a supervised child (the
default) and trusted in process, its lifecycle targets, the ABI check, and where the library is
looked up (the plugin folder, never PATH)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.core.bus import Event
from plughost.core.manifest import load_manifest
from plughost.runtimes.native import NativeRuntime, create_runtime
from tests.fixtures.native import REPO, build_library

EXAMPLE = REPO / "examples" / "native-c-counter"


def counter_folder(root: Path, plugin_id: str = "native-c-counter") -> Path:
    folder = root / plugin_id
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.so"))
    if plugin_id != "native-c-counter":
        toml = (folder / "plugin.toml").read_text().replace('"native-c-counter"', f'"{plugin_id}"')
        (folder / "plugin.toml").write_text(toml)
    build_library(folder / "counter.c", folder / "counter.so")
    return folder


@pytest.mark.parametrize("trusted", [False, True], ids=["process", "inprocess"])
async def test_the_c_counter_runs_through_the_host(tmp_path: Path, trusted: bool) -> None:
    counter_folder(tmp_path / "plugins")
    runtime = NativeRuntime(inprocess={"native-c-counter"} if trusted else ())
    async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
        report = await host.start()
        assert report.ok, report
        record = host.get("native-c-counter")
        assert record.state is State.ACTIVE
        assert await host.call("native-c-counter", "add", n=5) == 5
        assert await host.call("native-c-counter", "add") == 6
        assert await host.commands.execute("native-c-counter.get", {}) == 6
        health = await host.health("native-c-counter")
        assert health.ok and health.detail == "counting"
        # state handover (update / rollback) uses $export_state / $import_state
        assert await record.instance.export_state() == 6
        await host.call("native-c-counter", "on_tick", topic="counter.tick")
        stats = record.instance.stats()
        assert ("pid" in stats) is not trusted
        assert (stats.get("isolation") == "inprocess") is trusted


@pytest.mark.parametrize("trusted", [False, True], ids=["process", "inprocess"])
async def test_the_c_counter_serves_a_channel(tmp_path: Path, trusted: bool) -> None:
    counter_folder(tmp_path / "plugins")
    runtime = NativeRuntime(inprocess={"native-c-counter"} if trusted else ())
    async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
        assert (await host.start()).ok
        await host.call("native-c-counter", "add", n=10)
        # open: the library sends the count; each number comes back added; 0 ends it
        feed = await host.channels.open("native-c-counter.feed")
        assert await feed.receive() == 10
        for n in (1, 2):
            await feed.send(n)
        await feed.send(0)
        assert [m async for m in feed] == [11, 13, 13]
        assert await host.call("native-c-counter", "get") == 13
        # the opener closing its end reaches the library as a "close" step
        async with await host.channels.open("native-c-counter.feed") as again:
            assert await again.receive() == 13


async def test_a_malformed_channel_answer_aborts_the_channel_naming_the_shape(
        tmp_path: Path) -> None:
    from plughost.errors import ChannelClosed

    folder = counter_folder(tmp_path / "plugins")
    source = (folder / "counter.c").read_text().replace(
        'snprintf(buf, sizeof buf, "{\\"send\\": [%ld]}", count);',
        'snprintf(buf, sizeof buf, "[%ld]", count);')
    assert source != (folder / "counter.c").read_text()
    (folder / "counter.c").write_text(source)
    build_library(folder / "counter.c", folder / "counter.so")
    async with PluginHost([tmp_path / "plugins"], runtimes=[NativeRuntime()]) as host:
        assert (await host.start()).ok
        feed = await host.channels.open("native-c-counter.feed")
        with pytest.raises(ChannelClosed, match=r"null or \{\"send\""):
            await feed.receive()
        assert await host.call("native-c-counter", "get") == 0  # the library still answers


async def test_state_is_handed_to_a_fresh_load(tmp_path: Path) -> None:
    counter_folder(tmp_path / "plugins")
    runtime = NativeRuntime()
    async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
        await host.start()
        await host.call("native-c-counter", "add", n=41)
        manifest = host.get("native-c-counter").manifest
        fresh = await runtime.load(manifest, tmp_path / "plugins" / "native-c-counter")
        try:
            await fresh.import_state(41, from_version="1.0.0")
            assert await fresh.export_state() == 41
        finally:
            await fresh.close()


async def test_events_reach_the_library_in_process(tmp_path: Path) -> None:
    counter_folder(tmp_path / "plugins")
    runtime = NativeRuntime(inprocess={"*"})
    async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
        await host.start()
        instance = host.get("native-c-counter").instance
        event = Event(id="e1", type="event", source=None, topic="counter.tick", payload={},
                      timestamp=0.0)
        await instance.deliver_event("on_tick", event)
        assert await host.call("native-c-counter", "get") == 0


def test_a_library_entry_is_native_and_looked_up_in_the_folder_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "slack"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(
        {"name": "slack", "version": "1.0.0", "entryPoint": "slack.so", "pluginType": "notify"}))
    # A program called slack.so on PATH must not be what the host finds.
    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "slack.so").write_text("#!/bin/sh\necho pwned\n")
    (decoy / "slack.so").chmod(0o755)
    monkeypatch.setenv("PATH", f"{decoy}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(Exception, match="does not exist in the plugin folder"):
        load_manifest(folder)
    build_library(EXAMPLE / "counter.c", folder / "slack.so")
    manifest = load_manifest(folder)
    assert manifest.runtime == "native"
    assert manifest.entry == "slack.so"


async def test_a_seed_style_slack_so_loads(tmp_path: Path) -> None:
    folder = tmp_path / "plugins" / "slack"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(
        {"name": "slack", "version": "1.0.0", "entryPoint": "slack.so", "pluginType": "notify"}))
    build_library(EXAMPLE / "counter.c", folder / "slack.so")
    async with PluginHost([tmp_path / "plugins"]) as host:
        report = await host.start()
        assert report.ok, report
        assert await host.call("slack", "add", n=2) == 2


async def test_a_library_of_another_abi_version_is_refused_before_any_call(
    tmp_path: Path,
) -> None:
    folder = counter_folder(tmp_path / "plugins", "old-abi")
    source = tmp_path / "old.c"
    source.write_text((EXAMPLE / "counter.c").read_text().replace(
        "return PLUGHOST_ABI_VERSION;", "return 99;").replace(
        "host = h;", "host = h; abort();"))
    build_library(source, folder / "counter.so")
    for trusted in (False, True):
        runtime = NativeRuntime(inprocess={"*"} if trusted else ())
        async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
            report = await host.start()
            record = host.get("old-abi")
            assert record.state is State.FAILED
            assert "ABI version 99" in str(record.error)
            assert "version 1" in str(record.error)
            assert not report.ok


async def test_a_library_without_the_abi_is_refused(tmp_path: Path) -> None:
    folder = counter_folder(tmp_path / "plugins", "no-abi")
    source = tmp_path / "none.c"
    source.write_text("int something(void) { return 1; }\n")
    build_library(source, folder / "counter.so")
    async with PluginHost([tmp_path / "plugins"], runtimes=[NativeRuntime(inprocess={"*"})]) as h:
        await h.start()
        assert "does not export plughost_abi_version" in str(h.get("no-abi").error)


async def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = counter_folder(tmp_path / "plugins", "escape")
    outside = build_library(EXAMPLE / "counter.c", tmp_path / "elsewhere" / "lib.so")
    (folder / "counter.so").unlink()
    (folder / "counter.so").symlink_to(outside)
    async with PluginHost([tmp_path / "plugins"], runtimes=[NativeRuntime(inprocess={"*"})]) as h:
        await h.start()
        record = h.get("escape")
        assert record.state is State.FAILED
        assert "outside the plugin folder" in str(record.error)


def test_inprocess_is_the_operators_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGHOST_NATIVE_INPROCESS", "a, b")
    runtime = create_runtime()
    assert runtime.trusted("a") and runtime.trusted("b") and not runtime.trusted("c")
    monkeypatch.delenv("PLUGHOST_NATIVE_INPROCESS")
    assert not create_runtime().trusted("a")


async def test_the_rust_cdylib_example_loads(tmp_path: Path) -> None:
    import subprocess

    cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    assert Path(cargo).exists(), "cargo is not installed: install Rust's cargo to build it"
    src = REPO / "examples" / "native-rust-greeter"
    work = tmp_path / "build"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("target", "*.so"))
    subprocess.run([cargo, "build", "--release", "--offline", "--quiet"], cwd=work, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(work / "target")})
    folder = tmp_path / "plugins" / "native-rust-greeter"
    folder.mkdir(parents=True)
    shutil.copy(src / "package" / "plugin.toml", folder)
    shutil.copy(work / "target" / "release" / "libgreeter.so", folder / "libgreeter.so")
    for trusted in (False, True):
        runtime = NativeRuntime(inprocess={"*"} if trusted else ())
        async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
            report = await host.start()
            assert report.ok, report
            result: Any = await host.call("native-rust-greeter", "greet", name="Ada")
            assert result == "Hello, Ada!"


async def test_the_isolated_child_imports_the_library_wrapper_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every isolated load starts a fresh child: it must not import the host side (asyncio, the
    # process runtime, the shared host-operations table), which once cost ~50 ms per load.
    from plughost.runtimes.process.launch import ProcessOptions

    counter_folder(tmp_path / "plugins")
    options = ProcessOptions(warm_spare=False, python_flags=("-S", "-X", "importtime"),
                             output_lines_per_second=100_000)
    runtime = NativeRuntime(options=options)
    with caplog.at_level("DEBUG"):
        async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
            assert (await host.start()).ok
            assert await host.call("native-c-counter", "add", n=2) == 2
    imported = {line.rsplit("|", 1)[-1].strip() for record in caplog.records
                if record.name == "plughost.plugin.native-c-counter"
                for line in record.getMessage().splitlines() if "import time:" in line}
    assert "plughost.runtimes.native.library" in imported, sorted(imported)[:20]
    assert not imported & {"asyncio", "plughost.runtimes.process.runtime",
                           "plughost.runtimes.native.runtime", "plughost.runtimes.hostcalls"}


async def test_isolated_native_plugins_start_in_the_warm_spare(tmp_path: Path) -> None:
    # The runner reads the library's path only when it imports its entry, so a pre-started
    # runner can become a native plugin: no interpreter start per load or restart.
    from plughost.errors import PluginCrashed
    from plughost.runtimes.process.launch import ProcessOptions

    from ..process.conftest import eventually

    counter_folder(tmp_path / "plugins")
    toml = counter_folder(tmp_path / "plugins", "second-counter") / "plugin.toml"
    toml.write_text(toml.read_text().replace('entry = "counter.so"',
                                             'entry = "counter.so"\nactivation = ["manual"]'))
    runtime = NativeRuntime(options=ProcessOptions(warm_spare=True))
    spares = runtime.children
    async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
        assert (await host.start()).ok
        first = host.get("native-c-counter").instance
        assert first.stats()["started"] == "cold"
        await eventually(lambda: spares._spare is not None)
        assert spares._spare is not None
        spare_pid = spares._spare.pid
        await host.activate("second-counter")  # loaded now, on first use
        second = host.get("second-counter").instance
        assert second.stats()["started"] == "spare" and second.pid == spare_pid
        assert await host.call("second-counter", "add", n=4) == 4
        assert await host.call("native-c-counter", "add", n=1) == 1  # its own library state
        # a restart after a crash takes the next spare too
        await eventually(lambda: spares._spare is not None)
        with pytest.raises(PluginCrashed):
            await host.call("second-counter", "crash")
        await eventually(lambda: second.stats()["restarts"] == 1, timeout=30)
        assert second.stats()["started"] == "spare"
        assert await host.call("second-counter", "get") == 0
