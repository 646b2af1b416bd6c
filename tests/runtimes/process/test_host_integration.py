"""runtime = "process" plugins through PluginHost: discovery, activation, calls, permissions,
quarantine recorded as FAILED and cleared by enable()."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.errors import (
    PermissionDenied,
    PluginCrashed,
    PluginUnavailable,
    ProtocolError,
)
from plughost.runtimes.process.runtime import ProcessRuntime
from tests._tools import require_tool

from .conftest import PLUGINS, eventually, fast_options

NODE_EXAMPLE = Path(__file__).parents[3] / "examples" / "node-greeter"


class Grants:
    """A permission service: exact (kind, target) pairs; everything else is denied."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = set(pairs)

    def check(self, kind: str, target: str) -> None:
        if (kind, target) not in self.pairs:
            raise PermissionDenied(f"{kind}:{target} is not granted")


class Services:
    """A HostExtension that attaches permissions to every plugin context (the host's own
    communication layer attaches the real, owner-scoped bus)."""

    def __init__(self) -> None:
        self.grants = Grants(("events:emit", "allowed.topic"), ("events:emit", "greeter.greeted"))

    def prepare_context(self, record: Any, context: Any) -> None:
        context.attach("permissions", self.grants)


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    shutil.copytree(PLUGINS / "pyecho", tmp_path / "pyecho")
    require_tool("node", "the host drives the Node.js example beside the Python one")
    shutil.copytree(NODE_EXAMPLE, tmp_path / "node-greeter")
    return tmp_path


async def test_process_manifest_just_works_through_the_host(plugins_dir: Path) -> None:
    services = Services()
    async with PluginHost([plugins_dir]) as host:
        host.add_extension(services)
        events: list[Any] = []
        host.comms.bus.subscribe("allowed.*", events.append)
        report = await host.start()
        assert host.get("pyecho").state is State.ACTIVE, report
        result = await host.call("pyecho", "say", text="through the host")
        assert result["text"] == "through the host"
        assert await host.call("pyecho", "emit", topic="allowed.topic") == 1
        assert [(e.topic, e.payload, e.source) for e in events] == [
            ("allowed.topic", None, "pyecho")
        ]
        with pytest.raises(PermissionDenied, match=r"events:emit:denied\.topic is not granted"):
            await host.call("pyecho", "emit", topic="denied.topic")
        greeted = await host.call("node-greeter", "greet", name="Ada")
        assert greeted["text"] == "Hello, Ada!" and greeted["emitted"] == 0  # no subscriber
        pid = host.get("pyecho").instance.pid
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


async def test_quarantine_marks_the_record_failed_and_enable_brings_it_back(
    plugins_dir: Path,
) -> None:
    from plughost.observability.health import RestartPolicy

    host = PluginHost([plugins_dir])
    fast = ProcessRuntime(
        options=fast_options(),
        policy=RestartPolicy(initial_delay=0.01, max_delay=0.05, max_crashes=2),
        on_event=host._on_supervisor_event,
    )
    host.add_runtime(fast)
    async with host:
        await host.start()
        record = host.get("pyecho")
        with pytest.raises(PluginCrashed):
            await host.call("pyecho", "exit", code=9)
        assert (await host.call("pyecho", "say", text="restarted"))["text"] == "restarted"
        with pytest.raises(PluginCrashed):
            await host.call("pyecho", "exit", code=9)
        await eventually(lambda: record.state is State.FAILED)
        assert record.phase == "supervise"
        assert "quarantined after 2 crashes" in record.error.message
        assert "exited with code 9" in record.error.message
        with pytest.raises(PluginUnavailable):
            await host.call("pyecho", "say", text="x")
        await eventually(lambda: record.instance is None)  # exports and instance released
        await host.enable("pyecho")
        assert record.state is State.ACTIVE
        assert (await host.call("pyecho", "say", text="again"))["text"] == "again"


def test_sync_facade_drives_a_process_plugin_from_its_loop_thread(plugins_dir: Path) -> None:
    from plughost import SyncPluginHost

    host = SyncPluginHost(PluginHost([plugins_dir]))
    try:
        host.start()
        result = host.call("pyecho", "say", text="sync")
        assert result["text"] == "sync"
        pid = result["pid"]
    finally:
        host.close()
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_reply_that_is_not_json_is_a_protocol_json_error_naming_the_plugin(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "rogue"
    folder.mkdir()
    shutil.copy(PLUGINS / "rogue.py", folder / "rogue.py")
    (folder / "plugin.toml").write_text(
        'id = "rogue"\nname = "rogue"\nversion = "1.0.0"\nruntime = "process"\n'
        'entry = "python rogue.py bad-json"\n')
    shutil.copytree(PLUGINS / "pyecho", tmp_path / "pyecho")
    async with PluginHost([tmp_path], runtimes=[ProcessRuntime(options=fast_options())]) as host:
        assert (await host.start()).ok
        with pytest.raises(ProtocolError) as info:
            await host.call("rogue", "run", timeout=10)
        error = info.value
        assert error.code == "protocol.json" and error.plugin_id == "rogue"
        assert "not valid JSON" in error.message and "{not json" in error.message
        assert str(error).startswith("[rogue] ")
        assert (await host.call("pyecho", "say", text="hi"))["text"] == "hi"
