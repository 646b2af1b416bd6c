"""The dashboard's files as the server serves them (no browser): only the package's own
files, with caching headers and a strict policy, the vendored libraries with their licences,
and every operation the page may offer present in the API."""

from __future__ import annotations

import re
from pathlib import Path

from plughost.interfaces import dashboard
from plughost.interfaces.http.app import openapi_document
from tests.interfaces.http.conftest import Api

FOLDER = Path(dashboard.__file__).parent


async def test_page_and_files_are_served_with_a_strict_policy(api: Api) -> None:
    page = await api.client.get("/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        if src.startswith("data:"):
            continue
        r = await api.client.get(src)
        assert r.status_code == 200, src
        assert r.headers["x-content-type-options"] == "nosniff"
        again = await api.client.get(src, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


async def test_only_the_dashboards_own_files_are_served(api: Api) -> None:
    assert (await api.client.get("/dashboard/app.js")).status_code == 200
    for path in ("/dashboard/__init__.py", "/dashboard/../__init__.py",
                 "/dashboard/vendor/../__init__.py", "/dashboard/%2e%2e/__init__.py",
                 "/dashboard/vendor/README.txt", "/dashboard/nope.js", "/dashboard/",
                 "/dashboard//etc/passwd"):
        r = await api.client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "def " not in r.text and "root:" not in r.text


async def test_api_reference_is_served_from_the_package(api: Api) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    for url in urls:
        assert (await api.client.get(url)).status_code == 200, url
    assert (await api.client.get("/redoc")).status_code == 404  # it would need a CDN


def test_vendored_libraries_ship_with_their_licence() -> None:
    for lib, licence in (("swagger-ui", "Apache License"), ("uplot", "MIT License")):
        text = (FOLDER / "vendor" / lib / "LICENSE").read_text()
        assert licence in text
    readme = (FOLDER / "vendor" / "README.txt").read_text()
    assert "swagger-ui-dist" in readme and "uplot" in readme


def test_every_operation_the_page_offers_exists() -> None:
    """Each ``can("METHOD /path")`` in the scripts names a real operation (the catalog search
    is optional: its page appears only when the server has it)."""
    script = "\n".join(p.read_text() for p in FOLDER.glob("*.js"))
    offered = set(re.findall(r'(?:can|actionButton\([^,]+,)\s*\(?"([A-Z]+ /[^"]+)"', script))
    assert len(offered) >= 15, offered
    paths = openapi_document()["paths"]
    for op in offered - {"GET /market/search"}:
        method, path = op.split(" ", 1)
        full = path if path == "/metrics" else "/api/v1" + path
        assert method.lower() in paths.get(full, {}), op
