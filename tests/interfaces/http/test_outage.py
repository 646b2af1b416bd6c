"""A PostgreSQL outage: every database-backed request answers 503
``storage.database_unavailable`` with ``Retry-After``, ``/readyz`` reports not ready, and
everything works again once the database is back — without restarting anything.

The outage is real: the server reaches its own PostgreSQL database through a TCP proxy that
the test cuts (connections refused, open ones broken) and restores; the shared PostgreSQL
server keeps running for everyone else.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from plughost.settings import HostSettings
from tests.fixtures.databases import DatabaseServers, db_servers  # noqa: F401 - fixture
from tests.interfaces.http._tcp_proxy import TcpProxy
from tests.interfaces.http.conftest import Api, MakePackage, open_api

pytestmark = pytest.mark.postgres

# Routes the outage test calls; {id} is an installed plugin.
READS = ["/api/v1/plugins", "/api/v1/plugins/{id}", "/api/v1/plugins/{id}/versions",
         "/api/v1/plugins/{id}/info", "/api/v1/operations", "/api/v1/audit",
         "/api/v1/tokens", "/api/v1/plugins/{id}/config", "/api/v1/plugins/{id}/permissions"]
WRITES = [("POST", "/api/v1/plugins/{id}/disable"), ("POST", "/api/v1/plugins/{id}/enable"),
          ("POST", "/api/v1/tokens"), ("DELETE", "/api/v1/plugins/{id}"),
          ("PUT", "/api/v1/plugins/{id}/config")]


@pytest.fixture
def proxy(db_servers: DatabaseServers) -> Iterator[tuple[TcpProxy, str]]:  # noqa: F811
    url = make_url(db_servers.create("postgres"))
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as p:
        through = url.set(host="127.0.0.1", port=p.port)
        yield p, through.render_as_string(hide_password=False)


@pytest.fixture
async def outage_api(tmp_path: Path, proxy: tuple[TcpProxy, str]) -> AsyncIterator[Api]:
    settings = HostSettings(home=tmp_path / "home", require_signature="never",
                            database_url=proxy[1])
    async for value in open_api(settings):
        yield value


def _unavailable(r: object, what: str) -> None:
    status = r.status_code  # type: ignore[attr-defined]
    assert status == 503, (what, status, r.text[:300])  # type: ignore[attr-defined]
    error = r.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "storage.database_unavailable", (what, error)
    assert "database" in error["message"] and "Retry" in error["message"]
    assert re.fullmatch(r"\d+", r.headers["retry-after"]), what  # type: ignore[attr-defined]


async def _wait_ready(api: Api, want: bool) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        r = await api.client.get("/readyz")
        if (r.status_code == 200) is want:
            return r.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, r.text


async def test_database_outage_is_503_with_retry_after_and_recovers_without_restart(
    outage_api: Api, proxy: tuple[TcpProxy, str], make_package: MakePackage
) -> None:
    api, (cut, _) = outage_api, proxy
    assert (await api.install(make_package("demo"))).status_code == 201
    assert (await _wait_ready(api, True))["ready"] is True
    api.app.state.api.authority._ttl = 0  # every request asks the database who is calling

    cut.cut()
    not_ready = await _wait_ready(api, False)
    assert not_ready["ready"] is False and "database" in str(not_ready["reason"])
    r = await api.client.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"]
    assert (await api.client.get("/healthz")).status_code == 200, "the process is alive"
    for path in READS:
        _unavailable(await api.client.get(path.format(id="demo")), path)
    for method, path in WRITES:
        body = {"role": "viewer", "name": "x"} if path.endswith("tokens") else {}
        _unavailable(await api.client.request(method, path.format(id="demo"), json=body),
                     f"{method} {path}")
    _unavailable(await api.install(make_package("other")), "install")
    uploads = api.service.settings.staging_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), "no staged upload is left"

    cut.restore()
    ready = await _wait_ready(api, True)
    assert ready["plugins"] == 1
    listed = (await api.client.get("/api/v1/plugins")).json()
    assert [p["id"] for p in listed["items"]] == ["demo"]
    assert listed["items"][0]["enabled"] is True, "nothing changed during the outage"
    assert (await api.install(make_package("other"))).status_code == 201
    r = await api.client.post("/api/v1/plugins/demo/disable")
    assert r.status_code == 200


async def test_database_outage_with_tokens_is_503_not_401(
    outage_api: Api, proxy: tuple[TcpProxy, str]
) -> None:
    api, (cut, _) = outage_api, proxy
    headers = api.auth("admin")
    assert (await api.client.get("/api/v1/plugins", headers=headers)).status_code == 200
    api.app.state.api.authority._ttl = 0
    cut.cut()
    _unavailable(await api.client.get("/api/v1/plugins", headers=headers), "with a token")
    _unavailable(await api.client.get("/api/v1/plugins"), "without a token")
    cut.restore()
    await _wait_ready(api, True)
    assert (await api.client.get("/api/v1/plugins", headers=headers)).status_code == 200
