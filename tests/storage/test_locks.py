"""Per-plugin locks serialise operations across threads and processes, on every backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from plughost.errors import LockTimeout
from plughost.storage.db import Database
from plughost.storage.locks import lock_file_name
from plughost.storage.repository import Repository

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def repo(database: Database, tmp_path: Path) -> Repository:
    return Repository(database, lock_dir=tmp_path / "locks")


def test_second_thread_waits_until_the_first_releases(repo: Repository) -> None:
    order: list[str] = []
    started = threading.Event()
    acquired = threading.Event()

    def second() -> None:
        started.set()
        with repo.lock_plugin("notify-slack", timeout=30):
            order.append("second")
            acquired.set()

    with repo.lock_plugin("notify-slack", timeout=5):
        worker = threading.Thread(target=second)
        worker.start()
        assert started.wait(10)
        # Bounded check that the second thread does NOT get the lock while we hold it.
        assert not acquired.wait(0.3)
        order.append("first")
    assert acquired.wait(30)
    worker.join(30)
    assert order == ["first", "second"]


def test_waiting_longer_than_the_timeout_raises_lock_timeout(repo: Repository) -> None:
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            with repo.lock_plugin("notify-slack", timeout=0.2):
                pass
        except BaseException as exc:
            errors.append(exc)

    with repo.lock_plugin("notify-slack"):
        t = threading.Thread(target=contender)
        t.start()
        t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], LockTimeout)
    assert errors[0].code == "storage.lock_timeout"
    assert "notify-slack" in errors[0].message and "retry" in errors[0].message
    assert isinstance(errors[0], TimeoutError)
    with repo.lock_plugin("notify-slack", timeout=1):  # released properly afterwards
        pass


def test_locks_on_different_plugins_do_not_block_each_other(repo: Repository) -> None:
    done = threading.Event()

    def other() -> None:
        with repo.lock_plugin("notify-mail", timeout=1):
            done.set()

    with repo.lock_plugin("notify-slack"):
        t = threading.Thread(target=other)
        t.start()
        t.join(30)
    assert done.is_set()


def test_lock_held_by_another_process_blocks_until_it_exits(
    repo: Repository, database_url: str, tmp_path: Path
) -> None:
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {SRC!r})
        from plughost.storage.db import Database
        from plughost.storage.repository import Repository
        with Database({database_url!r}) as db:
            repo = Repository(db, lock_dir=__import__("pathlib").Path({str(tmp_path / "locks")!r}))
            with repo.lock_plugin("notify-slack", timeout=30):
                print("locked", flush=True)
                sys.stdin.readline()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout), repo.lock_plugin("notify-slack", timeout=0.3):
            pass
        proc.stdin.write("go\n")
        proc.stdin.flush()
        with repo.lock_plugin("notify-slack", timeout=30):
            pass
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stdin.close()


def test_lock_of_a_killed_process_is_released(database_url: str, tmp_path: Path,
                                              repo: Repository) -> None:
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {SRC!r})
        from plughost.storage.db import Database
        from plughost.storage.repository import Repository
        db = Database({database_url!r})
        repo = Repository(db, lock_dir=__import__("pathlib").Path({str(tmp_path / "locks")!r}))
        with repo.lock_plugin("notify-slack", timeout=30):
            print("locked", flush=True)
            sys.stdin.readline()
            os._exit(3)  # die holding the lock: no cleanup runs
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        proc.stdin.write("die\n")
        proc.stdin.flush()
        assert proc.wait(30) == 3
        with repo.lock_plugin("notify-slack", timeout=30):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stdin.close()


def test_sqlite_lock_files_live_in_the_lock_dir_with_safe_names(tmp_path: Path) -> None:
    with Database(f"sqlite:///{tmp_path / 'home' / 'plughost.db'}") as db:
        repo = Repository(db)  # default: <db dir>/locks
        with repo.lock_plugin("notify-slack"):
            assert (tmp_path / "home" / "locks" / "notify-slack.lock").exists()
    assert lock_file_name("../etc/passwd").startswith("sha256-")
    assert "/" not in lock_file_name("a/b")


def test_in_memory_sqlite_locks_within_the_process() -> None:
    with Database("sqlite://") as db:
        repo = Repository(db)
        other = Repository(db)  # same database, another repository: same locks
        with repo.lock_plugin("x"), pytest.raises(LockTimeout), other.lock_plugin("x", timeout=0.1):
            pass


# -- owner leases --------------------------------------------------------------------------------

def test_an_owner_lease_is_alive_until_closed(database: Database, tmp_path: Path) -> None:
    repo = Repository(database, lock_dir=tmp_path / "locks")
    other = Repository(database, lock_dir=tmp_path / "locks")
    owner = repo.owner_id
    assert repo.owner_id == owner  # one lease per repository, claimed once
    assert other.owner_alive(owner) and repo.owner_alive(owner)
    assert not other.owner_alive("0123456789abcdef") and not other.owner_alive("../etc")
    repo.close()
    repo.close()  # idempotent
    assert not other.owner_alive(owner)
    assert repo.owner_id != owner  # used again after close: a new lease
    repo.close()
    other.close()


def test_dead_owners_lock_files_are_pruned_and_live_ones_kept(tmp_path: Path) -> None:
    from plughost.storage.locks import FileLock

    locks = FileLock(tmp_path / "locks")
    alive = locks.claim_owner()
    dead = locks.claim_owner()
    dead_file = locks.owners_dir / f"{dead.id}.lock"
    # A process killed with -9 leaves its file behind, unlocked.
    dead_file.unlink()
    dead.close()
    dead_file.write_text("pid 1\n")
    assert not locks.owner_alive(dead.id) and locks.owner_alive(alive.id)
    assert locks.prune_owners() == [dead.id]
    assert sorted(p.name for p in locks.owners_dir.iterdir()) == [f"{alive.id}.lock"]
    alive.close()
    assert list(locks.owners_dir.iterdir()) == []


@pytest.mark.parametrize("database_url", [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
], indirect=True)
def test_a_database_owner_lease_takes_its_lock_again_after_losing_its_connection(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from sqlalchemy import text

    from plughost.storage import locks

    monkeypatch.setattr(locks, "_HEARTBEAT", 0.1)
    monkeypatch.setattr(locks, "_HEARTBEAT_RETRY", 0.1)
    repo = Repository(database, lock_dir=tmp_path / "locks")
    owner = repo.owner_id

    def holder() -> int | None:
        """The session (PostgreSQL pid, MySQL connection id) holding the owner's lock."""
        with database.engine.connect() as conn:
            if database.dialect == "postgresql":
                key = int(owner, 16) & 0x7FFF_FFFF_FFFF_FFFF
                return conn.execute(text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :hi "
                    "AND objid = :lo AND objsubid = 1 AND granted AND mode = 'ExclusiveLock'"),
                    {"hi": key >> 32, "lo": key & 0xFFFF_FFFF}).scalar()
            return conn.execute(text("SELECT IS_USED_LOCK(:n)"),
                                {"n": f"plughost.owner.{owner}"}).scalar()

    first = holder()
    assert first is not None and repo.owner_alive(owner)
    with database.engine.connect() as conn:  # the database drops the lease's session
        if database.dialect == "postgresql":
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        else:
            conn.exec_driver_sql(f"KILL {int(first)}")
        conn.commit()
    deadline = time.monotonic() + 30
    while holder() in (None, first):  # until a new session holds it
        assert time.monotonic() < deadline, "the lease never took its lock again"
        time.sleep(0.02)
    assert repo.owner_alive(owner)
    repo.close()
    assert not repo.owner_alive(owner)
