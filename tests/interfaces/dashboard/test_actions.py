"""Every button and form of the dashboard, clicked in a real browser against a real server;
the effect is checked through the API, and refusals are checked to stay on the page."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.interfaces.dashboard.conftest import NewPage, Site, http_status, shoot

pytestmark = pytest.mark.timeout(180)


def plugin(site: Site, plugin_id: str) -> dict[str, object]:
    data: dict[str, object] = site.get(f"/api/v1/plugins/{plugin_id}")
    return data


def accept_dialogs(page: Page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def test_a_refusal_stays_on_the_page_until_dismissed(site: Site, new_page: NewPage) -> None:
    page = new_page()
    page.console.expect(http_status(409))  # type: ignore[attr-defined]
    page.goto(site.url + "/")
    row = page.locator("tr[data-plugin=music-local]")
    row.get_by_role("button", name="Disable").click()
    error = page.locator(".error[data-code='resolve.dependents']")
    expect(error).to_be_visible()
    expect(error).to_contain_text("lyrics-lrc")          # what blocks it
    expect(error).to_contain_text("HTTP 409")
    expect(error).to_contain_text("Disable them first")  # what to do
    # the page refreshes on every lifecycle event: the message must survive that
    hello = page.locator("tr[data-plugin=hello]")
    assert site.post("/api/v1/plugins/hello/deactivate").status_code == 200
    expect(hello.get_by_role("button", name="Activate")).to_be_visible()
    assert site.post("/api/v1/plugins/hello/activate").status_code == 200
    expect(hello.get_by_role("button", name="Deactivate")).to_be_visible()
    page.wait_for_timeout(700)  # past the refresh that follows the events
    expect(error).to_be_visible()
    # the same refusal again is not stacked twice
    row.get_by_role("button", name="Disable").click()
    expect(page.locator(".error[data-code='resolve.dependents']")).to_have_count(1)
    shoot(page, "error-shown")
    error.get_by_role("button", name="Dismiss").click()
    expect(page.locator(".error")).to_have_count(0)
    assert plugin(site, "music-local")["enabled"] is True


def test_enable_disable_activate_deactivate(site: Site, new_page: NewPage) -> None:
    page = new_page()
    page.goto(site.url + "/")
    row = page.locator("tr[data-plugin=hello]")
    row.get_by_role("button", name="Deactivate").click()
    expect(row.get_by_role("button", name="Activate")).to_be_visible()
    assert plugin(site, "hello")["state"] != "active"
    row.get_by_role("button", name="Activate").click()
    expect(row.locator(".badge")).to_have_text("active")
    row.get_by_role("button", name="Disable").click()
    expect(row.get_by_role("button", name="Enable")).to_be_visible()
    assert plugin(site, "hello")["enabled"] is False
    row.get_by_role("button", name="Enable").click()
    expect(row.get_by_role("button", name="Disable")).to_be_visible()
    assert plugin(site, "hello")["enabled"] is True
    # and from the plugin's own page
    page.goto(site.url + "/#/plugins/hello")
    summary = page.locator("#summary")
    summary.get_by_role("button", name="Deactivate").click()
    expect(summary.get_by_role("button", name="Activate")).to_be_visible()
    # the change's own event re-draws the summary 300 ms later (a resync); a click on the
    # button it replaces would be lost, so let it land first
    page.wait_for_timeout(500)
    summary.get_by_role("button", name="Activate").click()
    expect(summary.get_by_role("button", name="Deactivate")).to_be_visible()
    assert plugin(site, "hello")["state"] == "active"


def test_install_a_file_with_progress_then_uninstall(site: Site, new_page: NewPage) -> None:
    page = new_page()
    accept_dialogs(page)
    page.goto(site.url + "/#/install")
    page.set_input_files("#package-file", str(site.packages["chat-filter-links"]))
    page.get_by_role("button", name="Install from file").click()
    ok = page.locator(".ok")
    expect(ok).to_contain_text("Installed chat-filter-links 1.0.0")
    assert page.eval_on_selector("#upload-progress", "p => p.value") == 1
    assert plugin(site, "chat-filter-links")["state"] == "active"
    shoot(page, "install-done")
    # the operation is listed
    page.goto(site.url + "/#/operations")
    operation = page.locator("tr[data-operation]", has_text="chat-filter-links").first
    expect(operation).to_contain_text("succeeded")
    page.check("#only-unfinished")
    expect(page.locator("tr[data-operation]", has_text="chat-filter-links")).to_have_count(0)
    # uninstall from its page
    page.goto(site.url + "/#/plugins/chat-filter-links")
    page.locator("#summary").get_by_role("button", name="Uninstall").click()
    expect(page).to_have_url(re.compile(r"#/plugins$"))
    expect(page.locator("tr[data-plugin=chat-filter-links]")).to_have_count(0)
    r = httpx.get(site.url + "/api/v1/plugins/chat-filter-links")
    assert r.status_code == 404


def test_install_from_url_shows_the_refusal(site: Site, new_page: NewPage) -> None:
    page = new_page()
    page.console.expect(http_status(422))  # type: ignore[attr-defined]
    page.goto(site.url + "/#/install")
    page.fill("#package-url", "ftp://example.invalid/plugin.zip")
    page.get_by_role("button", name="Install from URL").click()
    error = page.locator(".error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("download.scheme")
    expect(error).to_contain_text("https")
    page.wait_for_timeout(500)
    expect(error).to_be_visible()


def test_update_then_roll_back(site: Site, new_page: NewPage) -> None:
    page = new_page()
    accept_dialogs(page)
    page.goto(site.url + "/#/plugins/asker")
    page.locator("#summary summary").click()
    page.set_input_files("#package-file", str(site.packages["asker-1.1.0"]))
    page.get_by_role("button", name="Update from file").click()
    # the message names what changed: the plugin, the version it had and the one it has now
    expect(page.locator("#summary .ok .result")).to_have_text(
        "Updated asker from 1.0.0 to 1.1.0. Open its page")
    expect(page.locator("#versions tr[data-version='1.1.0']")).to_contain_text("current")
    assert plugin(site, "asker")["version"] == "1.1.0"
    page.locator("#versions tr[data-version='1.0.0']").get_by_role(
        "button", name="Roll back to this").click()
    expect(page.locator("#versions tr[data-version='1.0.0']")).to_contain_text("current")
    assert plugin(site, "asker")["version"] == "1.0.0"


def test_configuration_form_with_server_validation_and_secrets(site: Site,
                                                               new_page: NewPage) -> None:
    page = new_page()
    page.console.expect(http_status(422))  # type: ignore[attr-defined]
    accept_dialogs(page)
    page.goto(site.url + "/#/plugins/notify-slack/config")
    form = page.locator("#config-form")
    secret = page.locator("#cfg-webhook_url")
    expect(secret).to_have_attribute("type", "password")
    page.fill("#cfg-channel", "#ops")
    form.get_by_role("button", name="Save").click()
    # the server refuses (the required secret is missing): the message and the field say so
    error = page.locator("#config .error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("webhook_url")
    expect(page.locator(".field[data-key=webhook_url]")).to_have_class(re.compile("invalid"))
    page.fill("#cfg-webhook_url", "https://hooks.slack.com/services/T/B/X")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#config .ok")).to_contain_text("Saved")
    config = site.get("/api/v1/plugins/notify-slack/config")
    assert config["config"]["channel"] == "#ops"
    assert config["config"]["webhook_url"] == "***"
    # the secret is never sent back to the page
    expect(page.locator("#cfg-webhook_url")).to_have_value("")
    expect(page.locator("#cfg-webhook_url")).to_have_attribute("placeholder", re.compile("set"))
    assert "hooks.slack.com/services" not in page.content()
    # with its configuration complete, the waiting (enabled) plugin starts
    assert plugin(site, "notify-slack")["state"] == "active"


def test_configuration_json_history_restore_and_reset(site: Site, new_page: NewPage) -> None:
    """hello has defaults but no schema: its settings are edited as JSON."""
    page = new_page()
    accept_dialogs(page)
    page.goto(site.url + "/#/plugins/hello/config")
    start = site.get("/api/v1/plugins/hello/config")["version"]

    def at_version(v: int) -> None:
        expect(page.locator("#config")).to_contain_text(f"Version {v}.")

    page.fill("#cfg-raw", '{"greeting": "Hi"}')
    page.locator("#config-form").get_by_role("button", name="Save").click()
    at_version(start + 1)
    assert site.get("/api/v1/plugins/hello/config")["config"]["greeting"] == "Hi"
    page.locator("#config details summary").click()
    page.locator("#config details li", has_text=f"version {start} ").get_by_role(
        "button", name="Restore").click()
    at_version(start + 2)
    assert site.get("/api/v1/plugins/hello/config")["config"]["greeting"] == "Hello"
    page.fill("#cfg-raw", '{"greeting": "Hey"}')
    page.locator("#config-form").get_by_role("button", name="Save").click()
    at_version(start + 3)
    page.locator("#config").get_by_role("button", name="Reset to defaults").click()
    at_version(start + 4)
    config = site.get("/api/v1/plugins/hello/config")
    assert config["settings"] == {} and config["config"]["greeting"] == "Hello"


def test_permissions_approve_refuse_grant_revoke(site: Site, new_page: NewPage) -> None:
    page = new_page()
    pending = site.get("/api/v1/permissions/requests?plugin_id=asker")["items"]
    assert [r["scope"] for r in pending] == ["net:api.example.com:443"]
    page.goto(site.url + "/#/plugins/asker")
    perms = page.locator("#permissions")
    perms.locator("#requests li").get_by_role("button", name="Approve").click()
    expect(perms.locator("#granted")).to_contain_text("net:api.example.com:443")
    expect(perms).to_contain_text("No request.")
    shoot(page, "permissions")
    perms.locator("#granted li", has_text="api.example.com").get_by_role(
        "button", name="Revoke").click()
    expect(perms).not_to_contain_text("api.example.com")
    # asked again on the next activation; refused this time
    assert site.post("/api/v1/plugins/asker/deactivate").status_code == 200
    assert site.post("/api/v1/plugins/asker/activate").status_code == 200
    expect(perms.locator("#requests li")).to_have_count(1)
    perms.locator("#requests li").get_by_role("button", name="Refuse").click()
    expect(perms).to_contain_text("No request.")
    assert site.get("/api/v1/plugins/asker/permissions")["granted"] == []
    # grant by hand
    page.fill("#grant-scope", "net:other.example.com:443")
    page.fill("#grant-reason", "test")
    perms.get_by_role("button", name="Grant", exact=True).click()
    expect(perms.locator("#granted")).to_contain_text("net:other.example.com:443")
    assert "net:other.example.com:443" in site.get("/api/v1/plugins/asker/permissions")["granted"]


def test_health_check_logs_and_metrics(site: Site, new_page: NewPage) -> None:
    page = new_page()
    page.goto(site.url + "/#/plugins/asker")
    expect(page.locator("#log-lines")).to_contain_text("asker active")   # the backlog
    page.locator("#health").get_by_role("button", name="Check now").click()
    expect(page.locator("#health")).to_contain_text("yes")
    # a command runs: its log line arrives live, and the call is counted
    r = site.post("/api/v1/commands/asker.shout", {"args": {"text": "live line"}})
    assert r.status_code == 200, r.text
    expect(page.locator("#log-lines")).to_contain_text("shouting live line")
    page.select_option("#log-level", "error")
    expect(page.locator("#log-lines")).not_to_contain_text("shouting")
    page.select_option("#log-level", "")
    expect(page.locator("#log-lines")).to_contain_text("shouting live line")
    page.locator("#logs").get_by_role("button", name="Clear").click()
    expect(page.locator("#log-lines")).to_have_text("")
    # the chart draws once two samples were taken (every 5 s)
    expect(page.locator("#metrics-chart canvas")).to_be_visible(timeout=20_000)
    shoot(page, "plugin-metrics-logs")


def test_commands_alerts_and_manifest_check(site: Site, new_page: NewPage) -> None:
    page = new_page()
    accept_dialogs(page)
    page.goto(site.url + "/#/commands")
    command = page.locator("[data-command='asker.shout']")
    command.locator("textarea").fill('{"text": "hey"}')
    command.get_by_role("button", name="Run").click()
    expect(command.locator("pre")).to_have_text('"HEY"')
    # alert rules: add and remove
    page.goto(site.url + "/#/alerts")
    page.fill("#rule-name", "ci-errors")
    page.fill("#rule-expr", "error_rate")
    page.fill("#rule-threshold", "0.5")
    page.fill("#rule-plugin", "asker")
    page.get_by_role("button", name="Add rule").click()
    row = page.locator("#rules tr", has_text="ci-errors")
    expect(row).to_contain_text("error_rate > 0.5")
    assert any(r["name"] == "ci-errors" for r in _rules(site))
    row.get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0)
    assert not any(r["name"] == "ci-errors" for r in _rules(site))
    # manifest check
    page.goto(site.url + "/#/install")
    page.fill("#manifest-text", '{"id": "ok-plugin", "version": "1.0.0", "entry": "m:P"}')
    page.get_by_role("button", name="Check").click()
    expect(page.locator(".ok")).to_contain_text("valid")
    page.fill("#manifest-text", '{"id": "Bad Id!", "version": "x"}')
    page.get_by_role("button", name="Check").click()
    expect(page.locator(".error")).to_contain_text("problems")


def _rules(site: Site) -> list[dict[str, object]]:
    body = site.get("/api/v1/alerts/rules")
    items: list[dict[str, object]] = body["items"] if isinstance(body, dict) else body
    return items


def test_audit_log_shows_operations_and_security_decisions(site: Site,
                                                           new_page: NewPage) -> None:
    page = new_page()
    page.goto(site.url + "/#/audit")
    expect(page.locator("tr[data-kind=operation]").first).to_be_visible()
    expect(page.locator("tr[data-kind=security]").first).to_be_visible()
    page.fill("#audit-plugin", "notify-slack")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("tbody tr").first).to_contain_text("notify-slack")
    for text in page.locator("tbody tr").all_inner_texts():
        assert "notify-slack" in text


def test_tokens_first_token_closes_the_open_server(site: Site, new_page: NewPage) -> None:
    """Runs last: while it runs the server needs a token; it leaves none active."""
    page = new_page()
    page.console.expect(http_status(401))  # type: ignore[attr-defined]
    accept_dialogs(page)
    page.goto(site.url + "/#/tokens")
    expect(page.locator("main")).to_contain_text("Creating the first token closes it")
    page.fill("#new-token-name", "ci-admin")
    page.select_option("#new-token-role", "admin")
    page.get_by_role("button", name="Create token").click()
    admin = page.locator("#new-token-secret").inner_text()
    assert httpx.get(site.url + "/api/v1/plugins").status_code == 401   # no longer open
    page.get_by_role("button", name="Sign in with this token").click()
    expect(page.locator("#who")).to_contain_text("ci-admin (admin)")
    page.goto(site.url + "/#/tokens")
    page.fill("#new-token-name", "ci-viewer")
    page.select_option("#new-token-role", "viewer")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token-secret").inner_text()
    assert httpx.get(site.url + "/api/v1/whoami",
                     headers={"Authorization": f"Bearer {secret}"}).json()["role"] == "viewer"
    shoot(page, "token-created")
    page.locator("tr[data-token=ci-viewer]").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr[data-token=ci-viewer]")).to_have_count(0)
    assert httpx.get(site.url + "/api/v1/whoami",
                     headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    # revoking one's own token: the next request says so, and signing out opens the page
    # again (no token is left, so the local server is open)
    page.locator("tr[data-token=ci-admin]").get_by_role("button", name="Revoke").click()
    expect(page.locator(".error").first).to_contain_text("auth.invalid")
    assert httpx.get(site.url + "/api/v1/whoami",
                     headers={"Authorization": f"Bearer {admin}"}).status_code == 401
    page.locator("#signout").click()
    expect(page.locator("#who")).to_contain_text("Open local server")
    expect(page.locator("tr[data-token]")).to_have_count(0)
