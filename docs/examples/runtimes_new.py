"""A new runtime in one file: plugins whose ``entry`` is a JSON table of canned answers.

It declares only what it can do (calls and health); the host refuses, at load, a plugin that
needs more — here one activated by an event. Run: ``python docs/examples/runtimes_new.py``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from plughost import PluginHost
from plughost.core.context import PluginContext
from plughost.core.contract import Capability, Export, Health
from plughost.core.manifest import Manifest, load_manifest
from plughost.errors import PluginLoadError, PluginUnavailable


class AnswersInstance:
    """One loaded plugin: a dict of target -> answer."""

    def __init__(self, plugin_id: str, answers: Mapping[str, Any]) -> None:
        self._id = plugin_id
        self._answers = dict(answers)

    @property
    def plugin_id(self) -> str:
        return self._id

    async def start(self, context: PluginContext) -> Sequence[Export]:
        return [Export("command", name, name) for name in self._answers]

    async def call(self, target: str, kwargs: Mapping[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        if target not in self._answers:
            raise PluginUnavailable(f"no answer for {target!r}", plugin_id=self._id,
                                    code="plugin.no_target")
        return self._answers[target]

    async def health(self) -> Health:
        return Health(True)

    async def stop(self) -> None:
        return None

    async def close(self) -> None:
        self._answers.clear()

    def stats(self) -> Mapping[str, Any]:
        return {"answers": len(self._answers)}

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        return None  # everything goes through call(), as for an out-of-process runtime


class AnswersRuntime:
    name = "answers"
    enforces: frozenset[str] = frozenset()
    capabilities = frozenset({Capability.CALL, Capability.HEALTH})

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        return None if entry.endswith(".json") else f"{entry!r} is not a .json file"

    async def load(self, manifest: Manifest, root: Path | None) -> AnswersInstance:
        path = (root or Path.cwd()) / manifest.entry
        try:
            answers = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PluginLoadError(f"cannot read {path}: {exc}", plugin_id=manifest.id) from None
        return AnswersInstance(manifest.id, answers)

    async def aclose(self) -> None:
        return None


def write_plugin(folder: Path, plugin_id: str, extra: str = "") -> Path:
    root = folder / plugin_id
    root.mkdir(parents=True)
    (root / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "1.0.0"\nruntime = "answers"\n'
        f'entry = "answers.json"\n{extra}')
    (root / "answers.json").write_text(json.dumps({"greet": "Hello from JSON"}))
    return root


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_plugin(folder, "canned")
        write_plugin(folder, "woken", 'activation = ["event:files.changed"]\n')
        async with PluginHost([folder], runtimes=[AnswersRuntime()]) as host:
            report = await host.start()
            greeting = await host.commands.execute("canned.greet")
            woken = await host.load("woken")
            assert load_manifest(folder / "canned").runtime == "answers"
            return {"greeting": greeting, "ok": report["canned"].ok,
                    "woken": woken.state.value,
                    "refusal": getattr(woken.error, "code", None)}


if __name__ == "__main__":
    print(asyncio.run(main()))
