from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from plughost.errors import OperationRefused, PermissionDenied
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
