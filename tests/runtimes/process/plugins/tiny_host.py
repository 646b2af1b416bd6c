"""A minimal host process for the orphan test: load one plugin, print its pid, wait forever."""

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

from plughost.runtimes.process.runtime import ProcessRuntime


async def main() -> None:
    root = Path(sys.argv[1])
    runtime = ProcessRuntime()
    manifest = SimpleNamespace(id="pyecho", entry="pyecho_plugin:Echo", limits={})
    inst = await runtime.load(manifest, root)
    await inst.start(SimpleNamespace(config={}, data_dir=None))
    if len(sys.argv) > 2 and sys.argv[2] == "busy":
        # Keep the child busy in a handler so only the kernel (PDEATHSIG) can stop it.
        busy = asyncio.ensure_future(inst.call("sleep", {"seconds": 60}, timeout=120))
        await asyncio.sleep(0.2)
        assert not busy.done()
    while runtime._spare is None:  # wait for the warm spare: it must die with us too
        await asyncio.sleep(0.01)
    print(inst.pid, runtime._spare.pid, flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
