"""Imports point down, never up (ARCHITECTURE.md). Checked statically over every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "plughost"

RANK = {
    "_version": 0,
    "errors": 0,
    "core": 0,
    "runtimes": 1,
    "security": 1,
    "storage": 1,
    "observability": 1,
    "settings": 1,
    "host": 2,
    "services": 2,
    "sdk": 2,
    "interfaces": 3,
    "__init__": 3,
    "__main__": 4,
}
# The plugin-author surface must stay as light as core: only core and the runtime contract.
LIGHT_SDK = {"sdk/__init__.py", "sdk/plugin.py", "sdk/decorators.py"}
LIGHT_SDK_MODULES = {"plughost.sdk", "plughost.sdk.plugin", "plughost.sdk.decorators"}


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "templates" not in p.parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [m for m in found if m == "plughost" or m.startswith("plughost.")]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(SRC)
    source_layer = rel.parts[0].removesuffix(".py")
    for target in _imports(path):
        if target == "plughost":
            assert source_layer in ("__main__",), f"{rel} imports the front door"
            continue
        target_layer = _layer(target)
        if target_layer == "_version":
            continue
        if str(rel) in LIGHT_SDK:
            light = target_layer in ("core", "errors", "sdk") or target == "plughost.runtimes.base"
            assert light, f"{rel} (plugin-author surface) imports {target}"
            continue
        target_rank = 0 if target in LIGHT_SDK_MODULES else RANK[target_layer]
        assert target_rank <= RANK[source_layer], f"{rel} imports upward: {target}"
        if source_layer == "core":
            assert target_layer in ("core", "errors"), f"core module {rel} imports {target}"
