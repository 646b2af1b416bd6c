"""``/api/v1/market``: search the marketplaces, plugin details, ratings and reviews (stored in
this server's database, one per token holder per plugin; admins moderate), outdated plugins,
update policies and a scheduled-check trigger.

Thin adapters over :class:`~plughost.services.market.service.Market`. Lists use the shared
pagination: ``?limit=N&cursor=C`` and ``{"items", "next_cursor", "total"}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from plughost.errors import MarketError, RequestInvalid
from plughost.interfaces.http._routing import ApiRoute
from plughost.interfaces.http._state import ApiState, api_state, requires
from plughost.interfaces.tokens import Principal
from plughost.services import resources
from plughost.services.market.index import SearchQuery, iso
from plughost.services.market.service import Market, market_disabled, rating_dict

__all__ = ["market_of", "market_tasks", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/market", tags=["market"], route_class=ApiRoute)

PluginId = Annotated[str, PathParam(description="The plugin id.", min_length=1, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous "
                                                                  "page.")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingIn(_In):
    rating: int = Field(ge=1, le=5, strict=True, description="1 (worst) to 5 (best).")
    review: str = Field(default="", max_length=5000, description="Optional review text.")


class ModerationIn(_In):
    hidden: bool = Field(description="Hide the rating (true) or show it again (false).")
    reason: str = Field(default="", max_length=1000)


class PolicyIn(_In):
    policy: str = Field(description="manual, notify or auto.")
    cooldown_seconds: int = Field(default=0, ge=0, le=365 * 86400)
    window: str = Field(default="", max_length=11, description="HH:MM-HH:MM (UTC) or empty.")


class CatalogItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    version: str
    description: str
    type: str
    tags: list[str]
    runtime: str
    rating: float | None
    ratings_count: int
    downloads: int
    installed_version: str | None
    yanked: bool


class CatalogPage(BaseModel):
    items: list[CatalogItem]
    next_cursor: str | None
    total: int


class RatingOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    plugin_id: str
    rater: str
    rating: int
    review: str
    created_at: str
    updated_at: str


class RatingPage(BaseModel):
    items: list[RatingOut]
    next_cursor: str | None
    total: int | None = None


def market_of(api: ApiState) -> Market:
    """The app's :class:`Market` over its service (created on first use).

    :raises MarketError: ``market.disabled`` when ``enable_market`` is off.
    """
    if not api.settings.enable_market:
        raise market_disabled()
    market: Market | None = getattr(api, "_market", None)
    if market is None:
        market = Market(api.service)
        api._market = market  # type: ignore[attr-defined]
    return market


@asynccontextmanager
async def market_tasks(api: ApiState) -> AsyncIterator[None]:
    """While the app runs: the scheduled update check, when ``auto_check_update`` is on."""
    task: asyncio.Task[None] | None = None
    settings = api.settings
    if settings.market_api:
        log.warning("market_api = %r is set but not used by this version: ratings, reviews "
                    "and download counts are this server's own (see docs/market.md)",
                    settings.market_api)
    if settings.enable_market and settings.auto_check_update:
        from plughost.services.market.updates import UpdateScheduler

        task = asyncio.create_task(
            UpdateScheduler(market_of(api)).run_forever(settings.update_check_interval))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@router.get("/search", summary="Search the marketplaces", response_model=CatalogPage)
async def search(
    request: Request,
    q: Annotated[str, Query(max_length=200, description="Words that must all appear.")] = "",
    type: Annotated[str, Query(max_length=64, description="Plugin type.")] = "",
    tag: Annotated[str, Query(max_length=64)] = "",
    runtime: Annotated[str, Query(max_length=32)] = "",
    compatible: Annotated[bool, Query(description="Only plugins that run on this host.")
                          ] = True,
    limit: Limit = 20,
    cursor: Cursor = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Ranked search over every configured marketplace, with ratings, downloads and the
    installed version of each plugin."""
    market = market_of(api_state(request))
    return await market.catalog_page(SearchQuery(q, type, tag, runtime, compatible),
                                     limit=limit, cursor=cursor)


@router.get("/plugins/{plugin_id}", summary="A marketplace plugin's details")
async def details(request: Request, plugin_id: PluginId,
                  _: Principal = requires("viewer")) -> dict[str, Any]:
    """Versions (with compatibility, dependencies, yanked), advisories, rating, downloads
    and the installed version."""
    return await market_of(api_state(request)).plugin_details(plugin_id)


def _cursor_id(cursor: str | None) -> int | None:
    try:
        return resources.before_id(cursor)
    except RequestInvalid:
        raise MarketError(f"the cursor {str(cursor)[:40]!r} is not one this server returned",
                          code="market.invalid", details={"field": "cursor"}) from None


def _rating_page(records: list[Any], limit: int, moderation: bool) -> dict[str, Any]:
    following = None
    if len(records) > limit:
        records = records[:limit]
        following = resources.encode_cursor({"before": records[-1].id})
    return {"items": [rating_dict(r, moderation=moderation) for r in records],
            "next_cursor": following}


@router.get("/plugins/{plugin_id}/ratings", summary="Ratings and reviews of a plugin",
            response_model=RatingPage)
async def ratings(request: Request, plugin_id: PluginId, limit: Limit = 20,
                  cursor: Cursor = None, include_hidden: bool = False,
                  who: Principal = requires("viewer")) -> dict[str, Any]:
    """Newest first. Hidden (moderated) ones only for admins asking ``include_hidden``."""
    api = api_state(request)
    market_of(api)
    moderation = include_hidden and who.role == "admin"
    records = await asyncio.to_thread(
        api.service.repository.list_ratings, plugin_id, limit=limit + 1,
        before_id=_cursor_id(cursor), include_hidden=moderation)
    summary = await asyncio.to_thread(api.service.repository.rating_summary, [plugin_id])
    page = _rating_page(records, limit, moderation)
    page["total"] = summary.get(plugin_id, (None, 0))[1]
    return page


@router.put("/plugins/{plugin_id}/ratings", summary="Rate and review a plugin",
            response_model=RatingOut)
async def rate(request: Request, plugin_id: PluginId, body: RatingIn,
               who: Principal = requires("viewer")) -> dict[str, Any]:
    """One rating per token holder per plugin: rating again replaces your earlier one."""
    return await market_of(api_state(request)).rate(plugin_id, who.name, body.rating,
                                                    body.review)


@router.post("/ratings/{rating_id}/moderation", summary="Hide or show a rating",
             response_model=RatingOut)
async def moderate(request: Request, rating_id: Annotated[int, PathParam(ge=1, le=2**62)],
                   body: ModerationIn, who: Principal = requires("admin")) -> dict[str, Any]:
    """Admins hide abusive reviews (kept, with who hid them and why) or show them again."""
    api = api_state(request)
    market_of(api)
    record = await asyncio.to_thread(api.service.repository.moderate_rating, rating_id,
                                     hidden=body.hidden, by=who.actor, reason=body.reason)
    await asyncio.to_thread(api.service.repository.append_audit, "rating.moderate",
                            actor=who.actor, plugin_id=record.plugin_id,
                            details={"rating": rating_id, "hidden": body.hidden,
                                     "reason": body.reason})
    return rating_dict(record, moderation=True)


@router.get("/outdated", summary="Installed plugins with updates or advisories")
async def outdated(request: Request, refresh: bool = False,
                   _: Principal = requires("viewer")) -> dict[str, Any]:
    items = await market_of(api_state(request)).outdated(refresh=refresh)
    return {"items": [i.to_dict() for i in items], "next_cursor": None, "total": len(items)}


@router.get("/plugins/{plugin_id}/policy", summary="A plugin's update policy")
async def get_policy(request: Request, plugin_id: PluginId,
                     _: Principal = requires("viewer")) -> dict[str, Any]:
    from plughost.services.market.updates import UpdateScheduler

    policy = await UpdateScheduler(market_of(api_state(request))).policy(plugin_id)
    return _policy_dict(policy)


@router.put("/plugins/{plugin_id}/policy", summary="Set a plugin's update policy")
async def set_policy(request: Request, plugin_id: PluginId, body: PolicyIn,
                     who: Principal = requires("admin")) -> dict[str, Any]:
    """``manual``, ``notify`` or ``auto`` (with a cooldown after each release and an optional
    UTC maintenance window)."""
    from plughost.services.market.updates import UpdateScheduler

    api = api_state(request)
    policy = await UpdateScheduler(market_of(api)).set_policy(
        plugin_id, body.policy, cooldown_seconds=body.cooldown_seconds, window=body.window)
    await asyncio.to_thread(api.service.repository.append_audit, "plugin.update_policy",
                            actor=who.actor, plugin_id=plugin_id,
                            details=_policy_dict(policy))
    return _policy_dict(policy)


@router.post("/check", summary="Run an update check now")
async def check(request: Request, who: Principal = requires("admin")) -> dict[str, Any]:
    """What the scheduled check does, now: each plugin's policy applied."""
    from plughost.services.market.updates import UpdateScheduler

    decisions = await UpdateScheduler(market_of(api_state(request))).run_once()
    return {"items": [d.to_dict() for d in decisions], "next_cursor": None,
            "total": len(decisions)}


def _policy_dict(p: Any) -> dict[str, Any]:
    def when(v: Any) -> str | None:
        return None if v is None else iso(v)

    return {"id": p.plugin_id, "policy": p.policy, "cooldown_seconds": p.cooldown_seconds,
            "window": p.maintenance_window, "notified_version": p.notified_version or None,
            "last_checked_at": when(p.last_checked_at),
            "last_update_at": when(p.last_update_at)}
