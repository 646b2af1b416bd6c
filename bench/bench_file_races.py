"""``ctx.files`` against a rename race: how many reads and writes escape the grant.

A thread swaps ``granted/d`` (a directory) with ``granted/link`` (a symlink to a directory
outside the grant) with ``renameat2(RENAME_EXCHANGE)`` as fast as it can, while the plugin
reads ``granted/d/f`` and writes ``granted/d/wN`` through ``ctx.files``. Goal (issue 19): zero
escapes, with ``openat2`` and with the portable descriptor walk.

Run: ``python bench/bench_file_races.py [READS]`` (Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from plughost.errors import PlughostError
from plughost.security import beneath
from plughost.security.permissions import PermissionManager
from plughost.services.hostapi import implicit_scopes
from plughost.services.hostapi.files import FileService

_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> None:
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2", str(a))


def run(reads: int) -> str:
    tmp = Path(tempfile.mkdtemp())
    granted, outside = tmp / "granted", tmp / "outside"
    (granted / "d").mkdir(parents=True)
    outside.mkdir()
    (granted / "d" / "f").write_text("inside")
    (outside / "f").write_text("OUTSIDE")
    os.symlink(outside, granted / "link")
    perms = PermissionManager(tmp / "security.db")
    perms.set_implicit("p", implicit_scopes("p", tmp / "data"))
    perms.grant("p", f"fs:read:{granted}")
    perms.grant("p", f"fs:write:{granted}")
    files = FileService("p", perms, tmp / "data")
    stop, swaps = threading.Event(), [0]

    def swap() -> None:
        while not stop.is_set():
            _exchange(granted / "d", granted / "link")
            _exchange(granted / "d", granted / "link")
            swaps[0] += 1

    thread = threading.Thread(target=swap)
    thread.start()
    escaped = refused = 0
    start = time.monotonic()
    try:
        for _ in range(reads):
            try:
                escaped += files.read_text(granted / "d" / "f") == "OUTSIDE"
            except (OSError, PlughostError) as exc:
                refused += not isinstance(exc, FileNotFoundError)
        for i in range(reads // 2):
            with contextlib.suppress(OSError, PlughostError):
                files.write_text(granted / "d" / f"w{i}", "x")
    finally:
        stop.set()
        thread.join()
        perms.close()
    created = sum(1 for p in outside.iterdir() if p.name.startswith("w"))
    return (f"reads {reads}: {escaped} escaped, {refused} refused | writes {reads // 2}: "
            f"{created} created outside | {swaps[0]} swaps, {time.monotonic() - start:.1f} s")


def main() -> None:
    logging.disable(logging.CRITICAL)  # every caught swap is an audited denial
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    print(f"{'openat2' if beneath.openat2_available() else 'fd walk (no openat2)'}: {run(reads)}")
    beneath._openat2_ok = False  # the portable walk, as on kernels without openat2
    print(f"fd walk: {run(reads)}")


if __name__ == "__main__":
    main()
