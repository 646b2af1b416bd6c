"""Conformance, in-process runtime: what it cannot contain, it says so at load time.

An in-process Python plugin shares the host's interpreter: an infinite loop, a memory bomb, a
crash (``os._exit``) or an output flood cannot be stopped from inside the same process, so the
in-process runtime enforces no limits and the host reports every declared limit as unenforced
when the plugin loads. Host services reached through the context (files, HTTP, events) are
checked by those services, not by the runtime. Untrusted plugins belong in the ``process`` or
``wasm`` runtime (see test_process_hostile.py and test_wasm_hostile.py).
"""

from __future__ import annotations

from pathlib import Path

from plughost import PluginHost, State

from .conftest import write_plugin

SOURCE = """
from plughost.sdk import Plugin


class Hostile(Plugin):
    def ping(self):
        return "pong"
"""


async def test_declared_limits_are_reported_unenforced_at_load(tmp_path: Path) -> None:
    write_plugin(
        tmp_path,
        "hostile",
        runtime="python",
        entry="hostile:Hostile",
        limits={"timeout": 1, "memory": "64Mi", "cpu": 1, "open-files": 16, "output": 1000},
        files={"hostile.py": SOURCE},
    )
    async with PluginHost([tmp_path]) as host:
        await host.start()
        record = host.get("hostile")
        assert record.state is State.ACTIVE
        warning = next(w for w in record.warnings if "cannot enforce limits" in w)
        for limit in ("cpu", "memory", "open_files", "output", "timeout"):
            assert limit in warning
