"""recover_operations closes operations whose process died — and only those."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from plughost.storage.db import Database
from plughost.storage.recovery import recover_operations
from plughost.storage.repository import Repository

SRC = str(Path(__file__).resolve().parents[2] / "src")


def crash_mid_operation(database_url: str, lock_dir: Path) -> str:
    """Run an 'install' in another process that dies half way; return its operation id."""
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {SRC!r})
        from pathlib import Path
        from plughost.storage.db import Database
        from plughost.storage.repository import Repository
        db = Database({database_url!r})
        repo = Repository(db, lock_dir=Path({str(lock_dir)!r}))
        with repo.lock_plugin("notify-slack"):
            op = repo.create_operation("install", plugin_id="notify-slack",
                                       details={{"object_key": "plugins/x"}})
            repo.update_operation(op.id, status="running", details={{"cache": "/c/x"}})
            print(op.id, flush=True)
            os._exit(7)  # crash: no cleanup, no status update
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 7, proc.stderr
    return proc.stdout.strip()


def test_dead_operations_are_handed_to_the_handler_with_their_journal(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    op_id = crash_mid_operation(database_url, tmp_path / "locks")
    repo = Repository(database, lock_dir=tmp_path / "locks")
    seen = []

    def undo(op):
        seen.append(op.details)
        return "failed"

    finished = recover_operations(repo, undo)
    assert seen == [{"object_key": "plugins/x", "cache": "/c/x"}]
    assert [(o.id, o.status) for o in finished] == [(op_id, "failed")]
    assert "recovered after a crash" in repo.get_operation(op_id).message
    assert recover_operations(repo, undo) == []  # nothing left to recover


def test_operations_still_running_elsewhere_are_left_alone(
    database: Database, tmp_path: Path
) -> None:
    repo = Repository(database, lock_dir=tmp_path / "locks")
    with repo.lock_plugin("busy"):
        op = repo.create_operation("install", plugin_id="busy")
        # A second Repository stands for another process on the same database.
        other = Repository(database, lock_dir=tmp_path / "locks")
        calls = []
        import threading

        result: list = []
        t = threading.Thread(target=lambda: result.append(
            recover_operations(other, lambda o: calls.append(o) or "failed")))
        t.start()
        t.join(60)
        assert result == [[]] and calls == []
    assert repo.get_operation(op.id).status == "pending"


def test_a_failing_handler_marks_the_operation_failed_and_continues(
    database: Database, tmp_path: Path
) -> None:
    creator = Repository(database, lock_dir=tmp_path / "locks")
    first = creator.create_operation("install", plugin_id="a")
    second = creator.create_operation("update", plugin_id="b")
    creator.close()  # its owner is gone, as if its process had died
    repo = Repository(database, lock_dir=tmp_path / "locks")

    def handler(op):
        if op.plugin_id == "a":
            raise RuntimeError("cannot remove cache dir")
        return "bogus" if op.kind == "update" else "failed"

    finished = {o.id: o for o in recover_operations(repo, handler)}
    assert finished[first.id].status == "failed"
    assert finished[first.id].error["message"] == "cannot remove cache dir"
    assert finished[second.id].status == "failed"
    assert "expected one of" in finished[second.id].error["message"]
    assert recover_operations(repo, handler, kinds=("install",)) == []


# -- owners: an operation is recovered only when the process that owns it is gone ---------------

LIVE_OWNER = """
import os, sys, time
sys.path.insert(0, {src!r})
from pathlib import Path
from plughost.storage.db import Database
from plughost.storage.repository import Repository
db = Database({url!r})
repo = Repository(db, lock_dir=Path({locks!r}))
op = repo.create_operation("install", message="install from local")   # no plugin id yet
repo.update_operation(op.id, status="running", progress=0.3)
print(op.id, repo.owner_id, flush=True)
time.sleep(120)   # an upload still in progress
"""


def test_an_operation_of_a_live_process_is_left_alone_until_it_is_killed(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    import os
    import signal

    child = subprocess.Popen(
        [sys.executable, "-c", LIVE_OWNER.format(src=SRC, url=database_url,
                                                  locks=str(tmp_path / "locks"))],
        stdout=subprocess.PIPE, text=True)
    try:
        op_id, owner = child.stdout.readline().split()  # type: ignore[union-attr]
        repo = Repository(database, lock_dir=tmp_path / "locks")
        assert repo.get_operation(op_id).owner == owner
        assert repo.owner_alive(owner) and not repo.owner_alive(repo.owner_id[::-1])
        assert recover_operations(repo, lambda o: "failed") == []
        assert repo.get_operation(op_id).status == "running"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # kill -9: no cleanup at all
        child.wait(30)
        child.stdout.close()  # type: ignore[union-attr]
    assert not repo.owner_alive(owner)
    [done] = recover_operations(repo, lambda o: "failed")
    assert (done.id, done.status) == (op_id, "failed")
    assert done.error["code"] == "operation.interrupted"
    assert "stopped before it finished" in done.error["message"]
    assert done.finished_at is not None
    assert repo.list_operations(unfinished=True) == []


def test_a_process_never_recovers_its_own_running_operations(
    database: Database, tmp_path: Path
) -> None:
    repo = Repository(database, lock_dir=tmp_path / "locks")
    op = repo.create_operation("update", plugin_id="p")
    repo.update_operation(op.id, status="running")
    assert recover_operations(repo, lambda o: "failed") == []
    other = Repository(database, lock_dir=tmp_path / "locks")   # a second service, same process
    assert recover_operations(other, lambda o: "failed") == []
    repo.close()
    assert [o.id for o in recover_operations(other, lambda o: "failed")] == [op.id]
