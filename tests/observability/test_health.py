from __future__ import annotations

import pytest

from plughost.observability.health import RestartPolicy, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_exponentially_and_jitter_stays_within_bounds() -> None:
    clock = Clock()
    policy = RestartPolicy(
        initial_delay=1.0, multiplier=2.0, max_delay=60, jitter=0.25, max_crashes=10, window=300
    )
    low = Supervisor(policy, clock=clock, rng=lambda: 0.0)
    high = Supervisor(policy, clock=clock, rng=lambda: 1.0)
    mid = Supervisor(policy, clock=clock, rng=lambda: 0.5)
    assert [mid.record_crash("x").delay for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert low.record_crash("x").delay == 0.75
    assert high.record_crash("x").delay == 1.25


def test_delay_is_capped_at_max_delay() -> None:
    sup = Supervisor(
        RestartPolicy(initial_delay=1, max_delay=3, jitter=0, max_crashes=99), rng=lambda: 0.5
    )
    delays = [sup.record_crash("x").delay for _ in range(5)]
    assert delays == [1, 2, 3, 3, 3]


def test_three_crashes_within_five_minutes_quarantine_with_the_reason() -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(), clock=clock)
    assert not sup.record_crash("exited with code 1").quarantine
    clock.now += 100
    assert not sup.record_crash("exited with code 1").quarantine
    clock.now += 100
    decision = sup.record_crash("cpu limit 2s exceeded")
    assert decision.quarantine and sup.quarantined
    assert "3 crashes within 300s" in decision.reason
    assert "cpu limit 2s exceeded" in decision.reason


def test_crashes_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(), clock=clock)
    sup.record_crash("a")
    sup.record_crash("b")
    clock.now += 301
    assert sup.crashes_in_window() == 0
    assert not sup.record_crash("c").quarantine
    assert sup.total_crashes == 3


def test_reenable_clears_quarantine_and_history() -> None:
    sup = Supervisor(RestartPolicy(max_crashes=1))
    assert sup.record_crash("boom").quarantine
    sup.reenable()
    assert not sup.quarantined and sup.quarantine_reason is None
    assert sup.crashes_in_window() == 0


def test_policy_refuses_nonsense_values() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(initial_delay=5, max_delay=1)
    with pytest.raises(ValueError):
        RestartPolicy(jitter=1.5)


# --------------------------------------------------------------------------- health checks

SICKLY = """
import asyncio
from pathlib import Path
from plughost.sdk import Plugin

HERE = Path(__file__).parent

class Main(Plugin):
    def activate(self, ctx):  # a restart loads the module afresh: count on disk
        with open(HERE / "activations", "a") as fh:
            fh.write("x")

    def activations(self):
        return len((HERE / "activations").read_text())

    async def health(self):
        if (HERE / "hang").exists():
            await asyncio.sleep(30)
        return not (HERE / "sick").exists()
"""


def _server(tmp_path, write_plugin, health_table: str):  # type: ignore[no-untyped-def]
    from plughost.interfaces.http import create_app
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    home = tmp_path / "home"
    folder = write_plugin("sickly", code=SICKLY, directory=home / "plugins")
    (home / "plughost.toml").write_text(f"[health]\n{health_table}\n")
    settings = HostSettings(home=home, require_signature="never")
    service = PluginService(settings, start=True)
    return folder, service, create_app(service, settings)


async def test_a_failing_check_marks_the_plugin_degraded_then_the_policy_restarts_it(
    tmp_path, write_plugin
) -> None:
    import httpx

    folder, service, app = _server(
        tmp_path, write_plugin,
        'interval = "1h"\ntimeout = "0.2s"\nfailures = 2\npolicy = "restart"')
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/healthz/plugins/sickly")
            assert (r.status_code, r.json()["status"]) == (200, "unknown")
            r = await client.post("/api/v1/health/sickly/check")
            assert r.json()["status"] == "healthy"
            assert (await client.get("/healthz/plugins/sickly")).status_code == 200
            assert (await client.get("/healthz/plugins")).json() == {"status": "healthy",
                                                                    "degraded": []}
            (folder / "sick").write_text("")
            r = await client.post("/api/v1/health/sickly/check")
            assert (r.json()["status"], r.json()["consecutive_failures"]) == ("degraded", 1)
            r = await client.get("/healthz/plugins")
            assert r.status_code == 503 and r.json()["degraded"] == ["sickly"]
            # The probe asks the plugins checked, not every registered one (it is polled).
            registry = type(service.host.registry)
            walk = registry.__iter__
            registry.__iter__ = lambda self: (_ for _ in ()).throw(  # type: ignore[method-assign]
                AssertionError("the probe walked every plugin"))
            try:
                assert (await client.get("/healthz/plugins")).status_code == 503
            finally:
                registry.__iter__ = walk  # type: ignore[method-assign]
            assert (await client.get("/healthz/plugins/sickly")).status_code == 503
            overall = (await client.get("/api/v1/health")).json()
            assert overall["status"] == "degraded"
            assert await service.host.call("sickly", "activations") == 1
            r = await client.post("/api/v1/health/sickly/check")  # the second failure in a row
            assert r.json()["last_action"] == "restarted after 2 failed checks"
            assert await service.host.call("sickly", "activations") == 2
            (folder / "sick").unlink()
            (folder / "hang").write_text("")
            r = await client.post("/api/v1/health/sickly/check")
            assert r.json()["status"] == "degraded"
            assert "did not answer within 0.2s" in r.json()["message"]
            assert (await client.get("/healthz/plugins/nope")).status_code == 404


async def test_the_poller_checks_on_its_interval_and_deactivates_per_policy(
    tmp_path, write_plugin
) -> None:
    import asyncio

    import httpx

    folder, service, app = _server(
        tmp_path, write_plugin,
        'interval = "0.05s"\ntimeout = "1s"\nfailures = 2\npolicy = "deactivate"')
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            events: list[dict] = []

            async def read() -> None:  # the ASGI test transport delivers whole bodies
                import json

                async with client.stream("GET", "/api/v1/events",
                                         params={"kinds": "health", "max_events": "1"}) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))

            reader = asyncio.create_task(read())
            while app.state.api.broker.subscribers == 0:
                await asyncio.sleep(0.01)
            (folder / "sick").write_text("")
            await asyncio.wait_for(reader, 20)
            assert events[0]["plugin_id"] == "sickly"
            assert events[0]["status"] in ("healthy", "degraded")
            for _ in range(400):
                item = (await client.get("/api/v1/health")).json()["plugins"][0]
                if item["last_action"]:
                    break
                await asyncio.sleep(0.05)
            assert item["last_action"] == "deactivated after 2 failed checks"
            assert service.host.registry.get("sickly").state.value == "deactivated"


def test_overall_lists_every_registered_plugin_and_any_checked_before_it_left() -> None:
    from types import SimpleNamespace

    from plughost.observability.health import HealthPoller, PluginHealth

    registry = [SimpleNamespace(id=pid) for pid in ("c", "a", "b")]
    poller = HealthPoller(SimpleNamespace(registry=registry))
    poller.plugins["b"] = PluginHealth("b", "degraded", "boom", 1_700_000_000.0, 2, 5, 3)
    poller.plugins["gone"] = PluginHealth("gone", "healthy", "", 1_700_000_100.0, 0, 1, 0)
    overall = poller.overall()
    assert (overall["status"], overall["degraded"]) == ("degraded", ["b"])
    assert [p["plugin_id"] for p in overall["plugins"]] == ["a", "b", "c", "gone"]
    # A plugin never checked reads as a fresh entry would; a checked one as its own.
    assert overall["plugins"][0] == PluginHealth("a").to_dict()
    assert overall["plugins"][1] == poller.plugins["b"].to_dict()
    assert overall["plugins"][1]["checked_at"] == "2023-11-14T22:13:20+00:00"
    assert list(overall["plugins"][2]) == list(PluginHealth("c").to_dict())  # same key order


def test_overall_pages_the_plugins_by_id_and_keeps_the_status_of_all() -> None:
    from types import SimpleNamespace

    from plughost.observability.health import HealthPoller, PluginHealth

    class Registry(list):  # what the poller asks of the host's registry
        def find(self, pid: str) -> SimpleNamespace | None:
            return next((r for r in self if r.id == pid), None)

    registry = Registry(SimpleNamespace(id=pid) for pid in ("d", "c", "a", "b"))
    poller = HealthPoller(SimpleNamespace(registry=registry))
    poller.plugins["d"] = PluginHealth("d", "degraded", "boom", 1_700_000_000.0, 2, 5, 3)
    whole = poller.overall()["plugins"]
    first = poller.overall(limit=2)
    assert [p["plugin_id"] for p in first["plugins"]] == ["a", "b"]
    assert (first["status"], first["degraded"]) == ("degraded", ["d"])  # of every plugin
    rest = poller.overall(limit=2, after="b")["plugins"]
    assert [p["plugin_id"] for p in rest] == ["c", "d"]
    assert first["plugins"] + rest == whole
    assert poller.overall(limit=5, after="d")["plugins"] == []
    assert [p["plugin_id"] for p in poller.overall(after="a")["plugins"]] == ["b", "c", "d"]
    assert poller.entry("d") == whole[3] and poller.entry("a") == whole[0]
    assert poller.entry("nobody") is None
