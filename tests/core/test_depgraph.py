"""The dependency graph at load / disable / uninstall time, without a resolver."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plughost.core.depgraph import (
    check_can_remove,
    dependency_edges,
    dependents_of,
    find_cycle,
    load_order,
    order_edges,
)
from plughost.core.resolver import check_can_remove as reexported
from plughost.errors import DependencyCycle, DependencyMissing, DependentsExist
from tests.core._candidates import plug


def sel(*plugs):
    return {p.id: p for p in plugs}


def test_load_order_is_topological_with_ties_by_id():
    selected = sel(
        plug("web", deps={"db": "^1", "cache": "*"}),
        plug("db"),
        plug("cache", deps={"db": "*"}),
        plug("alpha"),
    )
    assert load_order(selected) == ["alpha", "db", "cache", "web"]


def test_optional_edges_count_only_when_the_version_fits():
    selected = sel(plug("a", opt={"b": "^2"}), plug("b", "2.1.0"), plug("c", opt={"b": "^1"}))
    assert dependency_edges(selected) == {"a": ["b"], "b": [], "c": []}
    assert load_order(selected) == ["b", "a", "c"]


def test_missing_required_dependency_is_refused():
    with pytest.raises(DependencyMissing) as info:
        load_order(sel(plug("a", deps={"gone": "^1"})))
    assert info.value.details == {"missing": "gone", "range": "^1", "required_by": "a"}


def test_cycle_raises_with_the_full_path():
    selected = sel(
        plug("d", deps={"b": "*"}),
        plug("b", deps={"c": "*"}),
        plug("c", deps={"d": "*"}),
        plug("a"),
    )
    with pytest.raises(DependencyCycle) as info:
        load_order(selected)
    assert info.value.details["cycle"] == ["b", "c", "d", "b"]
    assert "b → c → d → b" in info.value.message
    assert info.value.code == "resolve.cycle"


def test_find_cycle_reports_the_shortest_way_back_from_the_smallest_id():
    edges = {"a": ["b", "x"], "b": ["a"], "x": ["y"], "y": ["a"]}
    assert find_cycle(edges) == ["a", "b", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_long_chains_do_not_hit_the_recursion_limit():
    n = 3000
    selected = sel(
        *(plug(f"p{i:05d}", deps={f"p{i + 1:05d}": "*"} if i + 1 < n else {}) for i in range(n))
    )
    order = load_order(selected)
    assert order[0] == f"p{n - 1:05d}" and order[-1] == "p00000"
    edges = {f"n{i}": [f"n{(i + 1) % n}"] for i in range(n)}
    cycle = find_cycle(edges)
    assert cycle is not None and len(cycle) == n + 1


def test_dependents_are_direct_and_transitive_and_sorted():
    selected = sel(
        plug("lib"),
        plug("mid", deps={"lib": "^1"}),
        plug("top", deps={"mid": "*"}),
        plug("other", deps={"lib": "*"}),
        plug("soft", opt={"lib": "*"}),
        plug("unrelated"),
    )
    assert dependents_of("lib", selected) == ["mid", "other", "top"]
    assert dependents_of("mid", selected) == ["top"]
    assert dependents_of("unrelated", selected) == []


def test_dependents_can_be_limited_to_enabled_plugins():
    selected = sel(plug("lib"), plug("mid", deps={"lib": "*"}), plug("top", deps={"mid": "*"}))
    assert dependents_of("lib", selected, enabled={"lib", "top"}) == []
    assert dependents_of("lib", selected, enabled={"lib", "mid"}) == ["mid"]


def test_check_can_remove_names_who_needs_it():
    selected = sel(plug("lib"), plug("mid", deps={"lib": "^1"}), plug("top", deps={"mid": "*"}))
    with pytest.raises(DependentsExist) as info:
        check_can_remove("lib", selected)
    err = info.value
    assert err.code == "resolve.dependents" and err.plugin_id == "lib"
    assert err.details == {"dependents": ["mid", "top"], "direct": ["mid"]}
    assert "mid (needs lib ^1)" in err.message and "top" in err.message
    assert "Disable or uninstall them first" in err.message


def test_check_can_remove_allows_a_plugin_nobody_needs():
    selected = sel(plug("lib"), plug("soft", opt={"lib": "*"}))
    check_can_remove("lib", selected)
    check_can_remove("soft", selected)


def test_resolver_reexports_the_graph_helpers():
    assert reexported is check_can_remove


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=2),
                       st.lists(st.text("abcdefg", min_size=1, max_size=2), max_size=3),
                       max_size=12))
def test_order_is_the_smallest_ready_id_first(edges: dict[str, list[str]]) -> None:
    import heapq

    # The reference: Kahn's algorithm with every ready id in one heap.
    waiting = {pid: sum(1 for d in needs if d in edges) for pid, needs in edges.items()}
    dependents: dict[str, list[str]] = {pid: [] for pid in edges}
    for pid, needs in edges.items():
        for d in needs:
            if d in edges:
                dependents[d].append(pid)
    ready = [pid for pid, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    expected: list[str] = []
    while ready:
        pid = heapq.heappop(ready)
        expected.append(pid)
        for dep in dependents[pid]:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                heapq.heappush(ready, dep)
    if len(expected) != len(edges):
        with pytest.raises(DependencyCycle):
            order_edges(edges)
    else:
        assert order_edges(edges) == expected
