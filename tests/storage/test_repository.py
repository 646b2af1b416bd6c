"""The repository contract, run on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from plughost.errors import (
    ConcurrentModification,
    InvalidRecord,
    OperationRefused,
    PluginNotFound,
    RecordExists,
    RecordNotFound,
)
from plughost.storage.db import Database
from plughost.storage.models import PluginRow
from plughost.storage.objects import package_key
from plughost.storage.records import StoredPlugin, StoredVersion, TrustedKey
from plughost.storage.repository import SUMMARY_FIELDS, Repository


def manifest(pid: str = "notify-slack", version: str = "1.0.0", **extra: object) -> dict:
    data = {
        "id": pid,
        "name": pid.replace("-", " ").title(),
        "version": version,
        "description": f"{pid} plugin",
        "author": "Ada",
        "type": "notify",
        "runtime": "python",
        "entry": "notify_slack:Plugin",
        "repository": "https://example.org/repo",
        "config": {"schema": {"type": "object"}, "defaults": {"channel": "#general"}},
    }
    data.update(extra)
    return data


@pytest.fixture
def repo(database: Database, tmp_path) -> Repository:
    return Repository(database, lock_dir=tmp_path / "locks")


def install(repo: Repository, pid: str = "notify-slack", version: str = "1.0.0", **kw: object):
    m = manifest(pid, version, **kw)
    key = package_key(pid, version)
    with repo.unit_of_work():
        plugin = repo.add_plugin(
            StoredPlugin.from_manifest(m, checksum="a" * 64, object_key=key)
        )
        repo.add_version(StoredVersion(pid, version, "a" * 64, key, m, size=10))
        repo.set_config(pid, m["config"]["defaults"], changed_by="install")
    return plugin


def test_add_plugin_fills_seed_003_columns_from_the_manifest(repo: Repository) -> None:
    plugin = install(repo)
    got = repo.get_plugin("notify-slack")
    assert got == plugin
    assert got.name == "Notify Slack" and got.version == "1.0.0"
    assert got.entry_point == "notify_slack:Plugin" and got.type == "notify"
    assert got.config_schema == {"type": "object"}
    assert got.default_config == {"channel": "#general"}
    assert got.object_key == "plugins/notify-slack/1.0.0/notify-slack_1.0.0.zip"
    assert got.manifest["entry"] == "notify_slack:Plugin"
    assert got.state == "installed" and got.enabled is True
    assert got.installed_at.tzinfo is not None and got.installed_at == got.updated_at


def test_timestamps_round_trip_as_aware_utc_with_microseconds(repo: Repository) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    repo.add_plugin(dataclasses.replace(StoredPlugin.from_manifest(manifest()), installed_at=when))
    got = repo.require_plugin("notify-slack")
    assert got.installed_at == when
    assert got.installed_at.utcoffset() == timedelta(0)


def test_adding_an_installed_id_is_refused_and_changes_nothing(repo: Repository) -> None:
    install(repo)
    with pytest.raises(RecordExists, match="already installed") as info:
        repo.add_plugin(StoredPlugin.from_manifest(manifest(version="2.0.0")))
    assert info.value.code == "storage.exists"
    assert repo.require_plugin("notify-slack").version == "1.0.0"


def test_missing_plugin_is_none_or_plugin_not_found(repo: Repository) -> None:
    assert repo.get_plugin("nope") is None
    with pytest.raises(PluginNotFound, match="not installed"):
        repo.require_plugin("nope")
    with pytest.raises(PluginNotFound):
        repo.set_state("nope", "active")


def test_list_plugins_filters_by_type_state_enabled_and_text(repo: Repository) -> None:
    install(repo, "notify-slack")
    install(repo, "notify-mail", description="Sends 100% e-mail")
    install(repo, "music-netease", type="music-source")
    repo.set_state("notify-mail", "active")
    repo.set_enabled("music-netease", False)
    assert [p.id for p in repo.list_plugins()] == ["music-netease", "notify-mail", "notify-slack"]
    assert [p.id for p in repo.list_plugins(type="notify")] == ["notify-mail", "notify-slack"]
    assert [p.id for p in repo.list_plugins(state="active")] == ["notify-mail"]
    assert [p.id for p in repo.list_plugins(enabled=False)] == ["music-netease"]
    assert [p.id for p in repo.list_plugins(q="SLACK")] == ["notify-slack"]
    assert [p.id for p in repo.list_plugins(q="100%")] == ["notify-mail"]
    assert [p.id for p in repo.list_plugins(q="%")] == ["notify-mail"]  # % is literal
    assert [p.id for p in repo.list_plugins(limit=1, offset=1)] == ["notify-mail"]
    assert repo.count_plugins(type="notify") == 2
    with pytest.raises(InvalidRecord, match="not a plugin state"):
        repo.list_plugins(state="running")


def test_set_state_keeps_failure_reason_only_while_failed(repo: Repository) -> None:
    install(repo)
    failed = repo.set_state(
        "notify-slack", "failed", failure_reason="boom", failure_phase="activate"
    )
    assert (failed.state, failed.failure_reason) == ("failed", "boom")
    assert failed.failure_phase == "activate"
    active = repo.set_state("notify-slack", "active")
    assert (active.failure_reason, active.failure_phase) == (None, None)
    with pytest.raises(InvalidRecord):
        repo.set_state("notify-slack", "sleeping")
    assert repo.require_plugin("notify-slack").state == "active"


def test_update_plugin_refuses_unknown_columns(repo: Repository) -> None:
    install(repo)
    with pytest.raises(InvalidRecord, match="cannot update id"):
        repo.update_plugin("notify-slack", id="other")


def test_unit_of_work_rolls_back_everything_on_error(repo: Repository) -> None:
    with pytest.raises(RuntimeError, match="crash"), repo.unit_of_work():
        repo.add_plugin(StoredPlugin.from_manifest(manifest()))
        repo.add_version(StoredVersion("notify-slack", "1.0.0", "a" * 64, "k", manifest()))
        repo.set_config("notify-slack", {"x": 1})
        repo.grant("notify-slack", "net:*.slack.com")
        repo.append_audit("install", plugin_id="notify-slack")
        raise RuntimeError("crash after writing rows")
    assert repo.get_plugin("notify-slack") is None
    assert repo.list_versions("notify-slack") == []
    assert repo.get_config("notify-slack") is None
    assert repo.list_grants("notify-slack") == []
    assert repo.query_audit() == []


def test_unit_of_work_sees_its_own_writes_and_nests(repo: Repository) -> None:
    with repo.unit_of_work():
        repo.add_plugin(StoredPlugin.from_manifest(manifest()))
        assert repo.in_unit_of_work
        with repo.unit_of_work():
            assert repo.get_plugin("notify-slack") is not None
    assert not repo.in_unit_of_work
    assert repo.get_plugin("notify-slack") is not None


def test_failed_insert_inside_unit_of_work_rolls_back_the_earlier_rows(repo: Repository) -> None:
    install(repo, "notify-mail")
    with pytest.raises(RecordExists), repo.unit_of_work():
        repo.add_plugin(StoredPlugin.from_manifest(manifest("notify-slack")))
        repo.add_plugin(StoredPlugin.from_manifest(manifest("notify-mail")))
    assert [p.id for p in repo.list_plugins()] == ["notify-mail"]


def test_versions_are_listed_newest_first_and_duplicates_refused(repo: Repository) -> None:
    install(repo)
    for v in ("1.1.0", "2.0.0"):
        repo.add_version(StoredVersion("notify-slack", v, "b" * 64, package_key("notify-slack", v),
                                       manifest(version=v)))
    assert [v.version for v in repo.list_versions("notify-slack")] == ["2.0.0", "1.1.0", "1.0.0"]
    with pytest.raises(RecordExists, match="already installed"):
        repo.add_version(StoredVersion("notify-slack", "2.0.0", "c" * 64, "k", manifest()))
    with pytest.raises(PluginNotFound):
        repo.add_version(StoredVersion("ghost", "1.0.0", "c" * 64, "k", manifest("ghost")))
    got = repo.get_version("notify-slack", "1.1.0")
    assert got is not None and got.checksum == "b" * 64 and got.id is not None
    assert repo.set_version_cache_path("notify-slack", "1.1.0", "/c/x").cache_path == "/c/x"


def test_set_current_version_switches_the_plugin_columns(repo: Repository) -> None:
    install(repo)
    m2 = manifest(version="2.0.0", description="v2", entry="notify_slack.v2:Plugin")
    repo.add_version(StoredVersion("notify-slack", "2.0.0", "d" * 64,
                                   package_key("notify-slack", "2.0.0"), m2))
    switched = repo.set_current_version("notify-slack", "2.0.0")
    assert (switched.version, switched.description, switched.checksum) == ("2.0.0", "v2", "d" * 64)
    assert switched.entry_point == "notify_slack.v2:Plugin"
    assert switched.object_key.endswith("notify-slack_2.0.0.zip")
    with pytest.raises(RecordNotFound, match="not kept"):
        repo.set_current_version("notify-slack", "9.9.9")
    with pytest.raises(OperationRefused, match="current version"):
        repo.delete_version("notify-slack", "2.0.0")
    assert repo.delete_version("notify-slack", "1.0.0") is True
    assert repo.delete_version("notify-slack", "1.0.0") is False


def test_prune_keeps_the_newest_and_the_current_version(repo: Repository) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    install(repo)  # current = 1.0.0, installed "now" (after t0 + n hours)
    for i, v in enumerate(("1.1.0", "1.2.0", "1.3.0", "1.4.0")):
        repo.add_version(StoredVersion("notify-slack", v, "e" * 64, f"k/{v}", manifest(version=v),
                                       installed_at=t0 + timedelta(hours=i)))
    # Roll back to an old version: it must survive pruning even though it is not the newest.
    repo.update_plugin("notify-slack", version="1.1.0")
    removed = repo.prune_versions("notify-slack", keep=3)
    kept = [v.version for v in repo.list_versions("notify-slack")]
    assert "1.1.0" in kept and len(kept) == 3
    assert kept == ["1.0.0", "1.4.0", "1.1.0"]
    assert sorted(v.version for v in removed) == ["1.2.0", "1.3.0"]
    with pytest.raises(InvalidRecord):
        repo.prune_versions("notify-slack", keep=0)


def test_delete_plugin_cascades_to_versions_config_grants_and_requests(
    repo: Repository, database: Database
) -> None:
    install(repo)
    repo.grant("notify-slack", "net:*.slack.com")
    repo.request_permission("notify-slack", "fs:read:/data")
    repo.append_audit("install", plugin_id="notify-slack")
    op = repo.create_operation("install", plugin_id="notify-slack")
    assert repo.delete_plugin("notify-slack") is True
    assert repo.delete_plugin("notify-slack") is False
    from sqlalchemy import func, select

    from plughost.storage import models

    with database.session() as s:
        for table in (models.PluginVersionRow, models.PluginConfigRow, models.ConfigHistoryRow,
                      models.GrantRow, models.PermissionRequestRow):
            assert s.scalar(select(func.count()).select_from(table)) == 0, table.__tablename__
    # Audit events and operations outlive the plugin on purpose.
    assert [e.action for e in repo.query_audit(plugin_id="notify-slack")] == ["install"]
    assert repo.get_operation(op.id) is not None


def test_database_level_cascade_also_applies_to_raw_deletes(database: Database, repo) -> None:
    install(repo)
    from sqlalchemy import delete, func, select

    from plughost.storage import models

    with database.transaction() as s:
        s.execute(delete(models.PluginRow).where(models.PluginRow.id == "notify-slack"))
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(models.PluginVersionRow)) == 0


def test_config_revisions_history_and_optimistic_check(repo: Repository) -> None:
    install(repo)  # revision 1 = defaults
    cfg = repo.set_config("notify-slack", {"channel": "#ops"}, changed_by="alice",
                          expected_revision=1)
    assert (cfg.revision, cfg.config, cfg.updated_by) == (2, {"channel": "#ops"}, "alice")
    with pytest.raises(ConcurrentModification, match="revision 2, not 1") as info:
        repo.set_config("notify-slack", {"channel": "#lost"}, expected_revision=1)
    assert info.value.code == "storage.conflict"
    assert repo.get_config("notify-slack").config == {"channel": "#ops"}
    history = repo.config_history("notify-slack")
    assert [(h.revision, h.config) for h in history] == [
        (2, {"channel": "#ops"}), (1, {"channel": "#general"})
    ]
    with pytest.raises(PluginNotFound):
        repo.set_config("ghost", {})


def test_grants_are_idempotent_revocable_and_keep_history(repo: Repository) -> None:
    install(repo)
    g1 = repo.grant("notify-slack", "net:*.slack.com", granted_by="op")
    assert repo.grant("notify-slack", "net:*.slack.com").id == g1.id
    repo.grant("notify-slack", "fs:read:/data")
    assert [g.scope for g in repo.list_grants("notify-slack")] == ["net:*.slack.com",
                                                                    "fs:read:/data"]
    assert repo.revoke_grant("notify-slack", "net:*.slack.com", revoked_by="op") is True
    assert repo.revoke_grant("notify-slack", "net:*.slack.com") is False
    assert [g.scope for g in repo.list_grants("notify-slack")] == ["fs:read:/data"]
    history = repo.list_grants("notify-slack", include_revoked=True)
    assert not history[0].active and history[0].revoked_by == "op"
    regrant = repo.grant("notify-slack", "net:*.slack.com")
    assert regrant.id != g1.id and regrant.active


def test_permission_requests_approve_grants_in_the_same_transaction(repo: Repository) -> None:
    install(repo)
    req = repo.request_permission("notify-slack", "net:api.example.com", reason="webhook")
    assert repo.request_permission("notify-slack", "net:api.example.com").id == req.id
    denied = repo.request_permission("notify-slack", "process:spawn")
    assert [r.id for r in repo.list_permission_requests()] == [req.id, denied.id]
    approved = repo.decide_permission_request(req.id, approve=True, decided_by="op")
    assert approved.status == "approved" and approved.decided_at is not None
    assert [g.scope for g in repo.list_grants("notify-slack")] == ["net:api.example.com"]
    repo.decide_permission_request(denied.id, approve=False, decided_by="op")
    assert [g.scope for g in repo.list_grants("notify-slack")] == ["net:api.example.com"]
    with pytest.raises(OperationRefused, match="already approved"):
        repo.decide_permission_request(req.id, approve=False)
    with pytest.raises(RecordNotFound):
        repo.decide_permission_request(99999, approve=True)
    every = repo.list_permission_requests(status=None, plugin_id="notify-slack")
    assert [r.status for r in every] == ["approved", "denied"]



def test_audit_counts_are_kept_as_events_are_appended_also_by_threads_at_once(
        repo: Repository) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from plughost.storage.models import AuditEventRow

    repo.append_audit("plugin.install", plugin_id="a")
    repo.append_audit("plugin.install", plugin_id="b", outcome="error")
    repo.append_audit("config.set", plugin_id="a")
    with ThreadPoolExecutor(8) as pool:  # the first event of a kind, from many at once
        list(pool.map(lambda i: repo.append_audit("plugin.update", plugin_id=f"p{i}"),
                      range(24)))
    with pytest.raises(RuntimeError), repo.unit_of_work():  # rolled back: nor its count
        repo.append_audit("plugin.uninstall", plugin_id="a")
        raise RuntimeError("undone")
    counted = repo.count_audit(["plugin.install", "plugin.update", "plugin.uninstall"])
    assert counted == [("plugin.install", "error", 1), ("plugin.install", "ok", 1),
                       ("plugin.update", "ok", 24)]
    stmt = (select(AuditEventRow.action, AuditEventRow.outcome, func.count())
            .where(AuditEventRow.action.in_(["plugin.install", "plugin.update",
                                             "plugin.uninstall"]))
            .group_by(AuditEventRow.action, AuditEventRow.outcome)
            .order_by(AuditEventRow.action, AuditEventRow.outcome))
    with repo.database.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(stmt)] == counted  # a recount agrees


def test_operation_totals_are_kept_as_operations_finish(repo: Repository) -> None:
    for kind, final in (("install", "succeeded"), ("install", "succeeded"),
                        ("install", "failed"), ("update", "cancelled")):
        op = repo.create_operation(kind, plugin_id="p")
        repo.update_operation(op.id, status="running")
        repo.update_operation(op.id, status=final)
    repo.create_operation("uninstall", plugin_id="p")  # not finished: not counted
    totals = repo.operation_totals()
    assert [(k, st, n) for k, st, n, _ in totals] == [
        ("install", "failed", 1), ("install", "succeeded", 2), ("update", "cancelled", 1)]
    assert all(0 <= seconds < 60 for *_, seconds in totals)

def test_audit_append_and_query_newest_first_with_filters_and_paging(repo: Repository) -> None:
    for i in range(5):
        repo.append_audit("install" if i % 2 == 0 else "config.set", actor=f"u{i % 2}",
                          plugin_id="p" if i < 4 else None, outcome="ok" if i else "denied",
                          details={"i": i})
    events = repo.query_audit()
    assert [e.details["i"] for e in events] == [4, 3, 2, 1, 0]
    assert [e.details["i"] for e in repo.query_audit(action="install")] == [4, 2, 0]
    assert [e.details["i"] for e in repo.query_audit(plugin_id="p", actor="u1")] == [3, 1]
    assert [e.details["i"] for e in repo.query_audit(outcome="denied")] == [0]
    page1 = repo.query_audit(limit=2)
    page2 = repo.query_audit(limit=2, before_id=page1[-1].id)
    assert [e.details["i"] for e in page1 + page2] == [4, 3, 2, 1]
    assert repo.query_audit(since=events[0].at + timedelta(seconds=1)) == []
    assert len(repo.query_audit(until=events[0].at + timedelta(seconds=1))) == 5


def test_audit_query_keeps_or_leaves_out_actions_by_prefix(repo: Repository) -> None:
    # A prefix is literal: "_" and "%" are not patterns (a LIKE would read them so).
    for i, action in enumerate(("plugin.install", "permission.grant", "pluginXinstall",
                                "plugin_install", "signature.refused", "permission.deny")):
        repo.append_audit(action, details={"i": i})

    def ids(**query: Any) -> list[int]:
        return [e.details["i"] for e in repo.query_audit(**query)]

    assert ids(action_prefixes=("permission.", "signature.")) == [5, 4, 1]
    assert ids(other_than=("permission.", "signature.")) == [3, 2, 0]
    assert ids(action_prefixes=("plugin_",)) == [3]
    assert ids(other_than=("plugin_",)) == [5, 4, 2, 1, 0]
    assert ids(action_prefixes=("permission.",), limit=1) == [5]
    assert ids(action_prefixes=("permission.",), before_id=repo.query_audit(
        action_prefixes=("permission.",), limit=1)[0].id) == [1]
    with pytest.raises(ValueError):
        repo.query_audit(action_prefixes=("",))


def test_tokens_store_only_a_hash_and_verify_revoke_expire(repo: Repository, database) -> None:
    token, secret = repo.create_token("ci", "admin")
    assert secret.startswith("ph_") and token.role == "admin"
    from sqlalchemy import select

    from plughost.storage.models import ApiTokenRow

    with database.session() as s:
        stored = s.scalars(select(ApiTokenRow.token_hash)).one()
    assert secret not in stored and len(stored) == 64
    verified = repo.verify_token(secret)
    assert verified is not None and verified.name == "ci" and verified.last_used_at is not None
    assert repo.verify_token(secret + "x") is None
    with pytest.raises(RecordExists):
        repo.create_token("ci", "viewer")
    _, old_secret = repo.create_token(
        "old", "viewer", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert repo.verify_token(old_secret) is None
    assert repo.revoke_token("ci") is True and repo.revoke_token("ci") is False
    assert repo.verify_token(secret) is None
    assert [t.name for t in repo.list_tokens()] == ["old"]
    assert [t.name for t in repo.list_tokens(include_revoked=True)] == ["ci", "old"]


def test_operations_progress_and_finish_once(repo: Repository) -> None:
    op = repo.create_operation("install", plugin_id="notify-slack", actor="cli")
    assert (op.status, op.progress, op.done) == ("pending", 0.0, False)
    running = repo.update_operation(op.id, status="running", progress=0.25, message="verifying")
    assert running.started_at is not None and running.message == "verifying"
    failed = repo.update_operation(
        op.id, status="failed", error={"code": "archive.path", "message": "bad entry"}
    )
    assert failed.done and failed.finished_at is not None and failed.error["code"] == "archive.path"
    with pytest.raises(OperationRefused, match="already failed"):
        repo.update_operation(op.id, progress=0.5)
    with pytest.raises(InvalidRecord):
        repo.update_operation(op.id, status="exploded")
    with pytest.raises(InvalidRecord):
        repo.update_operation(op.id, progress=1.5)
    with pytest.raises(RecordNotFound):
        repo.update_operation("missing", progress=0.1)
    ok = repo.create_operation("update", plugin_id="notify-slack")
    assert repo.update_operation(ok.id, status="succeeded").progress == 1.0
    assert {o.id for o in repo.list_operations(plugin_id="notify-slack")} == {op.id, ok.id}
    assert [o.id for o in repo.list_operations(status="failed")] == [op.id]


def test_trusted_keys_add_list_revoke_and_no_retrust(repo: Repository) -> None:
    key = repo.add_trusted_key(TrustedKey("k1", "BASE64KEY", name="Acme", added_by="op"))
    assert key.added_at is not None and key.algorithm == "ed25519"
    repo.add_trusted_key(TrustedKey("k2", "OTHER"))
    assert [k.key_id for k in repo.list_trusted_keys()] == ["k1", "k2"]
    assert repo.revoke_trusted_key("k1") is True and repo.revoke_trusted_key("k1") is False
    assert [k.key_id for k in repo.list_trusted_keys()] == ["k2"]
    assert repo.get_trusted_key("k1").revoked_at is not None
    with pytest.raises(RecordExists, match="revoked"):
        repo.add_trusted_key(TrustedKey("k1", "BASE64KEY"))


def test_records_are_frozen_plain_dataclasses(repo: Repository) -> None:
    plugin = install(repo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plugin.state = "active"  # type: ignore[misc]
    assert type(plugin).__module__ == "plughost.storage.records"


def test_parallel_inserts_of_one_id_leave_one_row_and_clear_refusals(repo: Repository) -> None:
    import threading

    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait(30)
        try:
            with repo.unit_of_work():
                repo.add_plugin(StoredPlugin.from_manifest(manifest(version=f"1.0.{i}")))
                repo.add_version(StoredVersion("notify-slack", f"1.0.{i}", "f" * 64, f"k{i}",
                                               manifest(version=f"1.0.{i}")))
            outcomes.append("ok")
        except RecordExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["exists"] * 7 + ["ok"]
    winner = repo.require_plugin("notify-slack")
    assert [v.version for v in repo.list_versions("notify-slack")] == [winner.version]


def test_operation_details_journal_merges_and_unfinished_lists_the_crash_candidates(
    repo: Repository,
) -> None:
    op = repo.create_operation("install", plugin_id="p", details={"object_key": "k"})
    assert op.details == {"object_key": "k"}
    op = repo.update_operation(op.id, status="running", details={"cache_path": "/c/p"})
    assert op.details == {"object_key": "k", "cache_path": "/c/p"}
    done = repo.create_operation("install", plugin_id="q")
    repo.update_operation(done.id, status="succeeded")
    pending = repo.create_operation("uninstall", plugin_id="r")
    assert {o.id for o in repo.list_operations(unfinished=True)} == {op.id, pending.id}


def test_verify_token_records_last_use_at_most_once_a_minute(database: Database, tmp_path) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    repo = Repository(database, lock_dir=tmp_path / "locks", clock=lambda: now[0])
    _, secret = repo.create_token("svc", "operator")
    assert repo.verify_token(secret).last_used_at == now[0]
    first = now[0]
    now[0] = first + timedelta(seconds=30)
    assert repo.verify_token(secret).last_used_at == first  # within a minute: no write
    now[0] = first + timedelta(seconds=61)
    assert repo.verify_token(secret).last_used_at == now[0]
    assert repo.list_tokens()[0].last_used_at == now[0]


def test_from_manifest_accepts_a_real_parsed_manifest(repo: Repository) -> None:
    from plughost.core.manifest import parse_manifest

    parsed = parse_manifest(
        'id = "notify-slack"\nname = "Slack"\nversion = "1.2.0"\ntype = "notify"\n'
        'entry = "notify_slack:Plugin"\n[config.schema]\ntype = "object"\n'
        '[config.defaults]\nchannel = "#x"\n',
        format="toml",
    )
    stored = repo.add_plugin(StoredPlugin.from_manifest(parsed, checksum="0" * 64))
    assert (stored.id, stored.version, stored.type) == ("notify-slack", "1.2.0", "notify")
    assert stored.entry_point == "notify_slack:Plugin" and stored.runtime == "python"
    assert stored.default_config == {"channel": "#x"}
    assert repo.require_plugin("notify-slack").manifest == parsed.to_dict()


def test_keyset_pages_filter_and_neither_repeat_nor_skip_under_concurrent_changes(
    repo: Repository,
) -> None:
    for i in range(0, 40, 2):  # p00, p02, ... p38
        install(repo, f"p{i:02d}", type="notify" if i % 4 else "demo")
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page, after = repo.page_plugins(after=after, limit=6)
        seen += [p.id for p in page]
        pages += 1
        # Meanwhile another writer installs (before and after the position) and removes.
        install(repo, f"p{pages * 2 + 1:02d}")
        install(repo, f"a{pages:02d}")  # sorts before everything already seen
        if after is None:
            break
    originals = [f"p{i:02d}" for i in range(0, 40, 2)]
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(originals) <= set(seen)  # nothing that existed was skipped
    assert seen == sorted(seen)
    assert not any(pid.startswith("a") for pid in seen)  # inserted behind the cursor
    demo, after = repo.page_plugins(type="demo", limit=100)
    assert [p.id for p in demo] == [f"p{i:02d}" for i in range(0, 40, 4)] and after is None
    repo.set_enabled("p04", False)
    off, _ = repo.page_plugins(enabled=False, limit=100)
    assert [p.id for p in off] == ["p04"]
    repo.set_state("p08", "active")
    active, _ = repo.page_plugins(state="active", q="P0", limit=100)
    assert [p.id for p in active] == ["p08"]
    with pytest.raises(InvalidRecord, match="limit must be between"):
        repo.page_plugins(limit=0)


def test_a_summary_page_is_the_page_as_plain_rows_with_signatures_and_total(
    repo: Repository,
) -> None:
    for pid in ("s-a", "s-b", "s-c", "s-d"):
        install(repo, pid)
    repo.add_version(StoredVersion("s-b", "2.0.0", "e" * 64, package_key("s-b", "2.0.0"),
                                   manifest("s-b", "2.0.0"), signed_by="key-1"))
    repo.set_current_version("s-b", "2.0.0")
    repo.update_plugin("s-c", version="9.9.9")  # no version row: signed unknown
    repo.set_enabled("s-d", False)
    full, _ = repo.page_plugins(limit=3)
    page = repo.summary_page(limit=3)
    assert page.more is True and page.total == 4
    assert page.rows == [
        (*(getattr(p, f) for f in SUMMARY_FIELDS[:-1]),
         signed)
        for p, signed in zip(full, (False, True, None), strict=True)]
    rest = repo.summary_page(after="s-c", limit=3)
    assert [r[0] for r in rest.rows] == ["s-d"] and rest.more is False and rest.total == 4
    off = repo.summary_page(enabled=False, q="S-D", limit=10)
    assert [r[0] for r in off.rows] == ["s-d"] and off.total == 1
    with pytest.raises(InvalidRecord, match="limit must be"):
        repo.summary_page(limit=0)


def test_a_summary_page_can_give_the_times_as_sqlite_keeps_them(repo: Repository) -> None:
    from plughost.services.resources import iso

    for pid in ("t-a", "t-b"):
        install(repo, pid)
    repo.set_enabled("t-b", False)  # updated_at moves on
    plain = repo.summary_page(limit=10).rows
    stored = repo.summary_page(limit=10, stored_times=True).rows
    at = SUMMARY_FIELDS.index("installed_at"), SUMMARY_FIELDS.index("updated_at")
    for a, b in zip(plain, stored, strict=True):
        assert [v for i, v in enumerate(a) if i not in at] == [
            v for i, v in enumerate(b) if i not in at]
        for i in at:
            assert isinstance(a[i], datetime)
            # SQLite: its text; the other databases: the same datetimes as ever.
            assert type(b[i]) is (str if repo.database.dialect == "sqlite" else datetime)
            assert iso(b[i]) == iso(a[i])


def test_a_summary_page_total_is_counted_again_after_every_change(repo: Repository) -> None:
    # The total is kept per filter with the change sequence number it was counted at: any
    # committed change (here also through another Repository on the same database) makes
    # the next page count again, so the total is never stale.
    other = Repository(repo.database)
    install(repo, "t-a")
    assert repo.summary_page().total == 1
    assert repo.summary_page(state="installed").total == 1
    install(other, "t-b")
    assert repo.summary_page().total == 2
    other.set_state("t-a", "failed", failure_reason="boom")
    assert repo.summary_page(state="installed").total == 1
    assert repo.summary_page(status=2).total == 1
    other.delete_plugin("t-b")
    assert repo.summary_page().total == 1
    assert repo.summary_page(state="installed").total == 0
    with repo.unit_of_work():  # inside a unit of work: its own uncommitted writes count
        install(repo, "t-c")
        assert repo.summary_page().total == 2
    assert repo.summary_page().total == 2


def test_plugin_counts_tally_each_facet_under_the_other_filters(repo: Repository) -> None:
    # What a list's filter menus show: for each facet, the values among the plugins that
    # match every other filter; kept until a change, like the list's total.
    other = Repository(repo.database)
    install(repo, "c-a", type="notify", runtime="python")
    install(repo, "c-b", type="notify", runtime="process")
    install(repo, "c-c", type="demo", runtime="process")
    repo.update_plugin("c-c", source="market")
    repo.set_state("c-b", "failed", failure_reason="boom")
    every = repo.plugin_counts()
    assert every.total == 3
    assert every.by == {"type": {"notify": 2, "demo": 1},
                        "state": {"installed": 2, "failed": 1},
                        "runtime": {"python": 1, "process": 2},
                        "source": {"local": 2, "market": 1}}
    some = repo.plugin_counts(runtime="process", type="notify")
    assert some.total == 1
    assert some.by["type"] == {"notify": 1, "demo": 1}  # its own filter left out
    assert some.by["runtime"] == {"python": 1, "process": 1}
    assert some.by["state"] == {"failed": 1} and some.by["source"] == {"local": 1}
    assert repo.plugin_counts(q="C-C").by["source"] == {"market": 1}
    # the list's filters are the same ones: a page holds what the counts say
    assert repo.summary_page(runtime="process", source="market").total == 1
    assert repo.count_plugins(runtime="process") == 2
    other.delete_plugin("c-a")  # a change through another repository: counted again
    assert repo.plugin_counts().by["runtime"] == {"process": 2}
    with pytest.raises(InvalidRecord, match="state"):
        repo.plugin_counts(state="sleeping")


def test_the_plain_reads_of_a_plugin_see_what_its_unit_of_work_wrote_and_not_after_undo(
        repo: Repository) -> None:
    # get_plugin, get_config, list_versions and list_grants read without the ORM: inside a
    # unit of work they must still see its own writes, as the ORM's reads would.
    install(repo, "uow")
    with pytest.raises(RuntimeError), repo.unit_of_work():
        repo.update_plugin("uow", description="changed")
        repo.set_config("uow", {"channel": "#ops"}, changed_by="t")
        repo.add_version(StoredVersion("uow", "2.0.0", "b" * 64, package_key("uow", "2.0.0"),
                                       manifest("uow", "2.0.0")))
        repo.grant("uow", "net:example.org", granted_by="t")
        assert repo.get_plugin("uow").description == "changed"  # type: ignore[union-attr]
        assert repo.get_config("uow").config == {"channel": "#ops"}  # type: ignore[union-attr]
        assert {v.version for v in repo.list_versions("uow")} == {"1.0.0", "2.0.0"}
        assert [g.scope for g in repo.list_grants("uow")] == ["net:example.org"]
        # a change still pending in the session (not flushed yet) is seen too
        session = repo._current.get()
        assert session is not None
        session.get(PluginRow, "uow").author = "pending"  # type: ignore[union-attr]
        assert repo.get_plugin("uow").author == "pending"  # type: ignore[union-attr]
        raise RuntimeError("undo")
    assert repo.get_plugin("uow").description == "uow plugin"  # type: ignore[union-attr]
    assert repo.get_config("uow").config == {"channel": "#general"}  # type: ignore[union-attr]
    assert [v.version for v in repo.list_versions("uow")] == ["1.0.0"]
    assert repo.list_grants("uow") == []
    assert repo.get_plugin("nobody") is None and repo.get_config("nobody") is None


def test_signed_plugins_reads_the_current_version_of_each(repo: Repository) -> None:
    install(repo, "unsigned-one")
    install(repo, "signed-one")
    key = package_key("signed-one", "2.0.0")
    repo.add_version(StoredVersion("signed-one", "2.0.0", "e" * 64, key,
                                   manifest("signed-one", "2.0.0"), signed_by="key-1"))
    assert repo.signed_plugins(["signed-one", "unsigned-one", "ghost"]) == {
        "signed-one": False, "unsigned-one": False}  # 2.0.0 is kept, not current
    repo.set_current_version("signed-one", "2.0.0")
    assert repo.signed_plugins(["signed-one", "unsigned-one"]) == {
        "signed-one": True, "unsigned-one": False}
    assert repo.signed_plugins([]) == {}


def test_whole_table_reads_are_one_query_each_and_agree_with_the_rows(repo: Repository) -> None:
    for i in range(7):
        install(repo, f"p{i}")
    repo.set_current_version("p3", repo.add_version(StoredVersion(
        "p3", "2.0.0", "b" * 64, package_key("p3", "2.0.0"), manifest("p3", "2.0.0"),
        size=1)).version)
    repo.set_state("p1", "failed", failure_reason="boom", failure_phase="activate")
    assert [p.id for p in repo.iter_plugins(batch=3)] == [f"p{i}" for i in range(7)]
    assert repo.plugin_ids() == [f"p{i}" for i in range(7)]
    current = repo.current_versions()
    assert sorted(current) == repo.plugin_ids() and current["p3"].version == "2.0.0"
    assert current["p3"].manifest["version"] == "2.0.0"
    assert repo.all_configs()["p2"].config == repo.get_config("p2").config  # type: ignore
    files = repo.version_files()
    assert ("p3", "1.0.0", "a" * 64, package_key("p3", "1.0.0")) in files and len(files) == 8
    assert repo.plugin_states(["p1", "p2", "gone"]) == {"p1": ("failed", "boom"),
                                                       "p2": ("installed", None)}


def test_installed_with_versions_reads_each_plugin_and_its_current_version(
        repo: Repository) -> None:
    for pid in ("b", "a"):
        install(repo, pid)
    repo.set_current_version("b", repo.add_version(StoredVersion(
        "b", "2.0.0", "c" * 64, package_key("b", "2.0.0"), manifest("b", "2.0.0"))).version)
    repo.add_plugin(StoredPlugin.from_manifest(manifest("no-version"), checksum="d" * 64))
    rows = repo.installed_with_versions()
    assert [p.id for p, _ in rows] == ["a", "b", "no-version"]
    for plugin, _ in rows:  # the plugin as a summary: every column but the JSON ones
        assert plugin == dataclasses.replace(repo.get_plugin(plugin.id), manifest={},
                                             config_schema=None, default_config=None)
    current = repo.current_versions()
    for plugin, version in rows[:2]:
        full = current[plugin.id]
        assert version is not None and (version.version, version.checksum, version.object_key,
                                         version.manifest, version.id) == (
            full.version, full.checksum, full.object_key, full.manifest, full.id)
    assert rows[1][1].version == "2.0.0" and rows[2][1] is None  # type: ignore[union-attr]
    assert repo.config_values() == {pid: c.config for pid, c in repo.all_configs().items()}
    # Some of them, by id (an absent id is left out; more than one query's worth of ids).
    some = repo.installed_with_versions(["b", "gone", "no-version",
                                         *(f"x{i}" for i in range(700))])
    assert some == [rows[1], rows[2]]
    assert repo.installed_with_versions([]) == []


def test_plugin_states_of_many_ids_reads_only_those_installed(repo: Repository) -> None:
    install(repo, "p1")
    repo.set_state("p1", "failed", failure_reason="boom")
    install(repo, "p2")
    many = ["p1", "p2"] + [f"gone-{i}" for i in range(2500)]  # the one-scan path
    assert repo.plugin_states(many) == repo.plugin_states(["p1", "p2"]) == {
        "p1": ("failed", "boom"), "p2": ("installed", None)}


def test_arcade_status_filters_in_the_query(repo: Repository) -> None:
    for pid in ("a", "b", "c", "d"):
        install(repo, pid)
    repo.set_enabled("b", False)
    repo.set_state("c", "failed", failure_reason="boom")
    repo.set_enabled("d", False)
    repo.set_state("d", "failed", failure_reason="boom")
    for status, ids in ((2, ["c", "d"]), (1, ["a"]), (0, ["b"])):
        assert [p.id for p in repo.page_plugins(status=status)[0]] == ids
        assert repo.count_plugins(status=status) == len(ids)


def test_plugins_requiring_one_are_found_inside_the_stored_manifests(repo: Repository) -> None:
    install(repo, "lib")
    install(repo, "app", dependencies={"lib": "^1.0"})
    install(repo, "tool", dependencies={"lib": "^1.2", "app": "*"})
    install(repo, "maybe", **{"optional-dependencies": {"lib": "*"}})  # optional: not needed
    install(repo, "lib-extra", dependencies={"lib-2": "*"})  # a longer id is another plugin
    repo.set_enabled("tool", False)
    assert [p.id for p in repo.plugins_requiring("lib")] == ["app", "tool"]
    assert [p.id for p in repo.plugins_requiring("lib", enabled=True)] == ["app"]
    assert [p.id for p in repo.plugins_requiring("app")] == ["tool"]
    assert repo.plugins_requiring("nobody") == []
    assert sorted(repo.get_plugins(["lib", "app", "gone"])) == ["app", "lib"]


def test_what_a_plugin_requires_follows_its_current_manifest(repo: Repository) -> None:
    install(repo, "lib")
    install(repo, "app", dependencies={"lib": "^1.0"})
    m2 = manifest("app", "2.0.0", dependencies={"lib-2": "*"})
    key = package_key("app", "2.0.0")
    repo.add_version(StoredVersion("app", "2.0.0", "b" * 64, key, m2, size=10))
    assert [p.id for p in repo.plugins_requiring("lib")] == ["app"]  # only a kept version
    repo.set_current_version("app", "2.0.0")
    assert repo.plugins_requiring("lib") == []
    assert [p.id for p in repo.plugins_requiring("lib-2")] == ["app"]
    repo.set_current_version("app", "1.0.0")  # a rollback
    assert [p.id for p in repo.plugins_requiring("lib")] == ["app"]
    repo.update_plugin("app", manifest=manifest("app", dependencies={"other": "*"}))
    assert (repo.plugins_requiring("lib"), [p.id for p in repo.plugins_requiring("other")]) \
        == ([], ["app"])
    with pytest.raises(RuntimeError), repo.unit_of_work():  # rolled back with the change
        repo.update_plugin("app", manifest=manifest("app", dependencies={"lib": "*"}))
        raise RuntimeError
    assert repo.plugins_requiring("lib") == []
    repo.delete_plugin("app")
    assert repo.plugins_requiring("other") == []
