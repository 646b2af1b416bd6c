"""TEMP stub of ``plughost.core.manifest`` (the real module is being written in parallel).

Implements only the part of the CONTRACTS.md API that packaging needs: ``MANIFEST_FILES``,
``Manifest.id`` / ``Manifest.version``, ``parse_manifest`` and ``load_manifest``. Reverted when
the real module lands on main.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plughost.errors import ManifestError, Problem

MANIFEST_FILES = ("plugin.toml", "manifest.json")


@dataclass(frozen=True, slots=True)
class Manifest:
    id: str
    version: str


def parse_manifest(
    data: bytes | str, *, format: Literal["toml", "json"], source: str | None = None
) -> Manifest:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        raw: Any = tomllib.loads(text) if format == "toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError([Problem("", "manifest.syntax", str(exc))], source=source) from None
    problems = [Problem(k, "manifest.required", f"{k} is required") for k in ("id", "version")
                if not isinstance(raw.get(k), str) or not raw.get(k)]
    if problems:
        raise ManifestError(problems, source=source)
    return Manifest(id=raw["id"], version=raw["version"])


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    if path.is_dir():
        for name in MANIFEST_FILES:
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ManifestError([Problem("", "manifest.missing", f"no manifest in {path}")])
    fmt: Literal["toml", "json"] = "toml" if path.suffix == ".toml" else "json"
    return parse_manifest(path.read_bytes(), format=fmt, source=str(path))
