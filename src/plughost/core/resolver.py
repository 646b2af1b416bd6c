"""TEMP stand-in: replaced by the resolvelib-backed resolver from wip/version at merge."""
# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

from dataclasses import dataclass, field

from plughost.errors import (
    DependencyCycle,
    DependencyMissing,
    HostVersionMismatch,
    ResolutionConflict,
)


@dataclass
class Resolution:
    selected: dict = field(default_factory=dict)
    order: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    skipped_optional: dict = field(default_factory=dict)

def resolve(candidates, *, host_version, partial=False, requested=None, installed=None):
    by_id = {c.id: c for c in candidates}
    res = Resolution()
    ok = {}
    def check(pid, stack=()):
        if pid in ok: return ok[pid]
        c = by_id[pid]
        if not c.host.contains(host_version):
            res.failed[pid] = HostVersionMismatch(f"{pid} needs host {c.host}", plugin_id=pid); ok[pid]=False; return False
        for dep, rng in c.dependencies.items():
            if dep not in by_id:
                res.failed[pid] = DependencyMissing(f"{pid} needs {dep} {rng}, which is not available", plugin_id=pid); ok[pid]=False; return False
            if not rng.contains(by_id[dep].version):
                res.failed[pid] = ResolutionConflict(f"{pid} needs {dep} {rng}", plugin_id=pid); ok[pid]=False; return False
            if dep in stack:
                res.failed[pid] = DependencyCycle("cycle", plugin_id=pid); ok[pid]=False; return False
            if not check(dep, stack+(pid,)):
                res.failed[pid] = ResolutionConflict(f"{pid} needs {dep}, which failed", plugin_id=pid); ok[pid]=False; return False
        ok[pid] = True; return True
    for pid in sorted(by_id): check(pid)
    done=set()
    def visit(pid):
        if pid in done: return
        done.add(pid)
        for d in sorted(by_id[pid].dependencies): visit(d)
        for d in sorted(by_id[pid].optional_dependencies):
            if d in by_id and ok.get(d): visit(d)
        res.order.append(pid)
    for pid in sorted(by_id):
        if ok[pid]: visit(pid); res.selected[pid]=by_id[pid]
    return res
