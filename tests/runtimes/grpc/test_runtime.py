"""The gRPC runtime through the host's real flows: the Python example started, handshaken,
health-checked and supervised; state, events and host operations; attaching to a service that
runs elsewhere (and reconnecting when it comes back); per-launch mutual TLS."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.core.bus import Event
from plughost.errors import ChannelClosed, PermissionDenied
from plughost.observability.health import RestartPolicy
from plughost.runtimes.grpc import GrpcOptions, GrpcRuntime
from plughost.runtimes.grpc.handshake import ENV_COOKIE, ENV_SOCKET_DIR, MAGIC_COOKIE
from tests.conformance.conftest import Grants, Services
from tests.conformance.shared import NEIGHBOUR

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "grpc-python-echo"


def plugins_with_example(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLE, plugins / "grpc-python-echo")
    return plugins


async def test_the_python_example_is_started_and_answers(tmp_path: Path) -> None:
    services = Services(grants=Grants(("events:emit", "echo.loud")))
    host = PluginHost([plugins_with_example(tmp_path)])
    host.add_extension(services)
    async with host:
        report = await host.start()
        assert report.ok, report
        record = host.get("grpc-python-echo")
        assert record.state is State.RESOLVED  # activation = ["manual"]: started on first use
        assert await host.call("grpc-python-echo", "echo", a=1, b=[2]) == {"a": 1, "b": [2]}
        assert record.state is State.ACTIVE
        assert await host.commands.execute("grpc-python-echo.count", {"by": 2}) == 2
        health = await host.health("grpc-python-echo")
        assert health.ok and health.detail == "SERVING"
        instance = record.instance
        assert instance.stats()["pid"] is not None
        # host operations on the HostCalls stream go through the permission table
        assert await host.call("grpc-python-echo", "announce", topic="echo.loud") == 1
        with pytest.raises(PermissionDenied, match="events:emit:admin"):
            await host.call("grpc-python-echo", "announce", topic="admin.x")
        assert services.events == [("echo.loud", {"from": "grpc"})]
        # events on its subscriptions
        await instance.deliver_event("heard", Event(id="1", type="event", source=None,
                                                    topic="echo.hi", payload={}, timestamp=0.0))
        assert await host.call("grpc-python-echo", "last_events") == ["echo.hi"]
        # state handover
        assert await instance.export_state() == {"counter": 2}
        await instance.import_state({"counter": 40}, from_version="0.9.0")
        assert await host.call("grpc-python-echo", "count") == 41
        pid = instance.pid
    assert not _alive(pid)  # closed with the host


async def test_channels_stream_both_ways_and_close_from_either_end(tmp_path: Path) -> None:
    host = PluginHost([plugins_with_example(tmp_path)])
    async with host:
        assert (await host.start()).ok
        await host.activate("grpc-python-echo")
        # the opener closes: the plugin's loop ends, and so does the stream
        async with await host.channels.open("grpc-python-echo.shout") as chat:
            for word in ("hello", "there"):
                await chat.send(word)
                assert await chat.receive() == word.upper()
        # the plugin returns ("bye"): the opener's iteration ends after what was sent
        chat = await host.channels.open("grpc-python-echo.shout")
        for message in ("a", "b", "bye"):
            await chat.send(message)
        assert [m async for m in chat] == ["A", "B"]
        instance = host.get("grpc-python-echo").instance
        assert instance.stats()["channels"] == 2
        # several channels at once, each its own conversation
        chats = [await host.channels.open("grpc-python-echo.shout") for _ in range(5)]
        for i, ch in enumerate(chats):
            await ch.send(f"n{i}")
        assert [await ch.receive() for ch in chats] == [f"N{i}" for i in range(5)]
        for ch in chats:
            ch.close()


FAILING_CHANNELS = """
import os
from plughost.runtimes.grpc.plugin import JsonPlugin, serve

class Failing(JsonPlugin):
    exports = [{"kind": "channel", "name": "failing.broken", "target": "broken"},
               {"kind": "channel", "name": "failing.dies", "target": "dies"}]

    def broken(self, channel):
        channel.send("first")
        raise ValueError("no second message")

    def dies(self, channel):
        channel.receive()
        os._exit(9)

serve(Failing())
"""


async def test_a_failing_or_dying_channel_handler_aborts_the_channel_with_the_reason(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "plugins" / "failing"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        'id = "failing"\nversion = "1.0.0"\nruntime = "grpc"\nentry = "python server.py"\n'
        '[provides]\nchannels = ["failing.broken", "failing.dies"]\n')
    (folder / "server.py").write_text(FAILING_CHANNELS)
    host = PluginHost([tmp_path / "plugins"])
    host.add_runtime(GrpcRuntime(policy=RestartPolicy(initial_delay=0.01, max_delay=0.1)))
    async with host:
        assert (await host.start()).ok
        broken = await host.channels.open("failing.broken")
        assert await broken.receive() == "first"  # what was sent before the failure arrives
        with pytest.raises(ChannelClosed, match="ValueError: no second message"):
            await broken.receive()
        dies = await host.channels.open("failing.dies")
        await dies.send("go")
        with pytest.raises(ChannelClosed, match="went away"):
            await dies.receive()


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/status").read_text().count("zombie")


async def test_a_crashed_plugin_is_restarted_like_a_process_plugin(tmp_path: Path) -> None:
    events: list[str] = []
    host = PluginHost([plugins_with_example(tmp_path)])

    def on_event(event: Any) -> None:
        events.append(event.kind)
        host._on_supervisor_event(event)

    host.add_runtime(GrpcRuntime(policy=RestartPolicy(initial_delay=0.01, max_delay=0.1),
                                 on_event=on_event))
    async with host:
        await host.start()
        await host.call("grpc-python-echo", "count", by=5)
        with pytest.raises(Exception, match=r"went away|crashed"):
            await host.call("grpc-python-echo", "crash")
        # a restart launches a fresh Python with grpc to import: seconds on a loaded machine
        for _ in range(3000):
            if "restarted" in events:
                break
            await asyncio.sleep(0.01)
        assert events[:2] == ["crashed", "restarted"], events
        assert await host.call("grpc-python-echo", "count") == 1  # a fresh process
        assert host.get("grpc-python-echo").instance.stats()["restarts"] == 1


async def test_mutual_tls_with_per_launch_certificates(tmp_path: Path) -> None:
    host = PluginHost([plugins_with_example(tmp_path)])
    host.add_runtime(GrpcRuntime(options=GrpcOptions(mtls=True)))
    async with host:
        assert (await host.start()).ok
        assert await host.call("grpc-python-echo", "echo", x="tls") == {"x": "tls"}
        assert host.get("grpc-python-echo").instance.stats()["mtls"] is True


def _start_server(socket_dir: Path,
                  script: Path = EXAMPLE / "server.py") -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, ENV_COOKIE: MAGIC_COOKIE, ENV_SOCKET_DIR: str(socket_dir),
           "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, str(script)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.strip().split("|")[3]


async def test_attach_to_a_running_service_and_reconnect_after_it_restarts(
    tmp_path: Path,
) -> None:
    socket_dir = tmp_path / "sock"
    socket_dir.mkdir()
    server, path = _start_server(socket_dir)
    try:
        folder = tmp_path / "plugins" / "remote-echo"
        folder.mkdir(parents=True)
        (folder / "plugin.toml").write_text(
            f'id = "remote-echo"\nname = "remote"\nversion = "1.0.0"\nruntime = "grpc"\n'
            f'entry = "unix:{path}"\n')
        runtime = GrpcRuntime(options=GrpcOptions(reconnect_backoff=(0.05, 0.2)))
        async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
            assert (await host.start()).ok
            instance = host.get("remote-echo").instance
            assert instance.stats()["address"] == f"unix:{path}" and instance.pid is None
            assert await host.call("remote-echo", "count") == 1
            server.kill()
            server.wait()
            assert not (await host.health("remote-echo")).ok
            server, _ = _start_server(socket_dir)  # back at the same address
            # the call waits for the reconnection (gRPC's backoff) within its deadline
            assert await host.call("remote-echo", "count", timeout=10) == 1
            assert (await host.health("remote-echo")).ok
    finally:
        server.kill()
        server.wait()


REMEMBERS_ACTIVATION = """
from plughost.runtimes.grpc.plugin import JsonPlugin, serve

class Remote(JsonPlugin):
    exports = [{"kind": "command", "name": "remote.whoami", "target": "whoami"}]

    def __init__(self):
        super().__init__()
        self.activations = 0

    def activate(self):
        self.activations += 1

    def whoami(self):
        if not self.activations:
            raise RuntimeError("called before the host activated this service")
        return {"activations": self.activations, "plugin_id": self.plugin_id,
                "greeting": self.config.get("greeting")}

    def announce(self, topic):
        return self.host_call("host.emit", {"topic": topic, "payload": {}})

serve(Remote())
"""


async def test_an_attached_service_that_comes_back_is_activated_again(tmp_path: Path) -> None:
    script = tmp_path / "remote_server.py"
    script.write_text(REMEMBERS_ACTIVATION)
    socket_dir = tmp_path / "sock"
    socket_dir.mkdir()
    server, path = _start_server(socket_dir, script)
    try:
        folder = tmp_path / "plugins" / "remote"
        folder.mkdir(parents=True)
        (folder / "plugin.toml").write_text(
            f'id = "remote"\nname = "remote"\nversion = "1.0.0"\nruntime = "grpc"\n'
            f'entry = "unix:{path}"\n')
        events: list[str] = []
        services = Services(grants=Grants(("events:emit", "remote.up")))
        host = PluginHost([tmp_path / "plugins"], config={"remote": {"greeting": "hi"}})
        host.add_extension(services)

        def on_event(event: Any) -> None:
            events.append(event.kind)
            host._on_supervisor_event(event)

        host.add_runtime(GrpcRuntime(options=GrpcOptions(reconnect_backoff=(0.05, 0.2)),
                                     on_event=on_event))
        async with host:
            assert (await host.start()).ok
            await host.activate("remote")
            first = await host.call("remote", "whoami")
            assert first == {"activations": 1, "plugin_id": "remote", "greeting": "hi"}
            server.kill()
            server.wait()
            for _ in range(500):  # the host notices the connection is gone
                if "disconnected" in events:
                    break
                await asyncio.sleep(0.01)
            server, _ = _start_server(socket_dir, script)  # a fresh process, same address
            # the call waits until the new service has been activated, then goes through
            again = await host.call("remote", "whoami", timeout=20)
            assert again == {"activations": 1, "plugin_id": "remote", "greeting": "hi"}
            record = host.get("remote")
            assert record.state is State.ACTIVE
            # its host-call stream is open again: host operations work and are still checked
            assert await host.call("remote", "announce", topic="remote.up") == 1
            with pytest.raises(PermissionDenied):
                await host.call("remote", "announce", topic="admin.x")
            assert services.events == [("remote.up", {})]
            assert events == ["disconnected", "reconnected"]
            stats = record.instance.stats()
            assert stats["disconnects"] == 1 and stats["reconnects"] == 1
    finally:
        server.kill()
        server.wait()


async def test_an_unreachable_address_fails_that_plugin_alone(tmp_path: Path) -> None:
    folder = tmp_path / "plugins" / "nowhere"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        'id = "nowhere"\nname = "n"\nversion = "1.0.0"\nruntime = "grpc"\n'
        f'entry = "unix:{tmp_path}/none.sock"\n')
    shutil.copytree(NEIGHBOUR, tmp_path / "plugins" / "pyecho")
    runtime = GrpcRuntime(options=GrpcOptions(handshake_timeout=0.5))
    async with PluginHost([tmp_path / "plugins"], runtimes=[runtime]) as host:
        report = await host.start()
        assert host.get("nowhere").state is State.FAILED
        assert "did not report SERVING" in str(host.get("nowhere").error)
        assert (await host.call("pyecho", "say", text="hi"))["text"] == "hi"
        assert [o.plugin_id for o in report.outcomes if o.error] == ["nowhere"]


def test_the_plugin_refuses_to_run_without_the_magic_cookie() -> None:
    out = subprocess.run([sys.executable, str(EXAMPLE / "server.py")], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                         timeout=60)
    assert out.returncode == 1
    assert "started by a plughost host" in out.stderr


NODE_EXAMPLE = REPO / "examples" / "grpc-node-echo"


def test_the_node_example_ships_the_published_proto() -> None:
    published = REPO / "src" / "plughost" / "runtimes" / "grpc" / "plughost.proto"
    assert (NODE_EXAMPLE / "plughost.proto").read_text() == published.read_text()


async def test_the_node_example_on_grpc_js_is_started_and_answers(tmp_path: Path) -> None:
    assert (NODE_EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir(), (
        "run `npm ci` in examples/grpc-node-echo (its @grpc/grpc-js dependency is not installed)")
    services = Services(grants=Grants(("events:emit", "node.said")))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "grpc-node-echo").symlink_to(NODE_EXAMPLE)
    host = PluginHost([plugins])
    host.add_extension(services)
    async with host:
        assert (await host.start()).ok
        assert await host.call("grpc-node-echo", "echo", a=[1, "x"]) == {"a": [1, "x"]}
        assert await host.commands.execute("grpc-node-echo.count", {"by": 3}) == 3
        assert (await host.health("grpc-node-echo")).ok
        assert await host.call("grpc-node-echo", "announce", topic="node.said") == 1
        with pytest.raises(PermissionDenied):
            await host.call("grpc-node-echo", "announce", topic="admin.x")
        assert services.events == [("node.said", {"from": "node"})]
        async with await host.channels.open("grpc-node-echo.tally") as tally:
            for n in (1, 2, 3):
                await tally.send(n)
            assert [await tally.receive() for _ in range(3)] == [1, 3, 6]
        instance = host.get("grpc-node-echo").instance
        assert await instance.export_state() == {"counter": 3}
