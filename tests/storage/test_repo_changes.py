"""The change log: one numbered row per committed change, written in the change's transaction,
gap-free and visible in sequence order — on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from plughost.errors import ChangesPruned, InvalidRecord, PluginNotFound, RecordExists
from plughost.storage.db import Database
from plughost.storage.models import ChangeSequenceRow
from plughost.storage.records import StoredPlugin, TrustedKey
from plughost.storage.repository import Repository
from tests.storage.test_repository import install, manifest


@pytest.fixture
def repo(database: Database, tmp_path) -> Repository:
    return Repository(database, lock_dir=tmp_path / "locks")


def summary(repo: Repository, since: int = 0) -> list[tuple[str, str, str]]:
    return [(c.kind, c.key, c.action) for c in repo.changes_since(since)]


def test_every_state_changing_write_records_one_numbered_change(repo: Repository) -> None:
    assert repo.last_change_seq() == 0
    install(repo, "notify-slack")
    repo.set_state("notify-slack", "active")
    repo.set_enabled("notify-slack", False)
    repo.set_enabled("notify-slack", True)
    repo.update_plugin("notify-slack", description="new")
    repo.set_config("notify-slack", {"channel": "#ops"}, changed_by="ada")
    repo.grant("notify-slack", "net:example.org")
    repo.grant("notify-slack", "net:example.org")  # already in force: no change
    repo.revoke_grant("notify-slack", "net:example.org")
    repo.revoke_grant("notify-slack", "net:example.org")  # nothing in force: no change
    request = repo.request_permission("notify-slack", "fs:read:/tmp")
    repo.decide_permission_request(request.id, approve=True)
    repo.create_token("ci", "admin")
    repo.revoke_token("ci")
    repo.add_trusted_key(TrustedKey("k1", "AAAA"))
    repo.revoke_trusted_key("k1")
    repo.add_alert_rule("slow", {"expr": "x"})
    repo.delete_alert_rule("slow")
    repo.delete_plugin("notify-slack")
    p = "notify-slack"
    assert summary(repo) == [
        ("plugin", p, "install"), ("version", p, "add"), ("config", p, "set"),
        ("plugin", p, "state"), ("plugin", p, "disable"), ("plugin", p, "enable"),
        ("plugin", p, "update"), ("config", p, "set"),
        ("grant", p, "grant"), ("grant", p, "revoke"),
        ("permission_request", p, "request"), ("permission_request", p, "approve"),
        ("grant", p, "grant"),
        ("token", "ci", "create"), ("token", "ci", "revoke"),
        ("trusted_key", "k1", "add"), ("trusted_key", "k1", "revoke"),
        ("alert_rule", "slow", "add"), ("alert_rule", "slow", "delete"),
        ("plugin", p, "uninstall"),
    ]
    changes = repo.changes_since(0)
    assert [c.seq for c in changes] == list(range(1, len(changes) + 1))
    assert repo.last_change_seq() == len(changes)
    assert changes[3].details == {"state": "active"}
    assert changes[7].details == {"revision": 2}
    assert changes[0].plugin_id == p and changes[13].plugin_id is None
    assert all(c.at.tzinfo is not None for c in changes)


def test_reads_and_token_touches_record_nothing(repo: Repository) -> None:
    install(repo)
    _, secret = repo.create_token("ci", "viewer")
    before = repo.last_change_seq()
    repo.list_plugins()
    repo.get_config("notify-slack")
    assert repo.verify_token(secret) is not None  # records last_used_at
    repo.append_audit("install", actor="ada", plugin_id="notify-slack")
    assert repo.last_change_seq() == before


def test_a_failed_operation_leaves_no_change_row(repo: Repository) -> None:
    install(repo, "a")
    before = repo.last_change_seq()
    with pytest.raises(RuntimeError), repo.unit_of_work():
        repo.add_plugin(StoredPlugin.from_manifest(manifest("b")))
        repo.set_state("a", "active")
        raise RuntimeError("crash after the writes")
    with pytest.raises(RecordExists):
        repo.add_plugin(StoredPlugin.from_manifest(manifest("a")))
    with pytest.raises(PluginNotFound):
        repo.set_state("nope", "active")
    assert repo.last_change_seq() == before
    assert repo.changes_since(before) == []
    # The next committed change takes the next number: no gap was left.
    repo.set_state("a", "active")
    assert [c.seq for c in repo.changes_since(before)] == [before + 1]


def test_a_refusal_caught_inside_a_unit_of_work_records_only_what_committed(
    repo: Repository,
) -> None:
    install(repo, "a")
    before = repo.last_change_seq()
    with repo.unit_of_work():
        with pytest.raises(RecordExists):
            repo.add_plugin(StoredPlugin.from_manifest(manifest("a")))
        repo.set_enabled("a", False)
    assert summary(repo, before) == [("plugin", "a", "disable")]


def test_changes_since_pages_in_order_and_validates_its_arguments(repo: Repository) -> None:
    for i in range(5):
        install(repo, f"p{i}")
    seen: list[int] = []
    position = 0
    while page := repo.changes_since(position, limit=4):
        seen += [c.seq for c in page]
        position = page[-1].seq
    assert seen == list(range(1, 16))
    for bad in ({"seq": -1}, {"seq": 0, "limit": 0}, {"seq": 0, "limit": 10_001}):
        with pytest.raises(InvalidRecord, match="changes_since needs"):
            repo.changes_since(**bad)  # type: ignore[arg-type]


def test_pruned_positions_are_refused_and_the_sequence_continues(repo: Repository) -> None:
    for i in range(3):
        install(repo, f"p{i}")
    assert repo.prune_changes(6) == 6
    with pytest.raises(ChangesPruned) as info:
        repo.changes_since(2)
    assert info.value.code == "storage.changes_pruned"
    assert [c.seq for c in repo.changes_since(6)] == [7, 8, 9]
    install(repo, "p3")
    assert repo.changes_since(9)[0].seq == 10


def test_a_lost_sequence_row_is_rebuilt_past_the_log(repo: Repository, database) -> None:
    install(repo, "a")
    with database.engine.begin() as conn:
        conn.execute(sa.delete(ChangeSequenceRow))
    install(repo, "b")
    assert [c.seq for c in repo.changes_since(0)] == list(range(1, 7))
    assert repo.last_change_seq() == 6


def test_origin_is_recorded_for_the_writing_node(database: Database, tmp_path) -> None:
    node = Repository(database, lock_dir=tmp_path / "locks")
    node.origin = "node-a"
    install(node, "a")
    assert {c.origin for c in node.changes_since(0)} == {"node-a"}


def test_concurrent_writers_get_strictly_increasing_numbers_a_tailing_reader_never_skips(
    database: Database, tmp_path
) -> None:
    """Writers on separate connections commit concurrently while a reader tails the log from its
    last position: it must see every change exactly once, in order (no number appears later
    below a position it has passed)."""
    writers, per_writer = 6, 8
    repo = Repository(database, lock_dir=tmp_path / "locks")
    barrier = threading.Barrier(writers + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    tailed: list[int] = []

    def write(w: int) -> None:
        try:
            barrier.wait(30)
            for i in range(per_writer):
                with repo.unit_of_work():  # two changes in one transaction
                    repo.add_plugin(StoredPlugin.from_manifest(manifest(f"w{w}-{i}")))
                    repo.set_state(f"w{w}-{i}", "resolved")
        except BaseException as exc:
            errors.append(exc)

    def tail() -> None:
        position = 0
        barrier.wait(30)
        while True:
            finished = done.is_set()
            for change in repo.changes_since(position):
                tailed.append(change.seq)
                position = change.seq
            if finished:
                return

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=tail)
    for t in [*threads, reader]:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    reader.join(120)
    assert not errors, errors
    total = writers * per_writer * 2
    assert tailed == list(range(1, total + 1))
    changes = repo.changes_since(0, limit=total)
    for w in range(writers):
        for i in range(per_writer):
            pid = f"w{w}-{i}"
            mine = [c for c in changes if c.key == pid]
            # one transaction's changes are consecutive numbers, in the order they were made
            assert [c.action for c in mine] == ["install", "state"]
            assert mine[1].seq == mine[0].seq + 1
