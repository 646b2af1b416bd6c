"""Property-based tests of versions and ranges (plughost.core.version), against npm.

The reference is npm ``semver``'s own fixtures, already in tests/core/test_version.py: every
range there (and generated ones) must, for any version hypothesis draws, match exactly when
the comparators it desugars to match — and the desugared forms are npm's (checked there
against ``range-parse.js``). Any text at all either parses or raises VersionError.

Profiles: tests/conftest.py ("ci" by default; HYPOTHESIS_PROFILE=night for long runs).
"""

from __future__ import annotations

import operator

from hypothesis import example, given
from hypothesis import strategies as st

from plughost.core.version import Version, VersionRange
from plughost.errors import VersionError
from tests.core.test_version import (
    PRERELEASE_AND_OR,
    RANGE_EXCLUDE,
    RANGE_EXCLUDE_PRE,
    RANGE_INCLUDE,
    RANGE_INCLUDE_PRE,
    RANGE_PARSE,
)

# -- strategies ----------------------------------------------------------------------------

NUMBERS = st.one_of(st.integers(0, 5), st.integers(0, 2**53 - 1))
PRE_IDS = st.one_of(st.integers(0, 12).map(str),
                    st.sampled_from(["alpha", "beta", "rc", "0a", "a0", "x-y", "Z"]))
VERSIONS = st.builds(
    lambda M, m, p, pre, build: (f"{M}.{m}.{p}" + (f"-{'.'.join(pre)}" if pre else "")
                                 + (f"+{'.'.join(build)}" if build else "")),
    NUMBERS, NUMBERS, NUMBERS, st.lists(PRE_IDS, max_size=3),
    st.lists(st.sampled_from(["b1", "001", "sha"]), max_size=2))

FIXTURE_RANGES = sorted({r for r, _ in RANGE_INCLUDE + RANGE_INCLUDE_PRE + RANGE_EXCLUDE
                         + RANGE_EXCLUDE_PRE} | {r for r, _, _ in PRERELEASE_AND_OR}
                        | {r for r, _, _ in RANGE_PARSE})
PARTIALS = st.one_of(
    VERSIONS,
    st.builds("{}.{}".format, NUMBERS, st.sampled_from(["x", "*", "X", "0", "3"])),
    st.builds(str, NUMBERS), st.sampled_from(["*", "x", "1.x.x", "2.*"]))
COMPARATOR = st.builds(lambda op, v: op + v,
                       st.sampled_from(["", "^", "~", ">", ">=", "<", "<=", "=", "~>"]), PARTIALS)
GENERATED_RANGES = st.one_of(
    st.lists(COMPARATOR, min_size=1, max_size=3).map(" ".join),
    st.builds(lambda a, b: f"{a} - {b}", PARTIALS, PARTIALS),
    st.lists(st.lists(COMPARATOR, min_size=1, max_size=2).map(" ".join), min_size=1,
             max_size=3).map(" || ".join))
RANGES = st.one_of(st.sampled_from(FIXTURE_RANGES), GENERATED_RANGES)

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "": operator.eq}


def _reference_contains(desugared: str, v: Version, include_prerelease: bool) -> bool:
    """npm's satisfies() over a desugared comparator set ("<0.0.0-0" matches nothing):
    every comparator of one ``||`` alternative holds, and a pre-release version matches only
    when include_prerelease or one comparator names a pre-release of the same x.y.z."""
    for alternative in desugared.split("||"):
        comparators = alternative.split()
        if comparators == ["*"]:
            if not v.is_prerelease or include_prerelease:
                return True
            continue
        bounds = []
        for comp in comparators:
            op = next(o for o in (">=", "<=", ">", "<", "") if comp.startswith(o))
            bounds.append((op, Version(comp[len(op):])))
        if not all(_OPS[op](v, bound) for op, bound in bounds):
            continue
        if v.is_prerelease and not include_prerelease and not any(
                b.is_prerelease and b.release == v.release for _, b in bounds):
            continue
        return True
    return False


# -- properties ----------------------------------------------------------------------------


@given(RANGES, VERSIONS, st.booleans())
@example("^1.2.3-beta.4", "1.2.3-beta.5", False)
@example(">=1.2.3-alpha.1 <1.2.3-alpha.10", "1.2.3-alpha.9", False)
@example("* || 1.2.3-pre", "1.2.3-pre", False)
def test_contains_agrees_with_the_npm_desugared_comparators(
    text: str, version: str, include: bool
) -> None:
    try:
        r = VersionRange(text)
    except VersionError as exc:
        assert exc.code == "range.invalid"
        return
    v = Version(version)
    desugared = r.desugared(include_prerelease=include)
    assert r.contains(v, include_prerelease=include) is _reference_contains(
        desugared, v, include), desugared


@given(RANGES, st.booleans())
def test_desugared_ranges_parse_to_themselves(text: str, include: bool) -> None:
    try:
        desugared = VersionRange(text).desugared(include_prerelease=include)
    except VersionError:
        return
    assert VersionRange(desugared).desugared(include_prerelease=include) == desugared


@given(st.one_of(st.text(max_size=60), st.text(alphabet="^~<>=|-.xX*v 0123456789+abc",
                                              max_size=60)))
@example("1." * 200)
@example("1.0.0 - " * 40)
@example("\x00")
@example("9" * 300)
def test_any_text_is_a_range_or_range_invalid(text: str) -> None:
    try:
        VersionRange(text)
    except VersionError as exc:
        assert exc.code == "range.invalid"
        assert exc.message


@given(st.one_of(st.text(max_size=40), VERSIONS))
@example("9007199254740992.0.0")
@example("1.2.3-" + "a" * 300)
def test_any_text_is_a_version_or_version_invalid(text: str) -> None:
    try:
        v = Version(text)
    except VersionError as exc:
        assert exc.code == "version.invalid"
        return
    assert Version(str(v)) == v


@given(VERSIONS, VERSIONS, VERSIONS)
def test_version_order_is_a_total_order_ignoring_build(a: str, b: str, c: str) -> None:
    x, y, z = Version(a), Version(b), Version(c)
    assert (x < y) + (x == y) + (x > y) == 1
    if x <= y and y <= z:
        assert x <= z
    assert (x == y) == (hash(x) == hash(y)) or x != y
