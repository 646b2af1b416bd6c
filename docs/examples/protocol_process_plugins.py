"""Process plugins through the ordinary host: a Node.js plugin and a Python plugin out of process.

Run: python docs/examples/protocol_process_plugins.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from plughost import PluginHost

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PYTHON_PLUGIN = '''
from plughost.sdk import Plugin
from plughost.sdk.decorators import command


class Counter(Plugin):
    def activate(self, ctx):
        self.count = 0

    @command("counter.bump")
    def bump(self, by: int = 1) -> int:
        self.count += by
        return self.count
'''

MANIFEST = '''
id = "counter"
name = "Counter"
version = "1.0.0"
runtime = "process"          # run it in its own process...
entry = "counter:Counter"    # ...an ordinary Plugin subclass, unchanged
[limits]
timeout = 2
memory = "256Mi"
cpu = 5
'''


class Permissions:
    """Grant the Node plugin the one event it emits (a real host uses plughost.security)."""

    def check(self, kind: str, target: str) -> None:
        from plughost.errors import PermissionDenied

        if (kind, target) != ("events:emit", "greeter.greeted"):
            raise PermissionDenied(f"{kind}:{target} is not granted")


class Bus:
    def emit(self, topic: str, payload: Any = None, *, source: str | None = None) -> int:
        print(f"event {topic} from {source}: {payload}")
        return 1


class Services:
    def prepare_context(self, record: Any, context: Any) -> None:
        context.attach("permissions", Permissions())
        context.attach("bus", Bus())


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp)
        (plugins / "counter").mkdir()
        (plugins / "counter" / "plugin.toml").write_text(MANIFEST)
        (plugins / "counter" / "counter.py").write_text(PYTHON_PLUGIN)
        if shutil.which("node"):
            shutil.copytree(EXAMPLES / "node-greeter", plugins / "node-greeter")

        async with PluginHost([plugins]) as host:
            host.add_extension(Services())
            await host.start()
            out: dict[str, Any] = {"bumps": [await host.call("counter", "bump", by=2),
                                             await host.call("counter", "bump")]}
            if shutil.which("node"):
                greeting = await host.call("node-greeter", "greet", name="Ada")
                out["greeting"] = greeting["text"]
            pid = host.get("counter").instance.pid
            out["out_of_process"] = pid is not None and pid != os.getpid()
            return out


if __name__ == "__main__":
    print(asyncio.run(main()))
