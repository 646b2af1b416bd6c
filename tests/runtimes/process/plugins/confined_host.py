"""A minimal host for the host-crash test: a confined plugin starts a daemon; print both pids
(and, with ``--fork-server``, the fork server's pid too: the plugin is forked from it)."""

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

from plughost.core.manifest import manifest_from_dict
from plughost.runtimes.process.runtime import ProcessOptions, ProcessRuntime


async def main() -> None:
    forked = "--fork-server" in sys.argv
    runtime = ProcessRuntime(
        check_for=lambda plugin_id: lambda kind, target: None,  # all granted
        options=ProcessOptions(fork_server=forked),
    )
    manifest = manifest_from_dict({
        "id": "escapee", "name": "escapee", "version": "1.0.0", "runtime": "process",
        "entry": "escapee_plugin:Escapee", "permissions": ["process:spawn"],
    })
    inst = await runtime.load(manifest, Path(sys.argv[1]))
    await inst.start(SimpleNamespace(config={}, data_dir=None))
    daemon = await inst.call("spawn", {"argv": ["sleep", "90"], "detach": True})
    server = [runtime._forkserver.pid] if forked and runtime._forkserver is not None else []
    assert inst.stats()["started"] == ("forked" if forked else "cold")
    print(inst.pid, daemon["pid"], *server, flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
