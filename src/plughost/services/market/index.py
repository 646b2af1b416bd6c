"""The searchable index of a marketplace repository: one JSON document, itself a signed target.

The index (target path ``index.json``) lists every plugin of the repository with every
published version, so a client can search, check compatibility and resolve dependencies
without downloading packages. Its format (``plughost-market-index/1``) is documented in
``docs/market.md``; :func:`parse_index` is the one reader and refuses anything malformed with
``market.invalid``, naming the field.

Search (:func:`search`) runs over an :class:`Index` in memory: every term of the query must
appear in a plugin's id, name, description or tags; filters narrow by type, tag, runtime and
compatibility; results are ranked (exact id, id prefix, tag, name, description; then download
count) and paginated with an opaque cursor.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plughost.core._manifest_checks import ID_PATTERN
from plughost.core.manifest import Manifest
from plughost.core.version import Version, VersionRange
from plughost.errors import MarketError, RequestInvalid, VersionError
from plughost.runtimes.base import availability
from plughost.services import resources

__all__ = [
    "INDEX_FORMAT",
    "INDEX_TARGET",
    "Advisory",
    "Index",
    "IndexPlugin",
    "IndexVersion",
    "Runtimes",
    "SearchPage",
    "SearchQuery",
    "decode_cursor",
    "encode_cursor",
    "iso",
    "iso_now",
    "package_target",
    "parse_index",
    "search",
]

INDEX_FORMAT = "plughost-market-index/1"
INDEX_TARGET = "index.json"
#: Which runtimes a host has: runtime name -> ``None`` when it runs here, else why not (the
#: answer of :func:`plughost.runtimes.base.availability`; a name missing is a runtime the host
#: does not have). ``None`` in a parameter means "ask the runtime registry".
Runtimes = Mapping[str, str | None]
_EMPTY: Mapping[str, VersionRange] = {}
_ID = re.compile(ID_PATTERN)


def runtime_problem(runtime: str, runtimes: Runtimes) -> str:
    """Why a version needing ``runtime`` cannot run on a host with ``runtimes`` ("" if it can)."""
    if runtime not in runtimes:
        return (f"needs the {runtime!r} runtime, which this host does not have (it has "
                f"{', '.join(sorted(runtimes))})")
    why = runtimes[runtime]
    return f"needs the {runtime} runtime: {why}" if why else ""


def iso(when: datetime) -> str:
    """``when`` as an ISO 8601 UTC string (``2026-12-03T17:20:00Z``), the one time format of
    every marketplace output (a naive ``when`` is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_now() -> str:
    """The current time as :func:`iso` writes it."""
    return iso(datetime.now(UTC))


def package_target(plugin_id: str, version: str) -> str:
    """The target path of a package in the repository."""
    return f"packages/{plugin_id}/{plugin_id}-{version}.zip"


def _bad(what: str, why: str) -> MarketError:
    return MarketError(f"the marketplace index is malformed: {what} {why}; the repository "
                       "publisher must republish it (plughost publish rebuilds it)",
                       code="market.invalid", details={"field": what})


@dataclass(frozen=True, slots=True)
class Advisory:
    """A security advisory: installed versions in ``affected`` are flagged; with ``force``,
    automatic updates apply the fix whatever the plugin's update policy."""

    id: str
    affected: VersionRange
    severity: str = "medium"
    summary: str = ""
    fixed: str = ""
    force: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "affected": str(self.affected), "severity": self.severity,
                "summary": self.summary, "fixed": self.fixed, "force": self.force}


@dataclass(frozen=True, slots=True)
class IndexVersion:
    """One published version (a resolver candidate: ``id``, ``version``, ranges, ``host``)."""

    id: str
    version: Version
    target: str
    sha256: str
    size: int
    host: VersionRange
    platforms: tuple[str, ...] = ()
    runtime: str = "python"
    dependencies: Mapping[str, VersionRange] = field(default_factory=lambda: _EMPTY)
    optional_dependencies: Mapping[str, VersionRange] = field(default_factory=lambda: _EMPTY)
    permissions: tuple[str, ...] = ()
    signed_by: tuple[str, ...] = ()
    published: str = ""
    yanked: bool = False
    yanked_reason: str = ""

    def incompatibility(self, host_version: Version, platform: str = sys.platform,
                        runtimes: Runtimes | None = None) -> str:
        """Why this version cannot run here ("" when it can).

        :param runtimes: the host's runtimes (default: the runtime registry's answer for a host
            with only the built-in ones)."""
        if not self.host.contains(host_version, include_prerelease=True):
            return f"needs plughost {self.host}, this host is {host_version}"
        if self.platforms and not any(platform.startswith(p) for p in self.platforms):
            return f"runs on {', '.join(self.platforms)}, not {platform}"
        return runtime_problem(self.runtime, availability() if runtimes is None else runtimes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": str(self.version), "target": self.target, "sha256": self.sha256,
            "size": self.size, "host": str(self.host), "platforms": list(self.platforms),
            "runtime": self.runtime,
            "dependencies": {k: str(v) for k, v in self.dependencies.items()},
            "optional_dependencies": {k: str(v) for k, v in self.optional_dependencies.items()},
            "permissions": list(self.permissions), "signed_by": list(self.signed_by),
            "published": self.published, "yanked": self.yanked,
            "yanked_reason": self.yanked_reason,
        }


@dataclass(frozen=True, slots=True)
class IndexPlugin:
    """A plugin of the index with all its versions (newest first)."""

    id: str
    name: str
    description: str
    type: str
    tags: tuple[str, ...]
    author: str
    homepage: str
    license: str
    versions: tuple[IndexVersion, ...]
    advisories: tuple[Advisory, ...] = ()
    downloads: int = 0
    #: Lower-cased text the search matches against (computed once).
    haystack: str = field(default="", compare=False, repr=False)

    @property
    def latest(self) -> IndexVersion:
        """The newest version that is not yanked (the newest of all when every one is)."""
        for v in self.versions:
            if not v.yanked:
                return v
        return self.versions[0]

    def version(self, version: str | Version) -> IndexVersion | None:
        wanted = Version.parse(version)
        return next((v for v in self.versions if v.version == wanted), None)

    def advisories_for(self, version: str | Version) -> list[Advisory]:
        v = Version.parse(version)
        return [a for a in self.advisories if a.affected.contains(v, include_prerelease=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "description": self.description,
            "type": self.type, "tags": list(self.tags), "author": self.author,
            "homepage": self.homepage, "license": self.license, "downloads": self.downloads,
            "versions": [v.to_dict() for v in self.versions],
            "advisories": [a.to_dict() for a in self.advisories],
        }


@dataclass(frozen=True, slots=True)
class Index:
    """A parsed index: plugins by id."""

    plugins: Mapping[str, IndexPlugin]
    generated: str = ""
    #: What search precomputes from this (immutable) index, built on first use.
    _search: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def get(self, plugin_id: str) -> IndexPlugin | None:
        return self.plugins.get(plugin_id)

    def to_dict(self) -> dict[str, Any]:
        return {"format": INDEX_FORMAT, "generated": self.generated,
                "plugins": {pid: p.to_dict() for pid, p in sorted(self.plugins.items())}}

    def to_bytes(self) -> bytes:
        """Canonical bytes (sorted keys, compact) — the bytes that are signed as the target."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()


# ------------------------------------------------------------------------------ building


def version_from_manifest(manifest: Manifest, *, target: str, sha256: str, size: int,
                          signed_by: Sequence[str], published: str) -> IndexVersion:
    """The index entry of a package, from its manifest."""
    return IndexVersion(
        id=manifest.id, version=manifest.version, target=target, sha256=sha256, size=size,
        host=manifest.host, platforms=tuple(manifest.platforms), runtime=manifest.runtime,
        dependencies=dict(manifest.dependencies),
        optional_dependencies=dict(manifest.optional_dependencies),
        permissions=tuple(manifest.permissions), signed_by=tuple(signed_by),
        published=published)


def plugin_with_version(current: IndexPlugin | None, manifest: Manifest,
                        entry: IndexVersion) -> IndexPlugin:
    """``current`` with ``entry`` added; descriptive fields follow the newest version."""
    versions = [v for v in (current.versions if current else ()) if v.version != entry.version]
    versions.append(entry)
    versions.sort(key=lambda v: v.version, reverse=True)
    newest = versions[0].version == entry.version
    base = current if (current is not None and not newest) else None
    return _with_haystack(IndexPlugin(
        id=manifest.id,
        name=base.name if base else manifest.name,
        description=base.description if base else manifest.description,
        type=base.type if base else manifest.type,
        tags=base.tags if base else tuple(manifest.tags),
        author=base.author if base else manifest.author,
        homepage=base.homepage if base else manifest.homepage,
        license=base.license if base else manifest.license,
        versions=tuple(versions),
        advisories=current.advisories if current else (),
        downloads=current.downloads if current else 0))


def _with_haystack(p: IndexPlugin) -> IndexPlugin:
    text = " ".join((p.id, p.name, p.description, " ".join(p.tags), p.type)).lower()
    object.__setattr__(p, "haystack", text)
    return p


# ------------------------------------------------------------------------------ parsing


def _str(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise _bad(f"{where}.{key}", "must be a string")
    return value


def _range(text: Any, where: str) -> VersionRange:
    if not isinstance(text, str):
        raise _bad(where, "must be a version range string")
    try:
        return VersionRange(text)
    except VersionError as exc:
        raise _bad(where, f"is not a version range ({exc.message})") from None


def _ranges(data: Any, where: str) -> dict[str, VersionRange]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _bad(where, "must be an object of id -> range")
    return {str(k): _range(v, f"{where}.{k}") for k, v in data.items()}


def _strings(data: Any, where: str) -> tuple[str, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise _bad(where, "must be a list of strings")
    return tuple(data)


def _parse_version(pid: str, key: str, raw: Any) -> IndexVersion:
    where = f"plugins.{pid}.versions.{key}"
    if not isinstance(raw, dict):
        raise _bad(where, "must be an object")
    try:
        version = Version.parse(_str(raw, "version", where, key))
    except VersionError as exc:
        raise _bad(f"{where}.version", f"is not a version ({exc.message})") from None
    sha = _str(raw, "sha256", where)
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise _bad(f"{where}.sha256", "must be 64 lower-case hex digits")
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad(f"{where}.size", "must be a whole number of bytes")
    target = _str(raw, "target", where)
    if target != package_target(pid, str(version)):
        raise _bad(f"{where}.target", f"must be {package_target(pid, str(version))!r}")
    return IndexVersion(
        id=pid, version=version, target=target, sha256=sha, size=size,
        host=_range(raw.get("host", "*"), f"{where}.host"),
        platforms=_strings(raw.get("platforms"), f"{where}.platforms"),
        runtime=_str(raw, "runtime", where, "python"),
        dependencies=_ranges(raw.get("dependencies"), f"{where}.dependencies"),
        optional_dependencies=_ranges(raw.get("optional_dependencies"),
                                      f"{where}.optional_dependencies"),
        permissions=_strings(raw.get("permissions"), f"{where}.permissions"),
        signed_by=_strings(raw.get("signed_by"), f"{where}.signed_by"),
        published=_str(raw, "published", where, ""),
        yanked=bool(raw.get("yanked", False)),
        yanked_reason=_str(raw, "yanked_reason", where, ""))


def _parse_plugin(pid: str, raw: Any) -> IndexPlugin:
    where = f"plugins.{pid}"
    if not isinstance(raw, dict):
        raise _bad(where, "must be an object")
    versions_raw = raw.get("versions")
    if not isinstance(versions_raw, (dict, list)) or not versions_raw:
        raise _bad(f"{where}.versions", "must list at least one version")
    items = (versions_raw.items() if isinstance(versions_raw, dict)
             else ((str(v.get("version", "")) if isinstance(v, dict) else "?", v)
                   for v in versions_raw))
    versions = sorted((_parse_version(pid, k, v) for k, v in items),
                      key=lambda v: v.version, reverse=True)
    advisories = []
    for i, a in enumerate(raw.get("advisories") or []):
        aw = f"{where}.advisories[{i}]"
        if not isinstance(a, dict):
            raise _bad(aw, "must be an object")
        advisories.append(Advisory(
            id=_str(a, "id", aw), affected=_range(a.get("affected"), f"{aw}.affected"),
            severity=_str(a, "severity", aw, "medium"), summary=_str(a, "summary", aw, ""),
            fixed=_str(a, "fixed", aw, ""), force=bool(a.get("force", False))))
    downloads = raw.get("downloads", 0)
    return _with_haystack(IndexPlugin(
        id=pid, name=_str(raw, "name", where, pid),
        description=_str(raw, "description", where, ""), type=_str(raw, "type", where, ""),
        tags=_strings(raw.get("tags"), f"{where}.tags"), author=_str(raw, "author", where, ""),
        homepage=_str(raw, "homepage", where, ""), license=_str(raw, "license", where, ""),
        versions=tuple(versions), advisories=tuple(advisories),
        downloads=downloads if isinstance(downloads, int) and downloads >= 0 else 0))


def parse_index(data: bytes) -> Index:
    """Read an index document (see the module doc).

    :raises MarketError: ``market.invalid`` naming the first malformed field.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad("the document", f"is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        raise _bad("format", f"must be {INDEX_FORMAT!r}")
    plugins = doc.get("plugins")
    if not isinstance(plugins, dict):
        raise _bad("plugins", "must be an object of id -> plugin")
    parsed: dict[str, IndexPlugin] = {}
    for pid, raw in plugins.items():
        if not isinstance(pid, str) or not _ID.match(pid):
            raise _bad(f"plugins.{str(pid)[:80]!r}", "is not a valid plugin id")
        parsed[pid] = _parse_plugin(pid, raw)
    generated = doc.get("generated", "")
    return Index(parsed, generated if isinstance(generated, str) else "")


# ------------------------------------------------------------------------------ search


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What to look for. Empty fields do not filter.

    :param text: words that must all appear (id, name, description, tags, type).
    :param compatible: only plugins with a version that runs on this host (host version,
        platform, runtime), and report that version.
    """

    text: str = ""
    type: str = ""
    tag: str = ""
    runtime: str = ""
    compatible: bool = False
    include_yanked: bool = False


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A plugin found, with the version shown (the newest compatible one, when asked)."""

    plugin: IndexPlugin
    version: IndexVersion
    score: float
    source: str = ""
    #: Why ``version`` cannot run on this host ("" when it can; shown by a search with
    #: ``compatible=False``, which lists such versions too).
    incompatible: str = ""


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    next_cursor: str | None
    total: int


def encode_cursor(offset: int) -> str:
    """The cursor of the search page that starts at ``offset`` (the API's one cursor
    format: :func:`plughost.services.resources.encode_cursor`)."""
    return resources.encode_cursor({"offset": offset})


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor stands for.

    :raises MarketError: ``market.invalid`` for a cursor this server did not hand out.
    """
    try:
        return resources.offset_of(cursor)
    except RequestInvalid:
        raise MarketError(f"the cursor {str(cursor)[:40]!r} is not one this server returned; "
                          "start again without a cursor", code="market.invalid",
                          details={"field": "cursor"}) from None


class _Table:
    """An index laid out for search, built once per index: the lower-cased texts in one string
    (a term is found with ``str.find`` in C, not a Python loop over every plugin), the fields
    ranking reads, and the popularity order for queries without words."""

    __slots__ = ("by_popularity", "eligible", "ids", "lower", "plugins", "popularity", "shown",
                 "starts", "text")

    def __init__(self, index: Index) -> None:
        self.plugins = list(index.plugins.values())
        self.ids = [p.id for p in self.plugins]
        texts = [p.haystack.replace("\x00", " ") for p in self.plugins]
        self.starts: list[int] = []
        at = 0
        for text in texts:
            self.starts.append(at)
            at += len(text) + 1
        self.text = "\x00".join(texts)
        self.lower = [(p.name.lower(), p.description.lower(), tuple(t.lower() for t in p.tags))
                      for p in self.plugins]
        self.popularity = [math.log10(1 + p.downloads) for p in self.plugins]
        #: positions in the order of a query without words: most downloaded first, then id
        self.by_popularity = sorted(range(len(self.plugins)),
                                    key=lambda i: (-self.popularity[i], self.ids[i]))
        #: (host, platform, runtimes, compatible, include_yanked) -> shown version by position
        self.shown: dict[tuple[Any, ...], dict[int, IndexVersion | None]] = {}
        #: (shown key, type, tag, runtime) -> positions a query without words shows, in order
        self.eligible: dict[tuple[Any, ...], list[int]] = {}

    def matching(self, term: str) -> set[int]:
        """Positions of the plugins whose text contains ``term``."""
        out: set[int] = set()
        find, starts = self.text.find, self.starts
        last = len(starts) - 1
        at = find(term)
        while at >= 0:
            i = bisect.bisect_right(starts, at) - 1
            out.add(i)
            if i == last:
                break
            at = find(term, starts[i + 1])
        return out

    def score(self, i: int, terms: Sequence[str]) -> float:
        score = 0.0
        pid = self.ids[i]
        name, description, tags = self.lower[i]
        for term in terms:
            if pid == term:
                score += 100
            elif pid.startswith(term):
                score += 50
            elif term in pid:
                score += 30
            if term in tags:
                score += 20
            if term in name:
                score += 15
            score += 5 if term in description else 0
        return score + self.popularity[i]


def _table(index: Index) -> _Table:
    table = index._search.get("table")
    if table is None:
        table = index._search["table"] = _Table(index)
    return table


def search(indexes: Iterable[tuple[str, Index]], query: SearchQuery, *,
           host_version: Version, limit: int = 20, cursor: str | None = None,
           platform: str = sys.platform,
           runtimes: Runtimes | None = None) -> SearchPage:
    """Search ``indexes`` (``(source name, index)`` pairs by priority: an id found in an
    earlier one hides the same id in later ones). See the module doc for the ranking.

    Costs grow with the plugins that match, not with the index: words are found in one
    string per index, and only the page is sorted (``heapq``)."""
    terms = [t.replace("\x00", "") for t in query.text.lower().split()]
    terms = [t for t in terms if t]
    offset = decode_cursor(cursor)
    runtimes = availability() if runtimes is None else dict(runtimes)
    tag = query.tag.lower()
    key = (str(host_version), platform, tuple(sorted(runtimes.items())), query.compatible,
           query.include_yanked)
    limit = max(1, min(limit, 200))
    wanted = offset + limit
    earlier: list[Index] = []
    ranked: list[tuple[float, str, int, int]] = []  # (-score, id, source #, position)
    total = 0
    sources: list[tuple[str, _Table]] = []
    for source, index in indexes:
        table = _table(index)
        sources.append((source, table))
        if terms:
            found = table.matching(terms[0])
            for term in terms[1:]:
                if not found:
                    break
                found &= table.matching(term)
            positions: Iterable[int] = found
        elif not earlier:  # ranked by popularity: the eligible positions, once per filter
            eligible = _eligible(table, query, tag, key, host_version, platform, runtimes)
            total += len(eligible)
            ranked.extend((-table.popularity[i], table.ids[i], len(sources) - 1, i)
                          for i in eligible[:wanted])
            earlier.append(index)
            continue
        else:  # already in rank order: keep the first ``wanted``, count the rest
            positions = table.by_popularity
        passes = _filter(table, query, tag, key, host_version, platform, runtimes)
        kept = 0
        for i in positions:
            p = table.plugins[i]
            if earlier and any(p.id in e.plugins for e in earlier):
                continue
            if not passes(i):
                continue
            total += 1
            if terms:
                ranked.append((-table.score(i, terms), p.id, len(sources) - 1, i))
            elif kept < wanted:
                kept += 1
                ranked.append((-table.popularity[i], p.id, len(sources) - 1, i))
        earlier.append(index)
    top = heapq.nsmallest(wanted, ranked)[offset:]
    page = []
    for neg_score, _pid, s, i in top:
        source, table = sources[s]
        version = table.shown[key][i]
        assert version is not None
        page.append(SearchHit(table.plugins[i], version, -neg_score, source,
                              version.incompatibility(host_version, platform, runtimes)))
    return SearchPage(page, encode_cursor(wanted) if wanted < total else None, total)


def _filter(table: _Table, query: SearchQuery, tag: str, key: tuple[Any, ...],
            host_version: Version, platform: str,
            runtimes: Runtimes) -> Callable[[int], bool]:
    """The one filter rule of a search: type, tag, a version to show (compatible and not
    yanked, when asked; remembered per index) and its runtime."""
    shown_cache = table.shown.setdefault(key, {})
    plugins, lower = table.plugins, table.lower

    def passes(i: int) -> bool:
        p = plugins[i]
        if query.type and p.type != query.type:
            return False
        if tag and tag not in lower[i][2]:
            return False
        if i in shown_cache:
            shown = shown_cache[i]
        else:
            shown = shown_cache[i] = _shown_version(p, query, host_version, platform, runtimes)
        return shown is not None and not (query.runtime and shown.runtime != query.runtime)

    return passes


def _eligible(table: _Table, query: SearchQuery, tag: str, key: tuple[Any, ...],
              host_version: Version, platform: str, runtimes: Runtimes) -> list[int]:
    """The positions a query without words shows, in rank order, for its filters (kept per
    index: like a database index on the filter columns, it is built on first use)."""
    cache_key = (key, query.type, tag, query.runtime)
    cached = table.eligible.get(cache_key)
    if cached is not None:
        return cached
    passes = _filter(table, query, tag, key, host_version, platform, runtimes)
    out = [i for i in table.by_popularity if passes(i)]
    if len(table.eligible) >= 256:  # filter combinations are few; bound them anyway
        table.eligible.clear()
    table.eligible[cache_key] = out
    return out


def _shown_version(p: IndexPlugin, query: SearchQuery, host_version: Version, platform: str,
                   runtimes: Runtimes) -> IndexVersion | None:
    for v in p.versions:
        if v.yanked and not query.include_yanked:
            continue
        if query.compatible and v.incompatibility(host_version, platform, runtimes):
            continue
        return v
    return None
