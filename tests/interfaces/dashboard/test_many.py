"""More plugins than one page holds: the list pages through them, and search and filters
reach the ones on later pages. (Load time with 1,000 plugins: bench/bench_dashboard.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from plughost.security.package import pack
from tests.interfaces.dashboard.conftest import NewPage, install_into, new_home
from tests.interfaces.http._server import running_server

pytestmark = pytest.mark.timeout(240)

COUNT = 57  # a full page of 50, and 7 on the second


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("many")
    home = new_home(root)
    out = root / "packages"
    out.mkdir()
    packages = []
    for i in range(COUNT):
        folder = root / "src" / f"m{i:03d}"
        folder.mkdir(parents=True)
        kind = "notify" if i % 10 == 3 else "demo"
        (folder / "plugin.toml").write_text(
            f'id = "many-{i:03d}"\nname = "Many {i}"\nversion = "1.0.0"\ntype = "{kind}"\n'
            'entry = "m:P"\n')
        (folder / "m.py").write_text("from plughost.sdk import Plugin\n\n\nclass P(Plugin):\n"
                                     "    pass\n")
        packages.append(pack(folder, out))

    install_into(home, packages, activate=False, batch=8)
    with running_server(home) as server:
        yield server.base_url


def test_pages_search_and_filters_across_pages(base: str, new_page: NewPage) -> None:
    page = new_page()
    page.goto(base + "/")
    rows = page.locator("tbody tr[data-plugin]")
    expect(page.locator("#plugin-range")).to_have_text(f"Showing 1–50 of {COUNT}")
    expect(rows).to_have_count(50)
    expect(page.locator(".counts")).to_contain_text(f"{COUNT} installed")
    expect(page.locator("#prev-page")).to_be_disabled()
    page.click("#next-page")
    expect(page.locator("#plugin-range")).to_have_text(f"Showing 51–{COUNT} of {COUNT}")
    expect(rows).to_have_count(COUNT - 50)
    expect(rows.first).to_contain_text("many-050")
    expect(page.locator("#next-page")).to_be_disabled()
    page.click("#prev-page")
    expect(rows.first).to_contain_text("many-000")
    # search finds one on the second page
    page.fill("#plugin-search", "many 55")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("many-055")
    page.fill("#plugin-search", "")
    # a filter: the count in the option is the number of rows it shows
    notify = sum(1 for i in range(COUNT) if i % 10 == 3)
    page.select_option("select[data-filter=type]", "notify")
    expect(rows).to_have_count(notify)
    expect(page.locator("select[data-filter=type] option:checked")).to_have_text(
        f"notify ({notify})")
    # keyboard: the search field, the filters and the buttons are reachable with Tab
    page.focus("#plugin-search")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.filter") == "type"


def test_the_first_page_shows_before_its_counts_and_health_arrive(base: str,
                                                                  new_page: NewPage) -> None:
    page = new_page()
    held: list[object] = []
    # hold the counts of the filter menus and the health: the first page must not wait
    page.route("**/api/v1/plugin-counts*", lambda route: held.append(route))
    page.route("**/api/v1/health?*", lambda route: held.append(route))
    page.goto(base + "/")
    rows = page.locator("tbody tr[data-plugin]")
    expect(page.locator("#plugin-range")).to_have_text(f"Showing 1–50 of {COUNT}")
    expect(rows).to_have_count(50)
    expect(page.locator(".counts")).to_contain_text("counting")
    page.wait_for_timeout(100)
    assert held, "the counts and the health were not asked for"
    for route in held:
        route.continue_()  # type: ignore[attr-defined]
    expect(page.locator(".counts")).not_to_contain_text("counting")
    expect(page.locator(".counts")).to_contain_text(f"{COUNT} installed")
    page.click("#next-page")
    expect(page.locator("#plugin-range")).to_have_text(f"Showing 51–{COUNT} of {COUNT}")


def test_a_change_asks_again_for_the_page_on_screen_alone(base: str, new_page: NewPage) -> None:
    # What the list costs the server is a page, whatever is installed: on a change, the
    # dashboard asks again for the page it shows, its counts and its rows' health.
    page = new_page()
    page.goto(base + "/")
    rows = page.locator("tbody tr[data-plugin]")
    page.click("#next-page")
    expect(page.locator("#plugin-range")).to_have_text(f"Showing 51–{COUNT} of {COUNT}")
    expect(page.locator(".counts")).to_contain_text(f"{COUNT} active")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/" in r.url else None)
    row = rows.filter(has_text="many-052")
    row.get_by_role("button", name="Deactivate").click()
    expect(row.locator(".badge").first).to_have_text("deactivated")
    expect(page.locator("#plugin-range")).to_have_text(f"Showing 51–{COUNT} of {COUNT}")
    expect(page.locator(".counts")).to_contain_text(f"{COUNT - 1} active")
    expect(page.locator(".counts")).to_contain_text("1 deactivated")
    row.get_by_role("button", name="Activate").click()  # as the module found it
    expect(page.locator(".counts")).to_contain_text(f"{COUNT} active")
    lists = [u for u in asked if "/api/v1/plugins?" in u]
    assert lists and all("limit=50" in u and "cursor=" in u for u in lists), lists
    health = [u for u in asked if "/api/v1/health" in u]
    assert health and all(u.count("plugin_id=") == COUNT - 50 for u in health), health


def test_a_search_typed_before_the_first_page_arrives_gets_its_own_counts(
        base: str, new_page: NewPage) -> None:
    page = new_page()
    held: list[object] = []
    # the page load's own requests (the first page, the counts) are held until after a search
    page.route(lambda url: url.endswith("/api/v1/plugins?limit=50"),
               lambda route: held.append(route))
    page.route("**/api/v1/plugin-counts", lambda route: held.append(route))
    page.goto(base + "/")
    page.fill("#plugin-search", "many-05")  # many-050 to many-056
    rows = page.locator("tbody tr[data-plugin]")
    expect(rows).to_have_count(7)
    for route in held:
        route.continue_()  # type: ignore[attr-defined]
    expect(page.locator("select[data-filter=type] option").first).to_have_text("All types (7)")
    expect(page.locator(".counts")).to_contain_text(f"{COUNT} installed")
    expect(rows).to_have_count(7)
