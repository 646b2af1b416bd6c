"""Plain candidate values for resolver and graph tests (what a Manifest provides)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from plughost.core.version import ANY, Version, VersionRange


@dataclass(frozen=True)
class Plug:
    """A plain value satisfying the Candidate protocol (what Manifest provides)."""

    id: str
    version: Version
    dependencies: Mapping[str, VersionRange] = field(default_factory=dict)
    optional_dependencies: Mapping[str, VersionRange] = field(default_factory=dict)
    host: VersionRange = ANY


def plug(
    pid: str,
    version: str = "1.0.0",
    deps: dict[str, str] | None = None,
    opt: dict[str, str] | None = None,
    host: str = "*",
) -> Plug:
    return Plug(
        pid,
        Version(version),
        {k: VersionRange(v) for k, v in (deps or {}).items()},
        {k: VersionRange(v) for k, v in (opt or {}).items()},
        VersionRange(host),
    )
