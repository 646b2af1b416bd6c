"""The marketplace facade a host uses: search, details, install with dependencies, outdated,
update — over the home's marketplaces (:class:`MarketClient`) and its
:class:`~plughost.services.manager.PluginService`.

Installing from a marketplace is ONE operation for the whole set: the request is resolved with
its dependencies (:mod:`~plughost.services.market.plan`), every package is fetched and checked
through TUF first (nothing is installed if one fails), then the packages are installed
dependencies first through the service's own install pipeline (signature policy, atomic
commit, activation). If any of them fails, the ones this operation installed are uninstalled
again, newest first, so the host ends exactly as it was; the error says which package failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core.manifest import Manifest
from plughost.core.version import Version
from plughost.errors import InstallError, MarketError, PlughostError
from plughost.services.installer import stored_manifest
from plughost.services.market.client import MarketClient
from plughost.services.market.index import (
    Index,
    IndexPlugin,
    IndexVersion,
    Runtimes,
    SearchPage,
    SearchQuery,
    iso,
    search,
)
from plughost.services.market.plan import InstallPlan, listed, parse_request, plan_install

if TYPE_CHECKING:
    from plughost.services.installer import InstallResult
    from plughost.services.manager import PluginService

__all__ = ["Market", "MarketInstallResult", "OutdatedPlugin", "market_disabled"]

log = logging.getLogger(__name__)


def market_disabled() -> MarketError:
    """The one error for a marketplace request while ``enable_market`` is off (search,
    details, ratings and ``source=market`` installs answer it alike)."""
    return MarketError("the marketplace is disabled on this server (enable_market = false); "
                       "set enable_market = true in plughost.toml and restart to search and "
                       "install from marketplaces", code="market.disabled")


@dataclass(frozen=True, slots=True)
class MarketInstallResult:
    """What a marketplace install did: the plan and each package installed, in order."""

    plan: InstallPlan
    installed: tuple[InstallResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(),
                "installed": [r.to_dict() for r in self.installed]}


@dataclass(frozen=True, slots=True)
class OutdatedPlugin:
    """An installed plugin with a newer compatible version, or an advisory against it."""

    plugin_id: str
    installed: str
    latest: str | None
    source: str
    advisories: tuple[dict[str, Any], ...] = field(default=())
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.plugin_id, "installed_version": self.installed,
                "latest_version": self.latest, "source": self.source,
                "advisories": list(self.advisories), "force_update": self.forced}


class Market:
    """Search and install from the home's marketplaces (see the module doc).

    :param service: an open :class:`PluginService` (installs, updates and the installed set).
    :param client: default: the marketplaces of the service's home.
    """

    def __init__(self, service: PluginService, client: MarketClient | None = None) -> None:
        self.service = service
        self.client = client or MarketClient(
            service.settings.home, max_package_size=service.settings.max_plugin_size)

    @property
    def host_version(self) -> Version:
        return self.service.host_version

    def _runtimes(self) -> Runtimes:
        """The host's runtimes as the runtime registry sees them (built-in ones whose extra is
        installed, and any registered with the host); versions needing another are left out."""
        return self.service.runtime_availability()

    async def indexes(self, *, refresh: bool = False) -> list[tuple[str, Index]]:
        if not self.client.sources():
            raise MarketError("no marketplace is configured; add one with `plughost market add "
                              "NAME URL --root root.json`", code="market.disabled")
        return await asyncio.to_thread(self.client.indexes, refresh=refresh)

    async def installed_manifest(self, plugin_id: str) -> Manifest | None:
        """The current manifest of one installed plugin (``None``: not installed, or its
        stored manifest no longer validates), read by id: not every installed plugin."""
        return (await self.installed_of([plugin_id])).get(plugin_id)

    def _installed_of(self, ids: Collection[str]) -> dict[str, Manifest]:
        """The current manifests of those of ``ids`` that are installed (one whose stored
        manifest no longer validates left out), read by id: not every installed plugin."""
        rows = self.service.repository.get_plugins(ids)
        return {pid: m for pid, row in rows.items() if (m := stored_manifest(row)) is not None}

    async def installed_of(self, ids: Collection[str]) -> dict[str, Manifest]:
        """:meth:`_installed_of` in a worker thread."""
        return await asyncio.to_thread(self._installed_of, ids)

    # ------------------------------------------------------------------ search

    async def search(self, query: SearchQuery, *, limit: int = 20,
                     cursor: str | None = None) -> SearchPage:
        indexes = await self.indexes()
        return search(indexes, query, host_version=self.host_version, limit=limit,
                      cursor=cursor, runtimes=self._runtimes())

    async def details(self, plugin_id: str) -> tuple[str, IndexPlugin]:
        found = listed(await self.indexes(), plugin_id)
        if found is not None:
            return found
        raise MarketError(f"no marketplace lists {plugin_id}", code="market.not_found",
                          plugin_id=plugin_id)

    # ------------------------------------------------------------------ install

    async def plan(self, request: str) -> InstallPlan:
        req = parse_request(request)
        row = await asyncio.to_thread(self.service.repository.get_plugin, req.plugin_id)
        if row is not None:
            raise InstallError(
                f"{req.plugin_id} is already installed (version {row.version}); "
                f"`plughost update {req.plugin_id}` moves it to a newer version",
                code="install.exists", plugin_id=req.plugin_id)
        indexes = await self.indexes()
        # In a worker thread: it reads the installed plugins the request reaches, by id.
        return await asyncio.to_thread(
            plan_install, req, indexes, self._installed_of, host_version=self.host_version,
            runtimes=self._runtimes())

    async def install(self, request: str, *, actor: str = "",
                      activate: bool = True) -> MarketInstallResult:
        """Resolve, fetch and install ``request`` with its dependencies, all or nothing."""
        plan = await self.plan(request)
        files = await asyncio.to_thread(self._download_all, plan)
        done: list[InstallResult] = []
        try:
            for planned, path in zip(plan.packages, files, strict=True):
                v = planned.version
                done.append(await self.service.install(
                    path, sha256=v.sha256, actor=actor, activate=activate,
                    origin=f"market:{planned.source}/{v.id}@{v.version}"))
        except BaseException as exc:
            await self._undo(done, actor)
            if isinstance(exc, PlughostError) and done:
                exc.details = {**exc.details, "rolled_back": [r.plugin_id for r in done]}
            raise
        await self._count_downloads([(r.plugin_id, r.version) for r in done])
        return MarketInstallResult(plan, tuple(done))

    async def _count_downloads(self, items: Sequence[tuple[str, str]]) -> None:
        repo = self.service.repository
        for pid, version in items:
            try:
                await asyncio.to_thread(repo.count_download, pid, version)
            except PlughostError:  # a counter must never fail an install that succeeded
                log.warning("could not count the download of %s %s", pid, version)

    def _download_all(self, plan: InstallPlan) -> list[Path]:
        return [self.client.download(p.source, p.version) for p in plan.packages]

    async def _undo(self, done: Sequence[InstallResult], actor: str) -> None:
        for result in reversed(done):
            try:
                await self.service.uninstall(result.plugin_id, actor=actor or "market")
            except PlughostError:
                log.exception("could not undo the install of %s", result.plugin_id)

    # ------------------------------------------------------------------ updates

    async def outdated(self, *, refresh: bool = False) -> list[OutdatedPlugin]:
        """Installed plugins with a newer compatible version in their marketplace (the first
        that lists them), or an advisory against the installed version."""
        indexes = await self.indexes(refresh=refresh)
        # The listed plugins that are installed, read by id (the marketplaces' lists are in
        # memory already): not every installed plugin.
        installed = await self.installed_of({pid for _, i in indexes for pid in i.plugins})
        out = []
        for pid, manifest in sorted(installed.items()):
            found = listed(indexes, pid)
            assert found is not None
            source, plugin = found
            newest = self._newest_compatible(plugin)
            advisories = plugin.advisories_for(manifest.version)
            newer = newest is not None and newest.version > manifest.version
            if newer or advisories:
                out.append(OutdatedPlugin(
                    pid, str(manifest.version), str(newest.version) if newest else None,
                    source, tuple(a.to_dict() for a in advisories),
                    any(a.force for a in advisories)))
        return out

    def _newest_compatible(self, plugin: IndexPlugin) -> IndexVersion | None:
        for v in plugin.versions:
            if not v.yanked and not v.incompatibility(self.host_version,
                                                       runtimes=self._runtimes()):
                return v
        return None

    async def update(self, plugin_id: str, *, actor: str = "") -> Any:
        """Update one installed plugin to the newest compatible version of its marketplace,
        through the service's update path (state handed over, health-checked, rolled back on
        failure).

        :raises MarketError: ``market.not_found`` when no marketplace lists it or nothing
            newer exists.
        """
        source, plugin = await self.details(plugin_id)
        newest = self._newest_compatible(plugin)
        installed = await self.installed_manifest(plugin_id)
        if installed is None:
            raise MarketError(f"{plugin_id} is not installed; install it with `plughost "
                              f"install {plugin_id}`", code="market.not_found",
                              plugin_id=plugin_id)
        if newest is None or newest.version <= installed.version:
            raise MarketError(f"{plugin_id} {installed.version} is the newest compatible "
                              "version", code="market.not_found", plugin_id=plugin_id,
                              details={"installed_version": str(installed.version)})
        path = await asyncio.to_thread(self.client.download, source, newest)
        result = await self.service.update(
            plugin_id, path, sha256=newest.sha256, actor=actor,
            origin=f"market:{source}/{plugin_id}@{newest.version}")
        await self._count_downloads([(plugin_id, str(newest.version))])
        return result

    async def update_all(self, *, actor: str = "") -> list[dict[str, Any]]:
        """Update every outdated plugin; one failure does not stop the others (each update
        is its own all-or-nothing operation). Returns one outcome per plugin."""
        outcomes = []
        for item in await self.outdated(refresh=True):
            if item.latest is None or item.latest == item.installed:
                continue
            try:
                result = await self.update(item.plugin_id, actor=actor)
                outcomes.append({"id": item.plugin_id, "ok": True, **result.to_dict()})
            except PlughostError as exc:
                outcomes.append({"id": item.plugin_id, "ok": False, "error": exc.to_dict()})
        return outcomes

    # ------------------------------------------------------------------ catalog (API)

    async def catalog_page(self, query: SearchQuery, *, limit: int = 20,
                           cursor: str | None = None) -> dict[str, Any]:
        """A search page as the API and the dashboard show it: each plugin with its rating,
        rating count, downloads (the index's plus this server's) and installed version."""
        page = await self.search(query, limit=limit, cursor=cursor)
        ids = [h.plugin.id for h in page.hits]
        repo = self.service.repository
        ratings = await asyncio.to_thread(repo.rating_summary, ids)
        downloads = await asyncio.to_thread(repo.download_counts, ids)
        installed = await self.installed_of(ids)  # the hits', not every one
        items = []
        for h in page.hits:
            pid = h.plugin.id
            avg, count = ratings.get(pid, (None, 0))
            items.append({
                "id": pid, "name": h.plugin.name, "version": str(h.version.version),
                "description": h.plugin.description, "type": h.plugin.type,
                "tags": list(h.plugin.tags), "runtime": h.version.runtime,
                "author": h.plugin.author, "rating": avg, "ratings_count": count,
                "downloads": h.plugin.downloads + downloads.get(pid, 0),
                "installed_version": str(installed[pid].version) if pid in installed else None,
                "yanked": h.version.yanked, "source": h.source,
                "incompatible": h.incompatible,
                "advisories": [a.to_dict() for a in h.plugin.advisories],
            })
        return {"items": items, "next_cursor": page.next_cursor, "total": page.total}

    async def plugin_details(self, plugin_id: str) -> dict[str, Any]:
        """Everything the marketplace says about a plugin, with this server's ratings,
        downloads and the installed version."""
        source, plugin = await self.details(plugin_id)
        repo = self.service.repository
        avg, count = (await asyncio.to_thread(repo.rating_summary, [plugin_id])).get(
            plugin_id, (None, 0))
        downloads = (await asyncio.to_thread(repo.download_counts, [plugin_id])).get(
            plugin_id, 0)
        installed = await self.installed_manifest(plugin_id)
        newest = self._newest_compatible(plugin)
        return {**plugin.to_dict(), "source": source, "rating": avg, "ratings_count": count,
                "downloads": plugin.downloads + downloads,
                "installed_version": str(installed.version) if installed else None,
                "compatible_version": str(newest.version) if newest else None}

    async def rate(self, plugin_id: str, rater: str, rating: int,
                   review: str = "") -> dict[str, Any]:
        """Record ``rater``'s rating (1-5) and review of a listed plugin (one per rater). A
        rating an admin hid stays hidden when its author sends it again."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise MarketError(f"a rating is a whole number from 1 to 5, not {rating!r}",
                              code="market.rating", plugin_id=plugin_id)
        if len(review) > MAX_REVIEW:
            raise MarketError(f"a review is at most {MAX_REVIEW} characters; this one has "
                              f"{len(review)}", code="market.rating", plugin_id=plugin_id)
        await self.details(plugin_id)  # only plugins a marketplace lists can be rated
        record = await asyncio.to_thread(self.service.repository.rate, plugin_id, rater,
                                         rating, review)
        # the author is told when a moderator hid their rating (it stays hidden)
        return {**rating_dict(record), "hidden": record.hidden}


#: Longest review accepted, in characters.
MAX_REVIEW = 5000


def rating_dict(record: Any, *, moderation: bool = False) -> dict[str, Any]:
    """The JSON shape of a rating (moderation fields only for admins)."""
    out = {"id": record.id, "plugin_id": record.plugin_id, "rater": record.rater,
           "rating": record.rating, "review": record.review,
           "created_at": iso(record.created_at), "updated_at": iso(record.updated_at)}
    if moderation:
        out.update(hidden=record.hidden, moderated_by=record.moderated_by,
                   moderation_reason=record.moderation_reason)
    return out

