"""Per-plugin log capture: ring, store, drops, tail, correlation; and a flooding process plugin
served by the real management app."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from plughost.core.correlation import correlated
from plughost.errors import RequestInvalid
from plughost.interfaces.http import create_app
from plughost.observability.logs import LogEntry, LogFilter, LogHub, parse_since
from plughost.services.manager import PluginService
from plughost.settings import HostSettings
from plughost.storage.db import Database
from plughost.storage.repository import Repository


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    with Database(f"sqlite:///{tmp_path / 'logs.db'}") as db:
        db.migrate()
        yield Repository(db)


@pytest.fixture
def hub_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("plughost.plugin.unit-demo")
    yield logger


def test_records_of_plugin_loggers_become_entries_with_correlation(
    repo: Repository, hub_logger: logging.Logger
) -> None:
    hub = LogHub(repo)
    undo = hub.install()
    try:
        with correlated("req-7"):
            hub_logger.warning("careful: %s", "hot")
        hub_logger.getChild("db").error("broken")
        logging.getLogger("plughost.core.elsewhere").error("not a plugin line")
    finally:
        undo()
    hub_logger.info("after the undo: not captured")
    first, second = hub.recent()
    assert (first.plugin_id, first.level, first.message, first.correlation_id) == (
        "unit-demo", "warning", "careful: hot", "req-7")
    assert (second.plugin_id, second.logger) == ("unit-demo.db", "plughost.plugin.unit-demo.db")
    assert hub.flush() == 2
    stored = repo.query_logs(LogFilter(plugin_id="unit-demo"))
    assert [e.message for e in stored] == ["careful: hot"]
    assert repo.query_logs(LogFilter(min_level="error"))[0].message == "broken"


def test_capture_drops_and_counts_what_the_store_cannot_take_without_waiting(
    repo: Repository,
) -> None:
    hub = LogHub(repo, queue_size=5000, persist_rate=2000, ring_size=1000)
    record = logging.LogRecord("plughost.plugin.flood", logging.INFO, __file__, 1, "x %d",
                               (1,), None)
    started = time.perf_counter()
    for _ in range(100_000):
        hub.capture(record)
    spent = time.perf_counter() - started
    stats = hub.stats()
    assert stats["captured"] == 100_000
    assert stats["pending"] == 2000  # one second's budget for this plugin
    assert stats["dropped_by_plugin"]["flood"]["store_queue"] == 98_000
    assert stats["ring"] == 1000
    assert hub.flush() == 2000 and hub.stats()["persisted"] == 2000
    assert spent > 0  # capture returned every time: nothing waited for the store


def test_writer_thread_persists_and_retention_prunes(repo: Repository) -> None:
    now = [time.time()]
    hub = LogHub(repo, flush_interval=0.01, retention=timedelta(hours=1), max_rows=3,
                 clock=lambda: now[0])
    hub.start()
    old = logging.LogRecord("plughost.plugin.old", logging.INFO, __file__, 1, "ancient", (), None)
    old.created = now[0] - 7200
    hub.capture(old)
    for i in range(5):
        hub.capture(logging.LogRecord("plughost.plugin.new", logging.INFO, __file__, 1,
                                      f"line {i}", (), None))
    deadline = time.monotonic() + 10
    while hub.stats()["persisted"] < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    hub.close()
    assert hub.stats()["persisted"] == 6
    hub.prune()  # the writer prunes too; either way: the old line by age, two by the limit
    assert [e.message for e in repo.query_logs(LogFilter())] == ["line 4", "line 3", "line 2"]
    assert hub.prune() == 0


async def test_tail_delivers_matching_lines_and_reports_what_a_slow_reader_missed() -> None:
    hub = LogHub(tail_buffer=3)
    undo = hub.install()
    logger = logging.getLogger("plughost.plugin.tailed")
    got: list[object] = []

    async def read() -> None:
        async for item in hub.tail(LogFilter(min_level="warning"), heartbeat=5):
            got.append(item)
            if len(got) == 4:
                return

    try:
        task = asyncio.create_task(read())
        await asyncio.sleep(0)
        for i in range(5):  # written before the reader runs: it can keep the last 3 only
            logger.warning("w%d", i)
        logger.info("too low")
        await asyncio.wait_for(task, 5)
    finally:
        undo()
    assert got[0] == 2
    assert [e.message for e in got[1:] if isinstance(e, LogEntry)] == ["w2", "w3", "w4"]


async def test_tail_from_another_thread_wakes_the_reader_and_end_tails_ends_it() -> None:
    hub = LogHub()
    got: list[str] = []

    async def read() -> None:
        async for item in hub.tail(heartbeat=5):
            if isinstance(item, LogEntry):
                got.append(item.message)

    task = asyncio.create_task(read())
    await asyncio.sleep(0.01)
    record = logging.LogRecord("plughost.plugin.t", logging.INFO, __file__, 1, "from a thread",
                               (), None)
    thread = threading.Thread(target=hub.capture, args=(record,))
    thread.start()
    thread.join()
    for _ in range(500):
        if got:
            break
        await asyncio.sleep(0.01)
    hub.end_tails()
    await asyncio.wait_for(task, 5)
    assert got == ["from a thread"]


def test_filters_refuse_unknown_levels_and_unreadable_times() -> None:
    with pytest.raises(RequestInvalid, match="use one of debug, info"):
        LogFilter(min_level="loud")
    with pytest.raises(RequestInvalid, match="30s, 15m"):
        parse_since("last tuesday")
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert parse_since("15m", now=now) == now - timedelta(minutes=15)
    assert parse_since("2026-12-03T10:00:00", now=now) == datetime(2026, 12, 3, 10, tzinfo=UTC)


FLOODER = '''
import sys, threading, time
from plughost.sdk import Plugin

class Flooder(Plugin):
    def flood(self, lines, per_second):
        def run():
            batch = per_second // 100
            written = 0
            while written < lines:
                sys.stderr.write("".join(f"noise {written + i}\\n" for i in range(batch)))
                sys.stderr.flush()
                written += batch
                time.sleep(0.01)
            time.sleep(1.1)  # the next output-limit window: its first line brings the summary
            sys.stderr.write("flood over\\n")
            sys.stderr.flush()
        threading.Thread(target=run, daemon=True).start()
        return "flooding"

    def ping(self):
        return "pong"
'''


async def test_a_process_plugin_flooding_stderr_keeps_the_host_responsive_and_counts_drops(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "home" / "plugins" / "flooder"
    folder.mkdir(parents=True)
    (folder / "flooder.py").write_text(FLOODER)
    (folder / "plugin.toml").write_text(
        'id = "flooder"\nname = "Flooder"\nversion = "1.0.0"\nruntime = "process"\n'
        'entry = "flooder:Flooder"\n')
    settings = HostSettings(home=tmp_path / "home", require_signature="never")
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            host = service.host
            assert await host.call("flooder", "flood", lines=100_000,
                                   per_second=100_000) == "flooding"
            answered = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assert await host.call("flooder", "ping") == "pong"  # the host still answers
                r = await client.get("/api/v1/logs/stats")
                answered += 1
                dropped = r.json()["dropped_by_plugin"].get("flooder", {}).get("output_limit", 0)
                if dropped >= 50_000:
                    break
                await asyncio.sleep(0.05)
            assert dropped >= 50_000, r.json()
            assert answered > 1
            params = {"plugin_id": "flooder", "grep": "dropped by the output limit"}
            while time.monotonic() < deadline + 30:
                items = (await client.get("/api/v1/logs", params=params)).json()["items"]
                if items:
                    break
                await asyncio.sleep(0.1)
            assert items, "the drop summary is a visible log line"
            assert items[0]["level"] == "warning"
