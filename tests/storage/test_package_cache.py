from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from plughost.errors import ObjectCorrupted, ObjectNotFound
from plughost.storage.package_cache import PackageCache


def _put(store: Any, key: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    store.put(key, data, sha256=digest)
    return digest


def test_the_three_tiers_are_tried_nearest_first_and_counted(
        s3_store: Any, tmp_path: Path) -> None:
    data = b"package bytes" * 100
    digest = _put(s3_store, "plugins/a/1.0.0/a_1.0.0.zip", data)
    cache = PackageCache(s3_store, tmp_path / "disk")
    key = "plugins/a/1.0.0/a_1.0.0.zip"
    assert cache.fetch(key, digest, tmp_path / "out1.zip") == "store"
    assert cache.fetch(key, digest, tmp_path / "out2.zip") == "memory"
    assert (tmp_path / "out1.zip").read_bytes() == data == (tmp_path / "out2.zip").read_bytes()
    # A node restarted: its memory is empty, its disk is not.
    again = PackageCache(s3_store, tmp_path / "disk")
    assert again.fetch(key, digest, tmp_path / "out3.zip") == "disk"
    figures = cache.figures()
    assert figures["store"] == {"hit": 1, "miss": 0}
    assert figures["memory"]["hit"] == 1 and figures["memory"]["miss"] == 1
    assert again.figures()["disk"] == {"hit": 1, "miss": 0}


def test_a_damaged_disk_copy_is_dropped_and_fetched_again(s3_store: Any, tmp_path: Path) -> None:
    data = b"x" * 1000
    key = "plugins/b/1.0.0/b_1.0.0.zip"
    digest = _put(s3_store, key, data)
    PackageCache(s3_store, tmp_path / "disk").fetch(key, digest, tmp_path / "o.zip")
    (tmp_path / "disk" / f"{digest}.zip").write_bytes(b"tampered")
    fresh = PackageCache(s3_store, tmp_path / "disk")
    assert fresh.fetch(key, digest, tmp_path / "o2.zip") == "store"
    assert (tmp_path / "o2.zip").read_bytes() == data


def test_a_digest_the_database_does_not_record_is_refused(s3_store: Any, tmp_path: Path) -> None:
    key = "plugins/c/1.0.0/c_1.0.0.zip"
    _put(s3_store, key, b"real")
    cache = PackageCache(s3_store, tmp_path / "disk")
    with pytest.raises(ObjectCorrupted, match="database records"):
        cache.fetch(key, "0" * 64, tmp_path / "o.zip")
    assert not list((tmp_path / "disk").iterdir())  # nothing half-written left behind
    with pytest.raises(ObjectNotFound):
        cache.fetch("plugins/none/1.0.0/none_1.0.0.zip", "1" * 64, tmp_path / "o.zip")
    assert cache.figures()["store"]["miss"] == 2


def test_the_memory_tier_keeps_within_its_budget(fs_store: Any, tmp_path: Path) -> None:
    cache = PackageCache(fs_store, tmp_path / "disk", memory_bytes=250)
    digests = [_put(fs_store, f"plugins/p{i}/1.0.0/p{i}_1.0.0.zip", bytes([i]) * 100)
               for i in range(3)]
    for i, digest in enumerate(digests):
        cache.fetch(f"plugins/p{i}/1.0.0/p{i}_1.0.0.zip", digest, tmp_path / f"{i}.zip")
    figures = cache.figures()["memory"]
    assert figures["bytes"] == 200 and figures["entries"] == 2  # the oldest went first
    assert cache.fetch("plugins/p0/1.0.0/p0_1.0.0.zip", digests[0], tmp_path / "x") == "disk"
