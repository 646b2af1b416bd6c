"""Object store contract (filesystem and S3 on moto's server), atomicity and integrity."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plughost.errors import (
    ConfigurationError,
    ExtraNotInstalled,
    InvalidObjectKey,
    ObjectCorrupted,
    ObjectNotFound,
    ObjectTooLarge,
)
from plughost.storage.objects import (
    FilesystemObjectStore,
    ObjectInfo,
    ObjectStore,
    S3ObjectStore,
    object_store_from_url,
    package_key,
)

SRC = str(Path(__file__).resolve().parents[2] / "src")
KEY = package_key("notify-slack", "1.0.0")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Exploding(io.RawIOBase):
    """A stream that yields ``good`` bytes and then fails, like a dropped upload."""

    def __init__(self, good: bytes) -> None:
        self._good = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk = self._good.read(n)
        if not chunk:
            raise ConnectionResetError("upload dropped")
        return chunk


def test_package_key_follows_seed_003_layout() -> None:
    assert KEY == "plugins/notify-slack/1.0.0/notify-slack_1.0.0.zip"


def test_put_get_info_exists_list_delete(object_store: ObjectStore) -> None:
    assert isinstance(object_store, ObjectStore)
    data = b"PK\x03\x04 package bytes" * 100
    info = object_store.put(KEY, data)
    assert info == ObjectInfo(KEY, sha(data), len(data))
    assert object_store.exists(KEY)
    assert object_store.get(KEY) == data
    assert object_store.info(KEY) == info
    assert object_store.sha256(KEY) == sha(data)
    with object_store.open(KEY) as fh:
        assert fh.read() == data
    other = package_key("notify-slack", "2.0.0")
    object_store.put(other, b"v2")
    object_store.put("marketplace/index.json", b"{}")
    assert [i.key for i in object_store.list("plugins/notify-slack/")] == [KEY, other]
    assert [i.key for i in object_store.list()] == ["marketplace/index.json", KEY, other]
    object_store.put("plugins/zeta/1.0.0/zeta_1.0.0.zip", b"z")
    assert object_store.keys("plugins/notify-slack/") == [KEY, other]
    assert object_store.keys("plugins/notify") == [KEY, other]  # a prefix, not a folder
    assert object_store.keys() == ["marketplace/index.json", KEY, other,
                                   "plugins/zeta/1.0.0/zeta_1.0.0.zip"]
    assert object_store.children("plugins/") == ["notify-slack", "zeta"]
    assert object_store.children("") == ["marketplace", "plugins"]
    assert object_store.children("nothing/") == []
    assert object_store.delete("plugins/zeta/1.0.0/zeta_1.0.0.zip")
    assert object_store.delete(KEY) is True
    assert object_store.delete(KEY) is False
    assert not object_store.exists(KEY)
    with pytest.raises(ObjectNotFound, match="no object"):
        object_store.get(KEY)
    with pytest.raises(ObjectNotFound):
        object_store.sha256(KEY)
    assert [i.key for i in object_store.list("plugins/")] == [other]


def test_put_accepts_paths_and_file_objects_and_replaces(object_store, tmp_path: Path) -> None:
    src = tmp_path / "pkg.zip"
    src.write_bytes(b"from a path")
    assert object_store.put(KEY, src).size == len(b"from a path")
    with src.open("rb") as fh:
        object_store.put(KEY, fh)
    object_store.put(KEY, io.BytesIO(b"replacement"))
    assert object_store.get(KEY) == b"replacement"
    assert object_store.put("empty/file", b"").sha256 == sha(b"")
    assert object_store.get("empty/file") == b""


def test_expected_checksum_mismatch_stores_nothing(object_store) -> None:
    object_store.put(KEY, b"old")
    with pytest.raises(ObjectCorrupted, match="nothing was stored") as info:
        object_store.put(KEY, b"new", sha256=sha(b"something else"))
    assert info.value.code == "storage.object_corrupted"
    assert object_store.get(KEY) == b"old"
    assert object_store.put(KEY, b"new", sha256=sha(b"new").upper()).sha256 == sha(b"new")


def test_size_limit_is_enforced_while_streaming(object_store) -> None:
    with pytest.raises(ObjectTooLarge, match="limit of 10 bytes"):
        object_store.put(KEY, b"x" * 11, max_size=10)
    assert not object_store.exists(KEY)
    assert object_store.put(KEY, b"x" * 10, max_size=10).size == 10


def test_failed_stream_mid_write_leaves_previous_object_visible(object_store) -> None:
    object_store.put(KEY, b"previous version")
    with pytest.raises(ConnectionResetError):
        object_store.put(KEY, Exploding(b"half of a new pack"))
    assert object_store.get(KEY) == b"previous version"
    with pytest.raises(ConnectionResetError):
        object_store.put("plugins/new/1.0.0/new_1.0.0.zip", Exploding(b"partial"))
    assert not object_store.exists("plugins/new/1.0.0/new_1.0.0.zip")


def test_download_writes_atomically_and_verifies(object_store, tmp_path: Path) -> None:
    data = b"z" * 3_000_000
    object_store.put(KEY, data)
    dest = tmp_path / "cache" / "pkg.zip"
    assert object_store.download(KEY, dest).sha256 == sha(data)
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["pkg.zip"]
    with pytest.raises(ObjectNotFound):
        object_store.download("plugins/x/1/x_1.zip", tmp_path / "other.zip")
    assert not (tmp_path / "other.zip").exists()


@pytest.mark.parametrize(
    "key",
    ["", "/abs/key", "a/../b", "a//b", "a\\b", "./a", "a/b c", "x" * 600, "a/b.ref", "a/.tmp-x"],
)
def test_unsafe_keys_are_refused(object_store, key: str) -> None:
    with pytest.raises(InvalidObjectKey) as info:
        object_store.put(key, b"data")
    assert info.value.code == "storage.key_invalid"
    assert object_store.list() == []


# --- filesystem specifics -------------------------------------------------------------------


def test_filesystem_store_is_content_addressed_and_shares_blobs(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    a = store.put("plugins/a/1/a_1.zip", b"same bytes")
    store.put("plugins/b/1/b_1.zip", b"same bytes")
    blob = store.blob_path(a.sha256)
    assert blob == tmp_path / "objects" / "blobs" / "sha256" / a.sha256[:2] / a.sha256[2:]
    assert blob.read_bytes() == b"same bytes"
    assert len(list((tmp_path / "objects" / "blobs").rglob("*"))) == 3  # sha256/, ab/, blob
    store.delete("plugins/a/1/a_1.zip")
    assert blob.exists()  # still used by b
    store.delete("plugins/b/1/b_1.zip")
    assert not blob.exists()
    assert not (tmp_path / "objects" / "keys" / "plugins").exists()  # empty dirs pruned


def test_filesystem_get_detects_a_corrupted_blob(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    info = store.put(KEY, b"original")
    blob = store.blob_path(info.sha256)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(ObjectCorrupted, match="corrupted"):
        store.get(KEY)
    with pytest.raises(ObjectCorrupted):
        store.download(KEY, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
    blob.unlink()
    with pytest.raises(ObjectCorrupted, match="missing"):
        store.get(KEY)


def test_process_killed_mid_write_leaves_no_visible_object_and_gc_cleans(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    store.put(KEY, b"version one")
    child = textwrap.dedent(
        f"""
        import io, os, sys
        sys.path.insert(0, {SRC!r})
        from plughost.storage.objects import FilesystemObjectStore

        class DieHalfway(io.RawIOBase):
            sent = 0
            def readable(self): return True
            def read(self, n=-1):
                if self.sent:
                    os._exit(9)  # the process dies with the temp file half written
                self.sent = 1
                return b"half of version two"

        FilesystemObjectStore({str(root)!r}).put({KEY!r}, DieHalfway())
        """
    )
    assert subprocess.run([sys.executable, "-c", child], timeout=60).returncode == 9
    assert store.get(KEY) == b"version one"
    assert list((root / "tmp").iterdir()) != []  # the crash left a partial temp file ...
    assert [i.key for i in store.list()] == [KEY]  # ... which is not an object
    orphan = store.blob_path(hashlib.sha256(b"orphan").hexdigest())
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")  # as left by a crash between blob and reference
    assert store.gc() == [hashlib.sha256(b"orphan").hexdigest()]
    assert list((root / "tmp").iterdir()) == []
    assert store.get(KEY) == b"version one"


def test_process_killed_between_blob_and_reference_keeps_the_old_object(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    store.put(KEY, b"version one")
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {SRC!r})
        from plughost.storage import objects
        store = objects.FilesystemObjectStore({str(root)!r})
        store._write_ref = lambda info: os._exit(9)  # die after the blob, before the ref
        store.put({KEY!r}, b"version two")
        """
    )
    assert subprocess.run([sys.executable, "-c", child], timeout=60).returncode == 9
    assert store.get(KEY) == b"version one"
    assert store.gc() == [hashlib.sha256(b"version two").hexdigest()]


# --- S3 specifics ----------------------------------------------------------------------------


def test_s3_keys_use_the_prefix_and_carry_the_checksum_metadata(s3_store: S3ObjectStore) -> None:
    s3_store.put(KEY, b"zip")
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=f"store/{KEY}")
    assert head["Metadata"]["sha256"] == sha(b"zip")


def test_s3_get_detects_an_object_altered_behind_our_back(s3_store: S3ObjectStore) -> None:
    s3_store.put(KEY, b"original")
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=f"store/{KEY}", Body=b"evil",
                               Metadata={"sha256": sha(b"original")})
    with pytest.raises(ObjectCorrupted, match="altered"):
        s3_store.get(KEY)
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=f"store/{KEY}", Body=b"no meta")
    with pytest.raises(ObjectCorrupted, match="no valid sha256"):
        s3_store.info(KEY)


def test_s3_missing_bucket_is_reported_as_unavailable(moto_s3_endpoint: str) -> None:
    from plughost.errors import ObjectStoreUnavailable

    store = S3ObjectStore("does-not-exist-bucket", endpoint_url=moto_s3_endpoint,
                          region_name="us-east-1")
    with pytest.raises(ObjectStoreUnavailable, match="does-not-exist-bucket"):
        store.put(KEY, b"x")


def test_object_store_from_url(tmp_path: Path, moto_s3_endpoint: str) -> None:
    fs = object_store_from_url(f"file://{tmp_path / 'objs'}")
    assert isinstance(fs, FilesystemObjectStore) and fs.root == (tmp_path / "objs").resolve()
    assert isinstance(object_store_from_url(str(tmp_path / "plain")), FilesystemObjectStore)
    s3 = object_store_from_url(
        f"s3://url-bucket/prod/?endpoint_url={moto_s3_endpoint}&region=us-east-1&create_bucket=1"
    )
    assert isinstance(s3, S3ObjectStore) and s3.prefix == "prod/"
    s3.put(KEY, b"via url")
    assert s3.get(KEY) == b"via url"
    with pytest.raises(ConfigurationError, match="unsupported scheme"):
        object_store_from_url("ftp://x/y")
    with pytest.raises(ConfigurationError, match="no bucket"):
        object_store_from_url("s3:///prefix")
    with pytest.raises(ConfigurationError, match="unknown option"):
        object_store_from_url("s3://b/p?secret_key=oops")


def test_missing_boto3_names_the_s3_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ExtraNotInstalled) as info:
        S3ObjectStore("bucket")
    assert info.value.extra == "s3"
