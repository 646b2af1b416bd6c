"""Object store contract (filesystem and S3 on moto's server), atomicity and integrity."""

from __future__ import annotations

import hashlib
import io
import shutil
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


def die_before_the_reference(root: Path, key: str, data: bytes) -> None:
    """Another process puts ``data`` under ``key`` in the store at ``root`` and is killed after
    the blob and its holder marker are written, before the key's reference."""
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {SRC!r})
        from plughost.storage import objects
        store = objects.FilesystemObjectStore({str(root)!r})
        store._write_ref = lambda info: os._exit(9)
        store.put({key!r}, {data!r})
        """
    )
    assert subprocess.run([sys.executable, "-c", child], timeout=60).returncode == 9


def test_process_killed_between_blob_and_reference_keeps_the_old_object(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    store.put(KEY, b"version one")
    die_before_the_reference(root, KEY, b"version two")
    assert store.get(KEY) == b"version one"
    assert store.gc() == [hashlib.sha256(b"version two").hexdigest()]


# --- filesystem: the holder index (which keys share a blob) ----------------------------------


def holders(store: FilesystemObjectStore, data: bytes) -> list[str]:
    """The keys whose holder markers stand in the holder directory of ``data``'s blob."""
    folder = store.root / "holders" / "sha256" / sha(data)[:2] / sha(data)[2:]
    return sorted(p.read_text() for p in folder.iterdir()) if folder.is_dir() else []


def blob_exists(store: FilesystemObjectStore, data: bytes) -> bool:
    return store.blob_path(sha(data)).is_file()


def old_layout(root: Path) -> FilesystemObjectStore:
    """The store at ``root`` as an older plughost left it: no holder index."""
    shutil.rmtree(root / "holders")
    return FilesystemObjectStore(root)


def counting_reads(store: FilesystemObjectStore, monkeypatch) -> list[str]:
    """The keys whose ``.ref`` the store reads from now on."""
    reads: list[str] = []
    real = store._read_ref

    def read_ref(key: str) -> ObjectInfo:
        reads.append(key)
        return real(key)

    monkeypatch.setattr(store, "_read_ref", read_ref)
    return reads


A, B, C = ("plugins/a/1/a_1.zip", "plugins/b/1/b_1.zip", "plugins/c/1/c_1.zip")


def test_a_shared_blob_has_one_holder_per_key_and_goes_with_the_last(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    store.put(A, b"same bytes")
    store.put(B, b"same bytes")
    store.put(B, b"same bytes")  # the same content again: still one marker
    assert holders(store, b"same bytes") == [A, B]
    assert store.delete(A)
    assert holders(store, b"same bytes") == [B] and store.get(B) == b"same bytes"
    assert store.delete(B)
    assert holders(store, b"same bytes") == [] and not blob_exists(store, b"same bytes")
    assert not (store.root / "holders" / "sha256" / sha(b"same bytes")[:2]
                / sha(b"same bytes")[2:]).exists()


def test_overwriting_a_key_frees_its_old_blob_unless_another_key_holds_it(
        tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    store.put(A, b"one")
    store.put(A, b"two")
    assert not blob_exists(store, b"one") and holders(store, b"one") == []
    assert holders(store, b"two") == [A]
    store.put(B, b"two")
    store.put(A, b"three")
    assert blob_exists(store, b"two") and holders(store, b"two") == [B]
    assert store.get(B) == b"two" and store.get(A) == b"three"
    assert store.gc() == []  # nothing was left behind


def test_a_put_that_fails_at_the_reference_takes_back_its_blob_and_marker(
        tmp_path: Path, monkeypatch) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    store.put(A, b"one")

    def disk_full(info: ObjectInfo) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_write_ref", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.put(A, b"two")
    with pytest.raises(OSError, match="No space"):
        store.put(B, b"one")  # a blob already there, held by A: it stays
    monkeypatch.undo()
    assert store.get(A) == b"one" and not store.exists(B)
    assert not blob_exists(store, b"two") and holders(store, b"two") == []
    assert holders(store, b"one") == [A]


def test_delete_reads_no_reference_but_its_own(tmp_path: Path, monkeypatch) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    for i in range(30):
        store.put(f"plugins/p{i}/1/p{i}_1.zip", b"shared" if i % 2 else f"own {i}".encode())
    reads = counting_reads(store, monkeypatch)

    def no_scan(prefix: str = "") -> None:
        raise AssertionError("delete listed the store")

    monkeypatch.setattr(store, "list", no_scan)
    monkeypatch.setattr(store, "keys", no_scan)
    doomed = ["plugins/p1/1/p1_1.zip", "plugins/p2/1/p2_1.zip", "plugins/p3/1/p3_1.zip"]
    for key in doomed:
        assert store.delete(key)
    assert reads == doomed
    assert not blob_exists(store, b"own 2") and blob_exists(store, b"shared")


def test_an_old_store_is_indexed_once_and_behaves_the_same(tmp_path: Path,
                                                          monkeypatch) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    store.put(A, b"shared")
    store.put(B, b"shared")
    store.put(C, b"own")
    store = old_layout(root)
    reads = counting_reads(store, monkeypatch)
    assert store.delete(A)
    assert sorted(reads) == [A, B, C]  # its own, then one scan of the rest to index them
    assert blob_exists(store, b"shared") and holders(store, b"shared") == [B]
    assert (root / "holders" / "complete").is_file()
    reads.clear()
    assert store.delete(C) and store.delete(B)
    assert reads == [C, B]
    assert not blob_exists(store, b"shared") and not blob_exists(store, b"own")


def test_an_old_store_overwritten_first_is_indexed_before_the_old_blob_is_judged(
        tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    store.put(A, b"shared")
    store.put(B, b"shared")
    store = old_layout(root)
    store.put(A, b"new")  # B, which no marker names yet, still holds the old blob
    assert store.get(B) == b"shared" and holders(store, b"shared") == [B]
    store.put(B, b"new")
    assert not blob_exists(store, b"shared") and holders(store, b"new") == [A, B]


def test_an_interrupted_index_build_is_done_again(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    for key in (A, B, C):
        store.put(key, b"shared")
    store.put("plugins/d/1/d_1.zip", b"own")
    old_layout(root)
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {SRC!r})
        from plughost.storage import objects
        real, written = objects._write_marker, []
        def write_marker(path, text):
            if len(written) == 2:
                os._exit(9)  # dies with two of the three markers written
            written.append(path)
            real(path, text)
        objects._write_marker = write_marker
        objects.FilesystemObjectStore({str(root)!r}).delete("plugins/d/1/d_1.zip")
        """
    )
    assert subprocess.run([sys.executable, "-c", child], timeout=60).returncode == 9
    assert not (root / "holders" / "complete").exists()
    assert len(holders(FilesystemObjectStore(root), b"shared")) == 2  # a partial index ...
    store = FilesystemObjectStore(root)
    assert store.delete(A)  # ... is not trusted: built again first
    assert (root / "holders" / "complete").is_file()
    assert holders(store, b"shared") == [B, C] and store.get(C) == b"shared"
    assert store.delete(B) and store.get(C) == b"shared"
    assert store.gc() == [sha(b"own")]  # d's ref went before the crash, its blob did not


def test_gc_removes_a_stale_marker_so_it_keeps_no_blob(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    store.put(A, b"one")
    store.put(B, b"two")
    die_before_the_reference(root, C, b"one")
    assert holders(store, b"one") == [A, C] and not store.exists(C)  # C's marker is stale
    assert store.delete(A)
    assert blob_exists(store, b"one")  # held by the stale marker: kept, never guessed
    stale = root / "holders" / "sha256" / "ff" / ("f" * 62)  # a blob that is not there
    stale.mkdir(parents=True)
    (stale / ("0" * 64)).write_text("plugins/ghost/1/ghost_1.zip")
    (root / "holders" / "sha256" / sha(b"two")[:2] / sha(b"two")[2:] / ("0" * 64)).write_text(
        "plugins/ghost/1/ghost_1.zip")
    assert store.gc() == [sha(b"one")]
    assert holders(store, b"one") == [] and not stale.exists()
    assert holders(store, b"two") == [B]
    assert store.delete(B) and not blob_exists(store, b"two")  # no stale marker keeps it


def test_gc_rebuilds_missing_and_garbled_markers_from_the_references(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FilesystemObjectStore(root)
    store.put(A, b"shared")
    store.put(B, b"shared")
    folder = root / "holders" / "sha256" / sha(b"shared")[:2] / sha(b"shared")[2:]
    markers = sorted(folder.iterdir(), key=lambda p: p.read_text())
    markers[0].unlink()  # A's marker lost
    markers[1].write_text("")  # B's left empty by a crash
    assert store.gc() == []
    assert holders(store, b"shared") == [A, B]
    assert store.delete(B) and store.get(A) == b"shared"


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
