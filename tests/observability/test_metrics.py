"""GET /metrics through the real server: the host's own figures, valid for promtool, behind
the viewer role, and on a separate address without a token when configured."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from plughost.interfaces.http import create_app
from plughost.services.manager import PluginService
from plughost.settings import HostSettings

WORKER = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    def work(self, fail=False):
        if fail:
            raise ValueError("bad input")
        return "done"

    @command("run")
    def run(self):
        return "ran"
"""

PROCESS = """
import time
from plughost.sdk import Plugin

class Main(Plugin):
    def ping(self):
        return "pong"

    def slow(self):
        time.sleep(1)
"""


def promtool_check(text: bytes) -> str:
    promtool = shutil.which("promtool")
    assert promtool is not None, (
        "promtool is needed to check the metrics: apt-get install prometheus")
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output
    return output


def value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` carrying at least ``labels``."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit("} ", 1)[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_metrics_cover_plugins_runtimes_operations_and_requests_and_pass_promtool(
    tmp_path: Path, write_plugin: Any,
) -> None:
    from plughost.security.package import pack

    home = tmp_path / "home"
    write_plugin("worker", code=WORKER, directory=home / "plugins")
    write_plugin("proc", code=PROCESS, runtime="process", directory=home / "plugins")
    shutil.copytree(Path(__file__).parents[2] / "examples" / "wasm-hello",
                    home / "plugins" / "wasm-hello")
    packaged = pack(write_plugin("packaged", directory=tmp_path / "src"), tmp_path / "pkgs")
    settings = HostSettings(home=home, require_signature="never")
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            host = service.host
            for _ in range(3):
                assert await host.call("worker", "work") == "done"
            with pytest.raises(Exception, match="bad input"):
                await host.call("worker", "work", fail=True)
            assert await host.call("proc", "ping") == "pong"
            r = await client.post("/api/v1/commands/wasm-hello.greet",
                                  json={"args": {"name": "Ada"}})
            assert r.status_code == 200, r.text
            with pytest.raises(TimeoutError):
                await host.call("proc", "slow", timeout=0.1)
            r = await client.post("/api/v1/commands/worker.run", json={})
            assert r.status_code == 200, r.text
            with packaged.open("rb") as fh:
                r = await client.post("/api/v1/plugins/install", data={"source": "local"},
                                      files={"file": (packaged.name, fh, "application/zip")})
            assert r.status_code == 201, r.text
            await client.get("/api/v1/logs")

            r = await client.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            promtool_check(r.content)
            text = r.text

    worker = {"plugin": "worker", "runtime": "python"}
    assert value(text, "plughost_plugin_dispatches_total", kind="call", **worker) == 4
    assert value(text, "plughost_plugin_dispatches_total", kind="command", **worker) == 1
    assert value(text, "plughost_plugin_errors_total", code="ValueError", **worker) == 1
    proc = {"plugin": "proc", "runtime": "process"}
    assert value(text, "plughost_plugin_timeouts_total", **proc) == 1
    assert value(text, "plughost_plugin_limit_hits_total", limit="timeout", **proc) == 1
    assert value(text, "plughost_plugin_errors_total", code="plugin.timeout", **proc) == 1
    assert value(text, "plughost_plugin_dispatch_duration_seconds_count", kind="call",
                 **worker) == 4
    assert value(text, "plughost_plugin_dispatch_duration_seconds_bucket", kind="call",
                 le="+Inf", **worker) == 4
    assert value(text, "plughost_plugin_state", state="active", **worker) == 1
    assert value(text, "plughost_plugins", state="active") == 4
    assert value(text, "plughost_wasm_memory_pages", plugin="wasm-hello") >= 1
    assert value(text, "plughost_wasm_fuel_limit", plugin="wasm-hello") == 10_000_000
    assert value(text, "plughost_wasm_fuel_used_total", plugin="wasm-hello") > 0
    assert value(text, "plughost_process_resident_memory_bytes", plugin="proc") > 1_000_000
    assert value(text, "plughost_process_cpu_seconds_total", plugin="proc") > 0
    assert value(text, "plughost_plugin_restarts_total", plugin="proc") == 0
    assert value(text, "plughost_plugin_operations_total", operation="install",
                 outcome="ok") == 1
    assert value(text, "plughost_api_requests_total", method="GET", route="/api/v1/logs",
                 status="200") == 1
    assert value(text, "plughost_api_request_duration_seconds_count", method="POST",
                 route="/api/v1/commands/{name}") == 2
    assert value(text, "plughost_events_dropped_total") == 0
    assert value(text, "plughost_alerts_firing", severity="critical") == 0
    assert "plughost_log_lines_captured_total" in text


async def test_metrics_need_a_viewer_token_or_the_public_address(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('[metrics]\npublic_bind = "127.0.0.1:0"\n')
    settings = HostSettings(home=home, require_signature="never")
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    async with app.router.lifespan_context(app):
        _, secret = app.state.api.authority.create("viewer", "scraper")
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/metrics")).status_code == 401
            r = await client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 200 and "plughost_plugins" in r.text
        address, port = app.state.api.observer.public_metrics
        async with httpx.AsyncClient() as plain:
            r = await plain.get(f"http://{address}:{port}/metrics")
        assert r.status_code == 200 and "plughost_plugins{" in r.text
        promtool_check(r.content)


async def test_a_plugin_never_used_costs_no_series_and_a_scrape_walks_no_registry(
    tmp_path: Path, write_plugin: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plughost.core.registry import Registry

    home = tmp_path / "home"
    write_plugin("worker", code=WORKER, directory=home / "plugins")
    for i in range(3):
        write_plugin(f"lazy-{i}", activation=[f"command:lazy-{i}.go"],
                     directory=home / "plugins")
    settings = HostSettings(home=home, require_signature="never")
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    async with app.router.lifespan_context(app):
        def walked(self: Registry) -> None:
            raise AssertionError("a scrape walked every registered plugin")

        monkeypatch.setattr(Registry, "__iter__", walked)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/metrics")
        monkeypatch.undo()  # shutting down walks them all, once
    assert r.status_code == 200
    promtool_check(r.content)
    text = r.text
    assert 'plugin="lazy-' not in text  # seven series of zeros each, times ten thousand
    assert value(text, "plughost_plugin_state", plugin="worker", state="active") == 1
    assert value(text, "plughost_plugins", state="resolved") == 3
    assert value(text, "plughost_plugins", state="active") == 1
    assert "plughost_api_requests_total" in text  # the whole scrape, not one cut short
