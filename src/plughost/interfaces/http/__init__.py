"""The management HTTP API (FastAPI): ``create_app(service, settings)``. Needs the ``server``
extra. See docs/api.md."""

from __future__ import annotations

from plughost.interfaces.http._state import ApiOptions
from plughost.interfaces.http.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "ApiOptions", "create_app"]
