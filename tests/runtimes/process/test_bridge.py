"""host.* requests from a process plugin go through the host operations table to the services a
PluginContext carries (the real owner-scoped bus and command registry), after its check."""

from __future__ import annotations

import shutil
import textwrap
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plughost.core.bus import EventBus
from plughost.core.commands import CommandRegistry
from plughost.core.context import PluginContext
from plughost.core.scoped import ScopedBus, ScopedCommands
from plughost.errors import PermissionDenied, PluginError
from plughost.host import PluginHost
from plughost.runtimes.process.bridge import check_from_context
from plughost.runtimes.process.runtime import ProcessRuntime
from plughost.security.permissions import PermissionManager
from plughost.services.hostapi.http import HttpOptions, HttpService
from plughost.services.plugin_services import PluginServices

from ...services.hostapi.conftest import LocalServer
from .conftest import PLUGINS, fast_options, make_manifest


class BoolChecker:
    """Like security.permissions.PermissionSet: check() answers True/False, never raises."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)

    def check(self, kind: str, target: str = "") -> bool:
        return (kind, target) in self.allowed


def context(**services: Any) -> PluginContext:
    ctx = PluginContext(make_manifest("pyecho", "pyecho_plugin:Echo"), config={"k": "v"})
    for name, service in services.items():
        ctx.attach(name, service)
    return ctx


def test_bool_checker_is_turned_into_a_refusal_naming_kind_and_target() -> None:
    check = check_from_context(context(permissions=BoolChecker(("net", "a:443"))), "pyecho")
    check("net", "a:443")
    with pytest.raises(PermissionDenied, match="net:b:443 is not granted to plugin 'pyecho'"):
        check("net", "b:443")


def test_no_permission_service_means_deny_everything() -> None:
    check = check_from_context(context(), "pyecho")
    with pytest.raises(PermissionDenied, match="no permission checker configured"):
        check("events:emit", "anything")


async def test_plugin_emits_through_the_real_bus_as_itself() -> None:
    bus, commands = EventBus(), CommandRegistry()
    seen: list[Any] = []
    bus.subscribe("ok.*", seen.append)
    ctx = context(
        bus=ScopedBus(bus, "pyecho"),
        commands=ScopedCommands(commands, "pyecho"),
        permissions=BoolChecker(("events:emit", "ok.topic")),
    )
    runtime = ProcessRuntime(options=fast_options())
    try:
        inst = await runtime.load(ctx.manifest, PLUGINS / "pyecho")
        await inst.start(ctx)
        assert await inst.call("emit", {"topic": "ok.topic", "payload": [1]}) == 1
        assert [(e.topic, e.payload, e.source) for e in seen] == [("ok.topic", [1], "pyecho")]
        with pytest.raises(PermissionDenied):
            await inst.call("emit", {"topic": "nope.topic"})
        assert await inst.call("config", {"key": "k"}) == "v"
        with pytest.raises(PermissionDenied):  # from inside an async handler, too
            await inst.call("async_echo", {"text": "x"})  # emits async.topic: not granted
    finally:
        await runtime.aclose()


async def test_requests_with_bad_params_are_invalid_params_naming_the_field() -> None:
    ctx = context(bus=ScopedBus(EventBus(), "pyecho"), permissions=BoolChecker())
    runtime = ProcessRuntime(options=fast_options())
    try:
        inst = await runtime.load(ctx.manifest, PLUGINS / "pyecho")
        await inst.start(ctx)
        with pytest.raises(PluginError, match="'topic' must be a non-empty string"):
            await inst.call("emit", {"topic": ""})
    finally:
        await runtime.aclose()


# -- through the real host: PluginHost, its communication layer and PluginServices --------------

NODE_EXAMPLE = Path(__file__).parents[3] / "examples" / "node-greeter"

CALLER = """
from plughost.sdk import Plugin, command


class Caller(Plugin):
    @command("caller.relay")
    def relay(self, topic, command, **args):
        emitted = self.ctx.bus.emit(topic, {"args": args})
        return {"emitted": emitted, "result": self.ctx.commands.execute(command, **args)}
"""


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[tuple[PluginHost, PluginServices]]:
    plugins = tmp_path / "plugins"
    shutil.copytree(NODE_EXAMPLE, plugins / "node-greeter")
    folder = plugins / "caller"
    folder.mkdir()
    (folder / "caller.py").write_text(CALLER)
    (folder / "plugin.toml").write_text(
        textwrap.dedent("""
        id = "caller"
        name = "Caller"
        version = "1.0.0"
        runtime = "process"
        entry = "caller:Caller"
        permissions = ["events:emit:caller.*", "commands:execute:node-greeter.greeter.greet"]
    """)
    )
    host = PluginHost([plugins], home=tmp_path / "home")
    services = PluginServices(tmp_path / "home", environ={})
    services.install(host)
    yield host, services
    await host.aclose()
    await services.aclose()


async def test_node_greeter_emits_through_the_real_host(host) -> None:
    plugin_host, _ = host
    report = await plugin_host.start()
    assert report["node-greeter"].ok, report
    seen: list[Any] = []
    plugin_host.comms.bus.subscribe("greeter.*", seen.append)
    result = await plugin_host.call("node-greeter", "greet", name="Ada")
    assert result["emitted"] == 1  # was {"error": "plugin.error"}: the bridge passed source=
    assert [(e.topic, e.payload, e.source) for e in seen] == [
        ("greeter.greeted", {"name": "Ada"}, "node-greeter")
    ]
    # what it was not granted is refused at the boundary, and audited
    with pytest.raises(PermissionDenied):
        await plugin_host.call("node-greeter", "sneak")


async def test_process_plugin_executes_commands_and_emits_through_the_real_host(host) -> None:
    plugin_host, services = host
    await plugin_host.start()
    seen: list[Any] = []
    plugin_host.comms.bus.subscribe("caller.*", seen.append)
    out = await plugin_host.comms.commands.execute(
        "caller.relay",
        {"topic": "caller.went", "command": "node-greeter.greeter.greet", "name": "Bo"},
    )
    assert out["emitted"] == 1
    assert out["result"]["text"] == "Hello, Bo!" and out["result"]["emitted"] == 0
    assert [(e.topic, e.source) for e in seen] == [("caller.went", "caller")]
    with pytest.raises(PermissionDenied):  # node-greeter.greeter.slow: not granted
        await plugin_host.comms.commands.execute(
            "caller.relay", {"topic": "caller.went", "command": "node-greeter.greeter.slow"}
        )
    denied = services.permissions.audit.query(plugin="caller", decision="deny")
    assert [(r.kind, r.target) for r in denied] == [
        ("commands:execute", "node-greeter.greeter.slow")
    ]


async def test_a_plugin_fetching_a_gzip_bomb_gets_the_refusal_not_the_host_memory(
    tmp_path: Path,
) -> None:
    """host.http.request reads through the same bounded ctx.http: the bomb is refused in the
    host and the plugin's call fails with the ratio refusal."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = b"".join([*(packer.compress(bytes(1 << 20)) for _ in range(64)), packer.flush()])

    def answer(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        handler.wfile.write(bomb)

    server = LocalServer()
    server.routes["/bomb"] = answer
    with PermissionManager(tmp_path / "security.db") as perms:
        perms.grant("pyecho", f"net:127.0.0.1:{server.port}")
        http = HttpService("pyecho", perms, options=HttpOptions(retries=0))
        ctx = context(http=http, permissions=BoolChecker(("net", f"127.0.0.1:{server.port}")))
        runtime = ProcessRuntime(options=fast_options())
        try:
            inst = await runtime.load(ctx.manifest, PLUGINS / "pyecho")
            await inst.start(ctx)
            with pytest.raises(PluginError, match="decompression bomb") as info:
                await inst.call("http", {"url": f"{server.url}/bomb"})
            assert info.value.code == "http.ratio"  # the code crosses the wire intact
        finally:
            await runtime.aclose()
            await http.aclose()
            server.close()
