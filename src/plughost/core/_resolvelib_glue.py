"""resolvelib's side of :mod:`plughost.core.resolver`: the candidate and requirement model,
the provider and a reporter. Kept apart so the resolver module reads as the rules it applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from plughost.core.depgraph import Candidate
from plughost.core.version import Version, VersionRange


class _Node:
    """One candidate, its dependencies pre-sorted; compared by identity."""

    __slots__ = ("deps", "id", "obj", "opt", "version")

    def __init__(self, obj: Candidate) -> None:
        self.obj = obj
        self.id: str = obj.id
        self.version: Version = obj.version
        deps, opt = obj.dependencies, obj.optional_dependencies
        self.deps: tuple[tuple[str, VersionRange], ...] = (
            tuple(sorted(deps.items())) if deps else ())
        self.opt: tuple[tuple[str, VersionRange], ...] = (
            tuple(sorted((d, r) for d, r in opt.items() if d != obj.id)) if opt else ())

    @property
    def label(self) -> str:
        return f"{self.id} {self.version}"

    def __repr__(self) -> str:
        return f"<{self.label}>"


class _Req:
    """A requirement on an id; ``range=None`` (a requested root) accepts any version."""

    __slots__ = ("id", "optional", "parent", "range")

    def __init__(
        self, id: str, range: VersionRange | None, parent: _Node | None, optional: bool = False
    ) -> None:
        self.id, self.range, self.parent, self.optional = id, range, parent, optional

    def accepts(self, node: _Node) -> bool:
        return self.range is None or self.range.contains(node.version)

    def __repr__(self) -> str:
        by = self.parent.label if self.parent else "<requested>"
        return f"<{by} needs {self.id} {self.range or '*'}>"


class _Rev:
    """Reverses the order of a version inside a sort key (newest first)."""

    __slots__ = ("v",)

    def __init__(self, v: Version) -> None:
        self.v = v

    def __lt__(self, other: _Rev) -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and other.v == self.v

    def __hash__(self) -> int:
        return hash(self.v)


class _OptionalInConflicts:
    """A resolvelib reporter that remembers the optional requirements met in conflicts."""

    def __init__(self) -> None:
        self.optional: list[_Req] = []

    def starting(self) -> None: ...
    def starting_round(self, index: int) -> None: ...
    def ending_round(self, index: int, state: Any) -> None: ...
    def ending(self, state: Any) -> None: ...
    def adding_requirement(self, requirement: _Req, parent: _Node | None) -> None: ...
    def pinning(self, candidate: _Node) -> None: ...

    def resolving_conflicts(self, causes: Sequence[Any]) -> None:
        self.optional.extend(c.requirement for c in causes if c.requirement.optional)

    def rejecting_candidate(self, criterion: Any, candidate: _Node) -> None:
        self.optional.extend(i.requirement for i in criterion.information if i.requirement.optional)


class _Provider:
    """resolvelib provider over the pre-pruned pool (candidates in preference order)."""

    def __init__(
        self,
        pool: Mapping[str, list[_Node]],
        active_opt: Mapping[int, tuple[tuple[str, VersionRange], ...]],
        dropped: Mapping[tuple[int, str], str],
        fixed: Mapping[str, _Node],
    ) -> None:
        self.pool, self.active_opt, self.dropped, self.fixed = pool, active_opt, dropped, fixed
        self._memo: dict[tuple[int, int], bool] = {}

    def expand(self, nodes: Iterable[_Node]) -> list[_Req]:
        """The requirements of ``nodes`` on open ids, looking through the fixed ids they need."""
        out: list[_Req] = []
        stack = list(nodes)
        seen = {n.id for n in stack}
        while stack:
            n = stack.pop()
            reqs = [(d, r, False) for d, r in n.deps]
            reqs += [
                (d, r, True)
                for d, r in self.active_opt.get(id(n), ())
                if (id(n), d) not in self.dropped
            ]
            for dep, rng, optional in reqs:
                pinned = self.fixed.get(dep)
                if pinned is None:
                    out.append(_Req(dep, rng, n, optional))
                elif dep not in seen:
                    seen.add(dep)
                    stack.append(pinned)
        return out

    def identify(self, requirement_or_candidate: _Req | _Node) -> str:
        return requirement_or_candidate.id

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, _Node],
        candidates: Mapping[str, Iterator[_Node]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> tuple[int, int, str]:
        # Work on what caused the last backtrack first, then on ids with no choice, then by id
        # so the outcome never depends on dict order.
        causing = any(c.requirement.id == identifier for c in backtrack_causes)
        return (0 if causing else 1, len(self.pool.get(identifier, ())), identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Req]],
        incompatibilities: Mapping[str, Iterator[_Node]],
    ) -> list[_Node]:
        reqs = list(requirements[identifier])
        bad = {id(n) for n in incompatibilities[identifier]}
        return [
            n
            for n in self.pool.get(identifier, ())
            if id(n) not in bad and all(self.is_satisfied_by(r, n) for r in reqs)
        ]

    def is_satisfied_by(self, requirement: _Req, candidate: _Node) -> bool:
        # resolvelib re-checks every pin against every requirement each round; many
        # requirements share one range object, so remember (range, candidate) answers.
        rng = requirement.range
        if rng is None:
            return True
        key = (id(rng), id(candidate))
        ok = self._memo.get(key)
        if ok is None:
            ok = self._memo[key] = rng.contains(candidate.version)
        return ok

    def get_dependencies(self, candidate: _Node) -> list[_Req]:
        return self.expand([candidate])

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, _Node],
        candidates: Mapping[str, Iterator[_Node]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Iterable[str]:
        return identifiers
