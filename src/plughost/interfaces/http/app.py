"""The management API application: ``create_app(service, settings)``.

::

    service = PluginService(HostSettings.from_env(), start=True)
    app = create_app(service)               # FastAPI; uvicorn runs it (``plughost serve``)

Opening the service (migrations, enabled plugins in dependency order) happens in the app's
lifespan; ``/readyz`` answers 503 until it is done. Shutdown ends event streams, waits (bounded)
for background operations, then closes the service, which deactivates plugins in reverse order.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

try:
    from fastapi import APIRouter, FastAPI
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.routing import APIRoute
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from plughost.errors import ExtraNotInstalled

    raise ExtraNotInstalled("The HTTP API", "server", "fastapi") from exc

from plughost._version import __version__
from plughost.errors import OperationRefused
from plughost.interfaces.http._errors import install_error_handlers
from plughost.interfaces.http._middleware import ApiMiddleware
from plughost.interfaces.http._routes_market import market_tasks
from plughost.interfaces.http._routes_market import router as market_router
from plughost.interfaces.http._routes_observability import probes as observability_probes
from plughost.interfaces.http._routes_observability import router as observability_router
from plughost.interfaces.http._routes_plugins import counts_router
from plughost.interfaces.http._routes_plugins import router as plugins_router
from plughost.interfaces.http._routes_session import operation_roles
from plughost.interfaces.http._routes_session import router as session_router
from plughost.interfaces.http._routes_system import probes
from plughost.interfaces.http._routes_system import router as system_router
from plughost.interfaces.http._routing import ApiRoute, required_role
from plughost.interfaces.http._schemas import ErrorResponse
from plughost.interfaces.http._state import ApiOptions, ApiState
from plughost.services.manager import PluginService
from plughost.settings import HostSettings

__all__ = ["API_PREFIX", "ApiOptions", "create_app", "openapi_document"]

API_PREFIX = "/api/v1"
_UPDATE_ROUTE = re.compile(r"^/api/v1/plugins/[^/]+$")
_MULTIPART_OVERHEAD = 1024 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Bad request"), (401, "No or invalid token"), (403, "Role too weak"),
        (404, "Not found"), (409, "Conflict with the current state"),
        (413, "Body too large"), (422, "Invalid input"), (501, "Not provided by this host"),
        (503, "Not available"), (504, "A plugin did not answer in time"),
    )
}


def create_app(
    service: PluginService | None,
    settings: HostSettings | None = None,
    *,
    options: ApiOptions | None = None,
) -> FastAPI:
    """Build the API around a service facade (:class:`plughost.services.manager.PluginService`).

    :param service: the facade; opened in the app's lifespan if it is not open yet.
    :param settings: default ``service.settings``; ``max_plugin_size`` caps uploads.
    :param options: auth, CORS, limits (:class:`ApiOptions`).
    """
    if settings is None:
        if service is None:
            raise OperationRefused("create_app needs settings when it gets no service",
                                   code="service.unavailable")
        settings = service.settings
    options = options or ApiOptions()
    state = ApiState(service, settings, options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.startup()
        try:
            async with market_tasks(state):
                yield
        finally:
            await state.shutdown()

    app = FastAPI(
        title="plughost management API",
        version=__version__,
        description=(
            "Install, update, enable, disable and observe plugins (Arcade-compatible "
            "`/api/v1/plugins` endpoints plus plughost's lifecycle, config, permissions, audit "
            "and events). Authenticate with `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
        responses=_ERRORS,
        # /docs is the dashboard's (Swagger UI served from the package, no CDN); no ReDoc page,
        # which would load its script from the internet
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = state
    install_error_handlers(app)
    _include(app, probes)
    _include(app, plugins_router, API_PREFIX)
    _include(app, counts_router, API_PREFIX)
    _include(app, system_router, API_PREFIX)
    _include(app, observability_router, API_PREFIX)
    _include(app, observability_probes)
    _include(app, market_router, API_PREFIX)
    _include(app, session_router, API_PREFIX)
    if _facade_has_access_methods(service):
        from plughost.interfaces.http._routes_access import router as access_router

        _include(app, access_router, API_PREFIX)
    _mount_dashboard(app)
    _document_resources(app)

    upload_limit = settings.max_plugin_size + _MULTIPART_OVERHEAD
    default_limit = options.max_request_size

    def limit_for(method: str, path: str) -> int:
        if (method == "POST" and path == f"{API_PREFIX}/plugins/install") or (
                method == "PUT" and _UPDATE_ROUTE.match(path)):
            return upload_limit
        return default_limit

    if options.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Location"])
    app.add_middleware(ApiMiddleware, limit_for=limit_for, on_write=state.cache.bump,
                       on_finished=state.observer.api_metrics.record)
    return app


def _include(app: FastAPI, router: APIRouter, prefix: str = "") -> None:
    """Include an API router whose every route is an :class:`ApiRoute` (the caller is
    authenticated before the body is read); any other route is a mistake, refused here."""
    for route in router.routes:
        if isinstance(route, APIRoute) and not isinstance(route, ApiRoute):
            raise TypeError(
                f"the API route {route.path} must be declared on "
                "APIRouter(route_class=ApiRoute) (plughost.interfaces.http._routing), so that "
                "its caller is authenticated before its body is read")
    app.include_router(router, prefix=prefix)
    roles = operation_roles(app)
    for route in router.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            role = required_role(route.dependant)
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    roles[f"{method} {prefix}{route.path}"] = role


def _document_resources(app: FastAPI) -> None:
    """Put the resource schemas (:mod:`plughost.services.resources`: one shape per kind, the
    same in the CLI's ``--output json``) in the OpenAPI document's components, as
    ``Resource.<kind>`` and ``Resource.<kind>.page``."""
    from plughost.services.resources import SCHEMAS, page_schema

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for kind, schema in SCHEMAS.items():
                schemas[f"Resource.{kind}"] = schema
                schemas[f"Resource.{kind}.page"] = page_schema(kind)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _facade_has_access_methods(service: Any) -> bool:
    """Config and permission routes are served when the facade provides them (the facade
    gained them after the first API; a facade without them has no such routes, not 5xx)."""
    if service is None:
        from plughost.services.manager import PluginService

        service = PluginService
    return all(hasattr(service, name) for name in (
        "config", "set_config", "config_history", "restore_config", "grants", "grant",
        "revoke", "permission_requests", "decide_request"))


def _mount_dashboard(app: FastAPI) -> None:
    try:
        from plughost.interfaces.dashboard import router as dashboard_router
    except ImportError:  # pragma: no cover - the dashboard ships with the package
        return
    app.include_router(dashboard_router)


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document (what ``/openapi.json`` serves; docs/openapi.json holds a
    copy, regenerated with ``python -m plughost.interfaces.http > docs/openapi.json``)."""
    from pathlib import Path

    settings = HostSettings(home=Path("/nonexistent/plughost-openapi"))
    return create_app(None, settings).openapi()
