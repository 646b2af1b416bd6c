"""The Marketplace page in a real browser against a real server that reads a real marketplace
(a TUF-signed repository on disk served over HTTP on loopback, as in tests/services/market):
browse, search, install with a dependency, update. Also: no page ever shows a missing value as
"null" or "undefined", checked with a plugin whose manifest has only the required fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from plughost.security.package import pack
from plughost.services.market.client import MarketClient
from plughost.services.market.repo import MarketRepository
from plughost.services.market.serve import RepositoryServer
from tests.interfaces.dashboard.conftest import EXAMPLES, NewPage, Site, new_home, shoot
from tests.interfaces.http._server import running_server

pytestmark = pytest.mark.timeout(180)

#: Words a missing value turns into when a page writes it as text.
STRAY = re.compile(r"\b(null|undefined|NaN)\b|\[object ")


def bare_plugin(root: Path, version: str) -> Path:
    """A package whose manifest has only the required fields: no name, description, type,
    author, configuration schema or permissions; unsigned."""
    folder = root / f"bare-{version}"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(f'id = "bare"\nversion = "{version}"\n'
                                        'entry = "main:Main"\n')
    (folder / "main.py").write_text("class Main:\n    pass\n")
    return pack(folder, root)


@pytest.fixture(scope="module")
def market_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server whose home reads one marketplace listing music-local 1.2.0, lyrics-lrc 0.3.1
    (needs music-local), hello 1.0.0 and bare 1.0.0 and 1.1.0; nothing installed."""
    root = tmp_path_factory.mktemp("market")
    out = root / "packages"
    out.mkdir()
    repo = MarketRepository.init(root / "repo", name="test")
    for name in ("music-local", "lyrics-lrc", "hello"):
        repo.publish(pack(EXAMPLES / name, out), allow_unsigned=True)
    for version in ("1.0.0", "1.1.0"):
        repo.publish(bare_plugin(out, version), allow_unsigned=True)
    home = new_home(root)
    with RepositoryServer(repo.public) as served:
        MarketClient(home).add("main", served.url, (repo.path / "root.json").read_bytes())
        with running_server(home) as server:
            yield Site(server, home, {})


def open_market(page: Page, site: Site) -> None:
    page.goto(site.url + "/#/market")
    expect(page.locator("tr[data-market]")).to_have_count(4)


def test_marketplace_browse_search_install_and_update(market_site: Site,
                                                      new_page: NewPage) -> None:
    site = market_site
    # bare 1.0.0 is installed (pinned) from the marketplace first: the page offers 1.1.0
    r = site.post("/api/v1/plugins/install",
                  {"source": "market", "marketId": "bare", "version": "1.0.0"})
    assert r.status_code == 201, r.text
    page = new_page()
    open_market(page, site)
    # browse: every plugin of the catalog with its newest version, type and downloads
    expect(page.locator("nav a", has_text="Marketplace")).to_have_attribute(
        "aria-current", "page")
    expect(page.get_by_text("4 in the catalog")).to_be_visible()
    lyrics = page.locator("tr[data-market=lyrics-lrc]")
    expect(lyrics).to_contain_text("0.3.1")
    expect(lyrics).to_contain_text("lyrics")
    expect(lyrics).to_contain_text("Lyrics provider that needs a music source")
    expect(lyrics.get_by_role("button", name="Install")).to_be_visible()
    bare = page.locator("tr[data-market=bare]")
    expect(bare).to_contain_text("installed 1.0.0")
    expect(bare.get_by_role("button", name="Update")).to_be_visible()
    shoot(page, "marketplace")
    # search
    page.fill("#market-search", "lyrics")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tr[data-market]")).to_have_count(1)
    expect(page.get_by_text("1 in the catalog")).to_be_visible()
    page.fill("#market-search", "no-such-words")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Nothing in the catalog matches.")).to_be_visible()
    page.fill("#market-search", "lyrics")
    page.get_by_role("button", name="Search").click()
    # install: the dependency (music-local) comes with it
    lyrics.get_by_role("button", name="Install").click()
    ok = page.locator("main .ok")
    expect(ok).to_contain_text("Installed lyrics-lrc 0.3.1")
    expect(lyrics).to_contain_text("installed 0.3.1")
    expect(lyrics.get_by_role("button", name="Install")).to_have_count(0)
    assert site.get("/api/v1/plugins/lyrics-lrc")["source"] == "market"
    assert site.get("/api/v1/plugins/music-local")["version"] == "1.2.0"
    ok.get_by_role("button", name="Dismiss").click()
    # update: the message names the versions, from and to
    page.fill("#market-search", "")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tr[data-market]")).to_have_count(4)
    bare.get_by_role("button", name="Update").click()
    expect(ok).to_have_text(re.compile(r"Updated bare from 1\.0\.0 to 1\.1\.0\."))
    expect(bare).to_contain_text("installed 1.1.0")
    expect(bare.get_by_role("button", name="Update")).to_have_count(0)
    assert site.get("/api/v1/plugins/bare")["version"] == "1.1.0"


def test_no_page_shows_a_missing_value_as_null(market_site: Site, new_page: NewPage) -> None:
    """bare has no name, description, type, author, schema or signature: every page that
    shows it writes nothing or an em dash for those, never "null"."""
    site = market_site
    if httpx.get(site.url + "/api/v1/plugins/bare", timeout=30).status_code == 404:
        r = site.post("/api/v1/plugins/install", {"source": "market", "marketId": "bare"})
        assert r.status_code == 201, r.text
    page = new_page()
    checks = [("plugins", "tr[data-plugin=bare]"), ("plugins/bare", "#versions tbody tr"),
              ("plugins/bare/config", "#config-form"), ("market", "tr[data-market=bare]"),
              ("operations", "tbody tr"), ("audit", "tbody tr"),
              ("alerts", "#rule-name"), ("commands", "main .card p, [data-command]"),
              ("tokens", "#new-token-name"), ("install", "#package-file")]
    for name, ready in checks:
        page.goto(f"{site.url}/#/{name}")
        expect(page.locator(ready).first).to_be_visible()
        if name == "plugins/bare":
            expect(page.locator("#health dl")).to_be_visible()
            expect(page.locator("#history tbody tr").first).to_be_visible()
            expect(page.locator("#metrics dl")).to_be_visible()
        text = page.locator("main").inner_text()
        assert not STRAY.search(text), f"#/{name} shows {STRAY.search(text)!r}:\n{text}"
    # the list writes an em dash for the missing type
    page.goto(site.url + "/#/plugins")
    row = page.locator("tr[data-plugin=bare]")
    expect(row.locator("td").nth(2)).to_have_text("\u2014")
