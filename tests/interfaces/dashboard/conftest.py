"""Browser tests of the dashboard: a real ``plughost serve`` with real plugins, driven by
Debian's Chromium through Playwright. One browser per test module; each test gets a fresh page
whose console must stay free of errors (a test names the few it provokes on purpose)."""

from __future__ import annotations

import asyncio
import re
import shutil
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from plughost.security.package import pack
from plughost.services.manager import PluginService
from plughost.settings import HostSettings
from tests.interfaces.http._server import ServerProcess, running_server
from tests.interfaces.http.conftest import Api, open_api

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
#: Screenshots of each page, linked from docs/dashboard.md (rewritten by every run).
SCREENSHOTS = REPO / "docs" / "dashboard"

#: A plugin that asks for a permission at run time, logs, and serves a command.
ASKER_CODE = '''
from plughost.sdk import Plugin


class Asker(Plugin):
    def activate(self, ctx):
        ctx.logger.info("asker active")
        request = getattr(ctx.permissions, "request", None)
        if request is not None and not ctx.permissions.allowed("net", "api.example.com:443"):
            request("net:api.example.com:443", "to read the weather")
        ctx.commands.register("shout", self.shout)

    def shout(self, text="hi"):
        self.ctx.logger.warning("shouting %s", text)
        return text.upper()
'''


def write_asker(root: Path, version: str = "1.0.0") -> Path:
    folder = root / f"asker-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text(textwrap.dedent(f'''\
        id = "asker"
        name = "Asker"
        version = "{version}"
        description = "Asks for a permission and shouts."
        type = "demo"
        entry = "asker:Asker"
        '''))
    (folder / "asker.py").write_text(ASKER_CODE)
    return folder


def packages(out: Path) -> dict[str, Path]:
    """Packages of the examples the tests install, plus two versions of ``asker``."""
    out.mkdir(parents=True, exist_ok=True)
    found = {name: pack(EXAMPLES / name, out)
             for name in ("hello", "music-local", "lyrics-lrc", "notify-slack",
                          "chat-filter-links")}
    src = out.parent / "src"
    found["asker"] = pack(write_asker(src, "1.0.0"), out)
    found["asker-1.1.0"] = pack(write_asker(src, "1.1.0"), out)
    return found


def new_home(root: Path) -> Path:
    home = root / "home"
    home.mkdir(parents=True)
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    return home


def install(base: str, package: Path, token: str | None = None, **fields: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with package.open("rb") as fh:
        r = httpx.post(f"{base}/api/v1/plugins/install", data={"source": "local", **fields},
                       files={"file": (package.name, fh, "application/zip")},
                       headers=headers, timeout=60)
    assert r.status_code in (200, 201), r.text
    return r.json()


class Site:
    """A running server with the example plugins installed."""

    def __init__(self, server: ServerProcess, home: Path, pkgs: dict[str, Path]) -> None:
        self.server = server
        self.home = home
        self.packages = pkgs

    @property
    def url(self) -> str:
        return self.server.base_url

    def get(self, path: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.get(self.url + path, headers=headers, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, json: Any = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.url + path, json=json, headers=headers, timeout=30)


def install_examples(home: Path, pkgs: dict[str, Path]) -> None:
    """Install the examples into ``home`` (before the server starts, as ``plughost install``
    does): music-local, lyrics-lrc (needs music-local), hello, asker, and notify-slack,
    which lacks its required webhook setting."""

    async def main() -> None:
        settings = HostSettings.from_file(home / "plughost.toml", home=home)
        async with PluginService(settings) as service:
            for name in ("music-local", "lyrics-lrc", "hello", "asker"):
                await service.install(pkgs[name], actor="test")
            await service.install(pkgs["notify-slack"], activate=False, actor="test")

    in_thread(main())


def in_thread(coroutine: Any) -> Any:
    """Run a coroutine to the end on its own loop in another thread (Playwright's sync API
    keeps a loop running in the test's thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def start_site(root: Path) -> Iterator[Site]:
    home = new_home(root)
    pkgs = packages(root / "packages")
    install_examples(home, pkgs)
    with running_server(home) as server:
        yield Site(server, home, pkgs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An open local server (no token needed) with the examples installed."""
    yield from start_site(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """Console errors and uncaught exceptions of a page. Only errors a test provokes on
    purpose (``expect``) are allowed; anything else fails the test at teardown."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")

    def expect(self, pattern: str) -> None:
        """Allow console errors matching ``pattern`` (e.g. the browser's own line for a
        409 answer the test asked for)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


NewPage = Callable[..., Page]


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """``new_page(width=1280, token=None)``: a page in a fresh context; its console errors are
    checked at the end of the test (``page.console.expect(...)`` allows provoked ones)."""
    contexts: list[Any] = []
    consoles: list[Console] = []

    def make(width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        console = Console()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        page.console = console  # type: ignore[attr-defined]
        consoles.append(console)
        page.set_default_timeout(15_000)
        return page

    yield make
    try:
        for console in consoles:
            assert console.unexpected() == [], f"console errors: {console.unexpected()}"
    finally:
        for context in contexts:
            context.close()


def shoot(page: Page, name: str) -> None:
    """Save a screenshot of the page for docs/dashboard.md."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def http_status(code: int) -> str:
    """The browser's own console line for an answer with this status."""
    return rf"Failed to load resource: the server responded with a status of {code}\b"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The app in-process (no browser), for checks of what the server sends the page."""
    async for value in open_api(HostSettings(home=tmp_path / "home", require_signature="never")):
        yield value
