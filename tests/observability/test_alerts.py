"""Alert rules: parsing, evaluation, webhooks with retries; and the whole flow in the server —
a failing plugin fires, the webhook gets it once (after a 503), the bus and the event stream
carry it, the history keeps it, and it resolves."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from plughost.errors import ConfigurationError
from plughost.interfaces.http import create_app
from plughost.observability.alerts import (
    AlertEvaluator,
    AlertRule,
    WebhookNotifier,
    parse_rule,
    parse_rules,
)
from plughost.observability.figures import FigureWindow, Sample
from plughost.services.manager import PluginService
from plughost.settings import HostSettings


class Receiver(BaseHTTPRequestHandler):
    """Records each POST; answers the statuses queued in ``server.answers`` (then 200)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append(body)  # type: ignore[attr-defined]
        answers = self.server.answers  # type: ignore[attr-defined]
        status, headers = answers.pop(0) if answers else (200, {})
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.answers = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def test_rules_are_checked_naming_every_problem() -> None:
    rule = parse_rule({"name": "slow", "expr": "p99_latency", "threshold": 2, "for": "1m",
                       "labels": {"team": "ops"}})
    assert (rule.op, rule.for_, rule.severity, rule.labels) == (">", 60.0, "warning",
                                                                 {"team": "ops"})
    with pytest.raises(ConfigurationError) as info:
        parse_rules([{"name": "Bad Name", "expr": "happiness", "op": "~", "threshold": "x",
                      "for": "soon", "severity": "meh", "colour": 1},
                     {"name": "q", "expr": "queue_drops", "threshold": 1, "plugin": "p"}])
    message = info.value.message
    for fragment in ("name:", "unknown figure 'happiness'", "unknown comparison '~'",
                     "threshold: expected a number", "for: expected a duration",
                     "severity:", "unknown key(s) colour",
                     "plugin: a plugin id, only for per-plugin figures"):
        assert fragment in message, fragment


def _sample(at: float, calls: int, errors: int) -> Sample:
    return Sample(at, {"p": {"calls": calls, "errors": errors, "state": "active"}})


def test_an_alert_is_pending_then_firing_after_for_then_resolved() -> None:
    rule = AlertRule("errors", "error_rate", ">", 0.5, for_=10.0)
    window = FigureWindow(window=30.0)
    evaluator = AlertEvaluator([rule])
    window.add(_sample(0, 0, 0))
    assert evaluator.evaluate(window, 0) == []
    window.add(_sample(5, 10, 9))
    assert evaluator.evaluate(window, 5) == []
    assert evaluator.active()[0]["state"] == "pending"
    window.add(_sample(15, 20, 18))
    (fired,) = evaluator.evaluate(window, 15)
    assert (fired.status, fired.plugin_id, fired.value) == ("firing", "p", 0.9)
    assert fired.to_dict()["labels"] == {"rule": "errors", "severity": "warning",
                                         "plugin_id": "p"}
    window.add(_sample(50, 40, 18))  # 20 good calls, the bad ones left the window
    (resolved,) = evaluator.evaluate(window, 50)
    assert resolved.status == "resolved" and evaluator.active() == []


async def test_webhook_retries_honour_retry_after_and_give_up_on_a_4xx(
    webhook: ThreadingHTTPServer,
) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    notifier = WebhookNotifier([_url(webhook)], retries=3, base_delay=1.0, jitter=0.0,
                               sleep=sleep)
    webhook.answers.extend([(503, {"Retry-After": "7"}), (502, {})])  # type: ignore[attr-defined]
    assert await notifier.deliver(_url(webhook), {"rule": "r", "status": "firing"})
    assert delays == [7.0, 2.0]  # Retry-After first, then 1 s * 2**1
    webhook.answers.append((404, {}))  # type: ignore[attr-defined]
    assert not await notifier.deliver(_url(webhook), {"rule": "r", "status": "firing"})
    assert len(webhook.received) == 4  # type: ignore[attr-defined]
    await notifier.aclose()


FLAKY = """
from plughost.sdk import Plugin

class Main(Plugin):
    def work(self, fail=False):
        if fail:
            raise RuntimeError("the upstream is down")
        return "ok"
"""

INTERVAL = 0.25
FOR = 0.5


async def test_a_failing_plugin_fires_an_alert_delivered_once_and_it_resolves(
    tmp_path: Path, webhook: ThreadingHTTPServer, write_plugin: Any,
) -> None:
    home = tmp_path / "home"
    write_plugin("flaky", code=FLAKY, directory=home / "plugins")
    (home / "plughost.toml").write_text(f"""
require_signature = "never"

[alerts]
interval = "{INTERVAL}s"
window = "1s"
default_rules = false
webhooks = ["{_url(webhook)}"]

[[alerts.rules]]
name = "flaky-errors"
expr = "error_rate"
threshold = 0.5
for = "{FOR}s"
plugin = "flaky"
severity = "critical"
labels = {{ team = "ops" }}
""")
    webhook.answers.append((503, {"Retry-After": "0"}))  # type: ignore[attr-defined]
    settings = HostSettings.from_file(home / "plughost.toml", home=home)
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    async with app.router.lifespan_context(app):
        observer = app.state.api.observer
        manager = observer.alerts
        seen: list[tuple[str, int]] = []
        manager.sinks.append(lambda change: seen.append((change.status, manager.evaluations)))
        on_bus: list[str] = []
        service.host.bus.subscribe("alert.*", lambda event: on_bus.append(event.topic))
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            streamed: list[dict[str, Any]] = []

            async def read_stream() -> None:
                async with client.stream("GET", "/api/v1/events",
                                         params={"kinds": "alert", "max_events": "2"}) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            streamed.append(json.loads(line[6:]))

            reader = asyncio.create_task(read_stream())
            while app.state.api.broker.subscribers == 0:
                await asyncio.sleep(0.01)

            started_at = manager.evaluations
            while not seen:
                with pytest.raises(Exception, match="upstream is down"):
                    await service.host.call("flaky", "work", fail=True)
                await asyncio.sleep(0.02)
            status, fired_at = seen[0]
            assert status == "firing"
            # within its `for` plus one evaluation interval (counted in evaluations)
            assert fired_at - started_at <= math.ceil(FOR / INTERVAL) + 1

            r = await client.get("/api/v1/alerts")
            (active,) = r.json()["alerts"]
            assert (active["rule"], active["plugin_id"], active["state"]) == (
                "flaky-errors", "flaky", "firing")

            while len(seen) < 2:  # healthy calls only from now on: it resolves
                assert await service.host.call("flaky", "work") == "ok"
                await asyncio.sleep(0.05)
            assert seen[1][0] == "resolved"
            await asyncio.wait_for(reader, 10)
            await observer.webhooks.aclose()  # deliveries under way finish

            history = (await client.get("/api/v1/alerts/history",
                                        params={"rule": "flaky-errors"})).json()["items"]
            assert [h["state"] for h in history] == ["resolved", "firing"]
            assert history[1]["severity"] == "critical" and history[1]["plugin_id"] == "flaky"
            assert history[1]["labels"]["team"] == "ops"
    bodies = webhook.received  # type: ignore[attr-defined]
    # the first POST got a 503 and was retried: the receiver accepted firing once
    assert [b["status"] for b in bodies] == ["firing", "firing", "resolved"]
    assert bodies[1]["rule"] == "flaky-errors" and bodies[1]["labels"]["team"] == "ops"
    assert "error_rate" in bodies[1]["message"]
    assert on_bus == ["alert.firing", "alert.resolved"]
    assert [s["status"] for s in streamed] == ["firing", "resolved"]


async def test_rules_added_through_the_api_are_stored_and_others_are_read_only(
    tmp_path: Path,
) -> None:
    settings = HostSettings(home=tmp_path / "home", require_signature="never")
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = (await client.get("/api/v1/alerts/rules")).json()
            assert page["next_cursor"] is None and page["total"] == len(page["items"])
            rules = page["items"]
            assert {r["source"] for r in rules} == {"default"}
            assert any(r["name"] == "plugin-error-rate" and r["threshold"] == 0.05
                       for r in rules)
            r = await client.post("/api/v1/alerts/rules", json={
                "name": "mem", "expr": "memory", "threshold": 1e9, "for": "1m"})
            assert r.status_code == 201, r.text
            assert r.json()["for"] == 60.0 and r.json()["source"] == "api"
            r = await client.post("/api/v1/alerts/rules", json={"name": "mem", "expr": "cpu",
                                                                "threshold": 1})
            assert r.status_code == 409
            r = await client.post("/api/v1/alerts/rules", json={"name": "x", "expr": "vibes",
                                                                "threshold": 1})
            assert r.status_code == 400 and "unknown figure" in r.json()["error"]["message"]
            r = await client.delete("/api/v1/alerts/rules/plugin-error-rate")
            assert r.status_code == 409 and "default_rules" in r.json()["error"]["message"]
    # stored: a new server on the same home has it
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            names = [r["name"] for r in
                     (await client.get("/api/v1/alerts/rules")).json()["items"]]
            assert "mem" in names
            assert (await client.delete("/api/v1/alerts/rules/mem")).status_code == 204
            assert (await client.delete("/api/v1/alerts/rules/mem")).status_code == 404
