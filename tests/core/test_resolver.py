"""Dependency resolution: choices, errors and their chains, optional deps, isolation, engines."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plughost.core.resolver import Candidate, Resolution, resolve
from plughost.core.version import Version, VersionRange
from plughost.errors import (
    ConfigurationError,
    DependencyCycle,
    DependencyMissing,
    HostVersionMismatch,
    ResolutionConflict,
    ResolutionError,
)
from tests.core._candidates import Plug, plug

HOST = "1.4.0"


def versions(res: Resolution) -> dict[str, str]:
    return {pid: str(c.version) for pid, c in res.selected.items()}


def test_plug_satisfies_the_candidate_protocol():
    assert isinstance(plug("a"), Candidate)


# -- choosing versions ---------------------------------------------------------------------


def test_newest_satisfying_version_is_chosen():
    res = resolve(
        [
            plug("app", deps={"lib": "^1.2"}),
            plug("lib", "1.1.0"),
            plug("lib", "1.2.0"),
            plug("lib", "1.9.3"),
            plug("lib", "2.0.0"),
        ],
        requested=["app"],
        host_version=HOST,
    )
    assert versions(res) == {"app": "1.0.0", "lib": "1.9.3"}
    assert res.order == ["lib", "app"]
    assert res.engine == "resolvelib"
    assert res.failed == {} and res.skipped_optional == {}


def test_resolution_backtracks_to_an_older_version_that_fits():
    # The newest a needs b ^2, but c pins b to ^1: only a 1.0.0 works.
    res = resolve(
        [
            plug("a", "2.0.0", deps={"b": "^2"}),
            plug("a", "1.0.0", deps={"b": "^1"}),
            plug("b", "1.5.0"),
            plug("b", "2.1.0"),
            plug("c", deps={"b": "~1.5"}),
        ],
        host_version=HOST,
    )
    assert versions(res) == {"a": "1.0.0", "b": "1.5.0", "c": "1.0.0"}
    assert res.order == ["b", "a", "c"]


def test_prefer_oldest_picks_the_lowest_satisfying_version():
    avail = [plug("app", deps={"lib": ">=1.2"}), plug("lib", "1.1.0"), plug("lib", "1.2.0")]
    avail.append(plug("lib", "1.5.0"))
    res = resolve(avail, requested=["app"], host_version=HOST, prefer="oldest")
    assert versions(res)["lib"] == "1.2.0"


def test_installed_version_is_preferred_when_it_fits():
    avail = [plug("app", deps={"lib": "^1"}), plug("lib", "1.0.0"), plug("lib", "1.3.0")]
    res = resolve(avail, host_version=HOST, installed={"lib": Version("1.0.0")})
    assert versions(res)["lib"] == "1.0.0"


def test_installed_version_is_ignored_when_it_does_not_fit():
    avail = [plug("app", deps={"lib": "^1.2"}), plug("lib", "1.0.0"), plug("lib", "1.3.0")]
    res = resolve(avail, host_version=HOST, installed={"lib": Version("1.0.0")})
    assert versions(res)["lib"] == "1.3.0"


def test_a_requested_id_prefers_releases_over_newer_prereleases():
    res = resolve([plug("a", "1.0.0"), plug("a", "2.0.0-beta.1")], host_version=HOST)
    assert versions(res) == {"a": "1.0.0"}


def test_a_prerelease_is_used_when_it_is_the_only_version():
    res = resolve([plug("a", "2.0.0-beta.1")], host_version=HOST)
    assert versions(res) == {"a": "2.0.0-beta.1"}


def test_a_dependency_range_admits_prereleases_only_when_it_opts_in():
    beta = [plug("lib", "2.0.0-beta.2")]
    res = resolve(
        [plug("app", deps={"lib": ">=2.0.0-beta.1"}), *beta], requested=["app"], host_version=HOST
    )
    assert versions(res)["lib"] == "2.0.0-beta.2"
    with pytest.raises(ResolutionConflict):
        resolve([plug("app", deps={"lib": "^2"}), *beta], requested=["app"], host_version=HOST)


def test_requested_subset_selects_only_what_it_needs():
    avail = [plug("a", deps={"b": "*"}), plug("b"), plug("c"), plug("d", deps={"missing": "*"})]
    res = resolve(avail, requested=["a"], host_version=HOST)
    assert res.order == ["b", "a"]


def test_repeated_id_and_version_keeps_the_first():
    first = plug("a", deps={"b": "*"})
    res = resolve([first, plug("a"), plug("b")], host_version=HOST)
    assert res.selected["a"] is first


def test_host_version_may_be_given_as_text():
    res = resolve([plug("a", host="^1.4")], host_version="1.4.2")
    assert list(res.selected) == ["a"]


def test_requested_as_a_bare_string_is_refused():
    with pytest.raises(ConfigurationError, match=r"requested=\['a'\]"):
        resolve([plug("a")], requested="a", host_version=HOST)


def test_resolution_serialises_to_json():
    import json

    avail = [plug("a", opt={"b": "^2"}), plug("b"), plug("bad", deps={"ghost": "*"})]
    data = resolve(avail, host_version=HOST, partial=True).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["selected"] == {"a": "1.0.0", "b": "1.0.0"}
    assert data["failed"]["bad"]["code"] == "resolve.missing"
    assert data["skipped_optional"][0]["dependency"] == "b"


def test_unknown_prefer_or_engine_is_refused():
    with pytest.raises(ConfigurationError):
        resolve([plug("a")], host_version=HOST, prefer="fastest")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        resolve([plug("a")], host_version=HOST, engine="magic")  # type: ignore[arg-type]


# -- order ---------------------------------------------------------------------------------


def test_load_order_puts_dependencies_first_and_breaks_ties_by_id():
    avail = [
        plug("zeta"),
        plug("alpha", deps={"zeta": "*"}),
        plug("mid", deps={"beta": "*"}),
        plug("beta"),
        plug("gamma"),
    ]
    res = resolve(avail, host_version=HOST)
    assert res.order == ["beta", "gamma", "mid", "zeta", "alpha"]


def test_order_does_not_depend_on_input_order():
    avail = [
        plug(f"p{i}", deps={f"p{j}": "*" for j in range(i) if (i * j) % 3 == 1}) for i in range(30)
    ]
    expected = resolve(avail, host_version=HOST).order
    rnd = random.Random(5)
    for _ in range(5):
        shuffled = avail[:]
        rnd.shuffle(shuffled)
        assert resolve(shuffled, host_version=HOST).order == expected


# -- errors --------------------------------------------------------------------------------


def test_conflict_message_carries_the_chain():
    avail = [
        plug("chat-bridge", deps={"notify-slack": "^2"}),
        plug("notify-slack", "2.1.0", deps={"http-client": ">=3"}),
        plug("http-client", "2.4.0"),
    ]
    with pytest.raises(ResolutionConflict) as info:
        resolve(avail, requested=["chat-bridge"], host_version=HOST)
    err = info.value
    assert err.code == "resolve.conflict"
    assert (
        "notify-slack 2.1.0 needs http-client >=3, but only 2.4.0 is available "
        "(required by chat-bridge 1.0.0 → notify-slack ^2)"
    ) in err.message
    assert err.plugin_id == "chat-bridge"
    assert err.details["dependency"] == "http-client"
    assert err.details["available"] == ["2.4.0"]
    assert err.details["chain"] == [
        {"id": "chat-bridge", "version": "1.0.0", "needs": "notify-slack", "range": "^2"}
    ]


def test_joint_conflict_names_every_requirement():
    avail = [
        plug("a", deps={"c": "^1"}),
        plug("b", deps={"c": "^2"}),
        plug("c", "1.0.0"),
        plug("c", "2.0.0"),
    ]
    with pytest.raises(ResolutionConflict) as info:
        resolve(avail, requested=["a", "b"], host_version=HOST)
    err = info.value
    assert "a 1.0.0 needs c ^1" in err.message and "b 1.0.0 needs c ^2" in err.message
    (conflict,) = err.details["conflicts"]
    assert conflict["id"] == "c" and conflict["available"] == ["1.0.0", "2.0.0"]
    assert {r["by"] for r in conflict["requirements"]} == {"a", "b"}


def test_joint_conflict_chain_shows_how_a_deep_requirement_was_reached():
    avail = [
        plug("app", deps={"mid": "^1"}),
        plug("mid", deps={"c": "^1"}),
        plug("other", deps={"c": "^2"}),
        plug("c", "1.0.0"),
        plug("c", "2.0.0"),
    ]
    with pytest.raises(ResolutionConflict) as info:
        resolve(avail, requested=["app", "other"], host_version=HOST)
    assert "mid 1.0.0 needs c ^1 (required by app 1.0.0 → mid ^1)" in info.value.message


def test_missing_dependency_names_who_needs_it():
    avail = [plug("app", deps={"ghost": "^1"}), plug("fine")]
    with pytest.raises(DependencyMissing) as info:
        resolve(avail, host_version=HOST)
    err = info.value
    assert err.code == "resolve.missing"
    assert "app 1.0.0 needs ghost ^1, which is not available" in err.message
    assert err.details["missing"] == "ghost" and err.details["required_by"] == ["app"]


def test_missing_dependency_deep_in_the_tree_shows_the_chain():
    avail = [plug("top", deps={"mid": "*"}), plug("mid", deps={"ghost": "^1"})]
    with pytest.raises(DependencyMissing) as info:
        resolve(avail, requested=["top"], host_version=HOST)
    assert "mid 1.0.0 needs ghost ^1, which is not available (required by top 1.0.0 → mid *)" in (
        info.value.message
    )


def test_requesting_an_unknown_id_is_a_missing_dependency():
    with pytest.raises(DependencyMissing, match="nope was requested but is not available"):
        resolve([plug("a")], requested=["nope"], host_version=HOST)


def test_host_constraint_excludes_versions_and_falls_back_to_one_that_supports_it():
    avail = [plug("a", "2.0.0", host="^2"), plug("a", "1.5.0", host="^1.2")]
    assert versions(resolve(avail, host_version=HOST)) == {"a": "1.5.0"}


def test_host_mismatch_names_plugin_range_and_host_version():
    avail = [plug("a", "2.0.0", host=">=2.0.0"), plug("ok")]
    with pytest.raises(HostVersionMismatch) as info:
        resolve(avail, host_version=HOST)
    err = info.value
    assert err.code == "resolve.host" and err.plugin_id == "a"
    assert "a does not support this plughost 1.4.0" in err.message
    assert ">=2.0.0" in err.message
    assert err.details["candidates"] == [{"version": "2.0.0", "host": ">=2.0.0"}]
    assert err.details["host_version"] == "1.4.0"


def test_host_mismatch_of_a_dependency_is_reported_with_its_chain():
    avail = [plug("app", deps={"lib": "^1"}), plug("lib", "1.0.0", host="^2")]
    with pytest.raises(HostVersionMismatch) as info:
        resolve(avail, requested=["app"], host_version=HOST)
    assert info.value.details["plugin"] == "lib"
    assert "(required by app 1.0.0 → lib ^1)" in info.value.message


def test_cycle_is_reported_with_its_full_path():
    avail = [plug("a", deps={"b": "*"}), plug("b", deps={"c": "*"}), plug("c", deps={"a": "*"})]
    for engine in ("auto", "resolvelib"):
        with pytest.raises(DependencyCycle) as info:
            resolve(avail, host_version=HOST, engine=engine)
        assert "a → b → c → a" in info.value.message
        assert info.value.details["cycle"] == ["a", "b", "c", "a"]


def test_self_dependency_is_a_cycle():
    with pytest.raises(DependencyCycle) as info:
        resolve([plug("a", deps={"a": "*"})], host_version=HOST)
    assert info.value.details["cycle"] == ["a", "a"]


# -- optional dependencies -------------------------------------------------------------------


def test_present_optional_dependency_is_used_ordered_first_and_its_range_enforced():
    avail = [
        plug("app", opt={"extra": "~1.2"}),
        plug("extra", "1.2.5"),
        plug("extra", "1.3.0"),
    ]
    res = resolve(avail, requested=["app"], host_version=HOST)
    assert versions(res) == {"app": "1.0.0", "extra": "1.2.5"}
    assert res.order == ["extra", "app"]
    assert res.skipped_optional == {}


def test_absent_optional_dependency_is_ignored_silently():
    res = resolve([plug("app", opt={"ghost": "^1"})], host_version=HOST)
    assert res.order == ["app"] and res.skipped_optional == {} and res.skipped == ()


def test_present_but_unsatisfiable_optional_dependency_is_skipped_not_failed():
    avail = [plug("app", opt={"extra": "^2"}), plug("extra", "1.0.0")]
    res = resolve(avail, host_version=HOST)
    assert versions(res) == {"app": "1.0.0", "extra": "1.0.0"}
    assert res.order == ["app", "extra"]  # no edge: app does not use this extra
    assert res.skipped_optional == {"app": "optional extra ^2 not used: only 1.0.0 is available"}
    (skip,) = res.skipped
    assert (skip.plugin_id, skip.dependency, skip.range) == ("app", "extra", "^2")


def test_optional_range_that_conflicts_with_a_required_one_is_dropped():
    avail = [
        plug("app", opt={"lib": "^2"}),
        plug("core", deps={"lib": "^1"}),
        plug("lib", "1.0.0"),
        plug("lib", "2.0.0"),
    ]
    res = resolve(avail, host_version=HOST)
    assert versions(res)["lib"] == "1.0.0"
    assert "app" in res.skipped_optional
    assert "core 1.0.0 needs lib ^1" in res.skipped_optional["app"]
    assert res.failed == {}


def test_optional_dependency_that_cannot_be_used_is_skipped_with_its_reason():
    avail = [plug("app", opt={"extra": "*"}), plug("extra", host="^9")]
    res = resolve(avail, requested=["app"], host_version=HOST)
    assert list(res.selected) == ["app"]
    assert "extra does not support this plughost 1.4.0" in res.skipped_optional["app"]


def test_optional_edge_that_would_close_a_cycle_is_cut():
    avail = [plug("a", opt={"b": "*"}), plug("b", deps={"a": "*"})]
    res = resolve(avail, host_version=HOST)
    assert res.order == ["a", "b"]
    assert "cycle a → b → a" in res.skipped_optional["a"]


def test_optional_dependency_is_pulled_in_when_available_even_if_not_requested():
    avail = [plug("app", opt={"extra": "*"}), plug("extra")]
    res = resolve(avail, requested=["app"], host_version=HOST)
    assert res.order == ["extra", "app"]


# -- partial mode: isolation ---------------------------------------------------------------


def test_partial_mode_isolates_a_broken_plugin():
    avail = [
        plug("good", deps={"lib": "^1"}),
        plug("lib", "1.2.0"),
        plug("broken", deps={"ghost": "^1"}),
        plug("needs-broken", deps={"broken": "*"}),
        plug("wrong-host", host="^9"),
        plug("standalone"),
    ]
    res = resolve(avail, host_version=HOST, partial=True)
    assert res.order == ["lib", "good", "standalone"]
    assert sorted(res.failed) == ["broken", "needs-broken", "wrong-host"]
    assert isinstance(res.failed["broken"], DependencyMissing)
    assert isinstance(res.failed["needs-broken"], DependencyMissing)  # the root cause's class
    assert "required by needs-broken 1.0.0 → broken *" in res.failed["needs-broken"].message
    assert isinstance(res.failed["wrong-host"], HostVersionMismatch)
    assert all(e.plugin_id == pid for pid, e in res.failed.items())


def test_partial_mode_keeps_the_first_of_two_conflicting_plugins():
    avail = [
        plug("a", deps={"c": "^1"}),
        plug("b", deps={"c": "^2"}),
        plug("c", "1.0.0"),
        plug("c", "2.0.0"),
        plug("d", deps={"c": "*"}),
    ]
    res = resolve(avail, host_version=HOST, partial=True)
    assert versions(res) == {"a": "1.0.0", "c": "1.0.0", "d": "1.0.0"}
    assert list(res.failed) == ["b"]
    assert isinstance(res.failed["b"], ResolutionConflict)
    assert res.failed["b"].plugin_id == "b"


def test_partial_mode_fails_a_cycle_and_what_needs_it_but_resolves_the_rest():
    avail = [
        plug("a", deps={"b": "*"}),
        plug("b", deps={"a": "*"}),
        plug("user", deps={"a": "*"}),
        plug("fine"),
        plug("soft", opt={"a": "*"}),
    ]
    res = resolve(avail, host_version=HOST, partial=True)
    assert res.order == ["fine", "soft"]
    assert sorted(res.failed) == ["a", "b", "user"]
    assert all(isinstance(e, DependencyCycle) for e in res.failed.values())
    assert res.failed["user"].details["cycle"] == ["a", "b", "a"]
    assert "dependency cycle a → b → a" in res.skipped_optional["soft"]


def test_strict_mode_raises_what_partial_mode_reports():
    avail = [plug("ok"), plug("bad", deps={"ghost": "*"})]
    partial = resolve(avail, host_version=HOST, partial=True)
    with pytest.raises(ResolutionError) as info:
        resolve(avail, host_version=HOST)
    assert info.value.message == partial.failed["bad"].message


# -- engines agree -------------------------------------------------------------------------


def _random_problem(
    seed: int, n: int = 25, *, broken: bool = True, optional: bool = True
) -> list[Plug]:
    """A seeded random plugin set over a DAG of ids, some with several versions.

    ``broken=False`` leaves out missing ids, host limits and pre-releases, and only uses ranges
    that some version of the target satisfies, so failures come from joint conflicts alone.
    """
    rnd = random.Random(seed)
    ranges = ["^1", "^2", "*", ">=1.1.0", "~1.0", "1.x || 2.x", ">=2.0.0-beta"]
    choices = ["1.0.0", "1.1.0", "2.0.0", "2.0.0-beta.1"]
    if not broken:
        choices = choices[:3]
    out: list[Plug] = []
    have: dict[str, list[Version]] = {}
    for i in range(n):
        pid = f"p{i:02d}"
        picked = rnd.sample(choices, rnd.choice([1, 1, 1, 2, 3]))
        have[pid] = [Version(v) for v in picked]
        for ver in picked:
            deps: dict[str, str] = {}
            for j in rnd.sample(range(i), min(i, rnd.randint(0, 3))):
                dep = f"p{j:02d}"
                fits = [r for r in ranges if broken or VersionRange(r).max_satisfying(have[dep])]
                deps[dep] = rnd.choice(fits)
            if broken and rnd.random() < 0.05:
                deps["missing"] = "*"
            opt = {}
            if optional and i and rnd.random() < 0.3:
                opt[f"p{rnd.randrange(i):02d}"] = rnd.choice(ranges)
            if optional and rnd.random() < 0.05 and i + 1 < n:
                opt[f"p{i + 1:02d}"] = "*"  # forward optional edge: may close a cycle
            host = "^2" if broken and rnd.random() < 0.05 else "*"
            out.append(plug(pid, ver, deps, opt, host))
    return out


def _summary(res: Resolution) -> tuple:
    return (
        versions(res),
        res.order,
        res.skipped_optional,
        {pid: (e.code, e.message) for pid, e in res.failed.items()},
    )


@pytest.mark.parametrize("seed", range(30))
def test_single_version_problems_take_the_direct_path_and_agree_with_resolvelib(seed):
    # Missing ids, host limits, optional edges and cycles included; partial mode, so every
    # failure is compared too, message for message.
    avail = [p for p in _random_problem(seed, n=40) if p.version == Version("1.0.0")]
    auto = resolve(avail, host_version=HOST, partial=True)
    full = resolve(avail, host_version=HOST, partial=True, engine="resolvelib")
    assert auto.engine == "direct"
    assert _summary(auto) == _summary(full)


def _outcome(avail: list[Plug], engine: str) -> tuple | type:
    try:
        return _summary(resolve(avail, host_version=HOST, engine=engine))  # type: ignore[arg-type]
    except ResolutionError as exc:
        return type(exc)


@pytest.mark.parametrize("seed", range(40))
def test_inlined_and_plain_resolvelib_choose_the_same_versions(seed):
    # With several versions per id, "auto" gives resolvelib only the ids with a choice and
    # inlines the others; "resolvelib" gives it everything. Same answer, or the same error.
    avail = _random_problem(seed, broken=False)
    assert _outcome(avail, "auto") == _outcome(avail, "resolvelib")


def _assert_consistent(res: Resolution, avail: list[Plug]) -> None:
    roots = available_ids = {p.id for p in avail}
    assert set(res.failed).isdisjoint(res.selected)
    assert roots <= set(res.failed) | set(res.selected)
    assert sorted(res.order) == sorted(res.selected)
    position = {pid: i for i, pid in enumerate(res.order)}
    for pid, cand in res.selected.items():
        assert cand.host.contains(Version(HOST), include_prerelease=True)
        for dep, rng in cand.dependencies.items():
            assert dep in res.selected and rng.contains(res.selected[dep].version)
            assert position[dep] < position[pid]
        for dep, rng in cand.optional_dependencies.items():
            other = res.selected.get(dep)
            skipped = f"optional {dep} {rng} not used" in res.skipped_optional.get(pid, "")
            if other is not None and rng.contains(other.version) and not skipped:
                assert position[dep] < position[pid]  # used: loaded first
            elif dep in available_ids:
                assert skipped  # available but not used: always explained
            else:
                assert not skipped  # absent: silently ignored


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("engine", ["auto", "resolvelib"])
def test_partial_mode_results_are_consistent(seed, engine):
    avail = _random_problem(seed)
    res = resolve(avail, host_version=HOST, partial=True, engine=engine)
    _assert_consistent(res, avail)


def test_a_thousand_plugins_in_a_seeded_dag_resolve_correctly():
    rnd = random.Random(1000)
    avail = []
    for i in range(1000):
        deps = {
            f"p{j:04d}": rnd.choice(["^1", ">=1.0.0", "*", "~1.0"])
            for j in rnd.sample(range(i), min(i, rnd.randint(0, 4)))
        }
        opt = {f"p{rnd.randrange(i):04d}": "^1"} if i and rnd.random() < 0.2 else {}
        avail.append(plug(f"p{i:04d}", "1.0.0", deps, opt))
    for i in range(0, 1000, 50):  # a second version of some ids: a real choice
        avail.append(plug(f"p{i:04d}", "1.1.0"))
    rnd.shuffle(avail)
    res = resolve(avail, host_version=HOST)
    assert len(res.selected) == 1000 and res.failed == {}
    assert sorted(res.order) == sorted(res.selected)
    position = {pid: i for i, pid in enumerate(res.order)}
    for pid, cand in res.selected.items():
        for dep, rng in cand.dependencies.items():
            assert rng.contains(res.selected[dep].version)
            assert position[dep] < position[pid]
    for i in range(0, 1000, 50):
        pid = f"p{i:04d}"
        # 1.1.0 is chosen unless a dependent pins ~1.0 (which excludes 1.1.0).
        pinned = any(str(c.dependencies.get(pid)) == "~1.0" for c in res.selected.values())
        assert str(res.selected[pid].version) == ("1.0.0" if pinned else "1.1.0")


def test_manifests_are_candidates_and_resolve():
    from plughost.core.manifest import manifest_from_dict

    def manifest(pid: str, version: str, **extra: object):
        return manifest_from_dict({"id": pid, "version": version, "entry": "m:P", **extra})

    avail = [
        manifest("lyrics", "1.0.0", dependencies={"music-source": "^2.1"}),
        manifest("music-source", "2.0.0"),
        manifest("music-source", "2.3.1"),
        manifest("music-source", "3.0.0"),
        manifest("visualiser", "0.1.0", host=">=9"),
    ]
    assert all(isinstance(m, Candidate) for m in avail)
    res = resolve(avail, host_version=HOST, partial=True)
    # One version per id: lyrics' ^2.1 rules out the newer 3.0.0.
    assert versions(res) == {"lyrics": "1.0.0", "music-source": "2.3.1"}
    assert res.order == ["music-source", "lyrics"]
    assert isinstance(res.failed["visualiser"], HostVersionMismatch)


# -- nothing to resolve --------------------------------------------------------------------


def _answer(run):
    try:
        res = run()
    except ResolutionError as exc:
        return ("raised", type(exc).__name__, str(exc))
    return (versions(res), res.order, res.skipped_optional,
            {pid: (type(e).__name__, str(e)) for pid, e in res.failed.items()})


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["1.0.0", "2.0.0"]),
                          st.sampled_from(["*", "*", "*", ">=2"]),
                          st.sampled_from([None, None, None, {"a": "*"}, {"c": "^1"},
                                           {"d": "*", "e": ">=2"}, {"h": "*"}]),
                          st.sampled_from([None, None, None, {"b": "^1"}])),
                max_size=8, unique_by=lambda spec: spec[0]),
       st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_one_version_each_resolves_as_the_general_path_resolves_it(specs, plain, required,
                                                                   twice, partial):
    # Unique ids, all fitting the host, no optional dependencies, every dependency there in a
    # version its range accepts and no cycle: one pass picks them all, ordered by their
    # dependencies. Anything else (a repeated id, a missing or refused dependency, a cycle, an
    # optional dependency, a host range that does not fit) goes the general way; either way
    # the answer is the one the general path gives.
    if plain:
        specs = [(pid, ver, "*", None, None) for pid, ver, *_ in specs]
    elif required:  # dependency chains and cycles, nothing optional
        specs = [(pid, ver, "*", deps, None) for pid, ver, _, deps, _ in specs]
    if twice and specs:
        specs = [*specs, (specs[0][0], "3.0.0", "*", None, None)]
    plugs = [plug(pid, ver, deps, opt, host) for pid, ver, host, deps, opt in specs]

    def auto():
        return resolve(plugs, host_version=HOST, partial=partial)

    def general():
        return resolve(plugs, host_version=HOST, partial=partial, engine="resolvelib")

    assert _answer(auto) == _answer(general)


def test_independent_plugins_skip_the_graph():
    many = [plug(f"p{i:04d}") for i in range(2000, 0, -1)]
    res = resolve(iter(many), host_version=HOST)
    assert res.order == sorted(p.id for p in many) == list(res.selected)
    assert res.engine == "direct" and not res.failed and not res.skipped


def test_a_tree_of_one_version_each_skips_the_candidate_graph(monkeypatch):
    import plughost.core.resolver as resolver

    many = [plug(f"p{i:04d}", "1.0.0", {f"p{i // 2:04d}": "^1"} if i else None)
            for i in range(500, -1, -1)]
    monkeypatch.setattr(resolver, "_Problem", None)  # the general path is not taken
    res = resolve(many, host_version=HOST)
    assert list(res.selected) == sorted(p.id for p in many)
    rank = {pid: i for i, pid in enumerate(res.order)}
    assert all(rank[f"p{i // 2:04d}"] < rank[f"p{i:04d}"] for i in range(1, 501))
    assert res.engine == "direct" and not res.failed and not res.skipped
    monkeypatch.undo()
    full = resolve(many, host_version=HOST, engine="resolvelib")
    assert (res.selected, res.order) == (full.selected, full.order)
