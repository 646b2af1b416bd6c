"""Operations, the event stream, the audit log, API tokens, and the health probes."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import TypeAdapter

from plughost.core._gc import collector_paused
from plughost.errors import PlughostError, RecordNotFound
from plughost.interfaces.http._errors import RETRY_AFTER_SECONDS
from plughost.interfaces.http._operations import operation_dict
from plughost.interfaces.http._routing import ApiRoute
from plughost.interfaces.http._schemas import (
    AuditKind,
    AuditPage,
    CommandIn,
    CommandOut,
    CommandPage,
    CursorQuery,
    HealthOut,
    NodePage,
    OperationOut,
    OperationPage,
    ReadyOut,
    TokenCreatedOut,
    TokenCreateIn,
    TokenPage,
)
from plughost.interfaces.http._state import api_state, requires
from plughost.interfaces.tokens import Principal
from plughost.services import resources

__all__ = ["probes", "router"]

router = APIRouter(route_class=ApiRoute)
probes = APIRouter(tags=["health"], route_class=ApiRoute)

EVENT_KINDS = ("lifecycle", "operation", "plugin", "alert", "health")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------------------- probes


@probes.get("/healthz", summary="Liveness", response_model=HealthOut)
async def healthz() -> dict[str, str]:
    """The process is up and serving (no dependency is checked)."""
    return {"status": "ok"}


@probes.get("/readyz", summary="Readiness", response_model=ReadyOut,
            responses={503: {"model": ReadyOut, "description": "Not ready yet / stopping."}})
async def readyz(request: Request) -> Any:
    """Ready once migrations ran and the enabled plugins were loaded, while the database
    answers; 503 (with ``Retry-After``) before that, while the database is unreachable, and
    while shutting down."""
    api = api_state(request)
    reason = api.not_ready_reason if not api.ready else await api.storage_problem()
    if reason:
        return JSONResponse({"ready": False, "reason": reason}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    states = api.service.plugin_states()
    return {
        "ready": True, "reason": "", "plugins": sum(states.values()),
        "active": states.get("active", 0), "failed": states.get("failed", 0),
    }


# ---------------------------------------------------------------------------- cluster


@router.get("/nodes", summary="The servers sharing this database", response_model=NodePage,
            tags=["cluster"])
async def nodes(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64,
                                        description="`next_cursor` of the previous page.")
                      ] = None,
    plugin_id: Annotated[str | None, Query(
        min_length=1, max_length=64,
        description="Each node's state of this plugin alone (404 if it is not installed): "
                    "where it runs, at the cost of the nodes, not of every plugin.")] = None,
    _: Principal = requires("viewer"),
) -> Response:
    """Every `plughost serve` on this database with its version, last heartbeat, the change
    it applied, how it hears about changes, and each plugin's live state on it (or one
    plugin's: ``plugin_id``)."""
    start = resources.offset_of(cursor)
    service = api_state(request).service

    def body() -> bytes:
        # Read, built and encoded through the response model in a worker thread: each node
        # carries every plugin's state (400 kB a node at 10,000 plugins), or one's.
        if plugin_id is not None:
            service.repository.require_plugin(plugin_id)  # PluginNotFound: a 404
        found = service.nodes(plugin_id)
        page = found[start:start + limit]
        more = start + limit < len(found)
        data = {"items": [n.to_dict() for n in page],
                "next_cursor": resources.encode_cursor({"offset": start + limit}) if more
                else None}
        with collector_paused():  # an entry per plugin, all kept (see core._gc)
            return _NODES.dump_json(_NODES.validate_python(data))

    return Response(await asyncio.to_thread(body), media_type="application/json")


_NODES: TypeAdapter[NodePage] = TypeAdapter(NodePage)


# ---------------------------------------------------------------------------- operations


@router.get("/operations/{operation_id}", summary="A background operation",
            response_model=OperationOut, tags=["operations"])
async def get_operation(
    request: Request,
    operation_id: Annotated[str, PathParam(min_length=1, max_length=64)],
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Status, progress, message, and the result or error of an ``?async=true`` request."""
    op = await asyncio.to_thread(api_state(request).service.repository.get_operation,
                                 operation_id)
    if op is None:
        raise RecordNotFound(f"there is no operation {operation_id!r}",
                             code="operation.not_found", details={"id": operation_id})
    return operation_dict(op)


@router.get("/operations", summary="Recent operations", response_model=OperationPage,
            tags=["operations"])
async def list_operations(
    request: Request,
    plugin_id: Annotated[str | None, Query(max_length=64)] = None,
    unfinished: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64,
                                        description="`next_cursor` of the previous page.")
                      ] = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Operations, newest first (``unfinished``: only pending and running ones), a page at a
    time like every other list: ``{"items", "next_cursor"}``."""
    start = resources.offset_of(cursor)
    ops = await asyncio.to_thread(api_state(request).service.repository.list_operations,
                                  plugin_id=plugin_id, unfinished=unfinished,
                                  limit=limit + 1, offset=start)
    more = len(ops) > limit
    return {"items": [operation_dict(o) for o in ops[:limit]],
            "next_cursor": resources.encode_cursor({"offset": start + limit}) if more else None}


# ---------------------------------------------------------------------------- events


@router.get(
    "/events", summary="Live event stream (Server-Sent Events)", tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "An endless text/event-stream."}},
)
async def events(
    request: Request,
    kinds: Annotated[str | None, Query(
        description="Comma-separated kinds: lifecycle, operation, plugin, alert, health. "
                    "Default: all.",
        max_length=100)] = None,
    plugin_id: Annotated[str | None, Query(max_length=64)] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000, description=(
        "End the stream after this many events (scripts, tests)."))] = None,
    max_seconds: Annotated[float | None, Query(gt=0, le=86_400, description=(
        "End the stream after this many seconds (scripts, tests)."))] = None,
    _: Principal = requires("viewer"),
) -> StreamingResponse:
    """Lifecycle changes, operation progress and the plugins' own events as they happen.
    Each SSE message has ``event:`` (the kind), ``id:`` and JSON ``data:``. The token is checked
    again before every event and every few seconds: once it is revoked or expires, a final
    ``closed`` event (with the reason) ends the stream."""
    wanted: frozenset[str] | None = None
    if kinds:
        wanted = frozenset(k.strip() for k in kinds.split(",") if k.strip())
        unknown = sorted(wanted - set(EVENT_KINDS))
        if unknown:
            from plughost.errors import RequestInvalid

            raise RequestInvalid(f"unknown event kind(s) {', '.join(unknown)}; use "
                                 + ", ".join(EVENT_KINDS), details={"kinds": unknown})
    api = api_state(request)

    def allowed() -> str | None:
        # The token is checked again while the stream is open: revoking it ends the stream.
        try:
            api.authenticate(request, "viewer")
        except PlughostError as exc:
            return exc.message
        except Exception:  # cannot tell (storage down): stop delivering rather than guess
            return "the API token could not be verified; reconnect"
        return None

    stream = api.broker.stream(kinds=wanted, plugin_id=plugin_id,
                               heartbeat=api.options.heartbeat, max_events=max_events,
                               allowed=allowed, max_seconds=max_seconds)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------------------- commands


@router.get("/commands", summary="Registered commands", response_model=CommandPage,
            tags=["commands"])
async def list_commands(request: Request, _: Principal = requires("viewer")) -> dict[str, Any]:
    """Names of the commands active plugins registered: one page, like every list."""
    names = list(api_state(request).service.command_names())
    return {"items": names, "next_cursor": None, "total": len(names)}


@router.post("/commands/{name}", summary="Execute a command", response_model=CommandOut,
             tags=["commands"])
async def execute_command(
    request: Request,
    name: Annotated[str, PathParam(min_length=1, max_length=200)],
    body: CommandIn | None = None,
    who: Principal = requires("operator"),
) -> dict[str, Any]:
    """Run a plugin command with keyword ``args`` (activating a lazy plugin that provides it)
    and return its result."""
    body = body or CommandIn(args={}, timeout=None)
    result = await api_state(request).service.execute_command(name, body.args,
                                                              timeout=body.timeout)
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        result = repr(result)  # the answer must be JSON; say what it was instead
    await asyncio.to_thread(api_state(request).service.repository.append_audit,
                            "command.execute", actor=who.actor, details={"command": name})
    return {"command": name, "result": result}


# ---------------------------------------------------------------------------- audit


@router.get("/audit", summary="Query the audit log", response_model=AuditPage, tags=["audit"])
async def audit(
    request: Request,
    plugin_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=100,
                                        description="e.g. plugin.install")] = None,
    kind: Annotated[AuditKind | None, Query(
        description="operation (install, update...) or security (grants, denials...)")] = None,
    outcome: Annotated[str | None, Query(max_length=50, description="ok, denied, failed...")
                       ] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 time (UTC if no offset).")
                     ] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601 time.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: CursorQuery = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """The one audit log, newest first: operations and security decisions; page with
    ``cursor`` (the previous page's ``next_cursor``)."""
    items = await api_state(request).service.audit(
        plugin_id=plugin_id, action=action, limit=limit, before_id=resources.before_id(cursor),
        kind=kind.value if kind else None, outcome=outcome, since=since, until=until)
    return resources.id_page(items, limit)


# ---------------------------------------------------------------------------- tokens


_token = resources.token


@router.get("/tokens", summary="List API tokens", response_model=TokenPage,
            tags=["tokens"])
async def list_tokens(request: Request, include_revoked: bool = False,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      cursor: CursorQuery = None,
                      _: Principal = requires("admin")) -> dict[str, Any]:
    """API tokens by name (never their secrets)."""
    found = await asyncio.to_thread(api_state(request).authority.list,
                                    include_revoked=include_revoked)
    offset = resources.offset_of(cursor)
    return resources.offset_page([_token(t) for t in found[offset:offset + limit]], offset,
                                 total=len(found))


@router.post("/tokens", summary="Create an API token", response_model=TokenCreatedOut,
             status_code=201, tags=["tokens"])
async def create_token(request: Request, body: TokenCreateIn,
                       who: Principal = requires("admin")) -> dict[str, Any]:
    """Create a token; the answer holds its secret, shown this once."""
    api = api_state(request)
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    record, secret = await asyncio.to_thread(api.authority.create, body.role.value, body.name,
                                             expires_in=expires)
    await asyncio.to_thread(api.service.repository.append_audit, "token.create",
                            actor=who.actor, details={"name": record.name, "role": record.role})
    return {**_token(record), "secret": secret}


@router.delete("/tokens/{name}", summary="Revoke an API token", status_code=204,
               tags=["tokens"], response_class=Response)
async def revoke_token(request: Request,
                       name: Annotated[str, PathParam(min_length=1, max_length=64)],
                       who: Principal = requires("admin")) -> Response:
    """Revoke a token by name; requests with it fail from now on."""
    api = api_state(request)
    await asyncio.to_thread(api.authority.revoke, name)
    await asyncio.to_thread(api.service.repository.append_audit, "token.revoke",
                            actor=who.actor, details={"name": name})
    return Response(status_code=204)
