"""``ctx.http``: outbound HTTP for plugins, built on httpx, with no SSRF.

For every request *and every redirect hop*:

1. request interceptors run (they may rewrite the request), then
2. the scheme must be ``http``/``https`` and ``host:port`` must match a ``net:`` grant (deny
   rules win; numeric IP spellings such as ``2130706433`` are canonicalised first);
3. the host name is resolved and **every** address checked: loopback, private, link-local
   (``169.254.169.254`` metadata), shared, reserved, multicast and unspecified addresses — also
   when written as IPv4-mapped IPv6, 6to4 or NAT64 — are refused unless a grant names that exact
   address (``net:127.0.0.1:8080``) or, for loopback, ``localhost``, *and the port* (a grant
   without a port opens only the scheme's default port there; see
   :func:`~plughost.security.addresses.allowance_opens`);
4. plain-HTTP connections go to the address that was checked (the URL host is pinned to it, the
   ``Host`` header keeps the name), so DNS cannot change the answer between check and use; for
   HTTPS, certificate verification of the name is the guard.

Transport errors and 502/503/504 on idempotent methods are retried with exponential backoff.

Response bodies are read as a stream, never whole: at most ``max_response_size`` bytes (the
operator's :class:`HttpOptions` cap, 16 MiB by default; a request may ask for less, never more)
are accepted, also through :meth:`HttpService.stream`. ``Accept-Encoding: identity`` is sent
unless the plugin asks otherwise, and any ``Content-Encoding`` is decoded by
:class:`~plughost.security.archive.Inflater` under the host's archive limits (size and
compression ratio), never by httpx: a gzip bomb is stopped after about a megabyte of output.
Denials are audited by the :class:`~plughost.security.permissions.PermissionManager`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from plughost.errors import ArchiveError, ExtraNotInstalled, HttpServiceError
from plughost.security.addresses import (
    IPAddress,
    allowance_opens,
    is_public_address,
    unwrap,
)
from plughost.security.archive import DEFAULT_LIMITS, ArchiveLimits, Inflater
from plughost.security.permissions import PermissionManager
from plughost.security.scopes import Scope, canonical_host

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ExtraNotInstalled("ctx.http", "http", "httpx") from exc

__all__ = ["HttpOptions", "HttpService", "is_public_address"]

RequestInterceptor = Callable[
    [httpx.Request], "httpx.Request | Awaitable[httpx.Request | None] | None"
]
ResponseInterceptor = Callable[
    [httpx.Response], "httpx.Response | Awaitable[httpx.Response | None] | None"
]
Resolver = Callable[[str, int], Awaitable[list[str]]]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MiB: Final = 1024 * 1024
#: ArchiveError codes of the decoder -> the HttpServiceError code a plugin sees.
_BODY_CODES: Final = {
    "archive.too_large": "http.too_large",
    "archive.ratio": "http.ratio",
    "archive.unsupported": "http.encoding",
}


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Defaults for one plugin's HTTP client.

    :ivar timeout: seconds for connect/read/write/pool, per attempt.
    :ivar retries: extra attempts after a transport error or a retryable status.
    :ivar backoff: first retry delay in seconds; doubles each attempt, capped at ``max_backoff``.
    :ivar max_redirects: hops followed before giving up.
    :ivar retry_statuses: statuses retried for idempotent methods.
    :ivar user_agent: the ``User-Agent`` sent unless the plugin sets one.
    :ivar max_response_size: the operator's cap on one response body in bytes (after decoding
        any ``Content-Encoding``); a request may pass a lower ``max_response_size``, never a
        higher one.
    :ivar limits: the archive limits compressed bodies are decoded under (compression ratio).
    """

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_redirects: int = 5
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({502, 503, 504}))
    user_agent: str = "plughost"
    max_response_size: int = 16 * _MiB
    limits: ArchiveLimits = DEFAULT_LIMITS


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


class HttpService:
    """Outbound HTTP for one plugin.

    :param plugin_id: the plugin.
    :param permissions: checks ``net:`` grants and audits denials.
    :param options: timeouts, retries, redirects.
    :param transport: an httpx transport (tests may pass a real alternative transport).
    :param resolver: ``async (host, port) -> [address, ...]``; defaults to the system resolver.
    """

    def __init__(
        self,
        plugin_id: str,
        permissions: PermissionManager,
        *,
        options: HttpOptions | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.plugin_id = plugin_id
        self.options = options or HttpOptions()
        self._perms = permissions
        self._resolver = resolver or _system_resolver
        self._transport = transport
        self._client_instance: httpx.AsyncClient | None = None
        self._request_interceptors: list[RequestInterceptor] = []
        self._response_interceptors: list[ResponseInterceptor] = []

    @property
    def _client(self) -> httpx.AsyncClient:
        # Created on first use: building the TLS context costs ~15 ms, paid by every plugin
        # activation otherwise, though most plugins never make a request.
        if self._client_instance is None:
            self._client_instance = httpx.AsyncClient(
                follow_redirects=False,
                timeout=self.options.timeout,
                transport=self._transport,
                # Compressed bodies are decoded by the bounded Inflater, not by httpx.
                headers={"User-Agent": self.options.user_agent, "Accept-Encoding": "identity"},
                trust_env=False,
            )
        return self._client_instance

    # ---- interceptors

    def add_request_interceptor(self, fn: RequestInterceptor) -> Callable[[], None]:
        """Run ``fn(request)`` before each hop is checked and sent; returns the undo callable."""
        self._request_interceptors.append(fn)
        return lambda: (
            self._request_interceptors.remove(fn) if fn in self._request_interceptors else None
        )

    def add_response_interceptor(self, fn: ResponseInterceptor) -> Callable[[], None]:
        """Run ``fn(response)`` on each final response; returns the undo callable."""
        self._response_interceptors.append(fn)
        return lambda: (
            self._response_interceptors.remove(fn) if fn in self._response_interceptors else None
        )

    # ---- verbs

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET; see :meth:`request` for the keyword arguments."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST; see :meth:`request`."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        """PUT; see :meth:`request`."""
        return await self.request("PUT", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        """DELETE; see :meth:`request`."""
        return await self.request("DELETE", url, **kwargs)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request and read the whole body (at most ``max_response_size`` bytes).

        Keyword arguments: ``params``, ``headers``, ``json``, ``content``, ``data``, ``files``,
        ``cookies``, ``timeout`` (seconds), ``follow_redirects`` (default ``True``),
        ``retries`` (overrides the option), ``max_response_size`` (bytes; at most the option).

        :raises HttpServiceError: ``http.too_large`` (the body is over the limit),
            ``http.ratio`` (a compressed body inflates like a bomb), ``http.encoding`` (a
            ``Content-Encoding`` other than gzip/deflate), ``http.corrupt`` (undecodable
            compressed data), ``http.request`` (network failure, also while reading).
        """
        response = await self._send(method, url, **kwargs)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """``async with ctx.http.stream("GET", url) as r: async for chunk in r.aiter_bytes()``.

        The body is capped and decoded as in :meth:`request`, chunk by chunk while it streams.
        """
        response = await self._send(method, url, **kwargs)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (if one was ever opened); idempotent."""
        if self._client_instance is not None:
            await self._client_instance.aclose()

    # ---- the loop: intercept, authorise, pin, send, retry, redirect

    async def _send(
        self,
        method: str,
        url: str,
        *,
        follow_redirects: bool = True,
        retries: int | None = None,
        timeout: float | None = None,
        max_response_size: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        cap = self._response_cap(max_response_size, url)
        try:
            request = self._client.build_request(
                method,
                url,
                timeout=timeout if timeout is not None else self.options.timeout,
                **kwargs,
            )
        except httpx.InvalidURL as exc:
            raise HttpServiceError(
                f"{_safe(url)} is not a valid URL ({exc}); nothing was sent",
                code="http.url",
                plugin_id=self.plugin_id,
            ) from exc
        except RecursionError:
            raise HttpServiceError(
                f"the request body for {_safe(url)} nests too deeply to encode; nothing was sent",
                plugin_id=self.plugin_id,
            ) from None
        except (TypeError, ValueError) as exc:  # a json= body that is not JSON, bad headers
            raise HttpServiceError(
                f"the request for {_safe(url)} cannot be built ({type(exc).__name__}: "
                f"{str(exc)[:200]}); nothing was sent",
                plugin_id=self.plugin_id,
            ) from exc
        for hop in range(self.options.max_redirects + 1):
            request = await self._intercept(request)
            address = await self._authorize(request.url)
            response = await self._send_with_retries(request, address, retries)
            location = response.headers.get("location")
            if not (follow_redirects and response.status_code in _REDIRECTS and location):
                try:
                    self._bound_body(response, cap)
                except BaseException:
                    await response.aclose()
                    raise
                return await self._intercept_response(response)
            await response.aclose()
            if hop == self.options.max_redirects:
                break
            try:
                request = self._redirect_request(request, response, location)
            except httpx.InvalidURL as exc:
                raise HttpServiceError(
                    f"{_safe(str(request.url))} redirected to an invalid URL ({exc}); not followed",
                    code="http.url",
                    plugin_id=self.plugin_id,
                ) from exc
        raise HttpServiceError(
            f"more than {self.options.max_redirects} redirects starting at {_safe(url)}",
            plugin_id=self.plugin_id,
            details={"url": _safe(url)},
        )

    def _response_cap(self, requested: int | None, url: str) -> int:
        ceiling = self.options.max_response_size
        if requested is None:
            return ceiling
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
            raise HttpServiceError(
                f"max_response_size must be a number of bytes (a non-negative integer), got "
                f"{requested!r}; nothing was sent",
                plugin_id=self.plugin_id,
            )
        if requested > ceiling:
            raise HttpServiceError(
                f"max_response_size={requested} is above the host's limit of {ceiling} bytes "
                f"per response (HttpOptions.max_response_size); ask for at most {ceiling} or "
                f"have the operator raise the limit. Nothing was sent to {_safe(url)}",
                code="http.too_large",
                plugin_id=self.plugin_id,
                details={"limit": ceiling, "requested": requested},
            )
        return requested

    def _bound_body(self, response: httpx.Response, cap: int) -> None:
        """Replace the body stream by one that is decoded by the bounded Inflater and capped."""
        url = _safe(str(response.request.url))
        encoding = response.headers.get("content-encoding", "identity")
        try:
            inflater = Inflater(encoding, self.options.limits, max_size=cap, what="the body")
        except ArchiveError as exc:
            raise self._body_error(exc, response.request.method, url, cap) from None
        length = response.headers.get("content-length", "")
        if inflater.coding == "identity" and length.isdigit() and int(length) > cap:
            raise self._body_error(
                ArchiveError("", code="archive.too_large"), response.request.method, url, cap
            )
        # httpx must not decode again: the headers now describe the decoded body.
        response.headers.pop("content-encoding", None)
        if inflater.coding != "identity":
            response.headers.pop("content-length", None)
        response.stream = _BoundedBody(response.stream, inflater, self, response, cap)

    def _body_error(
        self, exc: ArchiveError, method: str, url: str, cap: int
    ) -> HttpServiceError:
        code = _BODY_CODES.get(exc.code, "http.corrupt")
        if code == "http.too_large":
            message = (
                f"the response to {method} {url} is larger than {cap} bytes, the "
                "max_response_size limit; ask for less (a range, a page, a filter) or, if the "
                "operator allows more (HttpOptions.max_response_size), pass a higher "
                "max_response_size"
            )
        elif code == "http.ratio":
            message = (
                f"the response to {method} {url} {exc.message.removeprefix('the body ')} The "
                "host decodes compressed bodies only within its archive limits; ask the server "
                "for an uncompressed body"
            )
        elif code == "http.encoding":
            message = (
                f"the response to {method} {url} uses an unsupported Content-Encoding "
                f"({exc.details.get('encoding')!r}); ctx.http decodes only gzip and deflate. "
                "Ask for 'Accept-Encoding: identity' (the default)"
            )
        else:
            message = f"the response to {method} {url}: {exc.message}"
        return HttpServiceError(
            message,
            code=code,
            plugin_id=self.plugin_id,
            details={"url": url, "limit": cap, "reason": exc.code},
        )

    async def _intercept(self, request: httpx.Request) -> httpx.Request:
        for fn in list(self._request_interceptors):
            result = fn(request)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                request = result
        return request

    async def _intercept_response(self, response: httpx.Response) -> httpx.Response:
        for fn in list(self._response_interceptors):
            result = fn(response)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                response = result
        return response

    async def _authorize(self, url: httpx.URL) -> str:
        """Check ``url`` against the grants; return the address to connect to."""
        scheme = url.scheme
        host = canonical_host(url.host)
        port = url.port or (443 if scheme == "https" else 80)
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if scheme not in ("http", "https"):
            self._perms.deny(
                self.plugin_id, "net", shown, f"scheme {scheme!r} is not allowed; use http or https"
            )
        self._perms.check(self.plugin_id, "net", shown)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = await self._resolver(host, port)
            except OSError as exc:
                raise HttpServiceError(
                    f"cannot resolve {host}: {exc}",
                    plugin_id=self.plugin_id,
                    details={"host": host},
                ) from exc
        if not addresses:
            raise HttpServiceError(f"{host} resolved to no address", plugin_id=self.plugin_id)
        pset = self._perms.permission_set(self.plugin_id)
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            if is_public_address(ip):
                continue
            inner = unwrap(ip)

            def names(rule: Scope, ip: IPAddress = ip) -> bool:
                return not rule.is_wildcard and allowance_opens(
                    rule.pattern, rule.port, ip, port, scheme=scheme
                )

            if not pset.allows_explicitly("net", names):
                what = _describe(inner)
                via = f" ({host} resolves to it)" if host != str(ip) else ""
                self._perms.deny(
                    self.plugin_id,
                    "net",
                    shown,
                    f"{ip} is a {what} address{via}; only a grant naming it exactly "
                    f"(net:{_bracket(str(inner))}:{port}) allows it",
                    severity="error",
                )
        return addresses[0]

    async def _send_with_retries(
        self, request: httpx.Request, address: str, retries: int | None
    ) -> httpx.Response:
        original = request.url
        attempts = (self.options.retries if retries is None else retries) + 1
        idempotent = request.method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
        if original.scheme == "http" and canonical_host(original.host) != address:
            # Pin plain-HTTP connections to the checked address (the Host header keeps the name)
            # so DNS cannot answer differently between the check and the connect. HTTPS is not
            # pinned: the pool is keyed by URL origin, so a pinned IP would let two names share
            # one TLS connection verified for only one of them; certificate verification of the
            # name is the guard there instead.
            request.url = original.copy_with(host=address)
        try:
            for attempt in range(attempts):
                try:
                    response = await self._client.send(request, stream=True)
                except httpx.TransportError as exc:
                    if isinstance(exc, httpx.RemoteProtocolError) and (
                        "location header" in str(exc).lower()
                    ):
                        # httpx parses Location even when not following redirects; a bad one
                        # is the server's answer, not a transient failure: no retry.
                        raise HttpServiceError(
                            f"{_safe(str(original))} redirected to an invalid URL ({exc}); "
                            "not followed",
                            code="http.url",
                            plugin_id=self.plugin_id,
                        ) from exc
                    if attempt + 1 < attempts and (
                        idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                    ):
                        await asyncio.sleep(self._delay(attempt))
                        continue
                    raise HttpServiceError(
                        f"{request.method} {_safe(str(original))} failed after {attempt + 1} "
                        f"attempt(s): {type(exc).__name__}: {exc}",
                        plugin_id=self.plugin_id,
                        details={"url": _safe(str(original))},
                    ) from exc
                if (
                    idempotent
                    and response.status_code in self.options.retry_statuses
                    and attempt + 1 < attempts
                ):
                    await response.aclose()
                    await asyncio.sleep(self._delay(attempt))
                    continue
                return response
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            request.url = original

    def _delay(self, attempt: int) -> float:
        return float(min(self.options.backoff * (2**attempt), self.options.max_backoff))

    def _redirect_request(
        self, request: httpx.Request, response: httpx.Response, location: str
    ) -> httpx.Request:
        url = request.url.join(location)
        method = request.method
        if (response.status_code == 303 and method != "HEAD") or (
            response.status_code in (301, 302) and method == "POST"
        ):
            method = "GET"
        headers = httpx.Headers(request.headers)
        headers.pop("host", None)
        if url.host != request.url.host or url.scheme != request.url.scheme:
            headers.pop("authorization", None)  # never leak credentials to another origin
            headers.pop("cookie", None)
        content: bytes | None = None
        if method == request.method and response.status_code in (307, 308):
            content = request.content
        else:
            headers.pop("content-length", None)
            headers.pop("content-type", None)
        return self._client.build_request(
            method, url, headers=headers, content=content, extensions=request.extensions
        )


class _BoundedBody(httpx.AsyncByteStream):
    """A response body read through the bounded Inflater: capped and decoded as it streams."""

    def __init__(
        self,
        raw: httpx.AsyncByteStream | httpx.SyncByteStream,
        inflater: Inflater,
        service: HttpService,
        response: httpx.Response,
        cap: int,
    ) -> None:
        if not isinstance(raw, httpx.AsyncByteStream):  # pragma: no cover - async client only
            raise TypeError("ctx.http reads asynchronous responses only")
        self._raw = raw
        self._inflater = inflater
        self._service = service
        self._response = response
        self._cap = cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        method = self._response.request.method
        url = _safe(str(self._response.request.url))
        try:
            async for chunk in self._raw:
                for out in self._inflater.feed(chunk):
                    if out:
                        yield out
            for out in self._inflater.finish():
                yield out
        except ArchiveError as exc:
            raise self._service._body_error(exc, method, url, self._cap) from None
        except httpx.TransportError as exc:
            raise HttpServiceError(
                f"reading the response to {method} {url} failed: {type(exc).__name__}: {exc}",
                plugin_id=self._service.plugin_id,
                details={"url": url},
            ) from exc

    async def aclose(self) -> None:
        await self._raw.aclose()


def _describe(ip: IPAddress) -> str:
    for attr in (
        "is_loopback",
        "is_link_local",
        "is_private",
        "is_multicast",
        "is_unspecified",
        "is_reserved",
    ):
        if getattr(ip, attr):
            return attr[3:].replace("_", "-")
    return "non-public"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _safe(url: str) -> str:
    """A URL without userinfo or query (they may carry secrets) for messages."""
    try:
        parsed = httpx.URL(url)
    except Exception:  # an unparsable URL is shown as nothing rather than leaked
        return "<url>"
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))
