"""Signing in with a token, and a page that shows each role only what it may do: a viewer
sees no button that would be refused, an operator no admin action."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from plughost.interfaces.tokens import TokenAuthority
from plughost.services.manager import PluginService
from plughost.settings import HostSettings
from tests.interfaces.dashboard.conftest import (
    NewPage,
    Site,
    http_status,
    in_thread,
    install_examples,
    new_home,
    packages,
    shoot,
)
from tests.interfaces.http._server import running_server

pytestmark = pytest.mark.timeout(180)

#: Buttons of actions that need operator or admin.
ACTIONS = ["Enable", "Disable", "Activate", "Deactivate", "Uninstall", "Save", "Reset to defaults",
           "Grant", "Revoke", "Approve", "Refuse", "Roll back to this", "Check now", "Run",
           "Add rule", "Remove", "Restore"]
ADMIN_ONLY = ["Uninstall", "Grant", "Revoke", "Approve", "Refuse", "Roll back to this"]


class SecuredSite(Site):
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredSite]:
    root = tmp_path_factory.mktemp("secured")
    home = new_home(root)
    pkgs = packages(root / "packages")
    install_examples(home, pkgs)
    tokens: dict[str, str] = {}

    async def create_tokens() -> None:
        settings = HostSettings.from_file(home / "plughost.toml", home=home)
        async with PluginService(settings) as service:
            authority = TokenAuthority(service.repository)
            for role in ("viewer", "operator", "admin"):
                tokens[role] = authority.create(role, f"ci-{role}")[1]

    in_thread(create_tokens())
    with running_server(home) as server:
        site = SecuredSite(server, home, pkgs)
        site.tokens = tokens
        yield site


def sign_in(page: Page, site: SecuredSite, token: str) -> None:
    page.goto(site.url + "/")
    page.fill("#token-input", token)
    page.get_by_role("button", name="Sign in").click()


def visible_actions(page: Page) -> set[str]:
    names = page.locator("main button:visible").all_inner_texts()
    return {n.strip() for n in names} & set(ACTIONS)


def test_a_server_with_tokens_asks_to_sign_in(secured: SecuredSite, new_page: NewPage) -> None:
    page = new_page(width=390, height=844)
    page.console.expect(http_status(401))  # type: ignore[attr-defined]
    page.goto(secured.url + "/#/plugins")
    expect(page.locator("#token-input")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("Not signed in")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(page, "sign-in")
    sign_in(page, secured, "not-a-token")
    error = page.locator("form .error")
    expect(error).to_contain_text("auth.invalid")
    expect(page.locator("#token-input")).to_be_visible()


def test_viewer_sees_no_button_that_would_be_refused(secured: SecuredSite,
                                                     new_page: NewPage) -> None:
    page = new_page()
    sign_in(page, secured, secured.tokens["viewer"])
    expect(page.locator("#who")).to_contain_text("ci-viewer (viewer)")
    expect(page.locator("#conn")).to_have_text("Live")
    expect(page.locator("tbody tr[data-plugin]")).to_have_count(5)
    assert visible_actions(page) == set()
    nav = page.locator("nav").inner_text()
    assert "Install" not in nav and "Tokens" not in nav and "Plugins" in nav
    for where in ("plugins/asker", "plugins/notify-slack", "alerts", "commands"):
        page.goto(f"{secured.url}/#/{where}")
        expect(page.locator("main .card").first).to_be_visible()
        page.wait_for_function("() => !document.querySelector('main .content:empty')"
                               " || document.querySelectorAll('main .card').length > 0")
        if where.startswith("plugins/"):
            expect(page.locator("#versions tbody tr").first).to_be_visible()
            # no Update form for a viewer, and no "null" written in its place
            expect(page.locator("#summary")).not_to_contain_text("null")
            expect(page.locator("#config form")).to_be_visible()
            expect(page.locator("#permissions h3").first).to_be_visible()
            # the configuration is shown, read-only
            for field in page.locator("#config-form input, #config-form textarea").all():
                expect(field).to_be_disabled()
        assert visible_actions(page) == set(), where
    shoot(page, "viewer")


def test_operator_sees_operator_actions_only(secured: SecuredSite, new_page: NewPage) -> None:
    page = new_page()
    sign_in(page, secured, secured.tokens["operator"])
    expect(page.locator("tbody tr[data-plugin]")).to_have_count(5)
    assert {"Disable", "Deactivate"} <= visible_actions(page)
    page.goto(secured.url + "/#/plugins/asker")
    expect(page.locator("#versions tbody tr").first).to_be_visible()
    expect(page.locator("#requests li")).to_have_count(1)
    # the configuration section loads on its own request; wait for it before reading the buttons
    expect(page.locator("#config").get_by_role("button", name="Save")).to_be_visible()
    shown = visible_actions(page)
    assert {"Check now", "Save", "Deactivate"} <= shown, shown
    assert not shown & set(ADMIN_ONLY), shown
    # an operator's action works
    page.locator("#summary").get_by_role("button", name="Deactivate").click()
    expect(page.locator("#summary").get_by_role("button", name="Activate")).to_be_visible()
    page.locator("#summary").get_by_role("button", name="Activate").click()
    expect(page.locator("#summary").get_by_role("button", name="Deactivate")).to_be_visible()


def test_admin_sees_everything_and_a_revoked_token_stops_the_page(secured: SecuredSite,
                                                                  new_page: NewPage) -> None:
    page = new_page()
    page.console.expect(http_status(401))  # type: ignore[attr-defined]
    sign_in(page, secured, secured.tokens["admin"])
    expect(page.locator("tbody tr[data-plugin]")).to_have_count(5)
    nav = page.locator("nav").inner_text()
    assert "Install" in nav and "Tokens" in nav
    page.goto(secured.url + "/#/plugins/asker")
    expect(page.locator("#requests li")).to_have_count(1)
    # (asker has one version, so nothing to roll back to; nothing is granted to revoke)
    assert set(ADMIN_ONLY) - {"Revoke", "Roll back to this"} <= visible_actions(page)
    # a viewer is watching when an admin revokes the viewer's token: the live connection
    # ends, the header and an error say why, and a reload asks to sign in again
    viewer = new_page()
    viewer.console.expect(http_status(401))  # type: ignore[attr-defined]
    sign_in(viewer, secured, secured.tokens["viewer"])
    expect(viewer.locator("#conn")).to_have_text("Live")
    page.goto(secured.url + "/#/tokens")
    page.on("dialog", lambda d: d.accept())
    page.locator("tr[data-token=ci-viewer]").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr[data-token=ci-viewer]")).to_have_count(0)
    expect(viewer.locator("#conn")).to_have_text("Not connected", timeout=30_000)
    expect(viewer.locator("#signin-errors .error")).to_contain_text("Live updates stopped")
    viewer.reload()
    expect(viewer.locator(".error").first).to_contain_text("auth.invalid")
    expect(viewer.locator("#token-input")).to_be_visible()
    # sign out
    page.locator("#signout").click()
    expect(page.locator("#token-input")).to_be_visible()
