"""Observability routes: plugin logs (query, live tail, stats), alerts and rules, health."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from plughost.errors import OperationRefused, PluginNotFound, RequestInvalid
from plughost.interfaces.http._routing import ApiRoute
from plughost.interfaces.http._schemas import CursorQuery
from plughost.interfaces.http._state import api_state, requires
from plughost.interfaces.tokens import Principal
from plughost.observability.alerts import rule_from_request
from plughost.observability.health import HealthPoller
from plughost.observability.logs import LogFilter, parse_since
from plughost.observability.metrics import CONTENT_TYPE, render
from plughost.observability.observer import Observer
from plughost.services import resources

__all__ = ["probes", "router"]

router = APIRouter(tags=["observability"], route_class=ApiRoute)
probes = APIRouter(tags=["health"], route_class=ApiRoute)
_AT_ONCE = 100
"""How many plugins one health request may name (a page of a list)."""

PluginQuery = Annotated[str | None, Query(max_length=64, description="Only this plugin.")]
LevelQuery = Annotated[str | None, Query(
    max_length=16, description="This level or more severe: debug, info, warning, error, "
                               "critical.")]
GrepQuery = Annotated[str | None, Query(
    max_length=200, description="Only lines containing this text (case-insensitive).")]


def _filter(plugin_id: str | None, level: str | None, since: str | None = None,
            grep: str | None = None, correlation_id: str | None = None) -> LogFilter:
    return LogFilter(plugin_id=plugin_id, min_level=level, since=parse_since(since),
                     grep=grep or None, correlation_id=correlation_id)


@router.get("/logs", summary="Query plugin logs")
async def logs(
    request: Request,
    plugin_id: PluginQuery = None,
    level: LevelQuery = None,
    since: Annotated[str | None, Query(
        max_length=40, description="A duration ago (30s, 15m, 2h, 7d) or an ISO 8601 time."
    )] = None,
    grep: GrepQuery = None,
    correlation_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    cursor: CursorQuery = None,
    after_id: Annotated[int | None, Query(ge=0, le=2**62, description=(
        "Only lines newer than this id (to poll for new lines; /logs/stream pushes them)."))
    ] = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Stored plugin log lines, newest first; page back with ``cursor`` (the previous page's
    ``next_cursor``), poll for newer ones with ``after_id``. Each line has its plugin, level,
    time and correlation id (the ``X-Request-ID`` of the API request that caused it, when
    there was one)."""
    flt = _filter(plugin_id, level, since, grep, correlation_id)
    hub = api_state(request).observer.logs
    items = await asyncio.to_thread(hub.query, flt, limit=limit,
                                    before_id=resources.before_id(cursor), after_id=after_id)
    return resources.id_page([resources.resource("log_line", e.to_dict()) for e in items],
                             limit)


@router.get("/logs/stats", summary="Log capture figures")
async def log_stats(request: Request, _: Principal = requires("viewer")) -> dict[str, Any]:
    """Lines captured, stored, and dropped — by the plugin's output limit and because the
    store could not keep up — in total and per plugin."""
    return api_state(request).observer.logs.stats()


@router.get(
    "/logs/stream", summary="Live tail of plugin logs (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "An endless text/event-stream of `log` events."}},
)
async def log_stream(
    request: Request,
    plugin_id: PluginQuery = None,
    level: LevelQuery = None,
    grep: GrepQuery = None,
    backlog: Annotated[int, Query(ge=0, le=1000, description=(
        "First replay this many recent lines."))] = 0,
    max_events: Annotated[int | None, Query(ge=1, le=1_000_000, description=(
        "End the stream after this many lines (scripts, tests)."))] = None,
    max_seconds: Annotated[float | None, Query(gt=0, le=86_400, description=(
        "End the stream after this many seconds (scripts, tests)."))] = None,
    _: Principal = requires("viewer"),
) -> StreamingResponse:
    """Each captured line as an SSE ``log`` event (JSON ``data:``); a reader that falls behind
    gets a ``dropped`` event with the count of lines it missed."""
    api = api_state(request)
    flt = _filter(plugin_id, level, grep=grep)

    async def stream() -> AsyncIterator[bytes]:
        yield b": plughost log stream\nretry: 3000\n\n"
        sent = 0
        heartbeat = api.options.heartbeat
        if max_seconds is not None:  # wake up often enough to end on time
            heartbeat = min(heartbeat, max_seconds / 4)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds if max_seconds is not None else None
        async for item in api.observer.logs.tail(flt, backlog=backlog, heartbeat=heartbeat):
            if deadline is not None and loop.time() >= deadline:
                return
            if item is None:
                yield b": keep-alive\n\n"
            elif isinstance(item, int):
                yield f"event: dropped\ndata: {json.dumps({'count': item})}\n\n".encode()
            else:
                data = json.dumps(item.to_dict())
                yield f"id: {item.id}\nevent: log\ndata: {data}\n\n".encode()
                sent += 1
                if max_events is not None and sent >= max_events:
                    return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------------------- alerts


def _alerts(request: Request) -> Observer:
    observer = api_state(request).observer
    if observer.alerts is None:
        raise OperationRefused("alerts are not evaluated yet: the server is starting",
                               code="service.starting")
    return observer


@router.get("/alerts", summary="Alerts pending and firing now")
async def alerts(request: Request, _: Principal = requires("viewer")) -> dict[str, Any]:
    """Each alert (rule and plugin) whose condition holds: ``pending`` while it has held for
    less than the rule's ``for``, then ``firing``."""
    observer = _alerts(request)
    assert observer.alerts is not None
    active = observer.alerts.evaluator.active()
    return {"alerts": active, "firing": sum(1 for a in active if a["state"] == "firing"),
            "evaluations": observer.alerts.evaluations}


@router.get("/alerts/history", summary="Alert history")
async def alert_history(
    request: Request,
    rule: Annotated[str | None, Query(max_length=100)] = None,
    plugin_id: PluginQuery = None,
    state: Annotated[str | None, Query(pattern="^(firing|resolved)$")] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: CursorQuery = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Each time an alert started firing or resolved, newest first; page with ``cursor``."""
    repo = api_state(request).service.repository
    items = await asyncio.to_thread(repo.query_alert_events, rule=rule, plugin_id=plugin_id,
                                    state=state, since=parse_since(since), limit=limit,
                                    before_id=resources.before_id(cursor))
    return resources.id_page([resources.resource("alert", i) for i in items], limit)


@router.get("/alerts/rules", summary="Alert rules in force")
async def alert_rules(request: Request, _: Principal = requires("viewer")) -> dict[str, Any]:
    """Built-in rules (``source: default``), rules from the settings file (``file``) and rules
    added through the API (``api``): one page, ``{"items", "next_cursor", "total"}``, like
    every list."""
    rules = [r.to_dict() for r in _alerts(request).rules()]
    return resources.page(rules, None, total=len(rules))


@router.post("/alerts/rules", summary="Add an alert rule", status_code=201)
async def add_alert_rule(
    request: Request,
    body: Annotated[dict[str, Any], Body(examples=[{
        "name": "slack-errors", "expr": "error_rate", "op": ">", "threshold": 0.1,
        "for": "2m", "plugin": "notify-slack", "severity": "critical",
        "labels": {"team": "ops"}}])],
    who: Principal = requires("operator"),
) -> dict[str, Any]:
    """A rule as in ``[[alerts.rules]]`` of the settings file; stored, in force at once."""
    rule = rule_from_request(body)
    added = await _alerts(request).add_rule(rule, actor=who.actor)
    await asyncio.to_thread(api_state(request).service.repository.append_audit,
                            "alert.rule.add", actor=who.actor, details={"name": rule.name})
    return added.to_dict()


@router.delete("/alerts/rules/{name}", summary="Remove an alert rule added through the API",
               status_code=204, response_class=Response)
async def remove_alert_rule(
    request: Request, name: Annotated[str, PathParam(min_length=1, max_length=100)],
    who: Principal = requires("operator"),
) -> Response:
    """Its alerts resolve. Built-in rules and rules of the settings file cannot be removed
    here."""
    await _alerts(request).remove_rule(name)
    await asyncio.to_thread(api_state(request).service.repository.append_audit,
                            "alert.rule.remove", actor=who.actor, details={"name": name})
    return Response(status_code=204)


# ---------------------------------------------------------------------------- health


def _health(request: Request) -> HealthPoller:
    poller = api_state(request).observer.health
    if poller is None:
        raise OperationRefused("health checks have not started yet: the server is starting",
                               code="service.starting")
    return poller


@router.get("/health", summary="Plugins' health")
async def health(
    request: Request,
    plugin_id: Annotated[list[str] | None, Query(
        description=f"Only these plugins' entries (up to {_AT_ONCE}; repeat the parameter), "
                    "by id; 404 naming one there is none for: what asking about a page of "
                    "plugins costs, whatever is installed.")] = None,
    limit: Annotated[int | None, Query(
        ge=1, le=1000,
        description="At most this many plugins' entries, by id: a page, at the cost of the "
                    "page; `next_cursor` continues it. Without it, every plugin's entry.")
                     ] = None,
    cursor: CursorQuery = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """The last health check of every plugin (``healthy``, ``degraded`` or ``unknown``),
    the overall status, and what the policy did; ``plugins`` a page at a time with
    ``limit``, or the entries of the plugins ``plugin_id`` names, by id (``status`` and
    ``degraded`` are still of every plugin)."""
    resources.require_limit(cursor, limit)
    after = resources.after_key(cursor)
    poller = _health(request)
    if plugin_id is not None:
        ids = sorted(set(plugin_id))
        if not 1 <= len(ids) <= _AT_ONCE or not all(1 <= len(i) <= 64 for i in ids):
            raise RequestInvalid(f"`plugin_id` names 1 to {_AT_ONCE} plugins, each id 1 to 64 "
                                 f"characters; got {len(ids)}", details={"field": "plugin_id"})
        entries = []
        for pid in ids:
            entry = poller.entry(pid)
            if entry is None:
                raise PluginNotFound(f"there is no plugin {pid!r} on this host", plugin_id=pid)
            entries.append(entry)
        degraded = poller.degraded()
        return {"status": "degraded" if degraded else "healthy", "degraded": degraded,
                "plugins": entries, "next_cursor": None}
    body = poller.overall(limit=None if limit is None else limit + 1, after=after)
    more = limit is not None and len(body["plugins"]) > limit
    if more:
        del body["plugins"][limit:]
    body["next_cursor"] = (resources.encode_cursor({"after": body["plugins"][-1]["plugin_id"]})
                           if more else None)
    return body


@router.post("/health/{plugin_id}/check", summary="Check a plugin's health now")
async def check_health(
    request: Request, plugin_id: Annotated[str, PathParam(min_length=1, max_length=64)],
    _: Principal = requires("operator"),
) -> dict[str, Any]:
    """Run the plugin's health check now (the policy applies as on the interval)."""
    poller = _health(request)
    if poller.host.registry.find(plugin_id) is None:
        raise PluginNotFound(f"there is no plugin {plugin_id!r} on this host",
                             plugin_id=plugin_id)
    return (await poller.check(plugin_id)).to_dict()


class PluginsProbeOut(BaseModel):
    status: str
    degraded: list[str]


class PluginProbeOut(BaseModel):
    plugin_id: str
    status: str


@probes.get("/healthz/plugins", summary="Plugins' health probe", response_model=PluginsProbeOut,
            responses={503: {"model": PluginsProbeOut, "description": "A plugin is degraded."}})
async def healthz_plugins(request: Request) -> Any:
    """200 when no plugin is degraded, else 503 naming the degraded ones."""
    degraded = _health(request).degraded()
    body = {"status": "degraded" if degraded else "healthy", "degraded": degraded}
    return JSONResponse(body, status_code=503 if degraded else 200)


@probes.get("/healthz/plugins/{plugin_id}", summary="One plugin's health probe",
            response_model=PluginProbeOut,
            responses={503: {"model": PluginProbeOut,
                             "description": "The plugin is degraded."}})
async def healthz_plugin(
    request: Request, plugin_id: Annotated[str, PathParam(min_length=1, max_length=64)],
) -> Any:
    """503 when the plugin is degraded; 200 when its last check passed or it was not checked
    yet (``unknown``: not active, or no check so far)."""
    poller = _health(request)
    if poller.host.registry.find(plugin_id) is None:
        raise PluginNotFound(f"there is no plugin {plugin_id!r} on this host",
                             plugin_id=plugin_id)
    item = poller.plugins.get(plugin_id)
    status = item.status if item is not None else "unknown"
    return JSONResponse({"plugin_id": plugin_id, "status": status},
                        status_code=503 if status == "degraded" else 200)


# ---------------------------------------------------------------------------- metrics


@probes.get("/metrics", summary="Prometheus metrics", tags=["observability"],
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                             "description": "The Prometheus text format."}})
async def metrics(request: Request, _: Principal = requires("viewer")) -> Response:
    """Every figure of the host in the Prometheus text format: per plugin and runtime
    (dispatches by kind, errors by code, timeouts, latency histograms, restarts, crashes,
    quarantine, limit hits, state, health, process RSS/CPU, wasm memory), and host-wide
    (plugins by state, installs/updates/uninstalls by outcome, operation durations, API
    requests by route, event queues, log drops, alerts). Needs a viewer token once tokens
    exist; ``[metrics] public_bind`` serves it without one on a separate address."""
    observer = api_state(request).observer
    if observer.service is None:
        raise OperationRefused("metrics are not available yet: the server is starting",
                               code="service.starting")
    body = await asyncio.to_thread(render, observer.registry)
    return Response(body, media_type=CONTENT_TYPE)
