"""``/api/v1/plugins``: Arcade's endpoints and plughost's lifecycle additions.

Thin adapters: parse the request, call the service facade, shape the answer. No decisions about
plugins are made here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from plughost.core import wire
from plughost.core._gc import collector_paused
from plughost.errors import RequestInvalid
from plughost.interfaces.http._routing import ApiRoute
from plughost.interfaces.http._schemas import (
    ArcadeStatus,
    CursorQuery,
    HealthCheckOut,
    InstallOut,
    MetricOut,
    OnePluginQuery,
    OperationOut,
    PluginCountsOut,
    PluginDetailOut,
    PluginOut,
    PluginPage,
    ReloadOut,
    RollbackIn,
    StateName,
    UninstallOut,
    UpdateOut,
    ValidateManifestOut,
    VersionPage,
)
from plughost.interfaces.http._state import ApiState, api_state, requires
from plughost.interfaces.http._uploads import (
    normalise_upload,
    safe_filename,
    save_upload,
)
from plughost.interfaces.tokens import Principal
from plughost.services import resources
from plughost.services.sources import parse_package_url

__all__ = ["router"]

log = logging.getLogger("plughost.server")

router = APIRouter(prefix="/plugins", tags=["plugins"], route_class=ApiRoute)
counts_router = APIRouter(tags=["plugins"], route_class=ApiRoute)

PluginId = Annotated[str, PathParam(description="The plugin id.", min_length=1, max_length=64)]
AsyncFlag = Annotated[bool, Query(alias="async", description=(
    "Run in the background: answer 202 with an operation id at once; follow it at "
    "/api/v1/operations/{id} or on the event stream."))]

_PACKAGE_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["source"],
                    "properties": {
                        "source": {"type": "string", "enum": ["local", "url", "market"],
                                   "description": "Where the package comes from."},
                        "file": {"type": "string", "format": "binary",
                                 "description": "source=local: the package (zip) or plugin file."},
                        "url": {"type": "string", "description": "source=url: an https URL."},
                        "marketId": {"type": "string",
                                     "description": "source=market: the plugin id (or "
                                                    "id@range), installed with its "
                                                    "dependencies."},
                        "version": {"type": "string",
                                    "description": "source=market: a version or range."},
                        "manifest": {"type": "string",
                                     "description": "Optional manifest JSON (Arcade shape)."},
                        "sha256": {"type": "string",
                                   "description": "Optional expected SHA-256 of the package."},
                        "enable": {"type": "boolean", "default": True},
                        "activate": {"type": "boolean", "default": True},
                        "allow_unsigned": {
                            "type": "boolean", "default": False,
                            "description": "Install it even though it is not signed (for a "
                                           "plugin in development; recorded in the audit log)."},
                        "force": {"type": "boolean", "default": False,
                                  "description": "Update only: reinstall a version that is "
                                                 "already installed."},
                    },
                },
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["source"],
                    "properties": {
                        "source": {"type": "string", "enum": ["url", "market"]},
                        "url": {"type": "string"},
                        "marketId": {"type": "string"},
                        "version": {"type": "string"},
                        "sha256": {"type": "string"},
                        "enable": {"type": "boolean", "default": True},
                        "activate": {"type": "boolean", "default": True},
                        "allow_unsigned": {
                            "type": "boolean", "default": False,
                            "description": "Install it even though it is not signed (for a "
                                           "plugin in development; recorded in the audit log)."},
                        "force": {"type": "boolean", "default": False},
                    },
                },
            },
        },
    },
}


def json_bytes(data: Any, *, floats: bool = True) -> bytes:
    """``data`` as a compact UTF-8 JSON body, encoded once (the hot reads return these bytes
    instead of running the dict through their response model again: it already has the
    documented shape). The wire codec's rule: orjson when the ``fast`` extra is installed, the
    standard library otherwise, the same values either way; anything else a value holds (a
    datetime in a plugin's stats) is written as its string, as before. ``floats=False``: the
    caller knows ``data`` holds no float (:func:`plughost.core.wire.dumps_floatless`)."""
    wire.enable_fast_json()
    try:
        return wire.dumps(data) if floats else wire.dumps_floatless(data)
    except (TypeError, ValueError):  # not plain JSON data: the lenient encoder, as before
        return json.dumps(data, separators=(",", ":"), default=str).encode()


# ---------------------------------------------------------------------------- reading


# The plugin list's filters, declared once for the list and its counts. (Route parameters,
# not a dependency: a sub-dependency costs FastAPI a second resolution on every request, a
# tenth of a list page's time.)
PluginTypeQuery = Annotated[str | None, Query(
    description="Only this plugin type, e.g. notify.", max_length=200)]
ArcadeStatusQuery = Annotated[ArcadeStatus | None, Query(
    alias="status", description="Arcade status: 0 disabled, 1 enabled, 2 error.")]
StateQuery = Annotated[StateName | None, Query(description="Only this lifecycle state.")]
EnabledQuery = Annotated[bool | None, Query(description="Only enabled / disabled ones.")]
TextQuery = Annotated[str | None, Query(description="Text in id, name or description.",
                                        max_length=200)]
RuntimeQuery = Annotated[str | None, Query(
    description="Only plugins of this runtime (python, process, wasm, grpc, native).",
    max_length=64)]
SourceQuery = Annotated[str | None, Query(
    description="Only plugins installed from this source (local, url, market), or found in "
                "a development folder (directory).", max_length=64)]


def plugin_filters(pluginType: str | None, status: ArcadeStatus | None,
                   state: StateName | None, enabled: bool | None, q: str | None,
                   runtime: str | None, source: str | None) -> dict[str, Any]:
    """The list's filters as :meth:`PluginService.list_plugins` takes them."""
    return {"type": pluginType, "state": state.value if state is not None else None,
            "enabled": enabled, "q": q, "status": None if status is None else int(status),
            "runtime": runtime, "source": source}


@router.get("", summary="List installed plugins", response_model=PluginPage)
async def list_plugins(
    request: Request,
    pluginType: PluginTypeQuery = None,
    status_: ArcadeStatusQuery = None,
    state: StateQuery = None,
    enabled: EnabledQuery = None,
    q: TextQuery = None,
    runtime: RuntimeQuery = None,
    source: SourceQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: CursorQuery = None,
    _: Principal = requires("viewer"),
) -> Response:
    """Arcade's plugin list with its ``pluginType`` and ``status`` filters, plus ``state``,
    ``runtime``, ``source``, ``q`` and pagination (``limit``, ``cursor`` = the previous page's
    ``next_cursor``; ``total`` counts every match)."""
    api = api_state(request)
    service = api.service
    filters = plugin_filters(pluginType, status_, state, enabled, q, runtime, source)

    async def compute() -> bytes:
        # The page of plugin resources, built straight from the database rows (the
        # resource shape already: times in ISO UTC, Arcade names): no second pass.
        return json_bytes(await service.plugin_page(**filters, limit=limit, cursor=cursor),
                          floats=False)  # strings, ints, booleans, None

    body = await api.cache.get_or_compute(str(request.url.query), compute)
    return Response(body, media_type="application/json")


@counts_router.get("/plugin-counts", summary="Count installed plugins by type, state, runtime "
                   "and source", response_model=PluginCountsOut)
async def plugin_counts(
    request: Request,
    pluginType: PluginTypeQuery = None,
    status_: ArcadeStatusQuery = None,
    state: StateQuery = None,
    enabled: EnabledQuery = None,
    q: TextQuery = None,
    runtime: RuntimeQuery = None,
    source: SourceQuery = None,
    _: Principal = requires("viewer"),
) -> Response:
    """How many plugins the list finds with these filters (``total``), and for each of
    ``type``, ``state``, ``runtime`` and ``source`` how many plugins have each value among
    those matching every *other* filter (``by``): what a list's filter menus show beside each
    choice. Counted in the database, whatever is installed, and kept until something
    changes."""
    api = api_state(request)
    filters = plugin_filters(pluginType, status_, state, enabled, q, runtime, source)

    async def compute() -> bytes:
        return json_bytes(await api.service.plugin_counts(**filters), floats=False)

    body = await api.cache.get_or_compute("counts?" + str(request.url.query), compute)
    return Response(body, media_type="application/json")


@router.get("/metrics", summary="Per-plugin runtime metrics", response_model=list[MetricOut])
async def metrics(
    request: Request,
    plugin_id: OnePluginQuery = None,
    limit: Annotated[int | None, Query(
        ge=1, le=1000,
        description="At most this many entries, by id: a page, at the cost of the page. The "
                    "next page's address is in the `Link` header (`rel=\"next\"`), absent "
                    "after the last page. Without it, every installed plugin's entry.")] = None,
    cursor: CursorQuery = None,
    _: Principal = requires("viewer"),
) -> Response:
    """Arcade's metrics (name, type, version, path, description) with the live state and
    the call / error counters the host keeps: of every installed plugin (Arcade's list), of
    a page of them (``limit``, ``cursor``: the same list, cut), or of one."""
    service = api_state(request).service
    infos: list[Any] = []
    headers: dict[str, str] = {}
    if plugin_id is not None:
        infos.append(await service.info(plugin_id))
    elif limit is not None:
        page = await service.list_plugins(limit=limit, cursor=cursor)
        infos = list(page.items)
        if page.next_cursor is not None:
            following = request.url.include_query_params(cursor=page.next_cursor)
            headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    else:
        resources.require_limit(cursor, limit)
        after = None
        while True:  # every plugin, a page at a time
            page = await service.list_plugins(limit=1000, cursor=after)
            infos.extend(page.items)
            if (after := page.next_cursor) is None:
                break
    counters = await service.metrics(
        plugin_id, among=None if limit is None else [info.id for info in infos])

    def body() -> bytes:
        out = []
        with collector_paused():  # an entry per plugin, all kept (see core._gc)
            for info in infos:
                data = dict(counters.get(info.id, {}))
                out.append({
                    **data, "id": info.id, "name": info.name, "type": info.type,
                    "version": info.version, "path": data.get("path"),
                    "runtime": data.get("runtime", info.runtime),
                    "description": info.description, "state": data.get("state", info.state),
                })
            # The response model's own JSON (an infinite bucket bound as null), encoded in a
            # worker thread: every installed plugin's entry is megabytes at 10,000.
            return _METRICS.dump_json(_METRICS.validate_python(out))

    return Response(await asyncio.to_thread(body), media_type="application/json",
                    headers=headers)


_METRICS: TypeAdapter[list[MetricOut]] = TypeAdapter(list[MetricOut])


@router.post("/validate-manifest", summary="Validate a plugin manifest",
             response_model=ValidateManifestOut)
async def validate_manifest(
    manifest: Annotated[dict[str, Any], Body(
        description="A manifest as JSON: native keys or Arcade's (name, pluginType, "
                    "entryPoint, configSchema, ...).",
        examples=[{"name": "slack-notify", "version": "1.0.0", "pluginType": "notify",
                   "entryPoint": "slack:SlackNotifier"}])],
    request: Request,
    _: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Check a manifest without installing anything, as install would: ``valid``, every
    problem with its path and code (the manifest, permission scopes, host-version
    compatibility, dependencies, runtime), and the normalised manifest when valid."""
    return (await api_state(request).service.check_manifest(manifest)).to_dict()


@router.get("/{plugin_id}", summary="Plugin details", response_model=PluginDetailOut)
async def get_plugin(request: Request, plugin_id: PluginId,
                     _: Principal = requires("viewer")) -> Response:
    """Everything about one plugin: manifest, path, versions, dependencies and dependents,
    configuration (secrets redacted), granted permissions, counters."""
    return _detail_response(await api_state(request).service.get(plugin_id))


def _detail_response(detail: Any) -> Response:
    # Encoded once, as the list is: the dict is already the documented shape, so running it
    # through the response model again would only cost time.
    return Response(json_bytes(detail.to_dict()), media_type="application/json")


@router.get("/{plugin_id}/versions", summary="Kept versions of a plugin",
            response_model=VersionPage)
async def versions(request: Request, plugin_id: PluginId,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   cursor: CursorQuery = None,
                   _: Principal = requires("viewer")) -> dict[str, Any]:
    """Installed versions kept for rollback, newest install first."""
    found = await api_state(request).service.versions(plugin_id)
    offset = resources.offset_of(cursor)
    items = [resources.version(v.to_dict()) for v in found[offset:offset + limit]]
    return resources.offset_page(items, offset, total=len(found))


@router.get("/{plugin_id}/info", summary="Plugin details (alternative path)",
            response_model=PluginDetailOut)
async def get_plugin_info(request: Request, plugin_id: PluginId,
                          _: Principal = requires("viewer")) -> Response:
    """The same as ``GET /plugins/{id}``, under the path other plugin managers use."""
    return _detail_response(await api_state(request).service.get(plugin_id))


@router.get("/{plugin_id}/health", summary="Ask a plugin whether it is healthy",
            response_model=HealthCheckOut)
async def health(request: Request, plugin_id: PluginId,
                 _: Principal = requires("viewer")) -> dict[str, Any]:
    """The plugin's own health check: calls the plugin's ``health()`` when it is active; a plugin
    that is not active is reported unhealthy with its state."""
    return (await api_state(request).service.health(plugin_id)).to_dict()


# ---------------------------------------------------------------------------- lifecycle


@router.post("/{plugin_id}/enable", summary="Enable a plugin", response_model=PluginOut)
async def enable(request: Request, plugin_id: PluginId,
                 who: Principal = requires("operator")) -> dict[str, Any]:
    """Persistently enable the plugin and activate it now."""
    info = await api_state(request).service.enable(plugin_id, actor=who.actor)
    log.info("enabled plugin: %s", plugin_id)
    return info.to_dict()


@router.post("/{plugin_id}/disable", summary="Disable a plugin", response_model=PluginOut)
async def disable(request: Request, plugin_id: PluginId,
                  who: Principal = requires("operator")) -> dict[str, Any]:
    """Deactivate and unload the plugin and keep it from loading at start; its files and
    configuration stay."""
    info = await api_state(request).service.disable(plugin_id, actor=who.actor)
    log.info("disabled plugin: %s", plugin_id)
    return info.to_dict()


@router.post("/{plugin_id}/activate", summary="Activate a plugin now", response_model=PluginOut)
async def activate(request: Request, plugin_id: PluginId,
                   _: Principal = requires("operator")) -> dict[str, Any]:
    """Activate an enabled plugin now (its dependencies first)."""
    info = await api_state(request).service.activate(plugin_id)
    return info.to_dict()


@router.post("/{plugin_id}/start", summary="Start a plugin (= activate)",
             response_model=PluginOut)
async def start(request: Request, plugin_id: PluginId,
                _: Principal = requires("operator")) -> dict[str, Any]:
    """Start: activate the plugin now."""
    info = await api_state(request).service.activate(plugin_id)
    return info.to_dict()


@router.post("/{plugin_id}/stop", summary="Stop a plugin (= deactivate)",
             response_model=PluginOut)
async def stop(request: Request, plugin_id: PluginId,
               _: Principal = requires("operator")) -> dict[str, Any]:
    """Stop: deactivate the plugin (it stays enabled)."""
    info = await api_state(request).service.deactivate(plugin_id)
    return info.to_dict()


@router.post("/{plugin_id}/deactivate", summary="Deactivate a plugin",
             response_model=PluginOut)
async def deactivate(
    request: Request, plugin_id: PluginId,
    cascade: Annotated[bool, Query(description="Also deactivate the active plugins that "
                                               "need it.")] = False,
    _: Principal = requires("operator"),
) -> dict[str, Any]:
    """Deactivate a running plugin; it stays enabled and starts again at the next start."""
    info = await api_state(request).service.deactivate(plugin_id, cascade=cascade)
    return info.to_dict()


@router.post("/{plugin_id}/rollback", summary="Roll back to a kept version",
             response_model=UpdateOut)
async def rollback(request: Request, plugin_id: PluginId,
                   body: Annotated[RollbackIn | None, Body()] = None,
                   who: Principal = requires("admin")) -> dict[str, Any]:
    """Switch back to a kept version (``to``, or the previous one), handing state over; for a
    development plugin, ``build`` reloads one of its kept good builds."""
    if body is not None and body.build is not None:
        reloaded = await api_state(request).service.rollback_build(
            plugin_id, None if body.build == "previous" else body.build, actor=who.actor)
        return {"plugin_id": plugin_id, "from_version": reloaded.from_version,
                "to_version": reloaded.to_version, "state": reloaded.state, "pruned": [],
                "timings": {"reload": reloaded.seconds},
                "message": f"reloaded {plugin_id} build {body.build}"}
    result = await api_state(request).service.rollback(
        plugin_id, body.to if body else None, actor=who.actor)
    data: dict[str, Any] = result.to_dict()
    data["message"] = f"rolled back {plugin_id} to {data['to_version']}"
    return data


@router.post("/{plugin_id}/reload", summary="Hot reload a plugin", response_model=ReloadOut)
async def reload(request: Request, plugin_id: PluginId,
                 who: Principal = requires("operator")) -> dict[str, Any]:
    """Reload the plugin from its files (a development folder: as a save would) without
    dropping a call: the new code is loaded beside the running one, state is handed over,
    and any failure leaves the running version serving (the error says why)."""
    result = await api_state(request).service.reload(plugin_id, actor=who.actor)
    data: dict[str, Any] = result.to_dict()
    data.pop("error", None)
    data["message"] = (f"reloaded {plugin_id} {data['from_version']} -> "
                       f"{data['to_version']} in {result.seconds * 1000:.0f} ms")
    return data


@router.delete("/{plugin_id}", summary="Uninstall a plugin", response_model=UninstallOut)
async def uninstall(
    request: Request, plugin_id: PluginId,
    cascade: Annotated[bool, Query(description="Also uninstall the plugins that require it "
                                               "(dependents first).")] = False,
    keep_data: Annotated[bool, Query(description="Keep the plugin's private data "
                                                 "directory.")] = False,
    who: Principal = requires("admin"),
) -> dict[str, Any]:
    """Unload the plugin and remove its files, stored packages, records and configuration
    (as Arcade does). Refused while enabled plugins require it, unless ``cascade``."""
    result = await api_state(request).service.uninstall(plugin_id, cascade=cascade,
                                                        keep_data=keep_data, actor=who.actor)
    log.info("uninstalled plugin: %s", ", ".join(result.removed))
    data: dict[str, Any] = result.to_dict()
    data["message"] = f"uninstalled {', '.join(result.removed)}"
    return data


# ---------------------------------------------------------------------------- packages


@dataclass(slots=True)
class _PackageRequest:
    source: str
    location: str | Path
    sha256: str | None
    enable: bool
    activate: bool
    workdir: Path | None
    allow_unsigned: bool = False
    force: bool = False

    def cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise RequestInvalid(f"{name} must be true or false, got {value!r}", details={"field": name})


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, UploadFile) or not isinstance(value, str):
        raise RequestInvalid(f"{name} must be a text field, not a file",
                             details={"field": name})
    return value.strip() or None


async def _read_package_request(request: Request, api: ApiState) -> _PackageRequest:
    """Parse install/update input: multipart (Arcade's form) or JSON (url / market sources)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise RequestInvalid("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise RequestInvalid("the JSON body must be an object with a 'source' field")
        return await _package_from_fields(api, data, None)
    if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise RequestInvalid(
            "send the package as multipart/form-data (curl -F source=local -F file=@pkg.zip), "
            "or JSON {\"source\": \"url\", \"url\": ...}",
            details={"content_type": ctype or None})
    try:
        form = await request.form(max_files=1, max_fields=16, max_part_size=1024 * 1024)
    except StarletteHTTPException as exc:  # starlette's answer to a malformed multipart body
        raise RequestInvalid(f"the multipart body cannot be read: {exc.detail}") from None
    try:
        fields = {k: v for k, v in form.multi_items()}
        return await _package_from_fields(api, fields, fields.get("file"))
    finally:
        await form.close()


async def _package_from_fields(api: ApiState, fields: dict[str, Any],
                               file: Any) -> _PackageRequest:
    source = _text(fields.get("source"), "source")
    sha256 = _text(fields.get("sha256"), "sha256")
    enable = _flag(fields.get("enable"), "enable", True)
    activate_ = _flag(fields.get("activate"), "activate", True)
    allow_unsigned = _flag(fields.get("allow_unsigned"), "allow_unsigned", False)
    force = _flag(fields.get("force"), "force", False)
    manifest = _text(fields.get("manifest"), "manifest")
    if source is None:
        raise RequestInvalid("the field 'source' is required: local (with file), url (with "
                             "url) or market (with marketId)", details={"field": "source"})
    if source == "market":
        market_id = _text(fields.get("marketId"), "marketId")
        version = _text(fields.get("version"), "version")
        if market_id is None:
            raise RequestInvalid("source=market needs the field 'marketId' (the plugin id, "
                                 "or id@range)", details={"field": "marketId"})
        if not api.settings.enable_market:
            from plughost.services.market.service import market_disabled

            raise market_disabled()  # what /market/search answers, same code and words
        if not await asyncio.to_thread(_has_markets, api):
            raise RequestInvalid(
                "no marketplace is configured on this server, so source=market cannot "
                f"install {market_id}; add one (`plughost market add NAME URL --root "
                "root.json`), upload the package (source=local) or give its URL (source=url)",
                code="marketplace.unavailable", details={"marketId": market_id})
        request_text = f"{market_id}@{version}" if version and "@" not in market_id \
            else market_id
        from plughost.services.market.plan import parse_request

        parse_request(request_text)  # refuse a malformed request now, not in the background
        return _PackageRequest("market", request_text, sha256, enable, activate_, None)
    if source == "url":
        url = _text(fields.get("url"), "url")
        if url is None:
            raise RequestInvalid("source=url needs the field 'url' (an https URL of the "
                                 "package)", details={"field": "url"})
        if manifest is not None:
            raise RequestInvalid("a manifest part is only accepted with source=local",
                                 details={"field": "manifest"})
        # refuse a malformed URL now, not from a background operation (http:// is judged by
        # the fetch policy when the download starts)
        parse_package_url(url, allow_http=True)
        return _PackageRequest("url", url, sha256, enable, activate_, None, allow_unsigned,
                               force)
    if source != "local":
        raise RequestInvalid(f"unknown source {source!r}; use local, url or market",
                             details={"field": "source"})
    if not isinstance(file, UploadFile):
        raise RequestInvalid("source=local needs the package as the file part 'file' "
                             "(curl -F file=@plugin.zip)", details={"field": "file"})
    workdir = await asyncio.to_thread(api.service.installer.new_workdir)  # owned by us
    try:
        (workdir / "upload").mkdir()
        dest = workdir / "upload" / safe_filename(file.filename)
        size = await asyncio.to_thread(save_upload, file.file, dest)
        if size == 0:
            raise RequestInvalid("the uploaded file is empty", details={"field": "file"})
        dest = await asyncio.to_thread(normalise_upload, dest, manifest,
                                       api.service.installer.archive_limits)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return _PackageRequest("local", dest, sha256, enable, activate_, workdir, allow_unsigned,
                           force)


def _has_markets(api: ApiState) -> bool:
    from plughost.services.market.client import MarketClient

    return bool(MarketClient(api.settings.home).sources())


def _accepted(op: dict[str, Any]) -> JSONResponse:
    return JSONResponse(op, status_code=202,
                        headers={"Location": f"/api/v1/operations/{op['id']}"})


_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": OperationOut, "description": "Accepted (?async=true)."}}


@router.post("/install", summary="Install a plugin", response_model=InstallOut,
             status_code=status.HTTP_201_CREATED, openapi_extra=_PACKAGE_FORM,
             responses=_ACCEPTED)
async def install(request: Request, async_: AsyncFlag = False,
                  who: Principal = requires("admin")) -> Any:
    """Arcade's install: ``source=local`` with ``file`` (and optionally Arcade's
    ``manifest`` part), ``source=url`` with ``url``, ``source=market`` with ``marketId``.
    Checked, stored and activated atomically; nothing changes when it is refused."""
    api = api_state(request)
    pkg = await _read_package_request(request, api)
    log.info("installing plugin from source: %s", pkg.source)

    async def work(progress: Any = None) -> Any:
        try:
            if pkg.source == "market":
                from plughost.interfaces.http._routes_market import market_of

                done = await market_of(api).install(str(pkg.location), actor=who.actor,
                                                    activate=pkg.activate)
                result = done.installed[-1]
            else:
                result = await api.service.install(
                    pkg.location, sha256=pkg.sha256, enable=pkg.enable,
                    activate=pkg.activate, progress=progress, actor=who.actor,
                    allow_unsigned=pkg.allow_unsigned)
        finally:
            await asyncio.to_thread(pkg.cleanup)
        # Arcade's log lines, from what the install did
        log.info("saved to local cache: %s", result.cache_path)
        log.info("uploaded to storage: %s", result.object_key)
        if result.state == "active":
            log.info("hot reloaded plugin: %s", result.plugin_id)
        log.info("plugin installed successfully: %s (v%s)", result.plugin_id, result.version)
        return result

    if async_:
        op = await api.runner.start("install", work, actor=who.actor,
                                    message=f"install from {pkg.source}")
        return _accepted(op)
    result = await work()
    data: dict[str, Any] = result.to_dict()
    data["pluginId"] = data["plugin_id"]
    data["message"] = f"plugin installed successfully: {result.plugin_id} (v{result.version})"
    return data


@router.put("/{plugin_id}", summary="Update a plugin to a new package",
            response_model=UpdateOut, openapi_extra=_PACKAGE_FORM, responses=_ACCEPTED)
async def update(request: Request, plugin_id: PluginId, async_: AsyncFlag = False,
                 who: Principal = requires("admin")) -> Any:
    """Arcade's update: the new package as in install. The new version is started beside
    the old one and swapped in only when healthy; otherwise the old one keeps running."""
    api = api_state(request)
    # Fail fast (before a long upload is kept) when the plugin is not installed.
    await api.service.versions(plugin_id)
    pkg = await _read_package_request(request, api)
    log.info("updating plugin %s from source: %s", plugin_id, pkg.source)

    async def work(progress: Any = None) -> Any:
        try:
            if pkg.source == "market":
                from plughost.interfaces.http._routes_market import market_of

                result = await market_of(api).update(plugin_id, actor=who.actor)
            else:
                result = await api.service.update(plugin_id, pkg.location, sha256=pkg.sha256,
                                                  progress=progress, actor=who.actor,
                                                  force=pkg.force,
                                                  allow_unsigned=pkg.allow_unsigned)
        finally:
            await asyncio.to_thread(pkg.cleanup)
        log.info("plugin updated successfully: %s (v%s -> v%s)", plugin_id,
                 result.from_version, result.to_version)
        return result

    if async_:
        op = await api.runner.start("update", work, plugin_id=plugin_id, actor=who.actor,
                                    message=f"update from {pkg.source}")
        return _accepted(op)
    result = await work()
    data: dict[str, Any] = result.to_dict()
    data["message"] = (f"plugin updated successfully: {plugin_id} "
                       f"(v{result.from_version} -> v{result.to_version})")
    return data


