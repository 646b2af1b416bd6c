from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from plughost.errors import OperationRefused, PermissionDenied
from plughost.security import beneath
from plughost.security.permissions import PermissionManager
from plughost.services.hostapi import implicit_scopes
from plughost.services.hostapi.files import FileService


@pytest.fixture
def files(perms: PermissionManager, tmp_path: Path) -> FileService:
    data = tmp_path / "data" / "p"
    perms.set_implicit("p", implicit_scopes("p", data))
    return FileService("p", perms, data)


def test_private_data_dir_is_granted_automatically(files: FileService) -> None:
    files.mkdir("sub")
    assert files.write_text("sub/a.txt", "hi") == 2
    assert files.read_text("sub/a.txt") == "hi"
    assert files.list("sub") == ["a.txt"]
    info = files.stat("sub/a.txt")
    assert (info.size, info.is_file, info.is_dir) == (2, True, False)
    assert files.exists("sub/a.txt") and not files.exists("sub/none")
    files.remove("sub/a.txt")
    files.remove("sub")
    assert files.list() == []


def test_granted_directory_read_only(
    files: FileService, perms: PermissionManager, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("data")
    with pytest.raises(PermissionDenied):
        files.read_text(shared / "in.txt")
    perms.grant("p", f"fs:read:{shared}")
    assert files.read_text(shared / "in.txt") == "data"
    with pytest.raises(PermissionDenied, match="fs:write"):
        files.write_text(shared / "out.txt", "x")
    assert not (shared / "out.txt").exists()


def test_dotdot_escape_from_the_data_dir_is_refused(files: FileService, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s")
    with pytest.raises(PermissionDenied):
        files.read_text("../../secret.txt")
    with pytest.raises(PermissionDenied):
        files.write_text("../escape.txt", "x")
    assert not (tmp_path / "data" / "escape.txt").exists()


def test_symlink_escape_is_refused(
    files: FileService, tmp_path: Path, perms: PermissionManager
) -> None:
    (tmp_path / "secret.txt").write_text("s")
    files.data_dir.mkdir(parents=True)
    os.symlink(tmp_path / "secret.txt", files.data_dir / "link.txt")
    os.symlink(tmp_path, files.data_dir / "dirlink")
    with pytest.raises(PermissionDenied):
        files.read_text("link.txt")
    with pytest.raises(PermissionDenied):
        files.read_text("dirlink/secret.txt")
    with pytest.raises(PermissionDenied):
        files.write_text("link.txt", "overwrite")
    assert (tmp_path / "secret.txt").read_text() == "s"
    denials = perms.audit.query(plugin="p", decision="deny")
    assert {d.target for d in denials} == {str(tmp_path / "secret.txt")}


def test_proc_needs_an_explicit_grant(files: FileService, perms: PermissionManager) -> None:
    perms.grant("p", "fs:read:/")
    with pytest.raises(PermissionDenied):
        files.read_text("/proc/self/status")
    perms.grant("p", "fs:read:/proc/self")
    assert "Name:" in files.read_text("/proc/self/status")


def test_removing_the_data_dir_itself_is_refused(files: FileService) -> None:
    files.write_text("keep.txt", "x")
    with pytest.raises(OperationRefused):
        files.remove(".", recursive=True)
    assert files.data_dir.exists()


async def test_watch_reports_changes_in_a_granted_dir(files: FileService) -> None:
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for change in files.watch("."):
            seen.append(change)
            if any(p.endswith("new.txt") for _, p in seen):
                return

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + 10
    i = 0
    while not task.done():  # repeat the write until the watcher (still arming) sees one
        assert time.monotonic() < deadline, "no change reported"
        files.write_text("new.txt", str(i))
        i += 1
        await asyncio.wait({task}, timeout=0.1)
    assert any(p == str(files.data_dir / "new.txt") for _, p in seen)


async def test_watch_outside_grants_is_denied(files: FileService) -> None:
    with pytest.raises(PermissionDenied):
        async for _ in files.watch("/etc"):
            pass


# ---- races: a directory inside the grant swapped for a symlink while the plugin uses it


_libc = ctypes.CDLL(None, use_errno=True)
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (``renameat2(RENAME_EXCHANGE)``): both always exist."""
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a))


class Swapper:
    """A real thread swapping ``granted/d`` (a directory) with ``granted/link`` (a symlink to a
    directory outside the grant) as fast as it can, until stopped or after ``limit`` swaps."""

    def __init__(self, granted: Path, limit: int = 1_000_000) -> None:
        self.granted, self.limit, self.rounds = granted, limit, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        d, link = self.granted / "d", self.granted / "link"
        while not self._stop.is_set() and self.rounds < self.limit:
            _exchange(d, link)  # d: the symlink to outside
            _exchange(d, link)  # d: the directory again
            self.rounds += 1

    def __enter__(self) -> Swapper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


#: What a raced operation may answer: the path moved away, or the swap was caught.
RACE_OUTCOMES = (FileNotFoundError, NotADirectoryError, PermissionDenied, OperationRefused)


@pytest.fixture(params=["openat2", "fd-walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the kernel's openat2 and with the portable descriptor walk."""
    if request.param == "fd-walk":
        monkeypatch.setattr(beneath, "_openat2_ok", False)
    else:
        assert beneath.openat2_available(), "this kernel should offer openat2 (Linux >= 5.6)"
    return str(request.param)


@pytest.fixture
def race(files: FileService, perms: PermissionManager, tmp_path: Path) -> tuple[Path, Path]:
    granted, outside = tmp_path / "granted", tmp_path / "outside"
    (granted / "d").mkdir(parents=True)
    outside.mkdir()
    (granted / "d" / "f").write_text("inside")
    (outside / "f").write_text("OUTSIDE-SECRET")
    (outside / "only-outside").write_text("x")
    (outside / "victim").write_text("keep me")
    os.symlink(outside, granted / "link")
    perms.grant("p", f"fs:read:{granted}")
    perms.grant("p", f"fs:write:{granted}")
    return granted, outside


def _raced(deadline: float, rounds: int, op: Callable[[int], object]) -> list[object]:
    results: list[object] = []
    for i in range(rounds):
        if time.monotonic() > deadline:
            break
        try:
            results.append(op(i))
        except RACE_OUTCOMES as exc:
            results.append(type(exc))
    return results


def test_a_rename_loop_never_leads_reads_outside_the_grant(
    files: FileService, race: tuple[Path, Path], resolution: str
) -> None:
    granted, _ = race
    with Swapper(granted) as swapper:
        deadline = time.monotonic() + 3
        reads = _raced(deadline, 2500, lambda i: files.read_text(granted / "d" / "f"))
        listed = _raced(deadline + 1, 300, lambda i: tuple(files.list(granted / "d")))
        sizes = _raced(deadline + 2, 300, lambda i: files.stat(granted / "d" / "f").size)
        seen = _raced(deadline + 3, 300, lambda i: files.exists(granted / "d" / "only-outside"))
    assert swapper.rounds > 0
    assert "OUTSIDE-SECRET" not in reads
    assert "inside" in reads  # the race did not simply make every read fail
    assert not any(isinstance(x, tuple) and "only-outside" in x for x in listed)
    assert len("OUTSIDE-SECRET") not in sizes
    assert True not in seen


def test_a_rename_loop_never_leads_writes_outside_the_grant(
    files: FileService, race: tuple[Path, Path], resolution: str
) -> None:
    granted, outside = race
    with Swapper(granted) as swapper:
        deadline = time.monotonic() + 3
        writes = _raced(deadline, 1200, lambda i: files.write_text(granted / "d" / f"w{i}", "x"))
        _raced(deadline + 1, 200, lambda i: files.mkdir(granted / "d" / f"m{i}" / "sub"))
        _raced(deadline + 2, 200, lambda i: files.remove(granted / "d" / "victim"))
    assert swapper.rounds > 0
    assert 1 in writes  # some writes landed (inside)
    assert sorted(p.name for p in outside.iterdir()) == ["f", "only-outside", "victim"]
    assert (outside / "victim").read_text() == "keep me"
    assert (outside / "f").read_text() == "OUTSIDE-SECRET"


def test_a_symlink_where_a_directory_was_is_refused_and_audited(
    files: FileService, race: tuple[Path, Path], perms: PermissionManager, resolution: str
) -> None:
    # The moment the race exploits, frozen: the path was checked while d was a directory and
    # is opened after d became a symlink. Opening beneath the grant refuses the link.
    granted, _ = race
    target = files._target(granted / "d" / "f", "fs:read")
    _exchange(granted / "d", granted / "link")
    with files._root(target, "fs:read") as root, pytest.raises(OSError) as info:
        beneath.open_beneath(root, target.rel, os.O_RDONLY)
    with (
        pytest.raises(PermissionDenied, match="symbolic link appeared"),
        files._root(target, "fs:read") as root,
        files._guard(target, "fs:read"),
    ):
        beneath.open_beneath(root, target.rel, os.O_RDONLY)
    assert beneath.is_link_error(info.value)
    assert perms.audit.query(plugin="p", decision="deny")[-1].severity == "error"


def test_a_fifo_is_refused_instead_of_blocking(files: FileService) -> None:
    files.mkdir(".")
    os.mkfifo(files.data_dir / "pipe")
    with pytest.raises(OperationRefused, match="not a regular file"):
        files.read_bytes("pipe")


def test_the_data_dir_is_made_on_the_first_write_only(files: FileService) -> None:
    assert files.list() == [] and not files.exists("x")
    assert not files.data_dir.exists()
    files.write_text("x", "1")
    assert files.data_dir.is_dir() and files.list() == ["x"]


def test_text_that_is_not_valid_unicode_is_refused_and_nothing_is_written(
    files: FileService,
) -> None:
    with pytest.raises(OperationRefused, match="not valid text"):
        files.write_text("a\ud800.txt", "x")
    with pytest.raises(OperationRefused, match="nothing was written"):
        files.write_text("b.txt", "lone \ud800 surrogate")
    files.write_bytes("c.bin", b"\xff\xfe")
    with pytest.raises(OperationRefused, match="read it as bytes"):
        files.read_text("c.bin")
    assert files.list() == ["c.bin"]
