"""Observability routes: plugin logs (query, live tail, stats)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from plughost.interfaces.http._state import api_state, requires
from plughost.interfaces.tokens import Principal
from plughost.observability.logs import LogFilter, parse_since

__all__ = ["probes", "router"]

router = APIRouter(tags=["observability"])
probes = APIRouter(tags=["health"])

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
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    after_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Stored plugin log lines, newest first; page back with ``before_id``, poll for newer
    ones with ``after_id``. Each line has its plugin, level, time and correlation id (the
    ``X-Request-ID`` of the API request that caused it, when there was one)."""
    flt = _filter(plugin_id, level, since, grep, correlation_id)
    hub = api_state(request).observer.logs
    items = await asyncio.to_thread(hub.query, flt, limit=limit, before_id=before_id,
                                    after_id=after_id)
    return {"items": [e.to_dict() for e in items],
            "next_before_id": items[-1].id if len(items) == limit else None}


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
    _: Principal = requires("viewer"),
) -> StreamingResponse:
    """Each captured line as an SSE ``log`` event (JSON ``data:``); a reader that falls behind
    gets a ``dropped`` event with the count of lines it missed."""
    api = api_state(request)
    flt = _filter(plugin_id, level, grep=grep)

    async def stream() -> AsyncIterator[bytes]:
        yield b": plughost log stream\nretry: 3000\n\n"
        sent = 0
        async for item in api.observer.logs.tail(flt, backlog=backlog,
                                                 heartbeat=api.options.heartbeat):
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
