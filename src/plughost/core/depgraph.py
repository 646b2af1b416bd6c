"""The plugin dependency graph: load order, cycles and dependents.

These functions need only the selected plugins (one per id), not a resolver, so the host can use
them at load, disable and uninstall time. An edge ``a → b`` means *a needs b*: b loads first.

* Required dependencies are always edges (a required dependency missing from the selection is a
  :class:`~plughost.errors.DependencyMissing`).
* Optional dependencies are edges only when the dependency is selected *and* its version is in
  the optional range; otherwise the plugin runs without it and nothing is ordered.

The order is topological (dependencies first) and deterministic: among plugins whose
dependencies are all loaded, the smallest id comes first.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from plughost.core.version import Version, VersionRange
from plughost.errors import DependencyCycle, DependencyMissing, DependentsExist

__all__ = [
    "Candidate",
    "check_can_remove",
    "dependency_edges",
    "dependents_of",
    "find_cycle",
    "load_order",
]


@runtime_checkable
class Candidate(Protocol):
    """What the resolver needs from a plugin version; :class:`~plughost.core.manifest.Manifest`
    satisfies it."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> Version: ...
    @property
    def dependencies(self) -> Mapping[str, VersionRange]: ...
    @property
    def optional_dependencies(self) -> Mapping[str, VersionRange]: ...
    @property
    def host(self) -> VersionRange: ...


def dependency_edges(
    selected: Mapping[str, Candidate], *, check_missing: bool = True
) -> dict[str, list[str]]:
    """``{id: sorted ids it needs}`` among ``selected`` (see the module docstring for the rules).

    :raises DependencyMissing: a required dependency is not in ``selected`` (when
        ``check_missing``).
    """
    edges: dict[str, list[str]] = {}
    for pid, cand in selected.items():
        needs: set[str] = set()
        for dep, rng in cand.dependencies.items():
            if dep in selected:
                needs.add(dep)
            elif check_missing:
                raise DependencyMissing(
                    f"{pid} {cand.version} needs {dep} {rng}, which is not among the selected "
                    f"plugins. Install {dep} or remove the dependency from {pid}'s manifest.",
                    plugin_id=pid,
                    phase="resolve",
                    details={"missing": dep, "range": str(rng), "required_by": pid},
                )
        for dep, rng in cand.optional_dependencies.items():
            other = selected.get(dep)
            if dep != pid and other is not None and rng.contains(other.version):
                needs.add(dep)
        edges[pid] = sorted(needs)
    return edges


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The first cycle (by smallest id) as ``[a, b, ..., a]``, or ``None`` if there is none."""
    sccs = _strongly_connected(edges)
    cyclic = [c for c in sccs if len(c) > 1 or next(iter(c)) in edges.get(next(iter(c)), ())]
    if not cyclic:
        return None
    members = min(cyclic, key=min)
    start = min(members)
    # A shortest way back to ``start`` inside the component, preferring small ids: BFS.
    prev: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for dep in sorted(edges.get(node, ())):
                if dep == start:
                    back = [node]
                    while back[-1] != start:
                        back.append(prev[back[-1]])
                    return [*reversed(back), start]
                if dep in members and dep not in seen:
                    seen.add(dep)
                    prev[dep] = node
                    nxt.append(dep)
        frontier = nxt
    raise AssertionError("a strongly connected component always has a cycle")  # pragma: no cover


def _strongly_connected(edges: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (1,000-plugin chains must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for dep in it:
                if dep not in edges:
                    continue
                if dep not in index:
                    index[dep] = low[dep] = counter
                    counter += 1
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(edges.get(dep, ())))))
                    advanced = True
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.add(member)
                    if member == node:
                        break
                out.append(comp)
    return out


def cycle_error(cycle: list[str]) -> DependencyCycle:
    """The :class:`DependencyCycle` for ``cycle`` (``[a, b, ..., a]``)."""
    path = " → ".join(cycle)
    return DependencyCycle(
        f"Plugins depend on each other in a cycle: {path}. A plugin cannot load before "
        f"itself; remove one of these dependencies (or make it optional).",
        plugin_id=cycle[0],
        phase="resolve",
        details={"cycle": list(cycle)},
    )


def order_edges(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Topological order of ``edges`` (dependencies first, ties by id).

    :raises DependencyCycle: with the full cycle path.
    """
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}  # only ids something waits for
    for pid, needs in edges.items():
        count = 0
        for dep in needs:
            if dep in edges:
                dependents.setdefault(dep, []).append(pid)
                count += 1
        waiting[pid] = count
    # The smallest ready id next. Those ready from the start are sorted once; only those that
    # become ready on the way go through a heap (most plugins need nothing: a sort, no heap).
    first = sorted(pid for pid, n in waiting.items() if n == 0)
    if not dependents:
        return first  # nothing waits for anything
    later: list[str] = []
    order: list[str] = []
    i, count = 0, len(first)
    no_one: tuple[str, ...] = ()
    while i < count or later:
        if later and (i == count or later[0] < first[i]):
            pid = heapq.heappop(later)
        else:
            pid = first[i]
            i += 1
        order.append(pid)
        for dependent in dependents.get(pid, no_one):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(later, dependent)
    if len(order) != len(waiting):
        cycle = find_cycle(edges)
        assert cycle is not None
        raise cycle_error(cycle)
    return order


def load_order(selected: Mapping[str, Candidate]) -> list[str]:
    """The order to load ``selected`` in: dependencies first, ties broken by id.

    :raises DependencyMissing: a required dependency is not in ``selected``.
    :raises DependencyCycle: the plugins depend on each other in a cycle;
        ``details["cycle"]`` is the full path ``[a, b, c, a]``.
    """
    return order_edges(dependency_edges(selected))


def dependents_of(
    plugin_id: str,
    selected: Mapping[str, Candidate],
    *,
    enabled: set[str] | frozenset[str] | None = None,
) -> list[str]:
    """Ids in ``selected`` that need ``plugin_id``, directly or transitively, sorted.

    Only *required* dependencies count: a plugin whose dependency on ``plugin_id`` is optional
    keeps working without it. With ``enabled``, only those plugins are considered (a disabled
    plugin does not stop anything, nor does what only it needs).
    """
    needed_by: dict[str, list[str]] = {}
    for pid, cand in selected.items():
        if pid == plugin_id or (enabled is not None and pid not in enabled):
            continue
        for dep in cand.dependencies:
            needed_by.setdefault(dep, []).append(pid)
    found: set[str] = set()
    frontier = [plugin_id]
    while frontier:
        cur = frontier.pop()
        for pid in needed_by.get(cur, ()):
            if pid not in found:
                found.add(pid)
                frontier.append(pid)
    found.discard(plugin_id)
    return sorted(found)


def check_can_remove(
    plugin_id: str,
    selected: Mapping[str, Candidate],
    *,
    enabled: set[str] | frozenset[str] | None = None,
) -> None:
    """Refuse to disable or uninstall ``plugin_id`` while other plugins need it.

    :raises DependentsExist: ``details["dependents"]`` lists every dependent (direct and
        transitive), ``details["direct"]`` the ones that name ``plugin_id`` themselves.
    """
    dependents = dependents_of(plugin_id, selected, enabled=enabled)
    if not dependents:
        return
    direct = sorted(pid for pid in dependents if plugin_id in selected[pid].dependencies)
    parts = [f"{pid} (needs {plugin_id} {selected[pid].dependencies[plugin_id]})" for pid in direct]
    parts += [f"{pid} (through another dependent)" for pid in dependents if pid not in direct]
    raise DependentsExist(
        f"Cannot remove {plugin_id}: {len(dependents)} plugin(s) depend on it: "
        f"{', '.join(parts)}. Disable or uninstall them first.",
        plugin_id=plugin_id,
        phase="resolve",
        details={"dependents": dependents, "direct": direct},
    )
