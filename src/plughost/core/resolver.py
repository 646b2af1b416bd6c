"""Dependency resolution: pick one version per plugin id so that every range holds.

Input is anything shaped like :class:`Candidate` (``.id``, ``.version``, ``.dependencies``,
``.optional_dependencies``, ``.host``) — a :class:`~plughost.core.manifest.Manifest` is one —
so this module does not depend on how manifests are read.

::

    res = resolve(manifests, host_version=Version("1.4.0"), partial=True)
    res.selected     # {id: candidate}, one version per id
    res.order        # load order: dependencies first, ties broken by id
    res.failed       # {id: ResolutionError} (partial mode: the broken ones, isolated)
    res.skipped_optional   # {id: why an optional dependency of id is not used}

Rules
-----
* **Requested ids.** ``requested=None`` requests every id in ``available``. Each requested id
  gets exactly one version; ids needed only as dependencies are selected too.
* **Host.** Versions whose ``host`` range does not contain ``host_version`` are never chosen;
  an id left with none raises :class:`~plughost.errors.HostVersionMismatch`.
* **Choice.** Among usable versions the one in ``installed`` comes first, then releases
  (newest first, or oldest first with ``prefer="oldest"``), then pre-releases. A requested id
  accepts any of its versions; a dependency accepts what its range admits (npm rules, so a
  pre-release only when the range opts in).
* **Optional dependencies** are *used* when the dependency is available: their range is then
  enforced and they are ordered first, and they are selected even if nobody requested them.
  When the dependency is absent they are ignored. When it is available but no usable version
  fits the range — or the range conflicts with what the other plugins need — the plugin is
  resolved *without* it and the reason is reported in ``skipped_optional``; that is never a
  failure, because the plugin declared it can run without it.
* **Errors** name the plugin, the range and the chain of plugins that led there:
  :class:`~plughost.errors.DependencyMissing` (an id not available at all),
  :class:`~plughost.errors.ResolutionConflict` (no version fits),
  :class:`~plughost.errors.HostVersionMismatch`, :class:`~plughost.errors.DependencyCycle`.
  ``details`` carries the same facts for machines.
* **Isolation.** With ``partial=False`` the first problem (smallest id) is raised. With
  ``partial=True`` nothing is raised: every requested id that cannot be resolved lands in
  ``failed`` with its error, and all the others are resolved as if it were not there — one
  broken plugin never blocks the rest. When two plugins conflict with each other (A needs
  ``c ^1``, B needs ``c ^2``), the one with the smaller id is kept and the other fails.

Engines
-------
When every id is requested, each comes once, all fit the host, none uses another optionally,
and every dependency is there in a version its range accepts with no cycle, there is nothing to
resolve: one pass selects them all and orders them by their dependencies, with no candidate
graph (what most installed catalogues are; the tests hold it to the general path's answer;
10,000 plugins in a dependency tree in 28 ms). Otherwise, first, every candidate that cannot
work whatever else is chosen (host mismatch, a dependency missing, or no usable version of a
dependency in its range) is pruned, transitively; that is also where most errors come from.
Then, when every id in play has exactly one usable version, there is nothing to choose: the
ranges are already checked and the graph is sorted (``Resolution.engine == "direct"``, linear
time: ~4 ms for 1,000 plugins). Otherwise the choice goes to ``resolvelib`` (the resolver pip
uses). resolvelib's work per round grows with the number of identifiers (2.5 s for 1,000), so
only the ids with a real choice become identifiers; the single-version ids are inlined (a
candidate's dependency on one is replaced by that id's own requirements), which brings 1,000
plugins of which 50 have two versions to ~20 ms.

``engine="resolvelib"`` skips the direct path and the inlining. The tests hold the paths to
the same answers: the direct path matches plain resolvelib on every outcome, failures and
messages included; with choices, the inlined and plain runs pick the same versions or fail
with the same error class. (Only in ``partial`` mode, when plugins conflict with each other,
may the two runs isolate a different one of the conflicting plugins: resolvelib reports the
conflict it met last, and the two runs meet them in a different order.)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from plughost.core._gc import collector_paused
from plughost.core._resolvelib_glue import _Node, _OptionalInConflicts, _Provider, _Req, _Rev
from plughost.core.depgraph import (
    Candidate,
    check_can_remove,
    cycle_error,
    dependents_of,
    load_order,
    order_edges,
)
from plughost.core.version import Version, VersionRange
from plughost.errors import (
    ConfigurationError,
    DependencyCycle,
    DependencyMissing,
    HostVersionMismatch,
    ResolutionConflict,
    ResolutionError,
)

if TYPE_CHECKING:
    from resolvelib import AbstractProvider, BaseReporter

__all__ = [
    "Candidate",
    "Resolution",
    "SkippedOptional",
    "check_can_remove",
    "dependents_of",
    "load_order",
    "resolve",
]

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True, slots=True)
class SkippedOptional:
    """An optional dependency that is available but not used, and why."""

    plugin_id: str
    dependency: str
    range: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "plugin_id": self.plugin_id,
            "dependency": self.dependency,
            "range": self.range,
            "reason": self.reason,
        }


@dataclass(slots=True)
class Resolution(Generic[C]):
    """The outcome of :func:`resolve`.

    :ivar selected: one candidate per id: the requested ones and everything they need.
    :ivar order: the ids of ``selected`` in load order (dependencies first, ties by id).
    :ivar skipped_optional: ``{plugin id: reason}`` for optional dependencies that are
        available but not used (several reasons for one plugin are joined by ``"; "``).
    :ivar skipped: the same, one structured entry per skipped dependency.
    :ivar failed: ``{requested id: error}``; only ever non-empty with ``partial=True``.
    :ivar engine: ``"direct"`` or ``"resolvelib"``: which path chose the versions.
    """

    selected: dict[str, C]
    order: list[str]
    skipped_optional: dict[str, str] = field(default_factory=dict)
    skipped: tuple[SkippedOptional, ...] = ()
    failed: dict[str, ResolutionError] = field(default_factory=dict)
    engine: str = "direct"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (versions as text, errors as their ``to_dict()``)."""
        return {
            "selected": {pid: str(c.version) for pid, c in self.selected.items()},
            "order": list(self.order),
            "skipped_optional": [s.to_dict() for s in self.skipped],
            "failed": {pid: err.to_dict() for pid, err in self.failed.items()},
            "engine": self.engine,
        }


# ------------------------------------------------------------------------------------------
# Internal model


@dataclass(slots=True)
class _Why:
    """Why a candidate cannot be used at all (found before any version is chosen)."""

    kind: Literal["host", "missing", "unsatisfied", "broken"]
    dep: str = ""
    range: VersionRange | None = None
    versions: tuple[Version, ...] = ()


class _Conflict(Exception):
    def __init__(self, error: ResolutionError, implicated: set[str]) -> None:
        super().__init__(error)
        self.error = error
        self.implicated = implicated


# ------------------------------------------------------------------------------------------
# Public entry point


def resolve(
    available: Iterable[C],
    *,
    requested: Iterable[str] | None = None,
    host_version: Version | str,
    installed: Mapping[str, Version] | None = None,
    prefer: Literal["newest", "oldest"] = "newest",
    partial: bool = False,
    engine: Literal["auto", "resolvelib"] = "auto",
) -> Resolution[C]:
    """Choose one version per plugin id; see the module docstring for the rules.

    :param available: every known plugin version (several versions of one id allowed; a
        repeated ``(id, version)`` keeps its first occurrence).
    :param requested: ids to resolve; ``None`` means every id in ``available``.
    :param host_version: the running plughost version, checked against each ``host`` range.
    :param installed: ``{id: version}`` currently installed; preferred when they fit.
    :param prefer: ``"newest"`` (default) or ``"oldest"`` satisfying version.
    :param partial: isolate failures in :attr:`Resolution.failed` instead of raising.
    :param engine: ``"auto"`` or ``"resolvelib"`` (forces the general path).
    :raises ResolutionError: (only when ``partial=False``) the subclass says what is wrong.
    """
    if prefer not in ("newest", "oldest"):
        raise ConfigurationError(f"prefer must be 'newest' or 'oldest', not {prefer!r}.")
    if engine not in ("auto", "resolvelib"):
        raise ConfigurationError(f"engine must be 'auto' or 'resolvelib', not {engine!r}.")
    if isinstance(requested, str):
        raise ConfigurationError(
            f"requested must be a list of plugin ids, not the string {requested!r}; "
            f"write requested=[{requested!r}]."
        )
    if not isinstance(host_version, Version):
        host_version = Version.parse(host_version)
    if requested is None and engine == "auto":
        available = available if isinstance(available, (list, tuple)) else list(available)
        direct = _one_each(available, host_version)
        if direct is not None:
            return direct
    with collector_paused():
        problem = _Problem(
            available,
            host_version=host_version,
            installed=installed or {},
            prefer=prefer,
            requested=requested,
        )
        return problem.run(partial=partial, force_resolvelib=engine == "resolvelib")


def _one_each(available: Sequence[C], host_version: Version) -> Resolution[C] | None:
    """The resolution of every id in ``available`` when there is nothing to choose and nothing
    fails: each id comes once, every candidate fits the host, none declares optional
    dependencies, and each dependency is there in a version its range accepts, with no cycle.
    Then each is selected and ordered as the general path would select and order them (the
    same :func:`~plughost.core.depgraph.order_edges` over the same edges; the tests hold the
    two to the same answer). ``None`` as soon as one candidate is not like that: the general
    path decides, and words what fails. (Two passes and an ordering, no candidate graph: most
    catalogues, a plugin and what it needs installed once each.)"""
    selected: dict[str, C] = {}
    fits_host: dict[int, bool] = {}  # id(range) -> contains host_version; ranges are shared
    needing: list[C] = []
    for obj in available:
        if obj.optional_dependencies:
            return None
        host = obj.host
        fits = fits_host.get(id(host))
        if fits is None:
            fits = fits_host[id(host)] = host.contains(host_version, include_prerelease=True)
        pid = obj.id
        if not fits or pid in selected:
            return None
        selected[pid] = obj
        if obj.dependencies:
            needing.append(obj)
    ids = sorted(selected)
    if not needing:
        return Resolution(selected={pid: selected[pid] for pid in ids}, order=ids)
    edges: dict[str, Iterable[str]] = dict.fromkeys(ids, ())
    for obj in needing:
        for dep, rng in obj.dependencies.items():
            other = selected.get(dep)
            if other is None or not rng.contains(other.version):
                return None
        edges[obj.id] = sorted(obj.dependencies)
    try:
        order = order_edges(edges)
    except DependencyCycle:
        return None
    return Resolution(selected={pid: selected[pid] for pid in ids}, order=order)


class _Problem(Generic[C]):
    def __init__(
        self,
        available: Iterable[C],
        *,
        host_version: Version,
        installed: Mapping[str, Version],
        prefer: str,
        requested: Iterable[str] | None,
    ) -> None:
        self.host_version = host_version
        by_id: dict[str, list[_Node]] = {}
        versions_of: dict[str, set[Version]] = {}  # only for ids seen more than once
        for obj in available:
            pid = obj.id
            nodes = by_id.get(pid)
            if nodes is None:
                by_id[pid] = [_Node(obj)]
                continue
            seen = versions_of.get(pid)
            if seen is None:
                seen = versions_of[pid] = {nodes[0].version}
            if obj.version in seen:
                log.warning("%s %s is available twice; using the first one", pid, obj.version)
                continue
            seen.add(obj.version)
            nodes.append(_Node(obj))
        newest = prefer == "newest"
        for pid, nodes in by_id.items():
            if len(nodes) == 1:
                continue
            pin = installed.get(pid)

            def rank(n: _Node, pin: Version | None = pin) -> tuple[bool, bool, Version | Any]:
                return (
                    n.version != pin,
                    n.version.is_prerelease,
                    _Rev(n.version) if newest else n.version,
                )

            nodes.sort(key=rank)
        # Sorted by id so every later walk (and so every message) ignores the input order.
        self.by_id = by_id = dict(sorted(by_id.items()))
        self.roots: list[str] = list(by_id) if requested is None else sorted(set(requested))
        self.root_set = frozenset(self.roots)
        self.usable: dict[str, list[_Node]] = {}
        self.host_rejected: dict[str, list[_Node]] = {}
        fits_host: dict[int, bool] = {}  # id(range) -> contains host_version; ranges are shared
        for pid, nodes in by_id.items():
            ok: list[_Node] = []
            rejected: list[_Node] = []
            for n in nodes:
                host = n.obj.host
                fits = fits_host.get(id(host))
                if fits is None:
                    fits = fits_host[id(host)] = host.contains(host_version,
                                                               include_prerelease=True)
                (ok if fits else rejected).append(n)
            self.usable[pid] = ok
            self.host_rejected[pid] = rejected
        # resolvelib counts pins and backtracks as rounds; pip allows 200,000. A bound scaled
        # to the problem keeps a hopeless case from spinning for minutes.
        self.max_rounds = 10_000 + 100 * len(by_id)
        self.why: dict[int, _Why] = {}
        # dependency id -> (selected node, its range) requiring it; see _dropped_reason.
        self._requirers: dict[str, list[tuple[_Node, VersionRange]]] | None = None
        self.viable = self._viability()
        self.active_opt = self._active_optional()

    # -- pruning: drop every candidate that cannot work whatever else is chosen -------------

    def _viability(self) -> dict[str, list[_Node]]:
        # The lists are shared with ``usable``: a dead candidate's list is replaced below,
        # never changed in place (and nothing changes ``viable``'s lists later).
        alive: dict[str, list[_Node]] = dict(self.usable)
        for nodes in self.host_rejected.values():
            for n in nodes:
                self.why[id(n)] = _Why("host")
        needed_by: dict[str, list[_Node]] = {}
        for nodes in alive.values():
            for n in nodes:
                for dep, _ in n.deps:
                    needed_by.setdefault(dep, []).append(n)
        dead: set[int] = set()
        # Only a candidate with dependencies can turn out unusable here.
        work = [n for nodes in reversed(alive.values()) for n in reversed(nodes) if n.deps]
        while work:
            n = work.pop()
            if id(n) in dead:
                continue
            why = self._check(n, alive)
            if why is None:
                continue
            dead.add(id(n))
            self.why[id(n)] = why
            alive[n.id] = [m for m in alive[n.id] if m is not n]
            work.extend(m for m in needed_by.get(n.id, ()) if id(m) not in dead)
        return alive

    def _check(self, n: _Node, alive: Mapping[str, list[_Node]]) -> _Why | None:
        for dep, rng in n.deps:
            if dep not in self.by_id:
                return _Why("missing", dep, rng)
            pool = alive[dep]
            if not pool:
                return _Why("broken", dep, rng)
            if not any(rng.contains(m.version) for m in pool):
                return _Why("unsatisfied", dep, rng, tuple(sorted(m.version for m in pool)))
        return None

    def _active_optional(self) -> dict[int, tuple[tuple[str, VersionRange], ...]]:
        """Per viable node: the optional dependencies worth trying (available and fitting)."""
        out: dict[int, tuple[tuple[str, VersionRange], ...]] = {}
        for nodes in self.viable.values():
            for n in nodes:
                if not n.opt:
                    continue
                act = tuple(
                    (d, r)
                    for d, r in n.opt
                    if any(r.contains(m.version) for m in self.viable.get(d, ()))
                )
                if act:
                    out[id(n)] = act
        return out

    # -- the driver -------------------------------------------------------------------------

    def run(self, *, partial: bool, force_resolvelib: bool) -> Resolution[C]:
        self.force = force_resolvelib
        failed: dict[str, ResolutionError] = {}
        ok_roots: list[str] = []
        for root in self.roots:
            if self.viable.get(root):
                ok_roots.append(root)
            else:
                failed[root] = self._unusable_error(root)
        if failed and not partial:
            raise failed[min(failed)]
        try:
            selection, engine, dropped, _ = self._settle(ok_roots, failed, partial)
        except _Conflict as c:
            raise c.error from None
        selection, order, skipped = self._finish_graph(selection, dropped, failed, partial)
        return Resolution(
            selected={pid: n.obj for pid, n in sorted(selection.items())},  # type: ignore[misc]
            order=order,
            skipped_optional=_join_reasons(skipped),
            skipped=tuple(skipped),
            failed=dict(sorted(failed.items())),
            engine=engine,
        )

    def _settle(
        self, roots: list[str], failed: dict[str, ResolutionError], partial: bool
    ) -> tuple[dict[str, _Node], str, dict[tuple[int, str], str], list[str]]:
        """Resolve ``roots``; in partial mode drop (into ``failed``) the roots that conflict."""
        try:
            sel, engine, dropped = self._attempt(roots)
            return sel, engine, dropped, roots
        except _Conflict as c:
            if not partial:
                raise
            implicated = sorted(r for r in roots if r in c.implicated)
            if not implicated or len(implicated) == len(roots):
                implicated = roots
            base = [r for r in roots if r not in implicated]
            if base:
                sel, engine, dropped, accepted = self._settle(base, failed, partial)
                accepted = list(accepted)
            else:
                sel, engine, dropped, accepted = {}, "direct", {}, []
            for r in implicated:
                try:
                    sel, engine, dropped = self._attempt(sorted([*accepted, r]))
                    accepted.append(r)
                except _Conflict as c2:
                    c2.error.plugin_id = r
                    failed[r] = c2.error
            return sel, engine, dropped, accepted

    def _attempt(
        self, roots: list[str]
    ) -> tuple[dict[str, _Node], str, dict[tuple[int, str], str]]:
        """One resolution of ``roots`` (all viable). Raises :class:`_Conflict`."""
        if not roots:
            return {}, "direct", {}
        if not self.force:
            closure = self._closure(roots)
            if all(len(self.viable[pid]) == 1 for pid in closure):
                return {pid: self.viable[pid][0] for pid in closure}, "direct", {}
        return self._resolvelib(roots)

    def _closure(self, roots: Iterable[str]) -> set[str]:
        """Ids reachable from ``roots`` through any viable candidate's (active) dependencies."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            for n in self.viable[pid]:
                for dep, _ in n.deps:
                    if dep not in seen:
                        stack.append(dep)
                for dep, _ in self.active_opt.get(id(n), ()):
                    if dep not in seen:
                        stack.append(dep)
        return seen

    def _resolvelib(
        self, roots: list[str]
    ) -> tuple[dict[str, _Node], str, dict[tuple[int, str], str]]:
        """Hand the choice to resolvelib.

        resolvelib works round by round over every identifier it knows, so its cost grows with
        the square of their number (seconds for 1,000). Unless ``engine="resolvelib"`` forces
        the plain mapping, only ids with a real choice (two or more usable versions) become
        resolvelib identifiers; ids with a single usable version are *inlined*: a candidate's
        dependencies on them are replaced by their own requirements on the ids with a choice.
        """
        from resolvelib import ResolutionImpossible, ResolutionTooDeep, Resolver

        fixed: dict[str, _Node] = {}
        if not self.force:
            fixed = {pid: ns[0] for pid, ns in self.viable.items() if len(ns) == 1}
        dropped: dict[tuple[int, str], str] = {}
        while True:
            provider = _Provider(self.viable, self.active_opt, dropped, fixed)
            top = [_Req(r, None, None) for r in roots if r not in fixed]
            top += provider.expand([fixed[r] for r in roots if r in fixed])
            # resolvelib is imported here, not at module level: the common single-version case
            # never needs it. _Provider implements AbstractProvider's interface.
            abstract = cast("AbstractProvider[_Req, _Node, str]", provider)
            reporter = _OptionalInConflicts()
            resolver: Resolver[_Req, _Node, str] = Resolver(
                abstract, cast("BaseReporter[_Req, _Node, str]", reporter)
            )
            try:
                result = resolver.resolve(top, max_rounds=self.max_rounds)
            except ResolutionImpossible as exc:
                causes: Sequence[Any] = list(exc.causes)
                # An optional range may have steered the search into the dead end without being
                # among the final causes, so drop every optional range that took part in any
                # conflict on the way: the plugins declared they can run without them.
                involved = [c.requirement for c in causes if c.requirement.optional]
                involved += reporter.optional
                fresh = {(id(q.parent), q.id) for q in involved} - dropped.keys()
                if fresh:
                    for key in fresh:
                        dropped[key] = "conflict"
                    continue
                error = self._conflict_error(causes, roots)
                raise _Conflict(error, self._implicated(causes, roots)) from None
            except ResolutionTooDeep as exc:
                err = ResolutionConflict(
                    f"Dependency resolution gave up after {exc.round_count} rounds for "
                    f"{', '.join(roots[:5])}{'...' if len(roots) > 5 else ''}. The ranges leave "
                    "too many combinations; narrow them or remove old versions.",
                    phase="resolve",
                    details={"rounds": exc.round_count},
                )
                raise _Conflict(err, set(roots)) from None
            if not fixed:
                return dict(result.mapping), "resolvelib", dropped
            return self._walk(roots, result.mapping, fixed, dropped), "resolvelib", dropped

    def _walk(
        self,
        roots: Iterable[str],
        chosen: Mapping[str, _Node],
        fixed: Mapping[str, _Node],
        dropped: Mapping[tuple[int, str], str],
    ) -> dict[str, _Node]:
        """Everything the roots need, given the versions resolvelib chose for the open ids."""
        selection: dict[str, _Node] = {}
        stack = list(roots)
        while stack:
            pid = stack.pop()
            if pid in selection:
                continue
            node = fixed[pid] if pid in fixed else chosen[pid]
            selection[pid] = node
            stack.extend(d for d, _ in node.deps)
            stack.extend(
                d for d, _ in self.active_opt.get(id(node), ()) if (id(node), d) not in dropped
            )
        return selection

    # -- after versions are chosen: optional edges, cycles ------------------------------------

    def _edges(self, selection: Mapping[str, _Node]) -> dict[str, list[str]]:
        edges: dict[str, list[str]] = {}
        for pid, n in selection.items():
            if not n.deps and not n.opt:
                edges[pid] = []
                continue
            needs = {d for d, _ in n.deps if d in selection}
            for d, r in n.opt:
                other = selection.get(d)
                if other is not None and r.contains(other.version):
                    needs.add(d)
            edges[pid] = sorted(needs)
        return edges

    def _finish_graph(
        self,
        selection: dict[str, _Node],
        dropped: Mapping[tuple[int, str], str],
        failed: dict[str, ResolutionError],
        partial: bool,
    ) -> tuple[dict[str, _Node], list[str], list[SkippedOptional]]:
        """Cut optional edges that close cycles, fail (or raise) required cycles, order."""
        selection = dict(selection)
        cut: dict[tuple[str, str], str] = {}  # optional edges removed to break a cycle
        removed: dict[str, str] = {}  # ids dropped (partial mode) because of a required cycle
        while True:
            edges = self._edges(selection)
            for key in cut:
                if key[1] in edges.get(key[0], ()):
                    edges[key[0]].remove(key[1])
            try:
                order = order_edges(edges)  # linear; the cycle search runs only on failure
                break
            except DependencyCycle as exc:
                cycle: list[str] = exc.details["cycle"]
            pairs = list(itertools.pairwise(cycle))
            optional_pairs = [(a, b) for a, b in pairs if b not in dict(selection[a].deps)]
            if optional_pairs:
                a, b = optional_pairs[0]
                cut[(a, b)] = f"it would close the dependency cycle {' → '.join(cycle)}"
                continue
            if not partial:
                raise cycle_error(cycle)
            broken = set(cycle)
            # Everything that (transitively) *requires* a cycle member fails with it: one walk
            # back along the required edges.
            required_by: dict[str, list[str]] = {}
            for pid, n in selection.items():
                for d, _ in n.deps:
                    required_by.setdefault(d, []).append(pid)
            stack = list(broken)
            while stack:
                for pid in required_by.get(stack.pop(), ()):
                    if pid not in broken:
                        broken.add(pid)
                        stack.append(pid)
            for pid in sorted(broken):
                if pid in self.root_set:
                    if pid in cycle:
                        failed[pid] = cycle_error(cycle)
                        failed[pid].plugin_id = pid
                    else:
                        failed[pid] = DependencyCycle(
                            f"{selection[pid].label} cannot load: it needs plugins that depend "
                            f"on each other in a cycle: {' → '.join(cycle)}. Remove one of these "
                            "dependencies (or make it optional).",
                            plugin_id=pid,
                            phase="resolve",
                            details={"cycle": list(cycle)},
                        )
                removed[pid] = f"{pid} cannot load: dependency cycle {' → '.join(cycle)}"
                del selection[pid]
        skipped: list[SkippedOptional] = []
        self._requirers = None
        for pid in sorted(p for p, n in selection.items() if n.opt):
            n = selection[pid]
            for d, r in n.opt:
                if d in removed:
                    reason: str | None = removed[d]
                else:
                    reason = self._optional_reason(n, d, r, selection, dropped, cut)
                if reason is not None:
                    skipped.append(SkippedOptional(pid, d, str(r), reason))
        return selection, order, skipped

    def _optional_reason(
        self,
        n: _Node,
        d: str,
        r: VersionRange,
        selection: Mapping[str, _Node],
        dropped: Mapping[tuple[int, str], str],
        cut: Mapping[tuple[str, str], str],
    ) -> str | None:
        if d not in self.by_id:
            return None  # absent: silently not used
        other = selection.get(d)
        if (n.id, d) in cut:
            return cut[(n.id, d)]
        if other is not None and r.contains(other.version):
            return None  # used
        if not self.viable.get(d):
            return f"{d} cannot be used: {self._unusable_error(d).message}"
        if not any(r.contains(m.version) for m in self.viable[d]):
            return f"only {_only(sorted(m.version for m in self.viable[d]))}"
        if (id(n), d) in dropped:
            return self._dropped_reason(d, selection)
        if other is not None:
            return f"the selected {other.label} is outside {r} (other plugins need that version)"
        return f"{d} could not be selected alongside the other plugins"

    def _dropped_reason(self, d: str, selection: Mapping[str, _Node]) -> str:
        """Why an optional range on ``d`` had to go: what the selected plugins require of ``d``.

        (The selected plugins' requirements by dependency are indexed once per
        :meth:`_finish_graph`, not searched again for each dropped range.)"""
        if self._requirers is None:
            self._requirers = {}
            for m in selection.values():
                for dep, r in m.deps:
                    self._requirers.setdefault(dep, []).append((m, r))
        needs = sorted({f"{m.label} needs {d} {r}" for m, r in self._requirers.get(d, ())})
        head = [f"{d} is requested"] if d in self.root_set else []
        who = "; ".join([*head, *needs]) or "the other plugins' choices"
        chosen = f"; {selection[d].label} was chosen" if d in selection else ""
        return f"it conflicts with what the other plugins need ({who}{chosen})"

    # -- error construction --------------------------------------------------------------------

    def _unusable_error(self, pid: str) -> ResolutionError:
        """The error for a requested id that has no viable candidate."""
        if pid not in self.by_id:
            return DependencyMissing(
                f"{pid} was requested but is not available. Install it or check the id "
                f"(available: {', '.join(sorted(self.by_id)[:10]) or 'none'}).",
                plugin_id=pid,
                phase="resolve",
                details={"missing": pid, "required_by": []},
            )
        if not self.usable[pid]:
            return self._host_error(pid, pid)
        node = self.usable[pid][0]
        chain: list[tuple[_Node, str, VersionRange]] = []
        visited: set[str] = {pid}
        while True:
            why = self.why[id(node)]
            if why.kind == "broken" and why.dep not in visited:
                assert why.range is not None
                chain.append((node, why.dep, why.range))
                visited.add(why.dep)
                if not self.usable[why.dep]:
                    return self._host_error(why.dep, pid, chain)
                node = self.usable[why.dep][0]
                continue
            error = self._leaf_error(pid, node, why, chain)
            others = len(self.by_id[pid]) - 1
            if others:
                error.message += (
                    f" ({others} other version(s) of {pid} cannot be used either; "
                    "details['versions'] lists why.)"
                )
                error.args = (error.message,)
                error.details["versions"] = {
                    str(n.version): self.why[id(n)].kind for n in self.by_id[pid]
                }
            return error

    def _host_error(
        self, dep: str, pid: str, chain: Sequence[tuple[_Node, str, VersionRange]] = ()
    ) -> HostVersionMismatch:
        rejected = self.host_rejected[dep]
        ranges = ", ".join(f"{n.version} supports host {n.obj.host}" for n in rejected)
        via = f" (required by {_chain_text(chain)})" if chain else ""
        return HostVersionMismatch(
            f"{dep} does not support this plughost {self.host_version}: {ranges}{via}. "
            f"Install a version of {dep} built for plughost {self.host_version}, or run a "
            "plughost version it supports.",
            plugin_id=pid,
            phase="resolve",
            details={
                "plugin": dep,
                "host_version": str(self.host_version),
                "candidates": [
                    {"version": str(n.version), "host": str(n.obj.host)} for n in rejected
                ],
                "chain": _chain_details(chain),
            },
        )

    def _leaf_error(
        self, pid: str, node: _Node, why: _Why, chain: Sequence[tuple[_Node, str, VersionRange]]
    ) -> ResolutionError:
        via = f" (required by {_chain_text(chain)})" if chain else ""
        base = {
            "plugin": node.id,
            "version": str(node.version),
            "dependency": why.dep,
            "range": str(why.range),
            "chain": _chain_details(chain),
        }
        if why.kind == "missing":
            return DependencyMissing(
                f"{node.label} needs {why.dep} {why.range}, which is not available{via}. "
                f"Install {why.dep} or remove the dependency from {node.id}'s manifest.",
                plugin_id=pid,
                phase="resolve",
                details={**base, "missing": why.dep, "required_by": [node.id]},
            )
        if why.kind == "broken":  # a dependency loop of broken plugins; name the first
            return DependencyMissing(
                f"{node.label} needs {why.dep} {why.range}, which cannot be used{via}.",
                plugin_id=pid,
                phase="resolve",
                details={**base, "missing": why.dep, "required_by": [node.id]},
            )
        versions = ", ".join(str(v) for v in why.versions)
        verb = "is" if len(why.versions) == 1 else "are"
        return ResolutionConflict(
            f"{node.label} needs {why.dep} {why.range}, but only {versions} {verb} "
            f"available{via}. Install a version of {why.dep} matching {why.range}, or relax the "
            f"range in {node.id}'s manifest.",
            plugin_id=pid,
            phase="resolve",
            details={**base, "available": [str(v) for v in why.versions]},
        )

    def _path_to(self, target: str, roots: Iterable[str]) -> list[tuple[_Node, str, VersionRange]]:
        """A shortest chain of requirements from a requested id to ``target`` (BFS, by id)."""
        prev: dict[str, tuple[_Node, str, VersionRange]] = {}
        frontier = sorted(roots)
        seen = set(frontier)
        while frontier and target not in seen:
            nxt: list[str] = []
            for pid in frontier:
                for n in self.viable.get(pid, ()):
                    for dep, rng in (*n.deps, *self.active_opt.get(id(n), ())):
                        if dep not in seen:
                            seen.add(dep)
                            prev[dep] = (n, dep, rng)
                            nxt.append(dep)
            frontier = sorted(nxt)
        chain: list[tuple[_Node, str, VersionRange]] = []
        cur = target
        while cur in prev:
            chain.append(prev[cur])
            cur = prev[cur][0].id
        return list(reversed(chain))

    def _conflict_error(self, causes: Sequence[Any], roots: list[str]) -> ResolutionConflict:
        by_dep: dict[str, list[_Req]] = {}
        for c in causes:
            by_dep.setdefault(c.requirement.id, []).append(c.requirement)
        parts: list[str] = []
        detail: list[dict[str, Any]] = []
        for dep in sorted(by_dep):
            pool = sorted(m.version for m in self.viable.get(dep, ()))
            texts: list[str] = []
            reqs_detail = []
            # Sorted, so the text does not depend on the order resolvelib met them in.
            reqs = sorted(
                by_dep[dep],
                key=lambda q: (
                    q.parent is not None,
                    q.parent.label if q.parent else "",
                    str(q.range),
                ),
            )
            seen_texts: set[str] = set()
            for req in reqs:
                rng = str(req.range) if req.range is not None else "*"
                if req.parent is None:
                    text = f"{dep} is requested (any version)"
                else:
                    text = f"{req.parent.label} needs {dep} {rng}"
                fitting = [v for v in pool if req.range is None or req.range.contains(v)]
                if not fitting:
                    text += f", but only {_only(pool)}"
                chain = self._path_to(req.parent.id, roots) if req.parent else []
                if chain:
                    text += f" (required by {_chain_text(chain)})"
                if text in seen_texts:
                    continue
                seen_texts.add(text)
                texts.append(text)
                reqs_detail.append(
                    {
                        "by": req.parent.id if req.parent else None,
                        "by_version": str(req.parent.version) if req.parent else None,
                        "range": rng,
                        "chain": _chain_details(chain),
                    }
                )
            parts.append(f"{dep}: " + "; ".join(texts))
            detail.append(
                {"id": dep, "available": [str(v) for v in pool], "requirements": reqs_detail}
            )
        return ResolutionConflict(
            "Cannot pick versions that satisfy every range. "
            + " | ".join(parts)
            + ". No single version fits all of these; relax one of the ranges or install a "
            "version that satisfies them all.",
            phase="resolve",
            details={"conflicts": detail},
        )

    def _implicated(self, causes: Sequence[Any], roots: list[str]) -> set[str]:
        """The roots whose closure (:meth:`_closure`) meets the ids in ``causes``: one walk
        back from those ids along the dependency edges, not one closure per root."""
        ids = {c.requirement.id for c in causes}
        ids |= {c.requirement.parent.id for c in causes if c.requirement.parent is not None}
        needed_by: dict[str, set[str]] = {}
        for pid, nodes in self.viable.items():
            for n in nodes:
                for dep, _ in (*n.deps, *self.active_opt.get(id(n), ())):
                    needed_by.setdefault(dep, set()).add(pid)
        reached = set(ids)
        stack = list(ids)
        while stack:
            for pid in needed_by.get(stack.pop(), ()):
                if pid not in reached:
                    reached.add(pid)
                    stack.append(pid)
        return {r for r in roots if r in reached}


def _only(versions: Sequence[Version]) -> str:
    """``"2.4.0 is available"`` / ``"1.0.0, 2.0.0 are available"``."""
    verb = "is" if len(versions) == 1 else "are"
    return f"{', '.join(map(str, versions))} {verb} available"


def _chain_text(chain: Sequence[tuple[_Node, str, VersionRange]]) -> str:
    if not chain:
        return ""
    text = chain[0][0].label
    for _node, dep, rng in chain:
        text += f" → {dep} {rng}"
    return text


def _chain_details(chain: Sequence[tuple[_Node, str, VersionRange]]) -> list[dict[str, str]]:
    return [
        {"id": n.id, "version": str(n.version), "needs": dep, "range": str(rng)}
        for n, dep, rng in chain
    ]


def _join_reasons(skipped: Sequence[SkippedOptional]) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for s in skipped:
        out.setdefault(s.plugin_id, []).append(
            f"optional {s.dependency} {s.range} not used: {s.reason}"
        )
    return {k: "; ".join(v) for k, v in out.items()}
