"""What the management API returns: plain frozen records with ``to_dict()`` (JSON-ready)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plughost.services.updater import VersionInfo

__all__ = ["PluginDetail", "PluginInfo", "PluginList"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed plugin: its stored record merged with its live state in the host."""

    id: str
    name: str
    version: str
    description: str
    author: str
    type: str
    runtime: str
    state: str
    """Live lifecycle state (``active``, ``resolved``, ``disabled``, ``failed``...)."""
    enabled: bool
    source: str
    source_uri: str
    sha256: str
    installed_at: datetime | None
    updated_at: datetime | None
    error: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "version": self.version,
            "description": self.description, "author": self.author, "type": self.type,
            "runtime": self.runtime, "state": self.state, "enabled": self.enabled,
            "source": self.source, "source_uri": self.source_uri, "sha256": self.sha256,
            "installed_at": _iso(self.installed_at), "updated_at": _iso(self.updated_at),
            "error": dict(self.error) if self.error else None,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class PluginList:
    """A page of :class:`PluginInfo` and the total number matching the filters."""

    items: tuple[PluginInfo, ...]
    total: int
    limit: int
    offset: int

    def __iter__(self) -> Iterator[PluginInfo]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"items": [p.to_dict() for p in self.items], "total": self.total,
                "limit": self.limit, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class PluginDetail:
    """Everything about one installed plugin."""

    info: PluginInfo
    manifest: Mapping[str, Any]
    path: str | None
    versions: tuple[VersionInfo, ...]
    dependencies: Mapping[str, str]
    dependents: tuple[str, ...]
    config: Mapping[str, Any]
    config_revision: int
    grants: tuple[str, ...]
    stats: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "manifest": dict(self.manifest), "path": self.path,
                "versions": [v.to_dict() for v in self.versions],
                "dependencies": dict(self.dependencies), "dependents": list(self.dependents),
                "config": dict(self.config), "config_revision": self.config_revision,
                "grants": list(self.grants), "stats": dict(self.stats)}
