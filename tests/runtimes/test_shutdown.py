"""Shutting a host down with gRPC and native plugins running prints no traceback: not from the
host (channels closed, threads ended, child processes stopped), not relayed from a plugin, and
not on the stderr of a gRPC service the host was attached to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fixtures.native import REPO, build_library

from .grpc.test_runtime import _start_server

GRPC_EXAMPLE = REPO / "examples" / "grpc-python-echo"
NATIVE_EXAMPLE = REPO / "examples" / "native-c-counter"

HOST = textwrap.dedent("""
    import asyncio, logging, sys
    from pathlib import Path
    from plughost import PluginHost
    from plughost.runtimes.native import NativeRuntime

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)

    async def main() -> None:
        runtime = NativeRuntime(inprocess={"trusted-counter"})
        async with PluginHost([Path(sys.argv[1])], runtimes=[runtime]) as host:
            report = await host.start()
            assert report.ok, report
            await host.activate("grpc-python-echo")
            print(await host.call("grpc-python-echo", "echo", a=1))
            print(await host.call("native-c-counter", "add", n=2))
            print(await host.call("trusted-counter", "add", n=3))
            print(await host.call("remote", "count"))
            # left open at shutdown: a channel each, and host-call streams
            shout = await host.channels.open("grpc-python-echo.shout")
            await shout.send("hi")
            print(await shout.receive())
            feed = await host.channels.open("native-c-counter.feed")
            print(await feed.receive())
        print("closed")

    asyncio.run(main())
""")


def test_host_shutdown_with_grpc_and_native_plugins_prints_no_traceback(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(GRPC_EXAMPLE, plugins / "grpc-python-echo")
    for plugin_id in ("native-c-counter", "trusted-counter"):
        folder = plugins / plugin_id
        shutil.copytree(NATIVE_EXAMPLE, folder, ignore=shutil.ignore_patterns("*.so"))
        toml = folder / "plugin.toml"
        toml.write_text(toml.read_text().replace('"native-c-counter"', f'"{plugin_id}"'))
        build_library(folder / "counter.c", folder / "counter.so")
    socket_dir = tmp_path / "sock"
    socket_dir.mkdir()
    server, path = _start_server(socket_dir)  # a service the host attaches to
    try:
        (plugins / "remote").mkdir()
        (plugins / "remote" / "plugin.toml").write_text(
            'id = "remote"\nname = "remote"\nversion = "1.0.0"\nruntime = "grpc"\n'
            f'entry = "unix:{path}"\n')
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"),
               "PLUGHOST_HOME": str(tmp_path / "home")}
        host = subprocess.run([sys.executable, "-c", HOST, str(plugins)], capture_output=True,
                              text=True, env=env, timeout=120)
    finally:
        server.terminate()
        _, server_err = server.communicate(timeout=30)
    assert host.returncode == 0, host.stderr
    assert host.stdout.splitlines() == ["{'a': 1}", "2", "3", "1", "HI", "2", "closed"]
    for name, text in (("host", host.stderr), ("attached service", server_err or "")):
        for mark in ("Traceback", "Exception ignored", "Exception in thread"):
            assert mark not in text, f"{name} printed {mark!r}:\n{text}"
