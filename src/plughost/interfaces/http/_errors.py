"""Errors as JSON: ``{"error": {"code", "message", "hint", "plugin_id", "details"}}`` (the one
shape, :func:`plughost.services.resources.error`) with the status the code means.

Statuses come from the error's stable ``code`` (exact match, then its prefix before the first
dot), so new error classes in lower layers get a sensible status without this table knowing
their classes. Bad input is always a 4xx: only an unexpected exception (a bug) is a 500, and
even then the body has the same envelope and no traceback. A dependency outage (the database
or the object store cannot be reached) is a 503 with ``Retry-After``: the same request can
succeed once it is back, without restarting anything.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plughost.errors import PlughostError
from plughost.services import resources

__all__ = ["RETRY_AFTER_SECONDS", "error_body", "install_error_handlers", "status_for"]

log = logging.getLogger(__name__)

#: ``Retry-After`` of a 503 (a dependency outage, the service starting or stopping).
RETRY_AFTER_SECONDS = 5

#: Exact codes whose status differs from their prefix's.
_EXACT: dict[str, int] = {
    "auth.forbidden": 403,
    "request.too_large": 413,
    "install.too_large": 413,
    "download.too_large": 413,
    "storage.object_too_large": 413,
    "storage.not_found": 404,
    "storage.object_missing": 404,
    "storage.exists": 409,
    "storage.conflict": 409,
    "storage.lock_timeout": 409,
    "storage.invalid": 400,
    "storage.key_invalid": 400,
    "install.exists": 409,
    "install.same_version": 409,
    "install.dependent": 409,
    "install.conflict": 409,
    "install.not_kept": 404,
    "install.source": 400,
    "install.wrong_plugin": 409,
    "plugin.not_found": 404,
    "plugin.unavailable": 409,
    "plugin.timeout": 504,
    "operation.not_found": 404,
    "token.not_found": 404,
    "service.closed": 503,
    "service.starting": 503,
    "alert.rule_readonly": 409,
    "service.no_services": 409,
    "marketplace.unavailable": 400,
    "market.not_found": 404,
    "market.unreachable": 502,
    "market.disabled": 409,
    "market.invalid": 400,
    "config.version": 404,
    "config.conflict": 409,
    "config.rejected": 409,
    "permission.scope": 400,
    "extra.missing": 501,
    "storage.database_unavailable": 503,
    "storage.object_store_unavailable": 503,
}
#: Status by the code's first segment.
_PREFIX: dict[str, int] = {
    "request": 400,
    "auth": 401,
    "permission": 403,
    "manifest": 422,
    "config": 422,
    "version": 400,
    "range": 400,
    "settings": 400,
    "lifecycle": 409,
    "resolve": 409,
    "operation": 409,
    "install": 422,
    "download": 422,
    "archive": 422,
    "package": 422,
    "signature": 422,
    "integrity": 422,
    "trust": 409,
    "key": 409,
    "plugin": 422,
    "storage": 503,
    "command": 422,
    "market": 422,
}


def status_for(error: PlughostError) -> int:
    """The HTTP status for ``error`` (see the module doc). Unknown codes are 400."""
    code = error.code
    if code in _EXACT:
        return _EXACT[code]
    if code.endswith(".not_found"):
        return 404
    return _PREFIX.get(code.split(".", 1)[0], 400)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error envelope (the one shape: :func:`plughost.services.resources.error`)."""
    return resources.error({"code": code, "message": message, "details": details or {}})


def _plughost_body(error: PlughostError) -> dict[str, Any]:
    return resources.error(error)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where, rest = parts[0], parts[1:]
        return f"{where} {'.'.join(rest)}" if rest else where
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error response the envelope."""

    async def plughost_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PlughostError)
        status = status_for(exc)
        headers: dict[str, str] | None = None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        elif status == 503:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return JSONResponse(_plughost_body(exc), status_code=status, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"location": _location(e.get("loc", ())), "message": e.get("msg", ""),
             "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{p['location']}: {p['message']}" for p in problems[:5])
        return JSONResponse(
            error_body("request.invalid", f"the request is not valid: {summary}",
                       {"problems": problems}),
            status_code=422,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "request.not_found", 405: "request.method"}.get(
            exc.status_code, "request.error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"there is no such API route: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(error_body(code, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("server.error", "the server failed unexpectedly; the error is in its log",
                       {"type": type(exc).__name__}),
            status_code=500,
        )

    app.add_exception_handler(PlughostError, plughost_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
