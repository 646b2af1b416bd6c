"""An S3 object store outage: ``/readyz`` answers 503 naming the object store (its bucket and
endpoint) and what to check, not a generic message, and turns ready again once the store is
back, without a restart.

The outage is real: the server reaches moto's S3 server through a TCP proxy that the test cuts
(connections refused, open ones broken) and restores.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from plughost.settings import HostSettings
from tests.fixtures.objectstores import moto_s3_endpoint  # noqa: F401 - fixture
from tests.interfaces.http._tcp_proxy import TcpProxy
from tests.interfaces.http.conftest import Api, open_api

BUCKET = f"plughost-outage-{secrets.token_hex(4)}"


@pytest.fixture
def s3_proxy(moto_s3_endpoint: str) -> Iterator[TcpProxy]:  # noqa: F811
    target = urlsplit(moto_s3_endpoint)
    with TcpProxy((target.hostname or "127.0.0.1", target.port or 80)) as proxy:
        yield proxy


@pytest.fixture
async def s3_api(tmp_path: Path, s3_proxy: TcpProxy) -> AsyncIterator[Api]:
    store = (f"s3://{BUCKET}/store?endpoint_url=http://127.0.0.1:{s3_proxy.port}"
             "&region=us-east-1&create_bucket=1")
    settings = HostSettings(home=tmp_path / "home", require_signature="never",
                            object_store=store)
    async for value in open_api(settings):
        yield value


async def _readyz_until(api: Api, status: int) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        r = await api.client.get("/readyz")
        if r.status_code == status:
            return r.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, r.text


async def test_readyz_names_the_object_store_when_s3_is_down_and_recovers(
        s3_api: Api, s3_proxy: TcpProxy) -> None:
    assert (await _readyz_until(s3_api, 200))["ready"] is True

    s3_proxy.cut()
    not_ready = await _readyz_until(s3_api, 503)
    reason = str(not_ready["reason"])
    assert not_ready["ready"] is False
    assert "object store" in reason and f"s3://{BUCKET}/store/" in reason, reason
    assert f"127.0.0.1:{s3_proxy.port}" in reason, reason  # the endpoint it cannot reach
    assert "check" in reason and "database" not in reason, reason
    assert (await s3_api.client.get("/healthz")).status_code == 200  # alive, just not ready

    s3_proxy.restore()
    assert (await _readyz_until(s3_api, 200))["ready"] is True
