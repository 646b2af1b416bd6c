"""TEMPORARY stand-in for ``plughost.core.version`` (the real module is written on another branch).

Implements just the CONTRACTS.md API the manifest module needs: SemVer 2.0 ``Version`` with
precedence ordering, and npm-style ``VersionRange`` (comparators, ``^``, ``~``, x-ranges, hyphen
ranges, ``||``, npm's pre-release rule). The lead drops this commit at merge.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from plughost.errors import VersionError

__all__ = ["ANY", "Version", "VersionRange"]

_NUM = r"0|[1-9]\d*"
_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    rf"^v?({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


@functools.total_ordering
class Version:
    """A SemVer 2.0.0 version; immutable, hashable, ordered by precedence."""

    __slots__ = ("_key", "build", "major", "minor", "patch", "prerelease")

    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...]
    build: tuple[str, ...]
    _key: tuple[Any, ...]

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise VersionError(f"a version must be a string, not {type(text).__name__}")
        m = _SEMVER.match(text.strip())
        if m is None:
            raise VersionError(
                f"{text!r} is not a SemVer version; write MAJOR.MINOR.PATCH, e.g. '1.2.3'",
                code="version.invalid",
            )
        major, minor, patch, pre, build = m.groups()
        pre_t: tuple[str | int, ...] = tuple(
            int(p) if p.isdigit() else p for p in pre.split(".")
        ) if pre else ()
        object.__setattr__(self, "major", int(major))
        object.__setattr__(self, "minor", int(minor))
        object.__setattr__(self, "patch", int(patch))
        object.__setattr__(self, "prerelease", pre_t)
        object.__setattr__(self, "build", tuple(build.split(".")) if build else ())
        # Numeric identifiers sort before alphanumeric ones; a release sorts after its
        # pre-releases, hence the (1,) / (0, ...) marker.
        pre_key = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in pre_t)
        key = (int(major), int(minor), int(patch), (0, pre_key) if pre_t else (1, ()))
        object.__setattr__(self, "_key", key)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Version is immutable")

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text``; same as ``Version(text)``."""
        return cls(text)

    @property
    def is_prerelease(self) -> bool:
        """True when the version has a pre-release part (``1.0.0-rc.1``)."""
        return bool(self.prerelease)

    def __str__(self) -> str:
        out = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            out += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            out += "+" + ".".join(self.build)
        return out

    def __repr__(self) -> str:
        return f"Version({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)


_XR = r"(?:[xX*]|0|[1-9]\d*)"
_PARTIAL = re.compile(
    rf"^v?({_XR})(?:\.({_XR})(?:\.({_XR})"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+[0-9A-Za-z.-]+)?)?)?$"
)
_COMPARATOR = re.compile(r"^(\^|~>?|>=|<=|>|<|=)?\s*(.*)$")


def _is_x(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


class VersionRange:
    """An npm-style version range; immutable, hashable."""

    __slots__ = ("_sets", "_text")
    _sets: tuple[tuple[tuple[str, Version], ...], ...]
    _text: str

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise VersionError(
                f"a version range must be a string, not {type(text).__name__}",
                code="range.invalid",
            )
        norm = " || ".join(" ".join(part.split()) for part in text.split("||")).strip()
        sets: list[tuple[tuple[str, Version], ...]] = []
        for alt in text.split("||"):
            sets.append(tuple(self._parse_set(alt.strip(), text)))
        object.__setattr__(self, "_sets", tuple(sets))
        object.__setattr__(self, "_text", norm or "*")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("VersionRange is immutable")

    @staticmethod
    def _bad(text: str, why: str) -> VersionError:
        return VersionError(
            f"{text!r} is not a valid version range ({why}); "
            "write e.g. '^1.2', '>=1.0 <2', '1.x' or '*'",
            code="range.invalid",
        )

    @classmethod
    def _parse_set(cls, alt: str, text: str) -> list[tuple[str, Version]]:
        if alt in ("", "*", "x", "X"):
            return []
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alt)
        if hyphen:
            lo = cls._partial(hyphen.group(1), text)
            hi = cls._partial(hyphen.group(2), text)
            return cls._expand(">=", lo, text) + cls._expand("<=", hi, text)
        tokens = re.sub(r"(\^|~>?|>=|<=|>|<|=)\s+", r"\1", alt).split()
        out: list[tuple[str, Version]] = []
        for tok in tokens:
            m = _COMPARATOR.match(tok)
            assert m is not None
            op, rest = m.group(1) or "", m.group(2)
            out += cls._expand(op, cls._partial(rest, text), text)
        return out

    @classmethod
    def _partial(cls, s: str, text: str) -> tuple[str | None, str | None, str | None, str | None]:
        m = _PARTIAL.match(s)
        if m is None:
            raise cls._bad(text, f"{s!r} is not a version")
        major, minor, patch, pre = m.groups()
        if _is_x(major):
            minor = patch = pre = None
        elif _is_x(minor):
            patch = pre = None
        elif _is_x(patch):
            pre = None
        return major, minor, patch, pre

    @staticmethod
    def _v(major: int, minor: int, patch: int, pre: str | None = None) -> Version:
        return Version(f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else ""))

    @classmethod
    def _expand(
        cls, op: str, p: tuple[str | None, str | None, str | None, str | None], text: str
    ) -> list[tuple[str, Version]]:
        ma, mi, pa, pre = p
        v = cls._v
        if _is_x(ma):
            return [] if op in ("", "=", ">=", "<=", "^", "~", "~>") else [("<", v(0, 0, 0, "0"))]
        M = int(ma)  # type: ignore[arg-type]
        if _is_x(mi):
            lo, hi = v(M, 0, 0), v(M + 1, 0, 0, "0")
            return {
                "": [(">=", lo), ("<", hi)], "=": [(">=", lo), ("<", hi)],
                "^": [(">=", lo), ("<", hi)], "~": [(">=", lo), ("<", hi)],
                "~>": [(">=", lo), ("<", hi)], ">=": [(">=", lo)], ">": [(">=", v(M + 1, 0, 0))],
                "<": [("<", v(M, 0, 0, "0"))], "<=": [("<", hi)],
            }[op]
        m = int(mi)  # type: ignore[arg-type]
        if _is_x(pa):
            lo, hi = v(M, m, 0), v(M, m + 1, 0, "0")
            if op == "^":
                top = v(M + 1, 0, 0, "0") if M else v(0, m + 1, 0, "0")
                return [(">=", lo), ("<", top)]
            return {
                "": [(">=", lo), ("<", hi)], "=": [(">=", lo), ("<", hi)],
                "~": [(">=", lo), ("<", hi)], "~>": [(">=", lo), ("<", hi)],
                ">=": [(">=", lo)], ">": [(">=", v(M, m + 1, 0))],
                "<": [("<", v(M, m, 0, "0"))], "<=": [("<", hi)],
            }[op]
        P = int(pa)  # type: ignore[arg-type]
        exact = v(M, m, P, pre)
        if op == "^":
            if M:
                top = v(M + 1, 0, 0, "0")
            elif m:
                top = v(0, m + 1, 0, "0")
            else:
                top = v(0, 0, P + 1, "0")
            return [(">=", exact), ("<", top)]
        if op in ("~", "~>"):
            return [(">=", exact), ("<", v(M, m + 1, 0, "0"))]
        return [(op or "=", exact)]

    def contains(self, version: Version | str, *, include_prerelease: bool = False) -> bool:
        """True when ``version`` satisfies the range (npm pre-release rule unless told)."""
        ver = version if isinstance(version, Version) else Version(version)
        return any(self._set_ok(s, ver, include_prerelease) for s in self._sets)

    @staticmethod
    def _set_ok(cset: tuple[tuple[str, Version], ...], ver: Version, incl: bool) -> bool:
        for op, bound in cset:
            ok = {
                "=": ver == bound, ">": ver > bound, ">=": ver >= bound,
                "<": ver < bound, "<=": ver <= bound,
            }[op]
            if not ok:
                return False
        if ver.is_prerelease and not incl:
            # npm: a pre-release only matches if a comparator names the same tuple with a
            # pre-release. Synthetic "-0" upper bounds do not count.
            same = (ver.major, ver.minor, ver.patch)
            return any(
                b.is_prerelease
                and (b.major, b.minor, b.patch) == same
                and not (op == "<" and b.prerelease == (0,))
                for op, b in cset
            )
        return True

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, Version | str):
            return False
        return self.contains(version)

    def max_satisfying(self, versions: Iterable[Version]) -> Version | None:
        """The highest of ``versions`` inside the range, or None."""
        best: Version | None = None
        for v in versions:
            if self.contains(v) and (best is None or v > best):
                best = v
        return best

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"VersionRange({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionRange):
            return NotImplemented
        return self._sets == other._sets

    def __hash__(self) -> int:
        return hash(self._sets)


ANY = VersionRange("*")
