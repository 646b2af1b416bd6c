"""The operator's dashboard served at ``/``, and the API reference at ``/docs``.

Plain HTML, CSS and vanilla JavaScript files from this package, no build step. Every file the
browser loads comes from here (``/dashboard/<file>``), including the vendored Swagger UI and
uPlot (``vendor/``, with their licences): no page needs the internet. docs/dashboard.md
describes the pages.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import PurePosixPath

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from plughost.errors import RecordNotFound

__all__ = ["ASSET_PREFIX", "asset_names", "router"]

router = APIRouter(include_in_schema=False)

#: Where the dashboard's files are served.
ASSET_PREFIX = "/dashboard/"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
#: The dashboard page runs only its own files: no inline script, nothing from elsewhere.
_PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@cache
def asset_names() -> frozenset[str]:
    """The files the dashboard serves (relative POSIX paths): every file of this package
    with a served suffix. Anything else — including ``..`` paths — is simply not found."""
    root = resources.files(__name__)
    found: set[str] = set()
    pending = [(root, PurePosixPath())]
    while pending:
        folder, rel = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append((entry, rel / entry.name))
            elif PurePosixPath(entry.name).suffix in _TYPES:
                found.add(str(rel / entry.name))
    return frozenset(found)


@cache
def _read(name: str) -> tuple[bytes, str]:
    data = resources.files(__name__).joinpath(*name.split("/")).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


def _served(request: Request, name: str, media_type: str, **headers: str) -> Response:
    data, etag = _read(name)
    common = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
              **headers}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=common)
    return Response(data, media_type=media_type, headers=common)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> Response:
    """The dashboard page."""
    return _served(request, "index.html", "text/html; charset=utf-8",
                   **{"Content-Security-Policy": _PAGE_POLICY, "Referrer-Policy": "no-referrer"})


@router.get(ASSET_PREFIX + "{name:path}")
async def asset(request: Request, name: str) -> Response:
    """One of the dashboard's files (scripts, styles, vendored libraries)."""
    if name not in asset_names():
        raise RecordNotFound(f"the dashboard has no file {name!r}", code="request.not_found",
                             details={"file": name})
    return _served(request, name, _TYPES[PurePosixPath(name).suffix])


@router.get("/docs", response_class=HTMLResponse)
async def docs() -> HTMLResponse:
    """The API reference (Swagger UI, served from this package)."""
    vendor = ASSET_PREFIX + "vendor/swagger-ui/"
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="plughost management API",
        swagger_js_url=vendor + "swagger-ui-bundle.js",
        swagger_css_url=vendor + "swagger-ui.css",
        swagger_favicon_url=vendor + "favicon-32x32.png")
