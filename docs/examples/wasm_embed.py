"""Run the WebAssembly example plugin from an application.

Run: python docs/examples/wasm_embed.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from plughost import PluginHost

HELLO = Path(__file__).resolve().parents[2] / "examples" / "wasm-hello"


async def main(plugin_dir: Path = HELLO) -> dict[str, Any]:
    async with PluginHost([plugin_dir]) as host:
        report = await host.start()  # compiles hello.wat (runtime = "wasm"), runs plughost_activate
        print(report)
        record = host.get("wasm-hello")
        print("provides:", [export.name for export in record.exports])

        # a JSON handler: kwargs in, JSON out, under the manifest's fuel / time / memory limits
        greeting = await host.call("wasm-hello", "greet", name="Ada")

        # a numeric export through the fast path (no JSON): about 2 µs per call
        add = record.instance.export_function("add")
        total = add(2, 3)

        print(greeting, total)
        return {"greeting": greeting, "total": total, "stats": dict(record.instance.stats())}


if __name__ == "__main__":
    asyncio.run(main())
