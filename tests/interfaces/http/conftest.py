"""Fixtures for the management API: a real PluginService on a temporary home, the app around
it with its lifespan entered, an httpx client over the ASGI transport, and plugin packages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from plughost.interfaces.http import ApiOptions, create_app
from plughost.security.package import pack
from plughost.services.manager import PluginService
from plughost.settings import HostSettings

MakePackage = Callable[..., Path]


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> HostSettings:
    """A home accepting unsigned packages, or the signature policy a test names
    (``@pytest.mark.parametrize("settings", ["always"], indirect=True)``)."""
    policy = getattr(request, "param", "never")
    return HostSettings(home=tmp_path / "home", require_signature=policy)


@pytest.fixture
def make_package(tmp_path: Path, write_plugin: Any) -> MakePackage:
    """Build a real package zip of a generated plugin: ``make_package("demo", "1.0.0")``."""
    out = tmp_path / "packages"
    out.mkdir(exist_ok=True)

    def make(plugin_id: str, version: str = "1.0.0", **kwargs: Any) -> Path:
        folder = write_plugin(plugin_id, version,
                              directory=tmp_path / "src" / f"{plugin_id}-{version}", **kwargs)
        return pack(folder, out)

    return make


@dataclass
class Api:
    app: Any
    service: PluginService
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str) -> dict[str, str]:
        """Headers with a token of ``role`` (created on first use)."""
        if role not in self.tokens:
            _, secret = self.app.state.api.authority.create(role, f"test-{role}")
            self.tokens[role] = secret
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def install(self, package: Path, **data: str) -> httpx.Response:
        with package.open("rb") as fh:
            return await self.client.post(
                "/api/v1/plugins/install", data={"source": "local", **data},
                files={"file": (package.name, fh, "application/zip")},
                headers=self.auth("admin") if self.tokens else {})


async def open_api(settings: HostSettings, options: ApiOptions | None = None,
                   **service_options: Any) -> AsyncIterator[Api]:
    service = PluginService(settings, start=True, **service_options)
    app = create_app(service, settings, options=options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Api(app, service, c)


@pytest.fixture
async def api(settings: HostSettings) -> AsyncIterator[Api]:
    async for value in open_api(settings):
        yield value
