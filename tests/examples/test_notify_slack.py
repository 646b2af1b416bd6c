"""The notify-slack example reads its webhook URL from config and posts through ctx.http."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from plughost.errors import ConfigRejected, PermissionDenied
from plughost.host import PluginHost
from plughost.services.plugin_services import PluginServices
from tests.conftest import EXAMPLES


class Webhook:
    """A real local HTTP server standing in for Slack's webhook endpoint."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.close()


async def test_notify_posts_to_the_configured_webhook(tmp_path: Path, webhook: Webhook) -> None:
    home = tmp_path / "home"
    url = f"http://127.0.0.1:{webhook.port}/services/T0/B0/secret"
    services = PluginServices(home, environ={"SLACK_WEBHOOK": url})
    host = PluginHost([EXAMPLES / "notify-slack"], home=home, on_plugin_error="isolate")
    services.install(host)
    try:
        # Before the operator configures it, activation fails naming the missing setting.
        report = await host.start()
        assert "webhook_url" in str(report["notify-slack"].error)
        # The operator sets the webhook from the environment and grants the (local) host; the
        # schema was recorded at the failed activation, so the config can be set now.
        await services.config.set("notify-slack", {"webhook_url": "${SLACK_WEBHOOK}"})
        services.permissions.grant("notify-slack", f"net:127.0.0.1:{webhook.port}")
        host2 = PluginHost([EXAMPLES / "notify-slack"], home=home, on_plugin_error="fail")
        services.install(host2)
        await host2.start()
        try:
            assert await host2.call("notify-slack", "notify", message="deployed") == 200
            assert webhook.received == [
                ("/services/T0/B0/secret", {"channel": "#general", "text": "deployed"})
            ]
            # The plugin refuses an empty webhook; the change is rolled back.
            with pytest.raises(ConfigRejected, match="cannot be empty"):
                await services.config.set("notify-slack", {"webhook_url": ""})
            assert services.config.get("notify-slack")["webhook_url"] == "***"
            # Revoking the grant stops the plugin from posting.
            services.permissions.revoke("notify-slack", f"net:127.0.0.1:{webhook.port}")
            with pytest.raises(PermissionDenied):
                await host2.call("notify-slack", "notify", message="again")
            assert len(webhook.received) == 1
        finally:
            await host2.aclose()
    finally:
        await host.aclose()
        await services.aclose()


async def test_webhook_from_the_settings_file_lets_the_plugin_start(
    tmp_path: Path,
    webhook: Webhook,
) -> None:
    home = tmp_path / "home"
    settings = tmp_path / "plughost.toml"
    settings.write_text(
        "[plugins.notify-slack]\nenabled = true\n"
        '[plugins.notify-slack.config]\nwebhook_url = "${SLACK_WEBHOOK}"\nchannel = "#ops"\n'
    )
    url = f"http://127.0.0.1:{webhook.port}/hook"
    services = PluginServices(home, environ={"SLACK_WEBHOOK": url}, settings_file=settings)
    host = PluginHost([EXAMPLES / "notify-slack"], home=home, on_plugin_error="fail")
    services.install(host)
    services.permissions.grant("notify-slack", f"net:127.0.0.1:{webhook.port}")
    try:
        await host.start()
        assert await host.call("notify-slack", "notify", message="hi") == 200
        assert webhook.received == [("/hook", {"channel": "#ops", "text": "hi"})]
        history = services.config.history("notify-slack")
        assert [(r.action, r.actor) for r in history] == [("file", "file:plughost.toml")]
        assert history[0].settings["webhook_url"] == "***"
    finally:
        await host.aclose()
        await services.aclose()
