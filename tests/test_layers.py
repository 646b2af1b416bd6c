"""Imports point down, never up or sideways (ARCHITECTURE.md), and only the host changes a
plugin's lifecycle. Checked statically over every module, relative imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "plughost"

RANK = {
    "_version": 0,
    "_proc": 0,
    "errors": 0,
    "core": 0,
    "runtimes": 1,
    "security": 1,
    "storage": 1,
    "observability": 1,
    "settings": 1,
    "watch": 1,
    "host": 2,
    "services": 2,
    "sdk": 2,
    "interfaces": 3,
    "__init__": 3,
    "__main__": 4,
}
# Imports between two layers of the same rank are refused unless listed here, with the reason.
SIDEWAYS: dict[tuple[str, str], str] = {
    ("core", "errors"): "the one error tree sits under every layer, core included",
    ("runtimes", "observability"): "the isolated runtimes share one supervisor policy "
    "(backoff, quarantine: observability.health) instead of each restating it",
    ("runtimes", "security"): "process confinement turns granted permission scopes into "
    "kernel rules; the scope grammar is security's",
    ("security", "settings"): "verification applies the home's signature policy",
    ("storage", "settings"): "storage is opened from the host settings (database URL, paths)",
    ("storage", "observability"): "the database-backed log and alert stores persist "
    "observability's records",
    ("services", "host"): "services orchestrate the running host: they ask it to add, "
    "replace, remove, enable and disable plugins",
    ("sdk", "host"): "sdk.testing builds a PluginHost for plugin authors' tests (the light "
    "plugin-author surface does not import it)",
}
# The plugin-author surface must stay as light as core: only core and the runtime contract.
LIGHT_SDK = {"sdk/__init__.py", "sdk/plugin.py", "sdk/decorators.py"}
LIGHT_SDK_MODULES = {"plughost.sdk", "plughost.sdk.plugin", "plughost.sdk.decorators"}

# Only the host changes a plugin's lifecycle: nothing else writes its registry.
REGISTRY_OWNERS = {"host.py", "core/registry.py"}
REGISTRY_MUTATORS = {"add", "remove", "clear", "pop", "update", "setdefault"}


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "templates" not in p.parts)


def _package_of(rel: Path) -> list[str]:
    """The package a module under ``src/plughost`` belongs to, as name parts."""
    return ["plughost", *rel.parts[:-1]]


def imports_of(source: str, rel: Path) -> list[tuple[str, int]]:
    """``(absolute module, line)`` of every plughost import in ``source`` (the module at
    ``rel`` under ``src/plughost``); relative imports are resolved, not skipped."""
    tree = ast.parse(source, str(rel))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module:
                    found.append((node.module, node.lineno))
                continue
            package = _package_of(rel)
            if node.level - 1 >= len(package):
                raise AssertionError(f"{rel}:{node.lineno}: relative import beyond plughost")
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.append((".".join([*base, node.module]), node.lineno))
            else:  # from . import a, b: each name may be a module of that package
                found += [(".".join([*base, a.name]), node.lineno) for a in node.names]
    return [(m, line) for m, line in found if m == "plughost" or m.startswith("plughost.")]


def import_problems(source: str, rel: Path) -> list[str]:
    """Every import of the module at ``rel`` that breaks the layering."""
    problems: list[str] = []
    source_layer = rel.parts[0].removesuffix(".py")
    for target, line in imports_of(source, rel):
        where = f"{rel}:{line}"
        if target == "plughost":
            if source_layer != "__main__":
                problems.append(f"{where} imports the front door")
            continue
        target_layer = _layer(target)
        if target_layer == "_version" or target_layer == source_layer:
            continue
        if str(rel) in LIGHT_SDK:
            light = target_layer in ("core", "errors", "sdk") or target in (
                "plughost.runtimes.base", "plughost.core.contract")
            if not light:
                problems.append(f"{where} (plugin-author surface) imports {target}")
            continue
        if source_layer == "core" and target_layer != "errors":
            problems.append(f"{where}: core imports {target}")
            continue
        target_rank = 0 if target in LIGHT_SDK_MODULES else RANK[target_layer]
        if target_rank > RANK[source_layer]:
            problems.append(f"{where} imports upward: {target}")
        elif target_rank == RANK[source_layer] and target not in LIGHT_SDK_MODULES \
                and (source_layer, target_layer) not in SIDEWAYS:
            problems.append(
                f"{where} imports sideways ({source_layer} -> {target_layer}): {target}; "
                "move the shared piece down a layer, or list the pair in SIDEWAYS with the "
                "reason")
    return problems


def _names(node: ast.AST) -> list[str]:
    """The dotted parts of ``a.b.c`` (empty when it is not a plain name chain)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return []


def registry_writes(source: str, rel: Path) -> list[str]:
    """Every place in ``source`` that changes the host's registry or a plugin's state
    directly: registry mutator calls, assignments to ``.registry`` or a record's ``state``,
    and hand-made :class:`PluginRecord` objects."""
    tree = ast.parse(source, str(rel))
    found: list[str] = []
    for node in sorted((n for n in ast.walk(tree) if hasattr(n, "lineno")),
                       key=lambda n: (n.lineno, n.col_offset)):
        where = f"{rel}:{node.lineno}"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in REGISTRY_MUTATORS:
                chain = _names(func.value)
                if chain and chain[-1] in ("registry", "_records"):
                    found.append(f"{where}: {'.'.join(chain)}.{func.attr}(...)")
            if _names(func)[-1:] == ["PluginRecord"]:
                found.append(f"{where}: builds a PluginRecord")
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            chain = _names(target.value if isinstance(target, ast.Subscript) else target)
            # host.registry = ..., svc.host.registry[...] = ... (another object's own
            # "registry" attribute, say a metrics registry, is its business)
            if len(chain) > 1 and (chain[-1] == "_records" or (
                    chain[-1] == "registry" and chain[-2] in ("host", "_host"))):
                found.append(f"{where}: writes {'.'.join(chain)}")
            value = getattr(node, "value", None)
            if len(chain) > 1 and chain[-1] == "state" and value is not None \
                    and _names(value)[:1] == ["State"]:
                found.append(f"{where}: sets {'.'.join(chain)} without transition()")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_and_never_sideways(path: Path) -> None:
    rel = path.relative_to(SRC)
    assert import_problems(path.read_text(), rel) == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_only_the_host_writes_the_registry(path: Path) -> None:
    rel = path.relative_to(SRC)
    if str(rel) in REGISTRY_OWNERS:
        return
    assert registry_writes(path.read_text(), rel) == [], (
        "ask the host (add, replace, remove, enable, disable) instead")


def test_every_sideways_exception_is_still_needed() -> None:
    used = set()
    for path in _modules():
        rel = path.relative_to(SRC)
        source_layer = rel.parts[0].removesuffix(".py")
        for target, _ in imports_of(path.read_text(), rel):
            if target != "plughost":
                used.add((source_layer, _layer(target)))
    assert set(SIDEWAYS) - used == set()


def test_the_checks_see_relative_sideways_and_registry_writes() -> None:
    runtime = Path("runtimes/process/runtime.py")
    assert import_problems("from ...host import PluginHost\n", runtime) == [
        "runtimes/process/runtime.py:1 imports upward: plughost.host"]
    assert import_problems("from ...storage import db\n", runtime)[0].startswith(
        "runtimes/process/runtime.py:1 imports sideways (runtimes -> storage)")
    assert import_problems("from . import connection\nfrom ..base import Export\n",
                           runtime) == []
    assert import_problems("from ..core import contract\n", Path("storage/db.py")) == []
    service = Path("services/example.py")
    assert registry_writes(
        "host.registry.add(r)\n"
        "self.host.registry.remove('x')\n"
        "registry = host.registry\nregistry.add(r, replace=True)\n"
        "record.state = State.ACTIVE\n"
        "host.registry = Registry()\n"
        "PluginRecord(m, None)\n",
        service,
    ) == [
        "services/example.py:1: host.registry.add(...)",
        "services/example.py:2: self.host.registry.remove(...)",
        "services/example.py:4: registry.add(...)",
        "services/example.py:5: sets record.state without transition()",
        "services/example.py:6: writes host.registry",
        "services/example.py:7: builds a PluginRecord",
    ]
    assert registry_writes("host.registry.find('x')\nfor r in host.registry: pass\n"
                           "self.registry = metrics_registry()\n", service) == []
