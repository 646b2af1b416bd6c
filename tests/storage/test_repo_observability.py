"""Plugin logs and alert history in the repository, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from plughost.errors import RecordExists, RecordNotFound
from plughost.observability.logs import LogEntry, LogFilter
from plughost.storage.db import Database
from plughost.storage.repository import Repository


def _entry(i: int, message: str, *, plugin: str = "p", level: str = "info",
           cid: str | None = None, at: float | None = None) -> LogEntry:
    return LogEntry(i, at if at is not None else time.time(), plugin, level, message, cid,
                    f"plughost.plugin.{plugin}")


def test_logs_are_queried_by_plugin_level_text_time_and_correlation(database: Database) -> None:
    repo = Repository(database)
    old = time.time() - 3600
    repo.append_logs([
        _entry(1, "old news", at=old),
        _entry(2, "100% done_ok", plugin="q"),
        _entry(3, "Disk FULL", level="error", cid="r1"),
        _entry(4, "debugging", level="debug"),
    ])
    messages = lambda flt, **kw: [e.message for e in repo.query_logs(flt, **kw)]  # noqa: E731
    assert messages(LogFilter()) == ["debugging", "Disk FULL", "100% done_ok", "old news"]
    assert messages(LogFilter(plugin_id="q")) == ["100% done_ok"]
    assert messages(LogFilter(min_level="warning")) == ["Disk FULL"]
    assert messages(LogFilter(grep="disk full")) == ["Disk FULL"]
    assert messages(LogFilter(grep="0% d")) == ["100% done_ok"]
    assert messages(LogFilter(grep="_")) == ["100% done_ok"]  # LIKE wildcards are literal
    assert messages(LogFilter(correlation_id="r1")) == ["Disk FULL"]
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert "old news" not in messages(LogFilter(since=since))
    newest = repo.query_logs(LogFilter(), limit=2)
    assert [e.message for e in repo.query_logs(LogFilter(), before_id=newest[-1].id)] == [
        "100% done_ok", "old news"]
    assert messages(LogFilter(), after_id=newest[-1].id) == ["debugging"]
    cutoff = datetime.now(UTC) - timedelta(minutes=30)
    assert repo.prune_logs(older_than=cutoff, keep=2) == 2
    assert messages(LogFilter()) == ["debugging", "Disk FULL"]


def test_alert_rules_and_history_round_trip(database: Database) -> None:
    repo = Repository(database)
    repo.add_alert_rule("errors", {"expr": "error_rate", "threshold": 0.1}, actor="ops")
    with pytest.raises(RecordExists):
        repo.add_alert_rule("errors", {"expr": "restarts"})
    assert [r["spec"]["expr"] for r in repo.list_alert_rules()] == ["error_rate"]
    first = repo.append_alert_event(rule="errors", state="firing", severity="warning",
                                    threshold=0.1, value=0.5, plugin_id="p",
                                    labels={"team": "ops"}, message="p fails")
    repo.append_alert_event(rule="errors", state="resolved", severity="warning",
                            threshold=0.1, value=0.0, plugin_id="p", labels={}, message="ok")
    history = repo.query_alert_events(rule="errors")
    assert [h["state"] for h in history] == ["resolved", "firing"]
    assert history[1]["id"] == first and history[1]["labels"] == {"team": "ops"}
    assert repo.query_alert_events(state="firing")[0]["value"] == 0.5
    repo.delete_alert_rule("errors")
    with pytest.raises(RecordNotFound):
        repo.delete_alert_rule("errors")
