"""Semantic versions (SemVer 2.0.0) and version ranges with npm semantics.

npm's ``semver`` package (strict mode, ``loose: false``) is the reference: a range that npm
accepts means the same thing here, and a version npm's ``semver.valid`` accepts parses here.

:class:`Version`
    ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``, an optional leading ``v`` and surrounding
    whitespace allowed (as ``semver.valid("v1.2.3")`` allows). Numeric identifiers have no leading
    zeros; numeric pre-release identifiers compare numerically and sort below alphanumeric ones;
    a longer pre-release wins when all preceding identifiers are equal; a pre-release sorts below
    its release. **Build metadata is kept** (``str()`` shows it, ``.build`` holds it) **but takes
    no part in precedence, equality or hashing**: ``Version("1.0.0+a") == Version("1.0.0+b")``,
    exactly like npm's ``semver.eq``. So ``==``, ``<`` and ``hash`` agree and a set or dict key
    holds one entry per precedence class.

:class:`VersionRange`
    ``<``, ``<=``, ``>``, ``>=``, ``=``; ``^`` (with the ``^0.x`` / ``^0.0.x`` rules); ``~`` and
    ``~>``; x-ranges ``1.x``, ``1.2.*``, ``*``, ``X`` and ``""``; partial versions ``1`` and
    ``1.2``; hyphen ranges ``1.2 - 2.3.4``; whitespace-separated comparators (AND) and ``||``
    (OR). A pre-release version satisfies a range only if a comparator of the same ``||`` set has
    the same ``major.minor.patch`` *and* a pre-release, unless ``include_prerelease=True``.
    The text is desugared once, at construction, into intervals, so :meth:`VersionRange.contains`
    is a handful of tuple comparisons.

Deliberate differences from npm, all on input npm itself calls odd:

* a version string that does not parse raises :class:`~plughost.errors.VersionError` from
  :meth:`VersionRange.contains` (npm's ``satisfies`` silently answers ``false``);
* inside a range, a version may be prefixed by one ``v`` (``>=v1.2.3``) but not by the extra
  ``=``/``v`` runs npm's regular expressions happen to tolerate (``~=1.2``, ``v=1``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Final, TypeAlias

from plughost.errors import VersionError

__all__ = ["ANY", "Version", "VersionRange"]

# npm's limits: longer text is refused before matching, larger numbers are not safe integers.
MAX_LENGTH: Final = 256
MAX_SAFE_INTEGER: Final = 2**53 - 1

_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_PRE = rf"{_PRE_ID}(?:\.{_PRE_ID})*"
_BUILD = rf"{_BUILD_ID}(?:\.{_BUILD_ID})*"

_VERSION_RE: Final = re.compile(
    rf"v?({_NUM})\.({_NUM})\.({_NUM})(?:-({_PRE}))?(?:\+({_BUILD}))?",
    re.ASCII,
)

# A partial version as ranges write it: ``1``, ``1.2``, ``1.x``, ``1.2.3-rc.1``, ``*``.
_XR = rf"{_NUM}|[xX*]"
_PARTIAL_RE: Final = re.compile(
    rf"v?(?P<M>{_XR})(?:\.(?P<m>{_XR})(?:\.(?P<p>{_XR})(?:-(?P<pre>{_PRE}))?)?)?"
    rf"(?:\+{_BUILD})?",
    re.ASCII,
)
_OPS: Final = ("<=", ">=", "~>", "<", ">", "=", "~", "^")
_OP_WORD_RE: Final = re.compile(r"(<=|>=|~>|<|>|=|~|\^)?(.*)", re.ASCII | re.DOTALL)

VERSION_EXAMPLE: Final = '"1.2.3", "1.2.3-rc.1" or "1.2.3+build.5"'
RANGE_EXAMPLE: Final = '"^1.2", ">=1.0.0 <2.0.0", "1.x || 2.x" or "1.2.3 - 2.0.0"'

_PreId: TypeAlias = "str | int"
# Precedence key: (major, minor, patch, is_release, pre-release key).
_Key: TypeAlias = "tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]"


def _pre_key(prerelease: tuple[_PreId, ...]) -> tuple[tuple[int, int, str], ...]:
    # Numeric identifiers sort before alphanumeric ones; tuple comparison then gives SemVer's
    # rule that a longer list wins when every preceding identifier is equal.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in prerelease)


def _version_error(text: object, reason: str) -> VersionError:
    return VersionError(
        f"Invalid version {text!r}: {reason}. Write a SemVer 2.0.0 version such as "
        f"{VERSION_EXAMPLE}.",
        code="version.invalid",
        details={"text": str(text), "reason": reason},
    )


def _diagnose_version(text: str) -> str:
    """Say *why* ``text`` is not a version (only called once parsing has failed)."""
    body = text.strip()
    if not body:
        return "it is empty"
    if body[0] == "V":
        return "only a lower-case 'v' prefix is allowed"
    body = body[1:] if body[0] == "v" else body
    if any(c.isspace() for c in body):
        return "it contains whitespace"
    if not body[:1].isdigit():
        return f"it must start with the major number, not {body[:1]!r}"
    main, _, build = body.partition("+")
    main, _, pre = main.partition("-")
    parts = main.split(".")
    if len(parts) != 3:
        return f"it needs exactly three numbers MAJOR.MINOR.PATCH, found {len(parts)} part(s)"
    for name, part in zip(("major", "minor", "patch"), parts, strict=True):
        if not part.isascii() or not part.isdigit():
            return f"the {name} number {part!r} is not a non-negative integer"
        if len(part) > 1 and part[0] == "0":
            return f"the {name} number {part!r} has a leading zero"
    if "-" in body.partition("+")[0] and not pre:
        return "the pre-release after '-' is empty"
    for ident in pre.split(".") if pre else ():
        if not ident:
            return "a pre-release identifier is empty"
        if not re.fullmatch(r"[0-9A-Za-z-]+", ident, re.ASCII):
            return f"the pre-release identifier {ident!r} may only hold [0-9A-Za-z-]"
        if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
            return f"the numeric pre-release identifier {ident!r} has a leading zero"
    if "+" in body and not build:
        return "the build metadata after '+' is empty"
    for ident in build.split(".") if build else ():
        if not ident:
            return "a build identifier is empty"
        if not re.fullmatch(r"[0-9A-Za-z-]+", ident, re.ASCII):
            return f"the build identifier {ident!r} may only hold [0-9A-Za-z-]"
    return "it is not of the form MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]"


@functools.lru_cache(maxsize=8192)
def _parse_version(text: str) -> tuple[int, int, int, tuple[_PreId, ...], tuple[str, ...]]:
    if len(text) > MAX_LENGTH:
        raise _version_error(text[:40] + "...", f"it is longer than {MAX_LENGTH} characters")
    m = _VERSION_RE.fullmatch(text.strip())
    if m is None:
        raise _version_error(text, _diagnose_version(text))
    major, minor, patch = int(m[1]), int(m[2]), int(m[3])
    for name, value in (("major", major), ("minor", minor), ("patch", patch)):
        if value > MAX_SAFE_INTEGER:
            raise _version_error(text, f"the {name} number is larger than {MAX_SAFE_INTEGER}")
    pre: tuple[_PreId, ...] = ()
    if m[4]:
        pre = tuple(int(p) if p.isdigit() else p for p in m[4].split("."))
    build: tuple[str, ...] = tuple(m[5].split(".")) if m[5] else ()
    return major, minor, patch, pre, build


class Version:
    """An immutable SemVer 2.0.0 version, totally ordered by precedence.

    >>> Version("1.2.3-rc.1+build.5").prerelease
    ('rc', 1)
    >>> Version("1.0.0-alpha") < Version("1.0.0-alpha.1") < Version("1.0.0-beta") < Version("1.0.0")
    True

    :param text: the version; a leading ``v`` and surrounding whitespace are accepted.
    :raises VersionError: code ``version.invalid``, quoting the text and saying what is wrong.
    """

    __slots__ = ("_hash", "_key", "_str", "build", "major", "minor", "patch", "prerelease")

    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...]
    build: tuple[str, ...]
    _key: _Key
    _hash: int
    _str: str

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise _version_error(text, f"expected a string, got {type(text).__name__}")
        major, minor, patch, pre, build = _parse_version(text)
        setattr_ = object.__setattr__
        setattr_(self, "major", major)
        setattr_(self, "minor", minor)
        setattr_(self, "patch", patch)
        setattr_(self, "prerelease", pre)
        setattr_(self, "build", build)
        key = (major, minor, patch, 0 if pre else 1, _pre_key(pre))
        setattr_(self, "_key", key)
        setattr_(self, "_hash", hash(key))
        canonical = f"{major}.{minor}.{patch}"
        if pre:
            canonical += "-" + ".".join(str(p) for p in pre)
        if build:
            canonical += "+" + ".".join(build)
        setattr_(self, "_str", canonical)

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """Parse ``text`` (a :class:`Version` is returned as it is)."""
        if isinstance(text, Version):
            return text
        return cls(text)

    @property
    def is_prerelease(self) -> bool:
        """True when the version has a pre-release part (``1.0.0-rc.1``)."""
        return bool(self.prerelease)

    @property
    def release(self) -> tuple[int, int, int]:
        """``(major, minor, patch)``."""
        return (self.major, self.minor, self.patch)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Version is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Version is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Version, (self._str,))

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"Version({self._str!r})"

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self._key == other._key
        return NotImplemented

    def __lt__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self._key < other._key
        return NotImplemented

    def __le__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self._key <= other._key
        return NotImplemented

    def __gt__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self._key > other._key
        return NotImplemented

    def __ge__(self, other: Version) -> bool:
        if isinstance(other, Version):
            return self._key >= other._key
        return NotImplemented


# --------------------------------------------------------------------------------------------
# Ranges
#
# A range desugars (as npm's Range does) into a list of comparator sets: OR over the sets, AND
# inside one. A comparator is (op, version) with op in "<", "<=", ">", ">=", "" (equal), or
# _ANY_COMP (matches everything). Each set is then compiled into one interval plus the
# release triples of its pre-release comparators, which is all `contains` needs.

_ANY_COMP: Final = ("", None)
_Comp: TypeAlias = "tuple[str, Version | None]"


@functools.lru_cache(maxsize=8192)
def _v(text: str) -> Version:
    # Versions are immutable, so desugared bounds such as "<2.0.0-0" can be shared.
    return Version(text)


_NULL_COMP: Final[_Comp] = ("<", _v("0.0.0-0"))


def _is_x(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


class _CompiledSet:
    """One ``||`` alternative as an interval: fast to test, identical to AND-ing comparators."""

    __slots__ = ("comparators", "hi", "hi_incl", "lo", "lo_incl", "pre_releases")

    def __init__(self, comparators: tuple[_Comp, ...]) -> None:
        self.comparators = comparators
        lo: _Key | None = None
        lo_incl = True
        hi: _Key | None = None
        hi_incl = True
        pre: set[tuple[int, int, int]] = set()
        for op, ver in comparators:
            if ver is None:
                continue
            if ver.prerelease:
                pre.add(ver.release)
            key = ver._key
            if op in (">", ">=", ""):
                incl = op != ">"
                if lo is None or key > lo or (key == lo and not incl):
                    lo, lo_incl = key, incl
            if op in ("<", "<=", ""):
                incl = op != "<"
                if hi is None or key < hi or (key == hi and not incl):
                    hi, hi_incl = key, incl
        self.lo, self.lo_incl, self.hi, self.hi_incl = lo, lo_incl, hi, hi_incl
        self.pre_releases = frozenset(pre)

    def test(self, v: Version, include_prerelease: bool) -> bool:
        key = v._key
        lo = self.lo
        if lo is not None and (key < lo or (not self.lo_incl and key == lo)):
            return False
        hi = self.hi
        if hi is not None and (key > hi or (not self.hi_incl and key == hi)):
            return False
        if v.prerelease and not include_prerelease:
            # npm: ^1.2.3-pr.1 admits 1.2.3-pr.2 but not 1.2.4-alpha, although it is in bounds.
            return (v.major, v.minor, v.patch) in self.pre_releases
        return True


def _range_error(text: str, reason: str) -> VersionError:
    return VersionError(
        f"Invalid version range {text!r}: {reason}. Write an npm-style range such as "
        f"{RANGE_EXAMPLE}.",
        code="range.invalid",
        details={"text": text, "reason": reason},
    )


class _Partial:
    __slots__ = ("M", "m", "p", "pre", "text")

    def __init__(self, M: str, m: str | None, p: str | None, pre: str | None, text: str) -> None:
        self.M, self.m, self.p, self.pre, self.text = M, m, p, pre, text

    @property
    def full(self) -> str:
        """The version without build metadata (only meaningful when no part is an X)."""
        return f"{self.M}.{self.m}.{self.p}" + (f"-{self.pre}" if self.pre else "")


def _parse_partial(word: str, whole: str) -> _Partial:
    m = _PARTIAL_RE.fullmatch(word)
    if m is None:
        raise _range_error(whole, f"{word!r} is not a version, a partial version or an x-range")
    M, mi, p, pre = m["M"], m["m"], m["p"], m["pre"]
    for part in (M, mi, p):
        if part is not None and part.isdigit() and int(part) > MAX_SAFE_INTEGER:
            raise _range_error(whole, f"{word!r} has a number larger than {MAX_SAFE_INTEGER}")
    return _Partial(M, mi, p, pre, word)


def _xrange(op: str, part: _Partial, z: str, whole: str) -> list[str]:
    """Primitive comparator (op may be empty) or x-range -> comparator strings (npm rules)."""
    M, m, p = part.M, part.m, part.p
    if (_is_x(M) and not _is_x(m)) or (_is_x(m) and p is not None and not _is_x(p)):
        # npm refuses "1.x.3" here, though "~1.x.3" and hyphen bounds treat the 3 as an x.
        raise _range_error(whole, f"{part.text!r} has a number after an x/* wildcard")
    xM = _is_x(M)
    xm = xM or _is_x(m)
    xp = xm or _is_x(p)
    if op == "=":
        op = ""
    if not xp:
        return [op + part.full]
    if xM:
        return ["<0.0.0-0"] if op in (">", "<") else [""]
    if op:
        Mi = int(M)
        mi = 0 if xm else int(m)  # type: ignore[arg-type]
        pre = z
        if op == ">":
            op = ">="
            if xm:
                Mi, mi = Mi + 1, 0
            else:
                mi += 1
        elif op == "<=":
            op = "<"
            if xm:
                Mi += 1
            else:
                mi += 1
        if op == "<":
            pre = "-0"
        return [f"{op}{Mi}.{mi}.0{pre}"]
    if xm:
        return [f">={M}.0.0{z}", f"<{int(M) + 1}.0.0-0"]
    return [f">={M}.{m}.0{z}", f"<{M}.{int(m) + 1}.0-0"]  # type: ignore[arg-type]


def _tilde(part: _Partial, z: str) -> list[str]:
    M, m, p, pre = part.M, part.m, part.p, part.pre
    if _is_x(M):
        return [""]
    if _is_x(m):
        return [f">={M}.0.0{z}", f"<{int(M) + 1}.0.0-0"]
    if _is_x(p):
        return [f">={M}.{m}.0{z}", f"<{M}.{int(m) + 1}.0-0"]  # type: ignore[arg-type]
    low = f">={M}.{m}.{p}" + (f"-{pre}" if pre else "")
    return [low, f"<{M}.{int(m) + 1}.0-0"]  # type: ignore[arg-type]


def _caret(part: _Partial, z: str) -> list[str]:
    M, m, p, pre = part.M, part.m, part.p, part.pre
    if _is_x(M):
        return [""]
    if _is_x(m):
        return [f">={M}.0.0{z}", f"<{int(M) + 1}.0.0-0"]
    mi = int(m)  # type: ignore[arg-type]
    if _is_x(p):
        if M == "0":
            return [f">={M}.{m}.0{z}", f"<{M}.{mi + 1}.0-0"]
        return [f">={M}.{m}.0{z}", f"<{int(M) + 1}.0.0-0"]
    low = f">={M}.{m}.{p}" + (f"-{pre}" if pre else "")
    if M == "0":
        if m == "0":
            return [low, f"<{M}.{m}.{int(p) + 1}-0"]  # type: ignore[arg-type]
        return [low, f"<{M}.{mi + 1}.0-0"]
    return [low, f"<{int(M) + 1}.0.0-0"]


def _hyphen(a: _Partial, b: _Partial, include: bool) -> list[str]:
    out: list[str] = []
    z = "-0" if include else ""
    if _is_x(a.M):
        pass
    elif _is_x(a.m):
        out.append(f">={a.M}.0.0{z}")
    elif _is_x(a.p):
        out.append(f">={a.M}.{a.m}.0{z}")
    elif a.pre:
        out.append(f">={a.full}")
    else:
        out.append(f">={a.full}{z}")
    if _is_x(b.M):
        pass
    elif _is_x(b.m):
        out.append(f"<{int(b.M) + 1}.0.0-0")
    elif _is_x(b.p):
        out.append(f"<{b.M}.{int(b.m) + 1}.0-0")  # type: ignore[arg-type]
    elif b.pre:
        out.append(f"<={b.full}")
    elif include:
        out.append(f"<{b.M}.{b.m}.{int(b.p) + 1}-0")  # type: ignore[arg-type]
    else:
        out.append(f"<={b.full}")
    return out or [""]


def _words(set_text: str, whole: str) -> list[str]:
    """Split one ``||`` alternative into comparator words, joining ``>= 1.2`` into ``>=1.2``."""
    raw = set_text.split()
    words: list[str] = []
    i = 0
    while i < len(raw):
        w = raw[i]
        if w in _OPS:
            if i + 1 >= len(raw):
                raise _range_error(whole, f"the operator {w!r} is not followed by a version")
            w += raw[i + 1]
            i += 1
        words.append(w)
        i += 1
    return words


def _desugar_set(set_text: str, whole: str, include: bool) -> tuple[_Comp, ...]:
    z = "-0" if include else ""
    words = _words(set_text, whole)
    strings: list[str] = []
    if "-" in words:
        if len(words) != 3 or words[1] != "-":
            raise _range_error(
                whole, "a hyphen range is written 'A - B' alone in its set, e.g. '1.2 - 2.3.4'"
            )
        for bound in (words[0], words[2]):
            if bound[0] in "<>=~^":
                raise _range_error(
                    whole, f"the bound {bound!r} of a hyphen range must be a plain version"
                )
        strings = _hyphen(_parse_partial(words[0], whole), _parse_partial(words[2], whole), include)
    else:
        for word in words:
            op, rest = _OP_WORD_RE.fullmatch(word).groups()  # type: ignore[union-attr]
            if not rest:
                raise _range_error(whole, f"the operator {op!r} is not followed by a version")
            part = _parse_partial(rest, whole)
            if op == "^":
                strings.extend(_caret(part, z))
            elif op in ("~", "~>"):
                strings.extend(_tilde(part, z))
            else:
                strings.extend(_xrange(op or "", part, z, whole))
    comps: dict[str, _Comp] = {}
    gte0 = ">=0.0.0-0" if include else ">=0.0.0"
    for s in strings or [""]:
        if s in ("", gte0):
            comps[""] = _ANY_COMP
            continue
        op = s[:2] if s[:2] in ("<=", ">=") else s[:1] if s[:1] in "<>" else ""
        try:
            comp: _Comp = (op, _v(s[len(op) :]))
        except VersionError as exc:  # a bound one past the largest number ("^9007199254740991")
            raise _range_error(whole, f"it implies the bound {s!r}, which is not a version "
                                      f"({exc.details['reason']})") from None
        if comp == _NULL_COMP:
            return (_NULL_COMP,)
        comps[op + str(comp[1])] = comp
    if len(comps) > 1:
        comps.pop("", None)
    return tuple(comps.values())


@functools.lru_cache(maxsize=8192)
def _desugar(text: str, include: bool) -> tuple[tuple[_Comp, ...], ...]:
    sets = [_desugar_set(part, text, include) for part in text.split("||")]
    if len(sets) > 1:
        # npm: null sets drop out (unless all are null) and a bare "*" set swallows the rest.
        kept = [s for s in sets if s != (_NULL_COMP,)]
        sets = kept or sets[:1]
        for s in sets:
            if s == (_ANY_COMP,):
                sets = [s]
                break
    return tuple(sets)


def _normalise(text: str) -> str:
    parts = []
    for part in text.split("||"):
        words = _words(part, text)
        parts.append(" ".join(words) if words else "*")
    return " || ".join(parts)


def _format_comp(comp: _Comp) -> str:
    op, ver = comp
    return "" if ver is None else f"{op}{ver}"


class VersionRange:
    """An immutable npm-style version range.

    >>> VersionRange("^1.2").contains(Version("1.4.0"))
    True
    >>> "1.2.4-beta" in VersionRange(">=1.2.3")   # pre-releases need an opt-in comparator
    False

    Two ranges are equal (and hash alike) when they desugar to the same comparator sets, so
    ``VersionRange("^1.2") == VersionRange(">=1.2.0 <2.0.0-0")``.

    :param text: the range; ``""`` and ``"*"`` mean any release.
    :raises VersionError: code ``range.invalid``, quoting the text and saying what is wrong.
    """

    __slots__ = ("_sets", "_sets_pre", "_str", "_text")

    _text: str
    _str: str | None
    _sets: tuple[_CompiledSet, ...]
    _sets_pre: tuple[_CompiledSet, ...] | None

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise _range_error(str(text), f"expected a string, got {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise _range_error(text[:40] + "...", f"it is longer than {MAX_LENGTH} characters")
        setattr_ = object.__setattr__
        setattr_(self, "_text", text)
        setattr_(self, "_sets", _compiled(text, False))
        setattr_(self, "_sets_pre", None)
        setattr_(self, "_str", None)  # normalised lazily: most ranges are never printed

    def contains(self, version: Version | str, *, include_prerelease: bool = False) -> bool:
        """True if ``version`` satisfies the range.

        :param include_prerelease: npm's ``includePrerelease``: pre-releases are treated like
            any other version (and the range is desugared with npm's ``-0`` lower bounds).
        :raises VersionError: ``version`` is a string that is not a valid version.
        """
        v = version if isinstance(version, Version) else Version(version)
        if include_prerelease:
            sets = self._sets_pre
            if sets is None:
                sets = _compiled(self._text, True)
                object.__setattr__(self, "_sets_pre", sets)
        else:
            sets = self._sets
        # A plain loop, not any(<genexpr>): this is the resolver's innermost call.
        for s in sets:  # noqa: SIM110
            if s.test(v, include_prerelease):
                return True
        return False

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, Version | str):
            return False
        return self.contains(version)

    def max_satisfying(
        self, versions: Iterable[Version], *, include_prerelease: bool = False
    ) -> Version | None:
        """The highest of ``versions`` in the range, or ``None`` when none is."""
        best: Version | None = None
        for v in versions:
            if best is not None and v <= best:
                continue
            if self.contains(v, include_prerelease=include_prerelease):
                best = v
        return best

    def filter(
        self, versions: Iterable[Version], *, include_prerelease: bool = False
    ) -> list[Version]:
        """The members of ``versions`` in the range, in their original order."""
        return [v for v in versions if self.contains(v, include_prerelease=include_prerelease)]

    @property
    def is_any(self) -> bool:
        """True for ``*`` and its spellings (``""``, ``x``, ``>=0.0.0``)."""
        return len(self._sets) == 1 and self._sets[0].comparators == (_ANY_COMP,)

    def desugared(self, *, include_prerelease: bool = False) -> str:
        """The comparator form, exactly as npm's ``semver.validRange`` prints it.

        >>> VersionRange("^1.2 || ~0.3.1").desugared()
        '>=1.2.0 <2.0.0-0||>=0.3.1 <0.4.0-0'
        """
        sets = _desugar(self._text, include_prerelease)
        out = "||".join(" ".join(_format_comp(c) for c in s).strip() for s in sets)
        return out or "*"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"VersionRange is immutable; cannot set {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (VersionRange, (self._text,))

    def __str__(self) -> str:
        text = self._str
        if text is None:
            text = _normalise(self._text)
            object.__setattr__(self, "_str", text)
        return text

    def __repr__(self) -> str:
        return f"VersionRange({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionRange):
            return _desugar(self._text, False) == _desugar(other._text, False)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.desugared())


@functools.lru_cache(maxsize=8192)
def _compiled(text: str, include: bool) -> tuple[_CompiledSet, ...]:
    return tuple(_CompiledSet(s) for s in _desugar(text, include))


ANY: Final = VersionRange("*")
"""The range every release satisfies."""
