"""Versions and ranges, table-driven.

Most tables are npm ``semver``'s own fixtures (node-semver ``test/fixtures/*.js``, ISC licence),
restricted to the strict (``loose: false``) cases, since npm's strict mode is the reference.
Entries the fixtures mark as loose-only are left out unless strict npm accepts them too (a
leading ``v`` is strict-valid). The last tables are plughost's own, on pre-releases and ``||``;
each was checked against npm ``semver`` 7.8.
"""

from __future__ import annotations

import pickle

import pytest

from plughost.core.version import ANY, Version, VersionRange
from plughost.errors import PlughostError, VersionError

# -- node-semver test/fixtures/valid-versions.js: [version, major, minor, patch, pre, build]
VALID_VERSIONS = [
    ("1.0.0", 1, 0, 0, (), ()),
    ("2.1.0", 2, 1, 0, (), ()),
    ("3.2.1", 3, 2, 1, (), ()),
    ("v1.2.3", 1, 2, 3, (), ()),
    ("1.2.3-0", 1, 2, 3, (0,), ()),
    ("1.2.3-123", 1, 2, 3, (123,), ()),
    ("1.2.3-1.2.3", 1, 2, 3, (1, 2, 3), ()),
    ("1.2.3-1a", 1, 2, 3, ("1a",), ()),
    ("1.2.3-a1", 1, 2, 3, ("a1",), ()),
    ("1.2.3-alpha", 1, 2, 3, ("alpha",), ()),
    ("1.2.3-alpha.1", 1, 2, 3, ("alpha", 1), ()),
    ("1.2.3-alpha-1", 1, 2, 3, ("alpha-1",), ()),
    ("1.2.3-alpha-.-beta", 1, 2, 3, ("alpha-", "-beta"), ()),
    ("1.2.3+456", 1, 2, 3, (), ("456",)),
    ("1.2.3+build", 1, 2, 3, (), ("build",)),
    ("1.2.3+new-build", 1, 2, 3, (), ("new-build",)),
    ("1.2.3+build.1", 1, 2, 3, (), ("build", "1")),
    ("1.2.3+build.1a", 1, 2, 3, (), ("build", "1a")),
    ("1.2.3+build.a1", 1, 2, 3, (), ("build", "a1")),
    ("1.2.3+build.alpha", 1, 2, 3, (), ("build", "alpha")),
    ("1.2.3+build.alpha.beta", 1, 2, 3, (), ("build", "alpha", "beta")),
    ("1.2.3-alpha+build", 1, 2, 3, ("alpha",), ("build",)),
    # plughost additions, all strict-valid in npm
    (" 1.2.3\n", 1, 2, 3, (), ()),
    ("1.2.3-01a", 1, 2, 3, ("01a",), ()),
    ("1.2.3+001", 1, 2, 3, (), ("001",)),
    ("9007199254740991.0.0", 9007199254740991, 0, 0, (), ()),
]


@pytest.mark.parametrize(("text", "major", "minor", "patch", "pre", "build"), VALID_VERSIONS)
def test_valid_versions_parse_into_their_parts(text, major, minor, patch, pre, build):
    v = Version(text)
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == (major, minor, patch, pre, build)
    assert v.is_prerelease == bool(pre)


# -- node-semver invalid-versions.js (strict) plus the SemVer grammar's edge cases
INVALID_VERSIONS = [
    ("1" * 256 + ".0.0", "longer than 256"),
    ("90071992547409910.0.0", "larger than"),
    ("0.90071992547409910.0", "larger than"),
    ("0.0.90071992547409910", "larger than"),
    ("hello, world", "whitespace"),
    ("xyz", "must start with the major number"),
    ("", "empty"),
    ("1.2", "three numbers"),
    ("1.2.3.4", "three numbers"),
    ("01.2.3", "leading zero"),
    ("1.02.3", "leading zero"),
    ("1.2.03", "leading zero"),
    ("1.2.3-01", "leading zero"),
    ("1.2.3-", "empty"),
    ("1.2.3-a..b", "empty"),
    ("1.2.3+", "empty"),
    ("1.2.3-alpha_1", "[0-9A-Za-z-]"),
    ("1.2.3+b_1", "[0-9A-Za-z-]"),
    ("=1.2.3", "must start with the major number"),
    ("V1.2.3", "lower-case"),
    ("vv1.2.3", "must start with the major number"),
    ("1.2.3 -alpha", "whitespace"),
    ("-1.2.3", "must start with the major number"),
    ("1.2.x", "patch"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID_VERSIONS)
def test_invalid_versions_raise_version_invalid_with_reason_and_example(text, reason):
    with pytest.raises(VersionError) as info:
        Version(text)
    err = info.value
    assert err.code == "version.invalid"
    assert reason in err.details["reason"]
    assert "1.2.3" in err.message  # shows a valid example
    assert isinstance(err, PlughostError) and isinstance(err, ValueError)


def test_version_error_quotes_the_bad_text():
    with pytest.raises(VersionError, match=r"'1\.02\.3'"):
        Version("1.02.3")


def test_non_string_version_is_refused():
    with pytest.raises(VersionError):
        Version(123)  # type: ignore[arg-type]


# -- node-semver comparisons.js: first is greater than second (strict cases)
COMPARISONS = [
    ("0.0.0", "0.0.0-foo"),
    ("0.0.1", "0.0.0"),
    ("1.0.0", "0.9.9"),
    ("0.10.0", "0.9.0"),
    ("0.99.0", "0.10.0"),
    ("2.0.0", "1.2.3"),
    ("v0.0.0", "0.0.0-foo"),
    ("v0.0.1", "0.0.0"),
    ("v1.0.0", "0.9.9"),
    ("v0.10.0", "0.9.0"),
    ("v0.99.0", "0.10.0"),
    ("v2.0.0", "1.2.3"),
    ("0.0.0", "v0.0.0-foo"),
    ("0.0.1", "v0.0.0"),
    ("1.0.0", "v0.9.9"),
    ("0.10.0", "v0.9.0"),
    ("0.99.0", "v0.10.0"),
    ("2.0.0", "v1.2.3"),
    ("1.2.3", "1.2.3-asdf"),
    ("1.2.3", "1.2.3-4"),
    ("1.2.3", "1.2.3-4-foo"),
    ("1.2.3-5-foo", "1.2.3-5"),
    ("1.2.3-5", "1.2.3-4"),
    ("1.2.3-5-foo", "1.2.3-5-Foo"),
    ("3.0.0", "2.7.2+asdf"),
    ("1.2.3-a.10", "1.2.3-a.5"),
    ("1.2.3-a.b", "1.2.3-a.5"),
    ("1.2.3-a.b", "1.2.3-a"),
    ("1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"),
    ("1.2.3-r2", "1.2.3-r100"),
    ("1.2.3-r100", "1.2.3-R2"),
    # the SemVer 2.0.0 spec's own example chain, pairwise
    ("1.0.0-alpha.1", "1.0.0-alpha"),
    ("1.0.0-alpha.beta", "1.0.0-alpha.1"),
    ("1.0.0-beta", "1.0.0-alpha.beta"),
    ("1.0.0-beta.2", "1.0.0-beta"),
    ("1.0.0-beta.11", "1.0.0-beta.2"),
    ("1.0.0-rc.1", "1.0.0-beta.11"),
    ("1.0.0", "1.0.0-rc.1"),
]


@pytest.mark.parametrize(("greater", "lesser"), COMPARISONS)
def test_precedence_orders_versions(greater, lesser):
    a, b = Version(greater), Version(lesser)
    assert a > b and a >= b and b < a and b <= a
    assert a != b and not a == b  # noqa: SIM201
    assert hash(a) != hash(b) or a != b


def test_spec_example_chain_sorts_in_order():
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "2.0.0",
        "2.1.0",
        "2.1.1",
    ]
    shuffled = [chain[i] for i in (5, 0, 10, 3, 8, 1, 7, 2, 9, 6, 4)]
    assert [str(v) for v in sorted(Version(s) for s in shuffled)] == chain


# -- node-semver equality.js (strict cases): equal by precedence, build metadata ignored
EQUALITY = [
    ("1.2.3", "v1.2.3"),
    ("1.2.3", " v1.2.3"),
    ("1.2.3-0", "v1.2.3-0"),
    ("1.2.3-0", " v1.2.3-0"),
    ("1.2.3-1", "v1.2.3-1"),
    ("1.2.3-beta", "v1.2.3-beta"),
    ("1.2.3-beta+build", "1.2.3-beta+otherbuild"),
    ("1.2.3+build", "1.2.3+otherbuild"),
    ("  v1.2.3+build", "1.2.3+otherbuild"),
]


@pytest.mark.parametrize(("a", "b"), EQUALITY)
def test_equal_versions_compare_and_hash_alike(a, b):
    va, vb = Version(a), Version(b)
    assert va == vb and not va < vb and not va > vb and va <= vb and va >= vb
    assert hash(va) == hash(vb)
    assert len({va, vb}) == 1


def test_build_metadata_is_kept_but_ignored_for_precedence():
    v = Version("1.2.3-rc.1+build.5")
    assert str(v) == "1.2.3-rc.1+build.5"
    assert v.build == ("build", "5")
    assert v == Version("1.2.3-rc.1")


def test_str_is_canonical_and_repr_round_trips():
    assert str(Version(" v1.2.3-alpha.01a+b ")) == "1.2.3-alpha.01a+b"
    v = Version("2.0.0-rc.1")
    assert eval(repr(v)) == v


def test_version_is_immutable_and_picklable():
    v = Version("1.2.3+b")
    with pytest.raises(AttributeError):
        v.major = 2  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(v))
    assert copy == v and str(copy) == "1.2.3+b"


def test_version_compares_only_with_versions():
    assert Version("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        _ = Version("1.0.0") < "2.0.0"  # type: ignore[operator]


def test_parse_returns_versions_unchanged():
    v = Version("1.0.0")
    assert Version.parse(v) is v
    assert Version.parse("1.0.0") == v


# -- node-semver range-include.js (strict cases): version satisfies range
RANGE_INCLUDE = [
    ("1.0.0 - 2.0.0", "1.2.3"),
    ("^1.2.3+build", "1.2.3"),
    ("^1.2.3+build", "1.3.0"),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3"),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3-pre.2"),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha"),
    ("1.2.3+asdf - 2.4.3+asdf", "1.2.3"),
    ("1.0.0", "1.0.0"),
    (">=*", "0.2.4"),
    ("", "1.0.0"),
    ("*", "1.2.3"),
    ("*", "v1.2.3"),
    (">=1.0.0", "1.0.0"),
    (">=1.0.0", "1.0.1"),
    (">=1.0.0", "1.1.0"),
    (">1.0.0", "1.0.1"),
    (">1.0.0", "1.1.0"),
    ("<=2.0.0", "2.0.0"),
    ("<=2.0.0", "1.9999.9999"),
    ("<=2.0.0", "0.2.9"),
    ("<2.0.0", "1.9999.9999"),
    ("<2.0.0", "0.2.9"),
    (">= 1.0.0", "1.0.0"),
    (">=  1.0.0", "1.0.1"),
    (">=   1.0.0", "1.1.0"),
    ("> 1.0.0", "1.0.1"),
    (">  1.0.0", "1.1.0"),
    ("<=   2.0.0", "2.0.0"),
    ("<= 2.0.0", "1.9999.9999"),
    ("<=  2.0.0", "0.2.9"),
    ("<    2.0.0", "1.9999.9999"),
    ("<\t2.0.0", "0.2.9"),
    (">=0.1.97", "v0.1.97"),
    (">=0.1.97", "0.1.97"),
    ("0.1.20 || 1.2.4", "1.2.4"),
    (">=0.2.3 || <0.0.1", "0.0.0"),
    (">=0.2.3 || <0.0.1", "0.2.3"),
    (">=0.2.3 || <0.0.1", "0.2.4"),
    ("||", "1.3.4"),
    ("2.x.x", "2.1.3"),
    ("1.2.x", "1.2.3"),
    ("1.2.x || 2.x", "2.1.3"),
    ("1.2.x || 2.x", "1.2.3"),
    ("x", "1.2.3"),
    ("2.*.*", "2.1.3"),
    ("1.2.*", "1.2.3"),
    ("1.2.* || 2.*", "2.1.3"),
    ("1.2.* || 2.*", "1.2.3"),
    ("*", "1.2.3"),
    ("2", "2.1.2"),
    ("2.3", "2.3.1"),
    ("~0.0.1", "0.0.1"),
    ("~0.0.1", "0.0.2"),
    ("~x", "0.0.9"),
    ("~2", "2.0.9"),
    ("~2.4", "2.4.0"),
    ("~2.4", "2.4.5"),
    ("~>3.2.1", "3.2.2"),
    ("~1", "1.2.3"),
    ("~>1", "1.2.3"),
    ("~> 1", "1.2.3"),
    ("~1.0", "1.0.2"),
    ("~ 1.0", "1.0.2"),
    ("~ 1.0.3", "1.0.12"),
    (">=1", "1.0.0"),
    (">= 1", "1.0.0"),
    ("<1.2", "1.1.1"),
    ("< 1.2", "1.1.1"),
    ("~v0.5.4-pre", "0.5.5"),
    ("~v0.5.4-pre", "0.5.4"),
    ("=0.7.x", "0.7.2"),
    ("<=0.7.x", "0.7.2"),
    (">=0.7.x", "0.7.2"),
    ("<=0.7.x", "0.6.2"),
    ("~1.2.1 >=1.2.3", "1.2.3"),
    ("~1.2.1 =1.2.3", "1.2.3"),
    ("~1.2.1 1.2.3", "1.2.3"),
    ("~1.2.1 >=1.2.3 1.2.3", "1.2.3"),
    ("~1.2.1 1.2.3 >=1.2.3", "1.2.3"),
    (">=1.2.1 1.2.3", "1.2.3"),
    ("1.2.3 >=1.2.1", "1.2.3"),
    (">=1.2.3 >=1.2.1", "1.2.3"),
    (">=1.2.1 >=1.2.3", "1.2.3"),
    (">=1.2", "1.2.8"),
    ("^1.2.3", "1.8.1"),
    ("^0.1.2", "0.1.2"),
    ("^0.1", "0.1.2"),
    ("^0.0.1", "0.0.1"),
    ("^1.2", "1.4.2"),
    ("^1.2 ^1", "1.4.2"),
    ("^1.2.3-alpha", "1.2.3-pre"),
    ("^1.2.0-alpha", "1.2.0-pre"),
    ("^0.0.1-alpha", "0.0.1-beta"),
    ("^0.0.1-alpha", "0.0.1"),
    ("^0.1.1-alpha", "0.1.1-beta"),
    ("^x", "1.2.3"),
    ("x - 1.0.0", "0.9.7"),
    ("x - 1.x", "0.9.7"),
    ("1.0.0 - x", "1.9.7"),
    ("1.x - x", "1.9.7"),
    ("<=7.x", "7.9.9"),
]

# -- node-semver range-include.js with { includePrerelease: true }
RANGE_INCLUDE_PRE = [
    ("2.x", "2.0.0-pre.0"),
    ("2.x", "2.1.0-pre.0"),
    ("*", "1.0.0-rc1"),
    ("^1.0.0-0", "1.0.1-rc1"),
    ("^1.0.0-rc2", "1.0.1-rc1"),
    ("^1.0.0", "1.0.1-rc1"),
    ("^1.0.0", "1.1.0-rc1"),
]

# -- node-semver range-exclude.js (strict cases): version does not satisfy range
RANGE_EXCLUDE = [
    ("1.0.0 - 2.0.0", "2.2.3"),
    ("1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2"),
    ("1.2.3+asdf - 2.4.3+asdf", "2.4.3-alpha"),
    ("^1.2.3+build", "2.0.0"),
    ("^1.2.3+build", "1.2.0"),
    ("^1.2.3", "1.2.3-pre"),
    ("^1.2", "1.2.0-pre"),
    (">1.2", "1.3.0-beta"),
    ("<=1.2.3", "1.2.3-beta"),
    ("^1.2.3", "1.2.3-beta"),
    ("=0.7.x", "0.7.0-asdf"),
    (">=0.7.x", "0.7.0-asdf"),
    ("1.0.0", "1.0.1"),
    (">=1.0.0", "0.0.0"),
    (">=1.0.0", "0.0.1"),
    (">=1.0.0", "0.1.0"),
    (">1.0.0", "0.0.1"),
    (">1.0.0", "0.1.0"),
    ("<=2.0.0", "3.0.0"),
    ("<=2.0.0", "2.9999.9999"),
    ("<=2.0.0", "2.2.9"),
    ("<2.0.0", "2.9999.9999"),
    ("<2.0.0", "2.2.9"),
    (">=0.1.97", "v0.1.93"),
    (">=0.1.97", "0.1.93"),
    ("0.1.20 || 1.2.4", "1.2.3"),
    (">=0.2.3 || <0.0.1", "0.0.3"),
    (">=0.2.3 || <0.0.1", "0.2.2"),
    ("2.x.x", "1.1.3"),
    ("2.x.x", "3.1.3"),
    ("1.2.x", "1.3.3"),
    ("1.2.x || 2.x", "3.1.3"),
    ("1.2.x || 2.x", "1.1.3"),
    ("2.*.*", "1.1.3"),
    ("2.*.*", "3.1.3"),
    ("1.2.*", "1.3.3"),
    ("1.2.* || 2.*", "3.1.3"),
    ("1.2.* || 2.*", "1.1.3"),
    ("2", "1.1.2"),
    ("2.3", "2.4.1"),
    ("~0.0.1", "0.1.0-alpha"),
    ("~0.0.1", "0.1.0"),
    ("~2.4", "2.5.0"),
    ("~2.4", "2.3.9"),
    ("~>3.2.1", "3.3.2"),
    ("~>3.2.1", "3.2.0"),
    ("~1", "0.2.3"),
    ("~>1", "2.2.3"),
    ("~1.0", "1.1.0"),
    ("<1", "1.0.0"),
    (">=1.2", "1.1.1"),
    ("~v0.5.4-beta", "0.5.4-alpha"),
    ("=0.7.x", "0.8.2"),
    (">=0.7.x", "0.6.2"),
    ("<0.7.x", "0.7.2"),
    ("<1.2.3", "1.2.3-beta"),
    ("=1.2.3", "1.2.3-beta"),
    (">1.2", "1.2.8"),
    ("^0.0.1", "0.0.2-alpha"),
    ("^0.0.1", "0.0.2"),
    ("^1.2.3", "2.0.0-alpha"),
    ("^1.2.3", "1.2.2"),
    ("^1.2", "1.1.9"),
    ("*", "v1.2.3-foo"),
    ("^1.0.0", "2.0.0-rc1"),
]

# -- node-semver range-exclude.js with { includePrerelease: true }
RANGE_EXCLUDE_PRE = [
    ("2.x", "3.0.0-pre.0"),
    ("^1.0.0", "1.0.0-rc1"),
    ("^1.2.3-rc2", "2.0.0"),
    ("^1.0.0", "2.0.0-rc1"),
]

# -- plughost's own: pre-releases and || sets (each checked against npm semver 7.8).
# (range, version, satisfied)
PRERELEASE_AND_OR = [
    # a pre-release needs a comparator with the same major.minor.patch and a pre-release
    (">=1.2.3-alpha", "1.2.3-beta", True),
    (">=1.2.3-alpha", "1.2.3-alpha", True),
    (">=1.2.3-beta", "1.2.3-alpha", False),
    (">=1.2.3-alpha", "1.2.4-alpha", False),
    (">=1.2.3-alpha", "1.2.4", True),
    (">=1.2.3-alpha <1.2.3", "1.2.3-rc.1", True),
    (">=1.2.3-alpha <1.2.3", "1.2.3", False),
    ("<1.2.3-rc.1", "1.2.3-beta", True),
    ("<1.2.3-rc.1", "1.2.3-rc.1", False),
    ("<=1.2.3-rc.1", "1.2.3-rc.1", True),
    ("<1.2.3-rc.1", "1.2.2-rc.1", False),
    ("<1.2.3-rc.1", "1.2.2", True),
    (">1.2.3-rc.1", "1.2.3-rc.1", False),
    (">1.2.3-rc.1", "1.2.3-rc.2", True),
    (">1.2.3-rc.1", "1.2.3-rc.1.0", True),
    (">1.2.3-rc.1", "1.2.3-rc.10", True),
    (">1.2.3-rc.10", "1.2.3-rc.9", False),
    (">1.2.3-rc.1", "1.2.3-rcz", True),
    ("1.2.3-rc.1", "1.2.3-rc.1", True),
    ("1.2.3-rc.1", "1.2.3-rc.1+build", True),
    ("=1.2.3-rc.1", "1.2.3-rc.2", False),
    ("^1.2.3-beta.2", "1.2.3-beta.4", True),
    ("^1.2.3-beta.2", "1.2.3-beta.1", False),
    ("^1.2.3-beta.2", "1.2.4-beta.3", False),
    ("^1.2.3-beta.2", "1.3.0", True),
    ("^1.2.3-beta.2", "2.0.0-0", False),
    ("^0.0.3-beta", "0.0.3-pr.2", True),
    ("^0.0.3-beta", "0.0.4", False),
    ("^0.2.3-beta", "0.2.3-rc", True),
    ("^0.2.3-beta", "0.2.9", True),
    ("^0.2.3-beta", "0.2.9-beta", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    ("~1.2.3-beta.2", "1.2.4-beta.2", False),
    ("~1.2.3-beta.2", "1.2.5", True),
    ("~1.2.3-beta.2", "1.3.0", False),
    ("1.2.3-alpha - 1.2.5-beta", "1.2.3-beta", True),
    ("1.2.3-alpha - 1.2.5-beta", "1.2.5-alpha", True),
    ("1.2.3-alpha - 1.2.5-beta", "1.2.5-gamma", False),
    ("1.2.3-alpha - 1.2.5-beta", "1.2.4-beta", False),
    ("1.2.3-alpha - 1.2.5-beta", "1.2.4", True),
    ("1.2.3 - 1.2.5", "1.2.5-beta", False),
    ("1.x", "1.5.0-beta", False),
    ("*", "1.0.0-rc.1", False),
    ("", "0.0.0-0", False),
    (">=0.0.0-0", "0.0.0-1", True),
    (">=0.0.0-0", "0.0.1-1", False),
    # || : any set may admit; each set's pre-release opt-in is its own
    ("1.2.3-rc.1 || 2.x", "1.2.3-rc.1", True),
    ("1.2.3-rc.1 || 2.x", "2.0.0-rc.1", False),
    ("1.2.3-rc.1 || 2.x", "2.4.0", True),
    ("^1.0.0 || ^2.0.0-beta", "2.0.0-beta.3", True),
    ("^1.0.0 || ^2.0.0-beta", "2.0.0-alpha", False),
    ("^1.0.0 || ^2.0.0-beta", "1.9.9", True),
    ("^1.0.0 || ^2.0.0-beta", "1.9.9-beta", False),
    (">=1.0.0-rc.1 <1.0.0 || >=3.0.0-rc.1", "1.0.0-rc.5", True),
    (">=1.0.0-rc.1 <1.0.0 || >=3.0.0-rc.1", "3.0.0-rc.2", True),
    (">=1.0.0-rc.1 <1.0.0 || >=3.0.0-rc.1", "2.0.0-rc.2", False),
    (">=1.0.0-rc.1 <1.0.0 || >=3.0.0-rc.1", "2.0.0", False),
    (">=1.0.0-rc.1 <1.0.0 || >=3.0.0-rc.1", "3.1.0", True),
    ("<1.0.0-0 || >=2.0.0", "0.9.9", True),
    ("<1.0.0-0 || >=2.0.0", "1.0.0-0", False),
    ("<1.0.0-0 || >=2.0.0", "1.5.0", False),
    ("<1.0.0-0 || >=2.0.0", "2.0.0-rc", False),
    ("~1.2.0 || ~1.4.0 || ~1.6.0-beta", "1.4.9", True),
    ("~1.2.0 || ~1.4.0 || ~1.6.0-beta", "1.5.0", False),
    ("~1.2.0 || ~1.4.0 || ~1.6.0-beta", "1.6.0-beta.1", True),
    ("~1.2.0 || ~1.4.0 || ~1.6.0-beta", "1.6.1-beta.1", False),
    ("1.x || >=2.5.0 || 5.0.0 - 7.2.3", "1.2.3", True),
    ("1.x || >=2.5.0 || 5.0.0 - 7.2.3", "2.4.9", False),
    ("1.x || >=2.5.0 || 5.0.0 - 7.2.3", "7.2.4", True),
    ("1.x || >=2.5.0 || 5.0.0 - 7.2.3", "7.2.4-beta", False),
    ("* || 1.2.3-pre", "1.2.3-pre", False),  # npm: a bare * set swallows the others
    ("<0.0.0-0 || 1.2.3-pre", "1.2.3-pre", True),
    ("^2.0.0-rc.1 ^2.0.0", "2.0.0-rc.2", False),  # below the >=2.0.0 bound
    (">=1.2.3-alpha.1 <1.2.3-alpha.10", "1.2.3-alpha.9", True),
    (">=1.2.3-alpha.1 <1.2.3-alpha.10", "1.2.3-alpha.10", False),
    (">=1.2.3-alpha.1 <1.2.3-alpha.10", "1.2.3-alpha.beta", False),
    (">=1.2.3-alpha.1 <1.2.3-alpha.beta", "1.2.3-alpha.99", True),
    (">=1.2.3-1 <1.2.3-a", "1.2.3-2", True),
    (">=1.2.3-1 <1.2.3-a", "1.2.3-Z", True),
    (">=1.2.3-1 <1.2.3-a", "1.2.3-z", False),
]


def _cases(table, expected, include=False):
    return [pytest.param(r, v, expected, include, id=f"{r!r}-{v}") for r, v in table]


@pytest.mark.parametrize(
    ("range_", "version", "expected", "include"),
    _cases(RANGE_INCLUDE, True)
    + _cases(RANGE_INCLUDE_PRE, True, include=True)
    + _cases(RANGE_EXCLUDE, False)
    + _cases(RANGE_EXCLUDE_PRE, False, include=True)
    + [pytest.param(r, v, e, False, id=f"{r!r}-{v}") for r, v, e in PRERELEASE_AND_OR],
)
def test_range_matching_follows_npm(range_, version, expected, include):
    r = VersionRange(range_)
    assert r.contains(Version(version), include_prerelease=include) is expected
    assert r.contains(version, include_prerelease=include) is expected
    if not include:
        assert (Version(version) in r) is expected


# -- node-semver range-parse.js (strict): the desugared comparator form
RANGE_PARSE = [
    ("1.0.0 - 2.0.0", ">=1.0.0 <=2.0.0", False),
    ("1.0.0 - 2.0.0", ">=1.0.0-0 <2.0.1-0", True),
    ("1 - 2", ">=1.0.0 <3.0.0-0", False),
    ("1 - 2", ">=1.0.0-0 <3.0.0-0", True),
    ("1.0 - 2.0", ">=1.0.0 <2.1.0-0", False),
    ("1.0 - 2.0", ">=1.0.0-0 <2.1.0-0", True),
    ("1.0.0", "1.0.0", False),
    (">=*", "*", False),
    ("", "*", False),
    ("*", "*", False),
    (">=1.0.0", ">=1.0.0", False),
    (">1.0.0", ">1.0.0", False),
    ("<=2.0.0", "<=2.0.0", False),
    ("1", ">=1.0.0 <2.0.0-0", False),
    ("<2.0.0", "<2.0.0", False),
    (">= 1.0.0", ">=1.0.0", False),
    (">=  1.0.0", ">=1.0.0", False),
    (">=   1.0.0", ">=1.0.0", False),
    ("> 1.0.0", ">1.0.0", False),
    (">  1.0.0", ">1.0.0", False),
    ("<=   2.0.0", "<=2.0.0", False),
    ("<= 2.0.0", "<=2.0.0", False),
    ("<=  2.0.0", "<=2.0.0", False),
    ("<    2.0.0", "<2.0.0", False),
    ("<\t2.0.0", "<2.0.0", False),
    (">=0.1.97", ">=0.1.97", False),
    ("0.1.20 || 1.2.4", "0.1.20||1.2.4", False),
    (">=0.2.3 || <0.0.1", ">=0.2.3||<0.0.1", False),
    ("||", "*", False),
    ("2.x.x", ">=2.0.0 <3.0.0-0", False),
    ("1.2.x", ">=1.2.0 <1.3.0-0", False),
    ("1.2.x || 2.x", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0", False),
    ("x", "*", False),
    ("2.*.*", ">=2.0.0 <3.0.0-0", False),
    ("1.2.*", ">=1.2.0 <1.3.0-0", False),
    ("1.2.* || 2.*", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0", False),
    ("2", ">=2.0.0 <3.0.0-0", False),
    ("2.3", ">=2.3.0 <2.4.0-0", False),
    ("~2.4", ">=2.4.0 <2.5.0-0", False),
    ("~>3.2.1", ">=3.2.1 <3.3.0-0", False),
    ("~1", ">=1.0.0 <2.0.0-0", False),
    ("~>1", ">=1.0.0 <2.0.0-0", False),
    ("~> 1", ">=1.0.0 <2.0.0-0", False),
    ("~1.0", ">=1.0.0 <1.1.0-0", False),
    ("~ 1.0", ">=1.0.0 <1.1.0-0", False),
    ("^0", "<1.0.0-0", False),
    ("^ 1", ">=1.0.0 <2.0.0-0", False),
    ("^0.1", ">=0.1.0 <0.2.0-0", False),
    ("^1.0", ">=1.0.0 <2.0.0-0", False),
    ("^1.2", ">=1.2.0 <2.0.0-0", False),
    ("^0.0.1", ">=0.0.1 <0.0.2-0", False),
    ("^0.0.1-beta", ">=0.0.1-beta <0.0.2-0", False),
    ("^0.1.2", ">=0.1.2 <0.2.0-0", False),
    ("^1.2.3", ">=1.2.3 <2.0.0-0", False),
    ("^1.2.3-beta.4", ">=1.2.3-beta.4 <2.0.0-0", False),
    ("<1", "<1.0.0-0", False),
    ("< 1", "<1.0.0-0", False),
    (">=1", ">=1.0.0", False),
    (">= 1", ">=1.0.0", False),
    ("<1.2", "<1.2.0-0", False),
    ("< 1.2", "<1.2.0-0", False),
    ("^ 1.2 ^ 1", ">=1.2.0 <2.0.0-0 >=1.0.0", False),
    ("1.2 - 3.4.5", ">=1.2.0 <=3.4.5", False),
    ("1.2.3 - 3.4", ">=1.2.3 <3.5.0-0", False),
    ("1.2 - 3.4", ">=1.2.0 <3.5.0-0", False),
    (">1", ">=2.0.0", False),
    (">1.2", ">=1.3.0", False),
    (">X", "<0.0.0-0", False),
    ("<X", "<0.0.0-0", False),
    ("<x <* || >* 2.x", "<0.0.0-0", False),
    (">x 2.x || * || <x", "*", False),
]


@pytest.mark.parametrize(("text", "desugared", "include"), RANGE_PARSE)
def test_ranges_desugar_like_npm(text, desugared, include):
    assert VersionRange(text).desugared(include_prerelease=include) == desugared


INVALID_RANGES = [
    (">01.02.03", "not a version"),
    ("~1.2.3beta", "not a version"),
    ("1.2.3 - ", "hyphen range"),
    ("1 - 2 - 3", "hyphen range"),
    (">=1.0.0 - 2.0.0", "must be a plain version"),
    ("1.2.3 -2.0.0", "not a version"),
    (">=", "not followed by a version"),
    ("1.0.0 <", "not followed by a version"),
    ("1.x.3", "after an x"),
    (">=x.1", "after an x"),
    ("foo", "not a version"),
    ("1.2.3 | 2.0.0", "not a version"),
    ("^1.2.3 &&  ^2", "not a version"),
    (">= ~1", "not a version"),
    ("1." * 200, "longer than 256"),
    # a bound one past the largest version number npm allows (2**53 - 1)
    ("^9007199254740991.0.0", "larger than 9007199254740991"),
    ("* 9007199254740991.x", "larger than 9007199254740991"),
    ("1 - 9007199254740991", "larger than 9007199254740991"),
    ("~1.9007199254740991", "larger than 9007199254740991"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID_RANGES)
def test_invalid_ranges_raise_range_invalid_with_reason_and_example(text, reason):
    with pytest.raises(VersionError) as info:
        VersionRange(text)
    err = info.value
    assert err.code == "range.invalid"
    assert reason in err.details["reason"]
    assert "^1.2" in err.message  # shows a valid example


def test_contains_with_a_bad_version_string_raises():
    with pytest.raises(VersionError) as info:
        VersionRange("*").contains("not a version")
    assert info.value.code == "version.invalid"


def test_in_with_a_non_version_is_false():
    assert 3 not in VersionRange("*")


def test_contract_examples():
    assert VersionRange("^1.2").contains(Version("1.4.0"))
    assert Version("1.4.0") in VersionRange("^1.2")
    assert "1.4.0" in VersionRange("^1.2")
    assert Version("2.0.0") not in VersionRange("^1.2")


def test_max_satisfying_picks_the_highest_match():
    versions = [Version(v) for v in ("1.2.3", "1.2.4", "1.3.0-rc.1", "1.2.5", "2.0.0", "0.9.0")]
    assert VersionRange("~1.2").max_satisfying(versions) == Version("1.2.5")
    assert VersionRange("^1.2").max_satisfying(versions) == Version("1.2.5")
    assert VersionRange("^1.2").max_satisfying(versions, include_prerelease=True) == Version(
        "1.3.0-rc.1"
    )
    assert VersionRange(">=3").max_satisfying(versions) is None
    assert VersionRange("*").max_satisfying([]) is None


def test_filter_keeps_order():
    versions = [Version(v) for v in ("2.0.0", "1.0.0", "1.5.0", "3.0.0")]
    assert VersionRange("1 || 2").filter(versions) == [versions[0], versions[1], versions[2]]


def test_str_normalises_whitespace_and_keeps_the_original_shape():
    assert str(VersionRange("  >=  1.2.3    <2 ||1.x")) == ">=1.2.3 <2 || 1.x"
    assert str(VersionRange("")) == "*"
    assert str(VersionRange("1.2 -   2")) == "1.2 - 2"
    assert repr(VersionRange("^1.2")) == "VersionRange('^1.2')"


def test_ranges_are_equal_when_they_desugar_alike():
    assert VersionRange("^1.2") == VersionRange(">=1.2.0 <2.0.0-0")
    assert hash(VersionRange("^1.2")) == hash(VersionRange(">=1.2.0 <2.0.0-0"))
    assert VersionRange("1.x") == VersionRange("~1")
    assert VersionRange("^1.2") != VersionRange("^1.3")
    assert VersionRange("*") == ANY == VersionRange("") == VersionRange("x")


def test_range_is_immutable_and_picklable():
    r = VersionRange("^1.2 || 3.x")
    with pytest.raises(AttributeError):
        r._text = "*"  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(r))
    assert copy == r and str(copy) == str(r)


def test_any_admits_every_release_but_no_prerelease():
    assert ANY.is_any
    assert Version("0.0.0") in ANY and Version("999.0.0") in ANY
    assert Version("1.0.0-rc.1") not in ANY
    assert ANY.contains("1.0.0-rc.1", include_prerelease=True)
    assert not VersionRange("^1").is_any
