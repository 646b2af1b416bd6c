"""What to install: a request (``id`` or ``id@range``) resolved with its dependencies against
what is installed and what the marketplaces offer.

The resolver is the host's own (:func:`plughost.core.resolver.resolve`); this module only
chooses its candidates:

* an installed plugin is a candidate in its installed version only (an install never changes
  another plugin's version; ``plughost update`` does that);
* a marketplace version is a candidate when it runs here — host version, platform and runtime
  (the runtime registry says which runtimes the host has and which lack their extra); the
  others are left out and the reason is kept, so a failed resolution can say why;
* a yanked version is a candidate only when the request pins exactly that version;
* each plugin id comes from the first marketplace (by priority) that lists it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plughost.core.manifest import Manifest
from plughost.core.resolver import resolve
from plughost.core.version import Version, VersionRange
from plughost.errors import MarketError, PlughostError, ResolutionError, VersionError
from plughost.runtimes.base import availability
from plughost.services.market.index import Index, IndexPlugin, IndexVersion, Runtimes

__all__ = [
    "InstallPlan",
    "Installed",
    "PlannedPackage",
    "Request",
    "listed",
    "parse_request",
    "plan_install",
    "reachable",
]

_REQ = re.compile(r"^([a-z0-9][a-z0-9._-]{0,63})(?:@(.+))?$")


@dataclass(frozen=True, slots=True)
class Request:
    """``id``, ``id@1.2.3`` (exact: may name a yanked version) or ``id@^1.2``."""

    plugin_id: str
    range: VersionRange | None = None
    exact: Version | None = None

    def __str__(self) -> str:
        if self.exact is not None:
            return f"{self.plugin_id}@{self.exact}"
        return f"{self.plugin_id}@{self.range}" if self.range is not None else self.plugin_id

    def admits(self, version: Version) -> bool:
        if self.exact is not None:
            return version == self.exact
        return self.range is None or self.range.contains(version)


def parse_request(text: str) -> Request:
    """Parse ``id[@range]``.

    :raises MarketError: ``market.invalid`` naming what is wrong.
    """
    match = _REQ.match(text.strip())
    if not match:
        raise MarketError(f"{text!r} is not a plugin request; write ID, ID@VERSION or "
                          "ID@RANGE (e.g. lyrics-lrc, lyrics-lrc@0.3.1, lyrics-lrc@^0.3)",
                          code="market.invalid", details={"request": text[:100]})
    pid, spec = match.groups()
    if spec is None:
        return Request(pid)
    try:
        return Request(pid, exact=Version.parse(spec))
    except VersionError:
        pass
    try:
        return Request(pid, range=VersionRange(spec))
    except VersionError as exc:
        raise MarketError(f"{text!r}: {exc.message}", code="market.invalid",
                          details={"request": text[:100]}) from None


@dataclass(frozen=True, slots=True)
class PlannedPackage:
    """One package to fetch and install."""

    source: str
    version: IndexVersion
    requested: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.version.id, "version": str(self.version.version),
                "source": self.source, "sha256": self.version.sha256,
                "size": self.version.size, "requested": self.requested}


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """Packages in install order (dependencies first), and what was left out and why."""

    request: Request
    packages: tuple[PlannedPackage, ...]
    already_installed: tuple[str, ...] = ()
    excluded: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"request": str(self.request),
                "install": [p.to_dict() for p in self.packages],
                "uses_installed": list(self.already_installed),
                "excluded": {k: dict(v) for k, v in self.excluded.items()}}


def listed(indexes: Sequence[tuple[str, Index]], plugin_id: str
           ) -> tuple[str, IndexPlugin] | None:
    """The first marketplace (by priority) that lists ``plugin_id``, with its entry there."""
    for name, index in indexes:
        plugin = index.get(plugin_id)
        if plugin is not None:
            return name, plugin
    return None


#: What is installed, by id: a mapping, or a function reading the given ids (those of them
#: that are installed, with their current manifests).
Installed = Mapping[str, Manifest] | Callable[[Collection[str]], Mapping[str, Manifest]]


def reachable(plugin_id: str, indexes: Sequence[tuple[str, Index]], installed: Installed,
              ) -> tuple[dict[str, tuple[str, IndexPlugin]], dict[str, Manifest]]:
    """What a plan for ``plugin_id`` can reach: the marketplace listings of the reached
    plugins that are not installed, and the installed ones with their manifests. An
    installed plugin leads to what its installed version needs or may use, one that is not
    installed to what any version its marketplace lists does. ``installed`` is asked about
    the reached ids alone, one step at a time, so a plan costs what it reaches, not what is
    installed or listed."""
    lookup = installed if callable(installed) else (
        lambda ids: {i: installed[i] for i in ids if i in installed})
    seen: set[str] = set()
    listing: dict[str, tuple[str, IndexPlugin]] = {}
    found: dict[str, Manifest] = {}
    frontier = {plugin_id}
    while frontier:
        seen |= frontier
        here = lookup(frontier)
        found.update(here)
        following: set[str] = set()
        for pid in sorted(frontier):
            manifest = here.get(pid)
            if manifest is not None:
                following.update(manifest.dependencies, manifest.optional_dependencies)
            elif (entry := listed(indexes, pid)) is not None:
                listing[pid] = entry
                for v in entry[1].versions:
                    following.update(v.dependencies, v.optional_dependencies)
        frontier = following - seen
    return listing, found


def plan_install(request: Request, indexes: Sequence[tuple[str, Index]],
                 installed: Installed, *, host_version: Version,
                 platform: str = sys.platform,
                 runtimes: Runtimes | None = None) -> InstallPlan:
    """Resolve ``request`` (see the module doc). ``installed``: see :func:`reachable`; only
    the plugins the request can reach are read, and only their marketplace versions are
    judged (and named in :attr:`InstallPlan.excluded`).

    :raises MarketError: ``market.not_found`` (no marketplace lists it),
        ``market.incompatible`` (no version of it can run here or fits the request).
    :raises ResolutionError: dependencies cannot be satisfied (``details['excluded']`` lists
        the versions left out and why).
    """
    runtimes = availability() if runtimes is None else runtimes
    pid = request.plugin_id
    listing, installed = reachable(pid, indexes, installed)
    if pid not in listing and pid not in installed:
        raise MarketError(f"no marketplace lists {pid}; `plughost search` shows what they have",
                          code="market.not_found", plugin_id=pid)
    excluded: dict[str, dict[str, str]] = {}
    candidates: list[Any] = list(installed.values())
    where: dict[tuple[str, str], tuple[str, IndexVersion]] = {}
    for other, (source, plugin) in sorted(listing.items()):
        for v in plugin.versions:
            why = ""
            if other == pid and not request.admits(v.version):
                why = f"not in {request}"
            elif v.yanked and not (other == pid and request.exact == v.version):
                why = "yanked" + (f" ({v.yanked_reason})" if v.yanked_reason else "") + \
                      "; install it only by pinning the exact version"
            else:
                why = v.incompatibility(host_version, platform, runtimes)
            if why:
                excluded.setdefault(other, {})[str(v.version)] = why
                continue
            candidates.append(v)
            where[(other, str(v.version))] = (source, v)
    if pid not in installed and not any(c.id == pid for c in candidates):
        reasons = excluded.get(pid, {})
        shown = "; ".join(f"{ver}: {why}" for ver, why in list(reasons.items())[:8])
        raise MarketError(f"no version of {pid} can be installed here ({shown})",
                          code="market.incompatible", plugin_id=pid,
                          details={"excluded": reasons})
    try:
        resolution = resolve(candidates, requested=[pid], host_version=host_version,
                             installed={k: m.version for k, m in installed.items()})
    except ResolutionError as exc:
        exc.details = {**dict(exc.details or {}), "excluded": excluded}
        if excluded:
            exc.message += " (left out: " + "; ".join(
                f"{k} {ver}: {why}" for k, vs in sorted(excluded.items())
                for ver, why in list(vs.items())[:3]) + ")"
        raise
    packages = []
    uses = []
    for chosen in resolution.order:
        if chosen in installed:
            if chosen != pid:
                uses.append(chosen)
            continue
        candidate = resolution.selected[chosen]
        source, entry = where[(chosen, str(candidate.version))]
        packages.append(PlannedPackage(source, entry, chosen == pid))
    return InstallPlan(request, tuple(packages), tuple(uses), excluded)


def describe(error: PlughostError) -> str:
    """One line for an error of a plan (used by the CLI)."""
    return f"{error.code}: {error.message}"
