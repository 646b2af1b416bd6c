"""The minimal web dashboard served at ``/``: plugins with their state, enable/disable buttons
calling the API, and the live event stream. Plain HTML + vanilla JS, no build step."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _asset(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    """The dashboard page."""
    return HTMLResponse(_asset("index.html"))


@router.get("/dashboard/app.js")
async def script() -> Response:
    """The dashboard's script."""
    return Response(_asset("app.js"), media_type="text/javascript")
