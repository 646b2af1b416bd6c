"""Every page of the dashboard in a real browser against a real server: what it shows, that it
works at 390 px wide, that nothing comes from the internet, and a screenshot of each."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.interfaces.dashboard.conftest import NewPage, Site, http_status, shoot

pytestmark = pytest.mark.timeout(180)

#: Each page, and something it shows once its data is loaded.
PAGES = [("plugins", "tbody tr[data-plugin]"), ("plugins/music-local", "#versions tbody tr"),
         ("install", "#package-file"), ("operations", "tbody tr"), ("audit", "tbody tr"),
         ("alerts", "#rule-name"), ("commands", "[data-command]"),
         ("tokens", "#new-token-name")]


def offline(page: Page, base: str) -> list[str]:
    """Refuse (and record) every request that does not go to the server under test."""
    outside: list[str] = []
    host = urlsplit(base).netloc

    def handle(route: Route) -> None:
        if urlsplit(route.request.url).netloc == host or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return outside


def test_plugin_list_search_filters_and_counts(site: Site, new_page: NewPage) -> None:
    page = new_page()
    outside = offline(page, site.url)
    page.goto(site.url + "/")
    rows = page.locator("tbody tr[data-plugin]")
    expect(rows).to_have_count(5)
    expect(page.locator("#conn")).to_have_text("Live")
    counts = page.locator(".counts")
    expect(counts).to_contain_text("5 installed")
    # notify-slack lacks its required webhook: it waits for it, and the page links to the form
    waiting = page.locator("tr[data-plugin=notify-slack]")
    expect(waiting.locator(".badge")).to_have_text("needs-config")
    expect(counts).to_contain_text("1 needs-config")
    # search
    page.fill("#plugin-search", "lyrics")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("lyrics-lrc")
    page.fill("#plugin-search", "")
    expect(rows).to_have_count(5)
    # each filter lists the values with their counts, and filters
    type_filter = page.locator("select[data-filter=type]")
    expect(type_filter.locator("option", has_text="music-source (1)")).to_have_count(1)
    type_filter.select_option("music-source")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("music-local")
    type_filter.select_option("")
    state_filter = page.locator("select[data-filter=state]")
    # the menus' counts follow the page: those of every type again
    expect(state_filter.locator("option").first).to_have_text("All states (5)")
    active = state_filter.locator("option", has_text="active")
    expect(active).not_to_have_count(0)
    shown = int(re.fullmatch(r"active \((\d+)\)", active.inner_text())[1])  # type: ignore[index]
    state_filter.select_option("active")
    expect(page.locator("#plugin-range")).to_have_text(f"Showing 1–{shown} of {shown}")
    expect(rows).to_have_count(shown)
    for text in rows.all_inner_texts():
        assert "active" in text
    state_filter.select_option("")
    runtime = page.locator("select[data-filter=runtime]")
    expect(runtime.locator("option", has_text="python (5)")).to_have_count(1)
    runtime.select_option("python")
    expect(rows).to_have_count(5)
    source = page.locator("select[data-filter=source]")
    expect(source.locator("option", has_text="local (5)")).to_have_count(1)
    source.select_option("local")
    expect(rows).to_have_count(5)
    expect(page.locator("#plugin-range")).to_have_text("Showing 1–5 of 5")
    expect(page.locator("#next-page")).to_be_disabled()
    shoot(page, "plugins")
    waiting.get_by_role("link", name="Set its configuration").click()
    expect(page).to_have_url(re.compile(r"#/plugins/notify-slack/config$"))
    expect(page.locator("#cfg-webhook_url")).to_be_visible()
    assert outside == []


def test_plugin_details_show_every_section(site: Site, new_page: NewPage) -> None:
    page = new_page()
    outside = offline(page, site.url)
    page.goto(site.url + "/#/plugins/music-local")
    expect(page.locator("h1")).to_contain_text("music-local")
    summary = page.locator("#summary")
    expect(summary).to_contain_text("1.2.0")
    expect(summary).to_contain_text("music-source")
    expect(page.locator("#dependencies")).to_contain_text("lyrics-lrc")   # a dependent
    expect(page.locator("#versions tr[data-version='1.2.0']")).to_contain_text("current")
    expect(page.locator("#health")).to_contain_text("Healthy")
    expect(page.locator("#manifest pre")).to_contain_text('"music.search"')
    expect(page.locator("#history")).to_contain_text("plugin.install")
    expect(page.locator("#metrics")).to_contain_text("Calls")
    expect(page.locator("#config")).to_contain_text("Version")
    expect(page.locator("#permissions")).to_contain_text("Granted")
    # the chart library is loaded on this page only, from the server
    page.wait_for_function("() => !!window.uPlot")
    # the dependency side: lyrics-lrc needs music-local, with a link to it
    page.click("#dependencies >> text=lyrics-lrc")
    expect(page.locator("#dependencies")).to_contain_text("^1.0")
    expect(page).to_have_url(re.compile(r"#/plugins/lyrics-lrc$"))
    page.goto(site.url + "/#/plugins/music-local")
    expect(page.locator("#health")).to_contain_text("Healthy")
    shoot(page, "plugin-details")
    assert outside == []


def test_each_page_renders_and_fits_390px(site: Site, new_page: NewPage) -> None:
    page = new_page(width=390, height=844)
    outside = offline(page, site.url)
    for name, ready in PAGES:
        page.goto(f"{site.url}/#/{name}")
        expect(page.locator(ready).first).to_be_visible()
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= 390, f"#/{name} is {overflow} px wide at 390 px"
    page.goto(site.url + "/#/plugins")
    expect(page.locator("tbody tr[data-plugin]")).to_have_count(5)
    shoot(page, "plugins-390px")
    assert outside == []


def test_screenshots_of_the_other_pages(site: Site, new_page: NewPage) -> None:
    page = new_page()
    for name, ready in PAGES[2:]:
        page.goto(f"{site.url}/#/{name}")
        expect(page.locator(ready).first).to_be_visible()
        shoot(page, name)
    page.goto(f"{site.url}/#/plugins/notify-slack/config")
    expect(page.locator("#cfg-webhook_url")).to_be_visible()
    shoot(page, "plugin-config")


def test_api_reference_works_without_the_internet(site: Site, new_page: NewPage) -> None:
    page = new_page()
    outside = offline(page, site.url)
    page.goto(site.url + "/docs")
    expect(page.locator(".swagger-ui")).to_be_visible()
    expect(page.get_by_text("/api/v1/whoami", exact=True).first).to_be_visible(timeout=60_000)
    shoot(page, "api-reference", full=False)
    assert outside == []


def test_marketplace_page_without_a_marketplace_says_how_to_add_one(site: Site,
                                                                    new_page: NewPage) -> None:
    """The Marketplace page is there whenever the server offers GET /api/v1/market/search
    (enable_market, on by default); this home reads no marketplace, so the page shows the
    server's answer, which says how to add one. Browsing, search, install and update:
    test_market.py."""
    me = site.get("/api/v1/whoami")
    assert "GET /api/v1/market/search" in me["operations"]
    page = new_page()
    page.console.expect(http_status(409))  # type: ignore[attr-defined]
    page.goto(site.url + "/")
    expect(page.locator("tbody tr[data-plugin]")).to_have_count(5)
    page.locator("nav a", has_text="Marketplace").click()
    error = page.locator(".error[data-code='market.disabled']")
    expect(error).to_contain_text("no marketplace is configured")
    expect(error).to_contain_text("plughost market add NAME URL --root root.json")


def test_first_load_is_small(site: Site, new_page: NewPage) -> None:
    """HTML, CSS and JavaScript of the dashboard's first load stay within 150 KB."""
    page = new_page()
    sizes: dict[str, int] = {}

    def record(response) -> None:  # type: ignore[no-untyped-def]
        path = urlsplit(response.url).path
        if path == "/" or path.startswith("/dashboard/"):
            sizes[path] = len(response.body())

    page.on("response", record)
    page.goto(site.url + "/")
    expect(page.locator("tbody tr[data-plugin]")).to_have_count(5)
    total = sum(sizes.values())
    print(f"first load: {total} bytes in {len(sizes)} files: {sizes}")
    assert "/dashboard/vendor/uplot/uPlot.iife.min.js" not in sizes
    assert total <= 150 * 1024, sizes
