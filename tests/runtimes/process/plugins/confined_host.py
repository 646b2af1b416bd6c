"""A minimal host for the host-crash test: a confined plugin starts a daemon; print both pids."""

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

from plughost.core.manifest import manifest_from_dict
from plughost.runtimes.process.runtime import ProcessRuntime


async def main() -> None:
    runtime = ProcessRuntime(check_for=lambda plugin_id: lambda kind, target: None)  # all granted
    manifest = manifest_from_dict({
        "id": "escapee", "name": "escapee", "version": "1.0.0", "runtime": "process",
        "entry": "escapee_plugin:Escapee", "permissions": ["process:spawn"],
    })
    inst = await runtime.load(manifest, Path(sys.argv[1]))
    await inst.start(SimpleNamespace(config={}, data_dir=None))
    daemon = await inst.call("spawn", {"argv": ["sleep", "90"], "detach": True})
    print(inst.pid, daemon["pid"], flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
