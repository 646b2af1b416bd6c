"""``GET /api/v1/whoami``: who the caller is, and which operations their role may call.

A client (the dashboard) shows only the actions the caller may take, without a table of its
own: the role each operation needs is the one its route declares (``requires(...)``), read
here from the app's routes. The answer is 200 without a token too — then it says whether the
server needs one — so a client can ask before it has signed in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from plughost.errors import AuthenticationRequired
from plughost.interfaces.http._routing import ApiRoute
from plughost.interfaces.http._schemas import WhoAmIOut
from plughost.interfaces.http._state import api_state
from plughost.interfaces.tokens import ROLES, role_allows

__all__ = ["operation_roles", "router"]

router = APIRouter(route_class=ApiRoute, tags=["session"])

_ROLES_KEY = "plughost_operation_roles"


def operation_roles(app: FastAPI) -> dict[str, str | None]:
    """``"METHOD /path"`` of every API operation -> the role it needs (None: no token);
    filled by ``create_app`` as it includes each API router."""
    roles: dict[str, str | None] | None = getattr(app.state, _ROLES_KEY, None)
    if roles is None:
        roles = {}
        setattr(app.state, _ROLES_KEY, roles)
    return roles


@router.get("/whoami", summary="Who is calling, and what they may do", response_model=WhoAmIOut)
async def whoami(request: Request) -> dict[str, Any]:
    """The caller's token name and role, and the operations (``"METHOD /path"``) that role may
    call. Without a token: ``signed_in`` is false and ``token_required`` says whether the
    server needs one (an open local server lets requests without a token act as admin).
    A token that is unknown, revoked or expired is refused (401)."""
    api = api_state(request)
    try:
        principal = await asyncio.to_thread(api.authenticate, request, "viewer")
    except AuthenticationRequired:
        if request.headers.get("authorization"):
            raise
        return {"signed_in": False, "token_required": True, "name": None, "role": None,
                "roles": list(ROLES), "operations": _operations(request, None)}
    return {"signed_in": not principal.anonymous, "token_required": not principal.anonymous,
            "name": None if principal.anonymous else principal.name, "role": principal.role,
            "roles": list(ROLES), "operations": _operations(request, principal.role)}


def _operations(request: Request, role: str | None) -> list[str]:
    off = _switched_off(request)
    return sorted(op for op, needed in operation_roles(request.app).items()
                  if (needed is None or (role is not None and role_allows(role, needed)))
                  and not any(op.split(" ", 1)[1].startswith(prefix) for prefix in off))


def _switched_off(request: Request) -> tuple[str, ...]:
    """Path prefixes of the operations this server's settings switch off (they answer a
    refusal whatever the role): the marketplace's with ``enable_market = false``."""
    from plughost.interfaces.http.app import API_PREFIX  # the app includes this router

    return () if api_state(request).settings.enable_market else (f"{API_PREFIX}/market/",)
