"""One pure-ASGI middleware for every request: request id, body size limit, access log.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed uploads stay streamed and the hot path costs
a few attribute lookups. The size limit is enforced twice, both times with a 413
``request.too_large``: a declared ``Content-Length`` over the limit is refused before the body
is read, and a body that turns out larger while streaming (chunked, or lying about its length)
is cut off at the limit — the 413 is sent from here at once, and the route, which sees
:class:`~plughost.errors.RequestTooLarge` from its next read, is abandoned (whatever parser was
reading the body cannot turn the overflow into a 400 or a 500).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from plughost.core.correlation import correlation_id
from plughost.errors import RequestTooLarge
from plughost.interfaces.http._errors import error_body

__all__ = ["ACCESS_LOGGER", "ApiMiddleware"]

ACCESS_LOGGER = "plughost.access"
access_log = logging.getLogger(ACCESS_LOGGER)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiMiddleware:
    """Request ids (``X-Request-ID``, echoed or generated), size limits, JSON access log lines.

    :param limit_for: returns the largest body accepted for ``(method, path)`` in bytes.
    """

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str, str], int],
                 on_write: Callable[[], None] | None = None,
                 on_finished: Callable[[str, str, int, float], None] | None = None) -> None:
        self.app = app
        self.limit_for = limit_for
        self.on_write = on_write
        #: ``(method, route template, status, seconds)`` of every request (metrics).
        self.on_finished = on_finished

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        request_id = ""
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if not request_id:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder = [500]
        rid_header = (b"x-request-id", request_id.encode("latin-1"))
        response_started = False  # not `started`: that is the request's clock
        refused = False  # a streamed body overflowed: the 413 is sent, the app is ignored

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        async def refuse() -> None:
            nonlocal refused
            if not response_started:
                await _too_large(send_wrapper, limit, None)
                refused = True

        limit = self.limit_for(method, path)
        correlation = correlation_id.set(request_id)  # plugin logs of this request carry it
        try:
            if length is not None and length > limit:
                await _too_large(send_wrapper, limit, length)
            else:
                await self.app(scope, _limited(receive, limit, refuse), send_wrapper)
        except Exception:
            if not refused:
                raise
            # the app failed on the body it could not finish reading: already answered 413
        finally:
            correlation_id.reset(correlation)
            if self.on_write is not None and method not in ("GET", "HEAD", "OPTIONS"):
                self.on_write()  # a change through the API: cached reads are stale
            if self.on_finished is not None:
                self.on_finished(method, route_template(scope), status_holder[0],
                                 time.perf_counter() - started)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(json.dumps({
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "method": method,
                    "path": path,
                    "status": status_holder[0],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                    "request_id": request_id,
                }))


def route_template(scope: Scope) -> str:
    """The matched route as a template (``/api/v1/plugins/{plugin_id}``), ``unmatched`` when
    no route matched: a metrics label that stays bounded whatever paths clients send."""
    if scope.get("route") is None:
        return "unmatched"
    segments = str(scope.get("path", "")).split("/")
    for name, value in (scope.get("path_params") or {}).items():
        for i in range(len(segments) - 1, -1, -1):
            if segments[i] == str(value):
                segments[i] = "{" + name + "}"
                break
    return "/".join(segments)


def _limited(receive: Receive, limit: int,
             on_overflow: Callable[[], Awaitable[None]]) -> Receive:
    seen = 0

    async def limited_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                await on_overflow()
                raise RequestTooLarge(
                    f"the request body is larger than {limit} bytes, the limit for this route "
                    "(packages: the max_plugin_size setting); send a smaller package or raise "
                    "the limit", details={"limit": limit})
        return message

    return limited_receive


async def _too_large(send: Send, limit: int, length: int | None) -> None:
    size = f" ({length} bytes)" if length is not None else ""
    details: dict[str, Any] = {"limit": limit}
    if length is not None:
        details["content_length"] = length
    body = json.dumps(error_body(
        "request.too_large",
        f"the request body{size} is larger than {limit} bytes, the limit for this "
        "route (packages: the max_plugin_size setting); send a smaller package or raise the "
        "limit",
        details,
    )).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
