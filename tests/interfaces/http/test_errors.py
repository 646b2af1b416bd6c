"""Every error is the JSON envelope with a 4xx that fits; bodies are capped while streaming."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator

import pytest

from plughost.errors import (
    AccessDenied,
    AuthenticationRequired,
    InstallError,
    ManifestError,
    OperationRefused,
    PlughostError,
    PluginNotFound,
    PluginTimeout,
    RecordExists,
    RequestTooLarge,
)
from plughost.interfaces.http._errors import status_for
from plughost.settings import HostSettings
from tests.interfaces.http.conftest import Api, MakePackage, open_api


@pytest.mark.parametrize(("error", "status"), [
    (PluginNotFound("x"), 404),
    (AuthenticationRequired("x"), 401),
    (AuthenticationRequired("x", code="auth.invalid"), 401),
    (AccessDenied("x"), 403),
    (ManifestError([]), 422),
    (RecordExists("x"), 409),
    (OperationRefused("x"), 409),
    (OperationRefused("x", code="request.invalid"), 400),
    (InstallError("x", code="install.exists"), 409),
    (InstallError("x", code="install.too_large"), 413),
    (RequestTooLarge("x"), 413),
    (PluginTimeout("x"), 504),
    (PlughostError("x", code="something.new"), 400),
])
def test_status_follows_the_error_code(error: PlughostError, status: int) -> None:
    assert status_for(error) == status


async def test_unknown_route_and_method_have_the_envelope(api: Api) -> None:
    r = await api.client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "request.not_found"
    r = await api.client.patch("/api/v1/plugins")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "request.method"


async def test_invalid_query_values_are_422_naming_the_parameter(api: Api) -> None:
    r = await api.client.get("/api/v1/plugins?limit=0&state=sleeping")
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "request.invalid"
    locations = {p["location"] for p in error["details"]["problems"]}
    assert locations == {"query limit", "query state"}


async def test_declared_oversized_body_is_413_before_reading(api: Api) -> None:
    r = await api.client.post("/api/v1/plugins/validate-manifest", content=b"x" * (2 << 20),
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request.too_large"


@pytest.fixture
async def small_api(tmp_path) -> AsyncIterator[Api]:
    settings = HostSettings(home=tmp_path / "small", require_signature="never",
                            max_plugin_size=64 * 1024)
    async for value in open_api(settings):
        yield value


async def test_streamed_upload_over_max_plugin_size_is_cut_off(small_api: Api) -> None:
    boundary = "plughostboundary"
    sent = 0

    async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse early
        nonlocal sent
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"source\"\r\n\r\n"
               f"local\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"big.zip\"\r\nContent-Type: application/zip\r\n\r\n").encode()
        for _ in range(64):  # 4 MiB offered; the limit is 64 KiB + 1 MiB of form overhead
            sent += 1
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await small_api.client.post(
        "/api/v1/plugins/install", content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    assert r.json()["error"]["details"]["limit"] == 64 * 1024 + 1024 * 1024
    uploads = small_api.service.settings.staging_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), "no partial upload is kept"
    assert (await small_api.client.get("/api/v1/plugins")).json()["total"] == 0


async def test_url_install_to_a_private_address_is_refused_with_4xx(api: Api) -> None:
    r = await api.client.post("/api/v1/plugins/install",
                              json={"source": "url", "url": "https://127.0.0.1/p.zip"})
    assert 400 <= r.status_code < 500
    assert r.json()["error"]["code"].startswith("download.")
    r = await api.client.post("/api/v1/plugins/install", json={"source": "url"})
    assert r.status_code == 400
    assert "url" in r.json()["error"]["message"]
    r = await api.client.post("/api/v1/plugins/install", content=b"{",
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 400


async def test_malformed_multipart_and_too_many_files_are_400(api: Api) -> None:
    r = await api.client.post("/api/v1/plugins/install", content=b"--x\r\nnot a part",
                              headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "request.invalid"
    r = await api.client.post(
        "/api/v1/plugins/install", data={"source": "local"},
        files=[("file", ("a.zip", b"1")), ("other", ("b.zip", b"2"))])
    assert r.status_code == 400
    assert "multipart" in r.json()["error"]["message"]


async def test_streamed_json_body_over_the_limit_is_413_not_400(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse early
        for _ in range(32):  # 2 MiB against the 1 MiB limit of non-upload routes
            yield b" " * 65536

    for path in ("/api/v1/plugins/validate-manifest", "/api/v1/tokens",
                 "/api/v1/plugins/install"):
        r = await api.client.post(path, content=chunks(),
                                  headers={"Content-Type": "application/json"})
        if path.endswith("install"):
            # the upload route's limit is max_plugin_size + form overhead: under it, the
            # blank body is refused for what it is
            assert r.status_code == 400, r.text
            continue
        assert r.status_code == 413, (path, r.text)
        error = r.json()["error"]
        assert error["code"] == "request.too_large"
        assert error["details"]["limit"] == 1024 * 1024
        assert r.headers["x-request-id"]


@pytest.mark.parametrize("depth", [65, 900, 100_000])
async def test_deeply_nested_json_is_refused_with_400(api: Api, depth: int) -> None:
    deep = b"[" * depth + b"]" * depth
    nested_object = b'{"a":' * depth + b"1" + b"}" * depth
    for path in ("/api/v1/plugins/install", "/api/v1/plugins/validate-manifest",
                 "/api/v1/tokens", "/api/v1/commands/x.y", "/api/v1/plugins/p/config"):
        for body in (deep, nested_object):
            method = "PUT" if path.endswith("/config") else "POST"
            r = await api.client.request(method, path, content=body,
                                         headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (path, r.status_code, r.text[:200])
            error = r.json()["error"]
            assert error["code"] == "request.invalid"
            assert "64 levels" in error["message"]


async def test_sixty_four_levels_of_json_are_still_accepted(api: Api) -> None:
    config_schema = {"type": "object"}
    value: object = config_schema
    for _ in range(60):
        value = {"x-nested": value}
    r = await api.client.post("/api/v1/plugins/validate-manifest", json={
        "id": "deep", "name": "Deep", "version": "1.0.0", "entry": "deep:Plugin",
        "x-extra": value})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("url", "problem"), [
    ("https://127.0.0.1:99999/x.zip", "port"),
    ("https://example.com:abc/x.zip", "port"),
    ("https://example.com:-1/x.zip", "port"),
    ("https://example.com:0/x.zip", "port"),
    ("https://[::1", "IPv6"),
    ("https://exa\x00mple.com/x.zip", "control characters"),
    ("https://exa mple.com/x.zip", "spaces"),
    ("https:///x.zip", "no host"),
    ("https://" + "a" * 64 + ".example/x.zip", "invalid part"),
    ("https://" + "a." * 1100 + "zip", "longer than"),
    ("https://bad_-.exa..mple/x.zip", "invalid part"),
], ids=["port-99999", "port-abc", "port-minus-1", "port-0", "ipv6-unclosed", "nul", "space",
        "no-host", "long-label", "long-url", "bad-labels"])
async def test_malformed_package_urls_are_refused_with_download_url(
    api: Api, url: str, problem: str
) -> None:
    for send in ({"json": {"source": "url", "url": url}},
                 {"data": {"source": "url", "url": url}},
                 {"json": {"source": "url", "url": url}, "params": {"async": "true"}}):
        r = await api.client.post("/api/v1/plugins/install", **send)  # type: ignore[arg-type]
        assert r.status_code == 422, (send, r.text)
        error = r.json()["error"]
        assert error["code"] == "download.url"
        assert problem in error["message"]
    assert (await api.client.get("/api/v1/plugins")).json()["total"] == 0
    assert (await api.client.get("/api/v1/operations")).json() == {"items": [],
                                                                    "next_cursor": None}


async def test_update_with_a_malformed_url_is_refused_too(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("demo"))).status_code == 201
    r = await api.client.put("/api/v1/plugins/demo",
                             json={"source": "url", "url": "https://h:99999/x.zip"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "download.url")


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


MANIFEST = b'{"id": "z", "name": "Z", "version": "1.0.0", "entry": "z:Plugin"}'


def _corrupted() -> list[tuple[str, bytes]]:
    good = _zip(**{"manifest.json": MANIFEST, "z.py": b"x = 1\n" * 100})
    local = good.index(b"PK\x03\x04")
    central = good.index(b"PK\x01\x02")
    out = [("truncated", good[:-30])]
    crc = bytearray(good)
    crc[local + 14] ^= 0xFF
    crc[central + 16] ^= 0xFF
    out.append(("bad crc", bytes(crc)))
    method = bytearray(good)
    method[local + 8] = 99  # an unknown compression method in the local header
    method[central + 10] = 99
    out.append(("unknown method", bytes(method)))
    encrypted = bytearray(good)
    encrypted[local + 6] |= 1
    encrypted[central + 8] |= 1
    out.append(("encrypted flag", bytes(encrypted)))
    strong = bytearray(good)
    strong[central + 8] |= 0x41
    out.append(("strong encryption", bytes(strong)))
    garbage = bytearray(good)
    data_start = local + 30 + len("manifest.json")
    garbage[data_start:data_start + 8] = b"\xff" * 8  # the deflate stream is not deflate
    out.append(("corrupt deflate", bytes(garbage)))
    name = bytearray(good)
    name[central + 46] = 0xC4  # a file name that is not UTF-8 while the flag says it is
    name[central + 9] |= 0x08
    out.append(("bad name", bytes(name)))
    return out


@pytest.mark.parametrize(("what", "data"), _corrupted(), ids=[w for w, _ in _corrupted()])
async def test_malformed_zip_with_a_manifest_part_is_a_4xx(
    api: Api, what: str, data: bytes
) -> None:
    r = await api.client.post(
        "/api/v1/plugins/install",
        data={"source": "local", "manifest": MANIFEST.decode()},
        files={"file": ("z.zip", data, "application/zip")})
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:300])
    assert r.json()["error"]["code"].split(".")[0] in ("archive", "manifest", "request",
                                                       "integrity", "package", "install")
    uploads = api.service.settings.staging_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), "nothing is left behind"
    assert (await api.client.get("/api/v1/plugins")).json()["total"] == 0
