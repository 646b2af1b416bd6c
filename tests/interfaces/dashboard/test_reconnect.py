"""The live connection: the header tells the truth while the server is away, the page
reconnects by itself when it is back, and shows what changed meanwhile."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from plughost.services.manager import PluginService
from plughost.settings import HostSettings
from tests.interfaces.dashboard.conftest import (
    NewPage,
    http_status,
    in_thread,
    install_examples,
    new_home,
    packages,
    shoot,
)
from tests.interfaces.http._server import ServerProcess

pytestmark = pytest.mark.timeout(240)


def disable_offline(home: Path, plugin_id: str) -> None:
    """Change the home while no server runs (as `plughost disable` would)."""

    async def main() -> None:
        settings = HostSettings.from_file(home / "plughost.toml", home=home)
        async with PluginService(settings) as service:
            await service.disable(plugin_id)

    in_thread(main())


def test_reconnects_after_a_restart_and_resynchronises(tmp_path: Path,
                                                       new_page: NewPage) -> None:
    home = new_home(tmp_path)
    install_examples(home, packages(tmp_path / "packages"))
    first = ServerProcess(home, [])
    second: ServerProcess | None = None
    try:
        first.wait_ready(60)
        page = new_page()
        # while the server is away the browser logs its refused connections; that is expected
        page.console.expect(r"net::ERR_")  # type: ignore[attr-defined]
        page.console.expect(http_status(503))  # type: ignore[attr-defined]
        page.goto(first.base_url + "/")
        conn = page.locator("#conn")
        expect(conn).to_have_text("Live")
        hello = page.locator("tr[data-plugin=hello]")
        expect(hello.get_by_role("button", name="Disable")).to_be_visible()

        first.stop()
        assert first.returncode == 0
        expect(conn).to_have_text(re.compile(r"^Reconnecting in \d+ s"))
        expect(conn).to_have_class(re.compile("conn-down"))
        shoot(page, "reconnecting")

        disable_offline(home, "hello")
        port = urlsplit(first.base_url).port
        second = ServerProcess(home, ["--port", str(port)])
        second.wait_ready(60)
        assert second.base_url == first.base_url
        expect(conn).to_have_text("Live", timeout=30_000)
        # resynchronised: the change made while disconnected is on the page
        expect(hello.get_by_role("button", name="Enable")).to_be_visible()
        expect(page.locator("#ready")).to_contain_text("Ready")
        # and live events flow again: a change through the new server shows up
        assert httpx.post(second.base_url + "/api/v1/plugins/hello/enable").status_code == 200
        expect(hello.get_by_role("button", name="Disable")).to_be_visible()
    finally:
        first.stop()
        if second is not None:
            second.stop()
