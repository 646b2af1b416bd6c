from __future__ import annotations

import gzip
import random
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from plughost.errors import HttpServiceError, PermissionDenied
from plughost.security.permissions import PermissionManager
from plughost.services.hostapi.http import HttpOptions, HttpService, is_public_address

from .conftest import LocalServer


@pytest.fixture
async def http(perms: PermissionManager) -> AsyncIterator[HttpService]:
    service = HttpService("p", perms, options=HttpOptions(backoff=0.01, timeout=5))
    yield service
    await service.aclose()


async def test_granted_local_server_is_reachable_with_an_explicit_grant(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    response = await http.post(f"{server.url}/echo", content=b"world")
    assert (response.status_code, response.text) == (200, "hello world")
    assert (await http.get(f"{server.url}/x")).status_code == 200
    assert (await http.put(f"{server.url}/x", json={"a": 1})).text == 'hello {"a":1}'
    assert (await http.delete(f"{server.url}/x")).status_code == 200
    assert [r[0] for r in server.requests] == ["POST", "GET", "PUT", "DELETE"]


async def test_ungranted_host_is_denied_and_audited(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    with pytest.raises(PermissionDenied, match=r"no grant covers net 127\.0\.0\.1"):
        await http.get(f"{server.url}/x")
    assert server.requests == []
    row = perms.audit.query(plugin="p", decision="deny")[-1]
    assert (row.kind, row.target) == ("net", f"127.0.0.1:{server.port}")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433:{port}/",  # decimal 127.0.0.1
        "http://0x7f000001:{port}/",  # hex
        "http://127.1:{port}/",  # short form
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
        "http://10.0.0.1/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0:{port}/",
    ],
)
async def test_non_public_addresses_are_refused_even_with_a_wildcard_grant(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
    url: str,
) -> None:
    perms.grant("p", "net:*")
    with pytest.raises(PermissionDenied) as info:
        await http.get(url.format(port=server.port))
    assert "only a grant naming it exactly" in str(info.value)
    assert server.requests == []
    assert perms.audit.query(plugin="p", decision="deny")[-1].severity == "error"


async def test_localhost_grant_names_loopback_explicitly(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:localhost:{server.port}")
    response = await http.get(f"http://localhost:{server.port}/named")
    assert response.status_code == 200
    assert server.requests[0][2]["Host"] == f"localhost:{server.port}"


async def test_redirect_to_loopback_is_rechecked_and_refused(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    perms.grant("p", "net:*")
    other = LocalServer()
    try:
        server.redirect_to = f"http://2130706433:{other.port}/internal"
        with pytest.raises(PermissionDenied, match="loopback"):
            await http.get(f"{server.url}/redirect")
        assert other.requests == []  # the second hop never happened
    finally:
        other.close()


@pytest.mark.parametrize("grant", ["net:127.0.0.1:{port}", "net:localhost:{port}"])
async def test_a_private_grant_opens_its_port_only_also_across_redirects(
    http: HttpService, perms: PermissionManager, server: LocalServer, grant: str
) -> None:
    perms.grant("p", grant.format(port=server.port))
    host = "localhost" if "localhost" in grant else "127.0.0.1"
    other = LocalServer()
    try:
        for target in (f"http://{host}:{other.port}/x", f"http://127.0.0.1:{other.port}/x"):
            with pytest.raises(PermissionDenied):
                await http.get(target)
            server.redirect_to = target
            with pytest.raises(PermissionDenied):
                await http.get(f"http://{host}:{server.port}/redirect")
        assert other.requests == []
        assert (await http.get(f"http://{host}:{server.port}/ok")).status_code == 200
    finally:
        other.close()


@pytest.mark.parametrize(
    ("grant", "host"),
    [("net:127.0.0.1", "127.0.0.1"), ("net:localhost", "localhost"),
     ("net:[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]")],
)
async def test_a_private_grant_without_a_port_opens_only_the_default_port(
    http: HttpService, perms: PermissionManager, server: LocalServer, grant: str, host: str
) -> None:
    # "No port" is "any port" for public hosts; on a non-public address it is the scheme's
    # default port, so allowing loopback HTTP does not open every service listening there.
    perms.grant("p", "net:*")
    perms.grant("p", grant)
    with pytest.raises(PermissionDenied, match="only a grant naming it exactly"):
        await http.get(f"http://{host}:{server.port}/x")
    assert server.requests == []


async def test_redirects_to_granted_targets_are_followed(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    server.redirect_to = f"{server.url}/landed"
    response = await http.post(
        f"{server.url}/redirect", content=b"x", headers={"Authorization": "Bearer t"}
    )
    assert response.status_code == 200
    assert [(r[0], r[1]) for r in server.requests] == [("POST", "/redirect"), ("GET", "/landed")]
    no_follow = await http.get(f"{server.url}/redirect", follow_redirects=False)
    assert no_follow.status_code == 302


async def test_host_resolving_to_any_private_address_is_refused(perms: PermissionManager) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]  # DNS answer mixing a public and a private address

    service = HttpService("p", perms, resolver=resolver)
    perms.grant("p", "net:*.example.com")
    with pytest.raises(PermissionDenied, match=r"10\.1\.2\.3 is a private address"):
        await service.get("http://api.example.com/")
    await service.aclose()


async def test_unsupported_scheme_is_denied(http: HttpService, perms: PermissionManager) -> None:
    perms.grant("p", "net:*")
    with pytest.raises(PermissionDenied, match="scheme 'ftp'"):
        await http.get("ftp://example.com/file")


async def test_retries_with_backoff_on_503(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    server.flaky_left = 2
    response = await http.get(f"{server.url}/flaky")
    assert response.status_code == 200 and len(server.requests) == 3
    server.flaky_left = 5
    response = await http.get(f"{server.url}/flaky", retries=0)
    assert response.status_code == 503


async def test_connection_failure_is_a_clear_error_after_retries(
    http: HttpService,
    perms: PermissionManager,
) -> None:
    closed = LocalServer()
    port = closed.port
    closed.close()  # nothing listens there any more
    perms.grant("p", f"net:127.0.0.1:{port}")
    with pytest.raises(HttpServiceError, match="failed after 3 attempt") as info:
        await http.get(f"http://127.0.0.1:{port}/?token=secret")
    assert "secret" not in str(info.value)


async def test_interceptors_rewrite_requests_and_see_responses(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    seen: list[int] = []

    def add_header(request: httpx.Request) -> None:
        request.headers["X-Plugin"] = "p"

    async def record(response: httpx.Response) -> None:
        seen.append(response.status_code)

    undo = http.add_request_interceptor(add_header)
    http.add_response_interceptor(record)
    await http.get(f"{server.url}/a")
    undo()
    await http.get(f"{server.url}/b")
    assert server.requests[0][2].get("X-Plugin") == "p"
    assert "X-Plugin" not in server.requests[1][2]
    assert seen == [200, 200]


async def test_an_interceptor_cannot_redirect_a_request_past_the_check(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    http.add_request_interceptor(
        lambda r: httpx.Request(r.method, "http://169.254.169.254/latest/meta-data/")
    )
    with pytest.raises(PermissionDenied):
        await http.get(f"{server.url}/a")


async def test_streaming_response(
    http: HttpService,
    perms: PermissionManager,
    server: LocalServer,
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    async with http.stream("GET", f"{server.url}/stream") as response:
        chunks = [c async for c in response.aiter_bytes()]
    assert b"".join(chunks) == b"part0;part1;part2;"


def test_public_address_classification() -> None:
    import ipaddress

    assert is_public_address(ipaddress.ip_address("93.184.216.34"))
    for text in (
        "127.0.0.1",
        "169.254.169.254",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
        "64:ff9b::7f00:1",
        "100.64.0.1",
        "224.0.0.1",
        "::",
    ):
        assert not is_public_address(ipaddress.ip_address(text)), text


async def test_url_httpx_cannot_parse_is_refused_before_anything_is_sent(
    http: HttpService, perms: PermissionManager,
) -> None:
    perms.grant("p", "net:*")
    with pytest.raises(HttpServiceError) as info:
        await http.get("http://0177.0.0.1/")  # octal loopback: httpx rejects the spelling
    assert info.value.code == "http.url"


async def test_redirect_to_an_unparsable_url_is_not_followed(
    http: HttpService, perms: PermissionManager, server: LocalServer,
) -> None:
    perms.grant("p", "net:*")
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    server.redirect_to = "http://0177.0.0.1/"
    with pytest.raises(HttpServiceError, match="redirected to an invalid URL"):
        await http.get(f"{server.url}/redirect")
    assert len(server.requests) == 1


@pytest.mark.parametrize("body", ["deep", "not-json"])
async def test_a_body_that_cannot_be_encoded_is_an_http_service_error(
    http: HttpService, perms: PermissionManager, server: LocalServer, body: str
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    value: object = object()
    if body == "deep":
        value = []
        for _ in range(100_000):
            value = [value]
    with pytest.raises(HttpServiceError, match="nothing was sent"):
        await http.post(f"{server.url}/x", json=value)
    assert server.requests == []


# ---- bounded response bodies: a size cap, and Content-Encoding decoded by the Inflater

MiB = 1024 * 1024


def _gzip_of_zeros(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed chunk by chunk (200 MiB -> about 200 KiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(MiB)
    parts = [packer.compress(block) for _ in range(size // MiB)]
    return b"".join([*parts, packer.flush()])


def _answer(body: bytes, *, encoding: str | None = None, chunked: bool = False,
            repeat: int = 1) -> Callable[[BaseHTTPRequestHandler], None]:
    """A route answering 200 with ``body`` sent ``repeat`` times."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        if encoding:
            handler.send_header("Content-Encoding", encoding)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(len(body) * repeat))
        handler.end_headers()
        for _ in range(repeat):
            if chunked:
                handler.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
            else:
                handler.wfile.write(body)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")

    return route


async def _peak_while(action: Callable[[], Awaitable[object]]) -> tuple[BaseException | None,
                                                                         int]:
    """Run ``action``; return what it raised and the peak of traced allocations in bytes."""
    tracemalloc.start()
    try:
        try:
            await action()
        except Exception as exc:  # returned to the test, which checks it
            raised: BaseException | None = exc
        else:
            raised = None
        return raised, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_gzip_bomb_is_refused_after_about_a_megabyte_without_inflating_it(
    http: HttpService, perms: PermissionManager, server: LocalServer
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    bomb = _gzip_of_zeros(200 * MiB)
    assert len(bomb) < MiB
    server.routes["/bomb"] = _answer(bomb, encoding="gzip")
    await http.get(f"{server.url}/warm")  # the client (its TLS context) exists before tracing
    raised, peak = await _peak_while(lambda: http.get(f"{server.url}/bomb"))
    assert isinstance(raised, HttpServiceError), raised
    assert raised.code == "http.ratio"
    assert "decompression bomb" in raised.message and "100:1" in raised.message
    assert peak < 4 * MiB, peak  # not 200 MiB (400 MiB traced before), nor the 16 MiB cap
    # ... and through the streaming API too
    async def stream() -> None:
        async with http.stream("GET", f"{server.url}/bomb") as response:
            async for _ in response.aiter_bytes():
                pass

    raised, peak = await _peak_while(stream)
    assert isinstance(raised, HttpServiceError) and raised.code == "http.ratio", raised
    assert peak < 4 * MiB, peak
    # the host asked for the body as it is; it was the server that compressed it
    assert all(r[2].get("Accept-Encoding") == "identity" for r in server.requests)


async def test_a_compressed_body_over_the_cap_is_refused_by_size(
    http: HttpService, perms: PermissionManager, server: LocalServer
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    # random-ish bytes compress about 2:1, under the ratio limit: the size cap decides
    packed = zlib.compress(bytes(range(256)) * 4 * 1024 + random.Random(1).randbytes(MiB))
    server.routes["/deflated"] = _answer(packed, encoding="deflate")
    with pytest.raises(HttpServiceError) as info:
        await http.get(f"{server.url}/deflated", max_response_size=MiB)
    assert info.value.code == "http.too_large"
    assert f"larger than {MiB} bytes, the max_response_size limit" in info.value.message
    assert info.value.details["limit"] == MiB


async def test_an_oversized_plain_body_is_refused_declared_or_streamed(
    http: HttpService, perms: PermissionManager, server: LocalServer
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    block = b"x" * (64 * 1024)
    server.routes["/declared"] = _answer(block, repeat=800)  # 50 MiB, Content-Length says so
    server.routes["/chunked"] = _answer(block, chunked=True, repeat=800)  # 50 MiB, no length
    await http.get(f"{server.url}/warm")  # the client (its TLS context) exists before tracing
    for path in ("/declared", "/chunked"):
        raised, peak = await _peak_while(lambda path=path: http.get(  # type: ignore[misc]
            f"{server.url}{path}", max_response_size=MiB))
        assert isinstance(raised, HttpServiceError) and raised.code == "http.too_large", raised
        assert "max_response_size" in raised.message
        assert peak < 4 * MiB, (path, peak)

    # The operator's cap applies without asking, and a plugin cannot raise it.
    small = HttpService("p", perms, options=HttpOptions(max_response_size=MiB))
    try:
        with pytest.raises(HttpServiceError, match=f"larger than {MiB} bytes") as info:
            await small.get(f"{server.url}/chunked")
        assert info.value.code == "http.too_large"
        before = len(server.requests)
        with pytest.raises(HttpServiceError, match="above the host's limit") as info:
            await small.get(f"{server.url}/chunked", max_response_size=2 * MiB)
        assert info.value.code == "http.too_large"
        assert len(server.requests) == before  # nothing was sent
        with pytest.raises(HttpServiceError, match="non-negative integer"):
            await small.get(f"{server.url}/chunked", max_response_size=-1)
        async with small.stream("GET", f"{server.url}/chunked") as response:
            with pytest.raises(HttpServiceError, match="max_response_size") as info:
                async for _ in response.aiter_bytes():
                    pass
        assert info.value.code == "http.too_large"
    finally:
        await small.aclose()


async def test_gzip_and_deflate_bodies_still_decode_and_exactly_the_cap_passes(
    http: HttpService, perms: PermissionManager, server: LocalServer
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    text = b'{"greeting": "hello", "n": 1}' * 1000
    server.routes["/gz"] = _answer(gzip.compress(text), encoding="gzip")
    server.routes["/zlib"] = _answer(zlib.compress(text), encoding="deflate")
    server.routes["/plain"] = _answer(text)
    for path in ("/gz", "/zlib", "/plain"):
        response = await http.get(f"{server.url}{path}", max_response_size=len(text))
        assert response.content == text, path
        assert "content-encoding" not in response.headers
    async with http.stream("GET", f"{server.url}/gz") as streamed:
        assert b"".join([c async for c in streamed.aiter_bytes()]) == text


async def test_an_unsupported_or_corrupt_encoding_is_a_clear_error(
    http: HttpService, perms: PermissionManager, server: LocalServer
) -> None:
    perms.grant("p", f"net:127.0.0.1:{server.port}")
    server.routes["/br"] = _answer(b"\x0b\x02\x80hello\x03", encoding="br")
    server.routes["/bad"] = _answer(b"not gzip at all", encoding="gzip")
    with pytest.raises(HttpServiceError, match="unsupported Content-Encoding") as info:
        await http.get(f"{server.url}/br")
    assert info.value.code == "http.encoding"
    with pytest.raises(HttpServiceError, match="corrupt gzip data") as info:
        await http.get(f"{server.url}/bad")
    assert info.value.code == "http.corrupt"
