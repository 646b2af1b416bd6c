"""The route class every API route uses: who is calling is settled before the body is read.

FastAPI reads and parses a route's body before it solves the route's dependencies, so a
malformed body would be answered 422 to a caller without a token, and a body nested thousands
of levels deep would reach the parser (and whatever walks the result) before anyone checked the
caller. :class:`ApiRoute` wraps each route's handler so that, in this order:

1. the caller is authenticated and their role checked (the role a route needs is the one its
   :func:`~plughost.interfaces.http._state.requires` dependency names) — 401/403 come first;
2. a JSON body is parsed once, and refused (400 ``request.invalid``) when it nests deeper
   than :data:`MAX_JSON_DEPTH`; the parsed value is what the route then sees;
3. the route runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from plughost.errors import RequestInvalid
from plughost.interfaces.http._state import ROLE_ATTRIBUTE, authenticate_request

__all__ = ["MAX_JSON_DEPTH", "ROLE_ATTRIBUTE", "ApiRoute", "json_depth", "required_role"]

#: Deepest JSON nesting accepted in a request body (objects and arrays). Manifests, config
#: values and command arguments need a handful of levels; the limit keeps every recursive
#: walk over request data (validation, storage, responses) far from Python's recursion limit.
MAX_JSON_DEPTH = 64

_JSON_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``value`` nests lists and dicts (a scalar is 0); stops counting past
    ``limit`` (returns ``limit + 1``). Iterative: any depth is measured without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def required_role(dependant: Dependant) -> str | None:
    """The role a route needs (named by its ``requires`` dependency); None: no token needed."""
    pending = list(dependant.dependencies)
    while pending:
        dep = pending.pop()
        role = getattr(dep.call, ROLE_ATTRIBUTE, None)
        if isinstance(role, str):
            return role
        pending.extend(dep.dependencies)
    return None


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or (ctype.startswith("application/")
                                           and ctype.endswith("+json"))


async def parse_json_body(request: Request) -> None:
    """Parse the request's JSON body once (cached on the request for the route), refusing
    one nested deeper than :data:`MAX_JSON_DEPTH`. Malformed JSON is left to the route's own
    parsing, which names the position of the error."""
    body = await request.body()
    if not body:
        return
    try:
        value = json.loads(body)
    except RecursionError:
        value = None
        depth = MAX_JSON_DEPTH + 1
    except ValueError:
        return
    else:
        depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise RequestInvalid(
            f"the JSON body nests more than {MAX_JSON_DEPTH} levels of objects and arrays; "
            "send a flatter document", details={"max_depth": MAX_JSON_DEPTH})
    request._json = value  # starlette's cache of request.json(): parsed once


class ApiRoute(APIRoute):
    """An API route whose caller is authenticated before its body is read (module doc)."""

    def get_route_handler(self) -> Handler:
        inner = super().get_route_handler()
        role = required_role(self.dependant)
        reads_json = self.body_field is not None or "requestBody" in (self.openapi_extra or {})

        async def handler(request: Request) -> Response:
            if role is not None:
                authenticate_request(request, role)
            if reads_json and request.method in _JSON_METHODS and _is_json(request):
                await parse_json_body(request)
            return await inner(request)

        return handler
