"""Shared pieces of the conformance suite: host services that record every use, a permission
service, and a factory for plugin folders.

Each runtime has its own test module (``test_process_hostile.py``, ``test_wasm_hostile.py``)
running the same hostile behaviours — infinite loop, memory bomb, crash mid-call, output flood,
oversized message, forbidden file read / HTTP request / event emit — next to a well-behaved
neighbour in a real :class:`~plughost.host.PluginHost`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plughost.errors import PermissionDenied

CASES = (
    "infinite_loop",
    "memory_bomb",
    "crash_mid_call",
    "output_flood",
    "oversized_message",
    "forbidden_file_read",
    "forbidden_http_request",
    "forbidden_event_emit",
)
"""Every runtime's conformance module covers each of these (or says why it cannot)."""


class Grants:
    """Permission service: exact ``(kind, target)`` pairs are granted; everything else denied."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = set(pairs)
        self.denied: list[tuple[str, str]] = []

    def check(self, kind: str, target: str) -> None:
        if (kind, target) not in self.pairs:
            self.denied.append((kind, target))
            raise PermissionDenied(f"{kind}:{target} is not granted")


@dataclass
class Services:
    """Host services that record every use, so a test proves a refused request did nothing.

    Also a ``HostExtension``: attaches ``permissions``, ``bus``, ``files`` and ``http`` to every
    plugin context.
    """

    grants: Grants = field(default_factory=Grants)
    events: list[tuple[str, Any]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    # bus (shaped like ctx.bus: the host stamps the plugin as the source)
    def emit(self, topic: str, payload: Any = None, *, reply_to: str | None = None) -> int:
        self.events.append((topic, payload))
        return 1

    async def aemit(self, topic: str, payload: Any = None, *, reply_to: str | None = None) -> int:
        return self.emit(topic, payload)

    # files
    def read_text(self, path: str) -> str:
        self.reads.append(path)
        return Path(path).read_text()

    # http (shaped like ctx.http)
    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.requests.append((method, url))
        return SimpleNamespace(status_code=200, headers={}, text="")

    def prepare_context(self, record: Any, context: Any) -> None:
        context.attach("permissions", self.grants)
        context.attach("bus", self)
        context.attach("files", self)
        context.attach("http", self)


def write_plugin(
    root: Path,
    plugin_id: str,
    *,
    runtime: str,
    entry: str,
    limits: Mapping[str, Any] | None = None,
    permissions: Sequence[str] = (),
    files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Create a plugin folder with a ``manifest.json`` (and extra files); return the folder."""
    folder = root / plugin_id
    folder.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "id": plugin_id,
        "name": plugin_id,
        "version": "1.0.0",
        "runtime": runtime,
        "entry": entry,
        "permissions": list(permissions),
    }
    if limits:
        manifest["limits"] = dict(limits)
    (folder / "plugin.toml").write_text(_toml(manifest))
    for name, content in (files or {}).items():
        target = folder / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return folder


def _toml(data: Mapping[str, Any]) -> str:
    """Just enough TOML for a manifest (strings, numbers, lists, one level of tables)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def services() -> Services:
    return Services()
