"""Every error is the JSON envelope with a 4xx that fits; bodies are capped while streaming."""

from __future__ import annotations

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
from tests.interfaces.http.conftest import Api, open_api


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
