"""Configuration and permissions of installed plugins, through the service facade.

``/api/v1/plugins/{id}/config`` (get, change, reset, history, restore; secrets always
redacted), ``/api/v1/plugins/{id}/permissions`` (granted scopes, grant, revoke) and
``/api/v1/permissions/requests`` (scopes plugins asked for at run time; approve or refuse).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam

from plughost.errors import OperationRefused, RequestInvalid
from plughost.interfaces.http._routing import ApiRoute
from plughost.interfaces.http._schemas import (
    AuditPage,
    ConfigChangeIn,
    ConfigHistoryPage,
    ConfigOut,
    ConfigRestoreIn,
    CursorQuery,
    PermissionRequestOut,
    PermissionRequestPage,
    PermissionsOut,
    ScopeIn,
)
from plughost.interfaces.http._state import api_state, requires
from plughost.interfaces.tokens import Principal
from plughost.security.audit import SEVERITIES
from plughost.services import resources
from plughost.services.stores import security_entry

__all__ = ["router"]

router = APIRouter(route_class=ApiRoute)

PluginId = Annotated[str, PathParam(description="The plugin id.", min_length=1, max_length=64)]


# ---------------------------------------------------------------------------- config


@router.get("/plugins/{plugin_id}/config", summary="A plugin's configuration",
            response_model=ConfigOut, tags=["config"])
async def get_config(request: Request, plugin_id: PluginId,
                     _: Principal = requires("viewer")) -> dict[str, Any]:
    """The effective configuration, the operator's settings, the schema and the version.
    Secrets (schema ``x-secret`` / ``writeOnly``) are shown as ``"***"``."""
    data: dict[str, Any] = await api_state(request).service.config(plugin_id)
    return data


@router.put("/plugins/{plugin_id}/config", summary="Change a plugin's configuration",
            response_model=ConfigOut, tags=["config"])
async def set_config(request: Request, plugin_id: PluginId, body: ConfigChangeIn,
                     who: Principal = requires("operator")) -> dict[str, Any]:
    """Merge ``values`` into the settings (RFC 7386: ``null`` removes a key), or replace them
    with ``replace: true``. Validated against the schema; a running plugin may refuse the
    change; nothing changes when it is refused."""
    data: dict[str, Any] = await api_state(request).service.set_config(
        plugin_id, body.values, replace=body.replace, actor=who.actor)
    return data


@router.post("/plugins/{plugin_id}/config/reset", summary="Reset a plugin's configuration",
             response_model=ConfigOut, tags=["config"])
async def reset_config(request: Request, plugin_id: PluginId,
                       who: Principal = requires("operator")) -> dict[str, Any]:
    """Back to the defaults (empty operator settings), recorded as a new version."""
    data: dict[str, Any] = await api_state(request).service.set_config(
        plugin_id, {}, replace=True, actor=who.actor)
    return data


@router.get("/plugins/{plugin_id}/config/history", summary="Configuration history",
            response_model=ConfigHistoryPage, tags=["config"])
async def config_history(request: Request, plugin_id: PluginId,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         cursor: CursorQuery = None,
                         _: Principal = requires("viewer")) -> dict[str, Any]:
    """Every accepted change, oldest first, secrets redacted."""
    data: list[dict[str, Any]] = await api_state(request).service.config_history(plugin_id)
    offset = resources.offset_of(cursor)
    items = [resources.resource("config_change", d) for d in data[offset:offset + limit]]
    return resources.offset_page(items, offset, total=len(data))


@router.post("/plugins/{plugin_id}/config/restore", summary="Restore an earlier configuration",
             response_model=ConfigOut, tags=["config"])
async def restore_config(request: Request, plugin_id: PluginId, body: ConfigRestoreIn,
                         who: Principal = requires("operator")) -> dict[str, Any]:
    """Make the settings of an earlier version current again (as a new version)."""
    data: dict[str, Any] = await api_state(request).service.restore_config(
        plugin_id, body.version, actor=who.actor)
    return data


# ---------------------------------------------------------------------------- permissions


@router.get("/plugins/{plugin_id}/permissions", summary="A plugin's permissions",
            response_model=PermissionsOut, tags=["permissions"])
async def permissions(request: Request, plugin_id: PluginId,
                      _: Principal = requires("viewer")) -> dict[str, Any]:
    """What the manifest declares, what is granted (deny rules start with ``!``) and what
    the plugin asked for at run time."""
    service = api_state(request).service
    detail = await service.get(plugin_id)
    return {
        "plugin_id": plugin_id,
        "declared": list(detail.manifest.get("permissions") or []),
        "granted": await service.grants(plugin_id),
        "requests": await service.permission_requests(plugin_id=plugin_id, status=None),
    }


@router.post("/plugins/{plugin_id}/permissions/grant", summary="Grant a permission scope",
             response_model=PermissionsOut, tags=["permissions"])
async def grant(request: Request, plugin_id: PluginId, body: ScopeIn,
                who: Principal = requires("admin")) -> dict[str, Any]:
    """Grant a scope such as ``net:api.example.com`` or ``fs:read:/data`` (or a deny rule
    ``!scope``); audited, effective at once."""
    await api_state(request).service.grant(plugin_id, body.scope, actor=who.actor,
                                           reason=body.reason)
    return await permissions(request, plugin_id, who)


@router.post("/plugins/{plugin_id}/permissions/revoke", summary="Revoke a permission scope",
             response_model=PermissionsOut, tags=["permissions"])
async def revoke(request: Request, plugin_id: PluginId, body: ScopeIn,
                 who: Principal = requires("admin")) -> dict[str, Any]:
    """Revoke a granted scope; audited, effective at once."""
    await api_state(request).service.revoke(plugin_id, body.scope, actor=who.actor,
                                            reason=body.reason)
    return await permissions(request, plugin_id, who)


@router.get("/permissions/requests", summary="Permission requests",
            response_model=PermissionRequestPage, tags=["permissions"])
async def permission_requests(
    request: Request,
    plugin_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(
        description="pending (default), approved, refused, or all.", max_length=20)] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: CursorQuery = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Scopes plugins asked for at run time, oldest first."""
    data: list[dict[str, Any]] = await api_state(request).service.permission_requests(
        plugin_id=plugin_id, status=None if status == "all" else status)
    offset = resources.offset_of(cursor)
    items = [resources.resource("permission_request", d) for d in data[offset:offset + limit]]
    return resources.offset_page(items, offset, total=len(data))


@router.post("/permissions/requests/{request_id}/{decision}",
             summary="Approve or refuse a permission request",
             response_model=PermissionRequestOut, tags=["permissions"])
async def decide(
    request: Request,
    request_id: Annotated[int, PathParam(ge=1, le=2**62)],
    decision: Annotated[str, PathParam(pattern="^(approve|refuse)$")],
    who: Principal = requires("admin"),
    _body: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """``approve`` grants the scope; ``refuse`` records the refusal. Both are audited."""
    data: dict[str, Any] = await api_state(request).service.decide_request(
        request_id, approve=decision == "approve", actor=who.actor)
    return data


@router.get("/security/audit", summary="The security audit log",
            response_model=AuditPage, tags=["permissions"])
async def security_audit(
    request: Request,
    plugin_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=100, description="fs:read, net, ...")] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    decision: Annotated[str | None, Query(max_length=50)] = None,
    min_severity: Annotated[str | None, Query(max_length=20)] = None,
    since: Annotated[datetime | None, Query(
        description="ISO 8601 time (UTC if no offset), as for /audit.")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601 time.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    cursor: CursorQuery = None,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Permission decisions (denials, grants, revocations, requests), newest first, with
    filters by permission kind, decision and severity. The entries are the one audit log's
    (``audit_entry``, kind ``security``, the decision's kind, scope, target, severity and
    reason in ``details``): ``GET /audit?kind=security`` lists the same entries."""
    services = getattr(api_state(request).service, "services", None)
    log = getattr(getattr(services, "permissions", None), "audit", None)
    if log is None:
        raise OperationRefused("this service runs without plugin services, so it keeps no "
                               "security audit log", code="service.no_services")
    if min_severity is not None and min_severity not in SEVERITIES:
        raise RequestInvalid(f"min_severity must be one of {', '.join(SEVERITIES)}",
                             details={"min_severity": min_severity})
    rows = await asyncio.to_thread(
        log.query, plugin=plugin_id, kind=kind, action=action, decision=decision,
        min_severity=min_severity, since=_epoch(since), until=_epoch(until), limit=limit,
        before_id=resources.before_id(cursor))
    return resources.id_page([security_entry(r) for r in reversed(rows)], limit)


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
