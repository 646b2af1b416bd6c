"""Packages in three tiers: memory (LRU), the node's disk, the shared object store.

A node that did not install a plugin itself — another node of the cluster did — gets the
package through :class:`PackageCache`: the bytes are looked up in a bounded in-memory LRU,
then in ``<cache_dir>/packages/<sha256>.zip`` on local disk, and only then downloaded from
the object store (S3). Every tier is keyed by the package's SHA-256, which the database
records, and every read is checked against it: a corrupted disk file is dropped and fetched
again, never used. Hits and misses per tier are counted (:meth:`PackageCache.figures`, and
``plughost_package_cache_requests_total{tier,result}`` on ``/metrics``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final

from plughost.errors import ObjectCorrupted
from plughost.storage.objects import ObjectStore

__all__ = ["DEFAULT_MEMORY_BYTES", "TIERS", "PackageCache"]

#: How many bytes of packages the memory tier keeps (the least recently used go first).
DEFAULT_MEMORY_BYTES: Final = 64 * 1024 * 1024
#: The tiers, nearest first.
TIERS: Final = ("memory", "disk", "store")


class PackageCache:
    """Memory LRU -> local disk -> object store, by SHA-256 (see the module doc).

    :param store: the shared object store (the last tier).
    :param directory: the local disk tier (created on first use).
    :param memory_bytes: the memory tier's budget; a package larger than it is not kept there.
    """

    def __init__(self, store: ObjectStore, directory: Path, *,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.store = store
        self.directory = Path(directory)
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        self._counts = {(tier, result): 0 for tier in TIERS for result in ("hit", "miss")}

    def figures(self) -> dict[str, dict[str, int]]:
        """``{tier: {"hit": n, "miss": n}}`` since start, plus the memory tier's bytes."""
        with self._lock:
            out = {tier: {r: self._counts[(tier, r)] for r in ("hit", "miss")}
                   for tier in TIERS}
            out["memory"]["bytes"] = self._used
            out["memory"]["entries"] = len(self._memory)
        return out

    def _count(self, tier: str, hit: bool) -> None:
        with self._lock:
            self._counts[(tier, "hit" if hit else "miss")] += 1

    def disk_path(self, sha256: str) -> Path:
        """Where the disk tier keeps a package."""
        return self.directory / f"{sha256}.zip"

    def fetch(self, key: str, sha256: str, dest: Path) -> str:
        """Write the package ``key`` (whose digest is ``sha256``) to ``dest``; return the tier
        that had it (``memory``, ``disk`` or ``store``).

        :raises ObjectNotFound, ObjectCorrupted, ObjectStoreUnavailable: from the store.
        """
        with self._lock:
            data = self._memory.get(sha256)
            if data is not None:
                self._memory.move_to_end(sha256)
        self._count("memory", data is not None)
        if data is not None:
            _write(dest, data)
            return "memory"
        disk = self.disk_path(sha256)
        data = _read_checked(disk, sha256)
        self._count("disk", data is not None)
        if data is not None:
            self._remember(sha256, data)
            _write(dest, data)
            return "disk"
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = disk.with_name(f".{sha256}.{secrets.token_hex(4)}.part")
        try:
            info = self.store.download(key, tmp)
            if info.sha256 != sha256:
                raise ObjectCorrupted(
                    f"the stored package {key!r} hashes to {info.sha256}, but the database "
                    f"records {sha256}; reinstall the plugin",
                    details={"key": key, "sha256": sha256, "actual": info.sha256})
            os.replace(tmp, disk)
        except BaseException:
            self._count("store", False)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._count("store", True)
        data = disk.read_bytes()
        self._remember(sha256, data)
        _write(dest, data)
        return "store"

    def _remember(self, sha256: str, data: bytes) -> None:
        if len(data) > self.memory_bytes:
            return
        with self._lock:
            if sha256 in self._memory:
                self._memory.move_to_end(sha256)
                return
            self._memory[sha256] = data
            self._used += len(data)
            while self._used > self.memory_bytes:
                _, dropped = self._memory.popitem(last=False)
                self._used -= len(dropped)

    def forget(self, sha256: str) -> None:
        """Drop a package from the memory and disk tiers (its plugin version is gone)."""
        with self._lock:
            data = self._memory.pop(sha256, None)
            if data is not None:
                self._used -= len(data)
        with contextlib.suppress(OSError):
            self.disk_path(sha256).unlink()


def _read_checked(path: Path, sha256: str) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:  # damaged on disk: never use it
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return data


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
