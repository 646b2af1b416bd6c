"""Object stores for plugin packages: the filesystem (default) and S3.

Keys are ``/``-separated relative paths; plugin packages live at :func:`package_key`
(``plugins/{id}/{version}/{id}_{version}.zip``, Arcade's layout). Every object carries its
SHA-256, recorded at write time and checked on :meth:`ObjectStore.get`.

:class:`FilesystemObjectStore` is content-addressed::

    <root>/blobs/sha256/ab/cdef0123...    the bytes, named by their digest (read-only files)
    <root>/keys/plugins/x/1.0.0/x_1.0.0.zip.ref   {"sha256": ..., "size": ...}
    <root>/holders/sha256/ab/cdef0123.../<sha256 of the key>   the key (one marker per key
                                           whose .ref names that blob)
    <root>/holders/complete                the markers were built from the refs (written last)
    <root>/tmp/                            partial writes (swept by gc())

A write streams into ``tmp/`` while hashing, ``fsync``\\s, then ``rename``\\s into ``blobs/``
(atomic on POSIX), then writes the key's holder marker (its directory ``fsync``\\ed), then the
key's ``.ref`` the same way as the blob (tmp + fsync + rename + directory fsync). A crash at any
point leaves either the old object or the new one visible under the key, never a half-written
one, and never a ``.ref`` without its marker; what can be left over is an unreferenced blob, a
marker no ``.ref`` stands behind or a temp file, which :meth:`FilesystemObjectStore.gc` removes.

Identical packages share one blob. Its holder markers say which keys still use it, so deleting
a key (or overwriting it with other content) removes the blob exactly when the key's marker was
the last one (``rmdir`` of the emptied holder directory succeeding is the test), without reading
any other key's ``.ref``. A store written by an older plughost has no markers: they are built
from the refs once (one scan), the first time a blob may have to go, and ``holders/complete`` is
written when they all are (an interrupted build is done again). The markers are only as good
as every writer: after going back to an older plughost and forward again, delete ``holders/``
so they are built again.

:class:`S3ObjectStore` stores each key as one S3 object (``PutObject`` is atomic: readers see the
old or the new object) with its SHA-256 in the ``x-amz-meta-sha256`` metadata.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from plughost.errors import (
    ConfigurationError,
    ExtraNotInstalled,
    InvalidObjectKey,
    ObjectCorrupted,
    ObjectNotFound,
    ObjectStoreUnavailable,
    ObjectTooLarge,
)

__all__ = [
    "FilesystemObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "S3ObjectStore",
    "object_store_from_url",
    "package_key",
    "validate_key",
]

log = logging.getLogger(__name__)

Data = bytes | bytearray | memoryview | BinaryIO | IO[bytes] | Path
_CHUNK = 1024 * 1024
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._@+=,-]+$")
_MAX_KEY = 512
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What is stored under a key: its SHA-256 (hex) and size in bytes."""

    key: str
    sha256: str
    size: int


def package_key(plugin_id: str, version: str) -> str:
    """Where a plugin package lives: ``plugins/{id}/{version}/{id}_{version}.zip``."""
    key = f"plugins/{plugin_id}/{version}/{plugin_id}_{version}.zip"
    validate_key(key)
    return key


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidObjectKey`.

    Safe: 1-512 characters, ``/``-separated segments of letters, digits and ``._@+=,-``, no
    empty, ``.`` or ``..`` segment, no leading ``/``, no backslash.
    """
    problem = None
    if not isinstance(key, str) or not key:
        problem = "is empty"
    elif len(key) > _MAX_KEY:
        problem = f"is longer than {_MAX_KEY} characters"
    elif key.startswith("/"):
        problem = "is absolute (starts with '/')"
    elif "\\" in key:
        problem = "contains a backslash"
    else:
        for segment in key.split("/"):
            if segment in ("", ".", ".."):
                problem = f"has an empty, '.' or '..' segment ({segment!r})"
                break
            if not _KEY_SEGMENT.match(segment):
                problem = f"segment {segment!r} has characters outside [A-Za-z0-9._@+=,-]"
                break
            if segment.endswith(".ref") or segment.startswith(".tmp"):
                problem = f"segment {segment!r} uses a name reserved by the store"
                break
    if problem:
        raise InvalidObjectKey(f"object key {key!r} {problem}; use e.g. plugins/ID/VERSION/FILE")
    return key


def _check_expected(key: str, digest: str, expected: str | None) -> None:
    if expected is not None and digest != expected.lower():
        raise ObjectCorrupted(
            f"content for {key!r} has SHA-256 {digest}, expected {expected.lower()}; the data "
            "was corrupted or is not what was meant — nothing was stored",
            details={"key": key, "sha256": digest, "expected": expected.lower()},
        )


def _too_large(key: str, max_size: int) -> ObjectTooLarge:
    return ObjectTooLarge(
        f"content for {key!r} is larger than the limit of {max_size} bytes; nothing was stored "
        "(raise max_plugin_size if the package is legitimate)",
        details={"key": key, "max_size": max_size},
    )


@contextlib.contextmanager
def _as_stream(data: Data) -> Iterator[IO[bytes]]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(data))
    elif isinstance(data, Path):
        with data.open("rb") as fh:
            yield fh
    else:
        yield data


@runtime_checkable
class ObjectStore(Protocol):
    """Where package blobs live. Every write is atomic; every read of ``get`` is verified."""

    def put(
        self,
        key: str,
        data: Data,
        *,
        sha256: str | None = None,
        max_size: int | None = None,
    ) -> ObjectInfo:
        """Store ``data`` (bytes, a binary file object or a Path) under ``key``, replacing what
        was there. With ``sha256`` the content must have that digest, with ``max_size`` at most
        that many bytes; otherwise nothing is stored (ObjectCorrupted / ObjectTooLarge)."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object, verified against its recorded SHA-256 (ObjectCorrupted if not).
        :raises ObjectNotFound:"""
        ...

    def open(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A binary stream of the object, for large objects (not verified; use download/get)."""
        ...

    def download(self, key: str, dest: Path) -> ObjectInfo:
        """Write the object to ``dest`` atomically (tmp + rename), verifying its SHA-256."""
        ...

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""
        ...

    def info(self, key: str) -> ObjectInfo:
        """Key, SHA-256 and size of the object. :raises ObjectNotFound:"""
        ...

    def sha256(self, key: str) -> str:
        """The recorded SHA-256 of the object. :raises ObjectNotFound:"""
        ...

    def delete(self, key: str) -> bool:
        """Remove the object; returns False when there was none."""
        ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted by key."""
        ...

    def keys(self, prefix: str = "") -> builtins.list[str]:
        """The keys :meth:`list` would return, without reading each object's record (one
        listing, however many objects: what start-up reconciliation compares)."""
        ...

    def children(self, prefix: str) -> builtins.list[str]:
        """The names one level below ``prefix`` (which ends in ``/``), sorted: for
        ``"plugins/"``, the id of every plugin with an object (one listing of one level)."""
        ...


class FilesystemObjectStore:
    """Content-addressed object store in a local directory (see the module doc for the layout)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self._blobs = self.root / "blobs" / "sha256"
        self._keys = self.root / "keys"
        self._holders = self.root / "holders" / "sha256"
        self._indexed = self.root / "holders" / "complete"
        self._tmp = self.root / "tmp"
        for path in (self._blobs, self._keys, self._holders, self._tmp):
            path.mkdir(parents=True, exist_ok=True)
        if not self._indexed.is_file() and _empty(self._keys):
            with self._store_lock():  # a new store: its (empty) index is complete
                if _empty(self._keys):
                    self._write_holders({})

    def __repr__(self) -> str:
        return f"<FilesystemObjectStore {self.root}>"

    # paths ------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Where the blob with SHA-256 ``digest`` lives."""
        return self._blobs / digest[:2] / digest[2:]

    def _holder_dir(self, digest: str) -> Path:
        """Where the markers of the keys that hold blob ``digest`` live."""
        return self._holders / digest[:2] / digest[2:]

    def _ref_path(self, key: str) -> Path:
        return self._keys / (validate_key(key) + ".ref")

    def _read_ref(self, key: str) -> ObjectInfo:
        path = self._ref_path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            digest, size = str(data["sha256"]), int(data["size"])
        except FileNotFoundError:
            raise ObjectNotFound(f"no object is stored under {key!r}",
                                 details={"key": key}) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ObjectCorrupted(f"the index entry of {key!r} ({path}) is unreadable: {exc}",
                                  details={"key": key}) from None
        if not _HEX64.match(digest):
            raise ObjectCorrupted(f"the index entry of {key!r} names a bad digest {digest!r}")
        return ObjectInfo(key, digest, size)

    # writes -----------------------------------------------------------------------------
    def _tmp_file(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix=".tmp-")
        return fd, Path(name)

    def _store_lock(self) -> contextlib.AbstractContextManager[None]:
        # Linking a key to a blob and deleting an unreferenced blob must not interleave (a put
        # could link to a blob a delete is about to remove), so both hold this store-wide lock.
        from plughost.storage.locks import file_lock

        return file_lock(self.root / ".lock", timeout=60, what="the object store")

    def _write_blob(
        self, key: str, data: Data, expected: str | None, max_size: int | None
    ) -> tuple[str, int]:
        """Stream into tmp/, hash, fsync, and move into blobs/; the caller holds the lock."""
        fd, tmp = self._tmp_file()
        try:
            h = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out, _as_stream(data) as src:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise _too_large(key, max_size)
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            _check_expected(key, digest, expected)
            target = self.blob_path(digest)
            if target.exists():
                tmp.unlink()  # identical content already stored: share the blob
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
                _fsync_dir(target.parent)
            return digest, size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def _write_ref(self, info: ObjectInfo) -> None:
        ref = self._ref_path(info.key)
        ref.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"sha256": info.sha256, "size": info.size}).encode()
        tmp = ref.with_name(f".tmp-{uuid.uuid4().hex}-{ref.name}")
        try:
            with tmp.open("wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, ref)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        _fsync_dir(ref.parent)

    def put(
        self,
        key: str,
        data: Data,
        *,
        sha256: str | None = None,
        max_size: int | None = None,
    ) -> ObjectInfo:
        """See :meth:`ObjectStore.put`: blob first, then the key's holder marker, then its
        reference. A blob the key held before and no other key holds goes; a failure takes
        back what this put added."""
        validate_key(key)
        with self._store_lock():
            try:
                old: str | None = self._read_ref(key).sha256
            except (ObjectNotFound, ObjectCorrupted):
                old = None  # a corrupted ref's marker, if any, is left to gc()
            digest, size = self._write_blob(key, data, sha256, max_size)
            info = ObjectInfo(key, digest, size)
            try:
                self._hold(digest, key)
                self._write_ref(info)
            except BaseException:
                if old != digest:
                    self._release_quietly(digest, key)
                raise
            if old is not None and old != digest:
                self._release_quietly(old, key)
        return info

    # holders ----------------------------------------------------------------------------
    def _hold(self, digest: str, key: str) -> None:
        """Record that ``key`` holds blob ``digest``: its marker, durable before the key's
        reference is written (the caller holds the lock)."""
        folder = self._holder_dir(digest)
        created = _make_dirs(folder)
        _write_marker(folder / _marker_name(key), key)
        for changed in (folder, *created):
            _fsync_dir(changed)

    def _release(self, digest: str, key: str) -> None:
        """``key`` no longer holds blob ``digest`` (its reference is gone or names another
        blob): drop its marker, and the blob when that was the last one. The caller holds the
        lock. Without a complete index, it is built first (one scan of every reference)."""
        if not self._indexed.is_file():
            held = self._sync_holders()
            if not self._indexed.is_file():  # the index could not be written: use the scan
                if digest not in held:
                    with contextlib.suppress(FileNotFoundError):
                        self.blob_path(digest).unlink()
                return
        folder = self._holder_dir(digest)
        with contextlib.suppress(FileNotFoundError):
            (folder / _marker_name(key)).unlink()
        try:
            folder.rmdir()  # succeeds only when no other key's marker is left
        except OSError as exc:
            # No folder at all: no marker, nothing holds it. Otherwise still held (or the
            # folder cannot go): the blob stays, for gc to judge.
            if not isinstance(exc, FileNotFoundError):
                return
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(digest).unlink()

    def _release_quietly(self, digest: str, key: str) -> None:
        """:meth:`_release` where the write itself is already decided: a failure only leaves
        an unreferenced blob or a marker behind for :meth:`gc`, so it is logged."""
        try:
            self._release(digest, key)
        except (OSError, ObjectCorrupted):
            log.warning("could not release blob %s of %r in %s; gc() will", digest, key,
                        self.root, exc_info=True)

    def _sync_holders(self) -> dict[str, set[str]]:
        """Make the holder markers say what the references say — one marker per key, in its
        blob's holder directory, none else — and mark the index complete. Returns the keys
        holding each blob, from one scan of every reference (the caller holds the lock). When
        the markers cannot be written the index stays incomplete (logged), and the scan is
        still returned."""
        held: dict[str, dict[str, str]] = {}
        for info in self.list():
            held.setdefault(info.sha256, {})[_marker_name(info.key)] = info.key
        try:
            self._write_holders(held)
        except OSError:
            log.warning("could not write the holder index of %s; deleting a blob reads every "
                        "reference until it is written", self.root, exc_info=True)
        return {digest: set(markers.values()) for digest, markers in held.items()}

    def _write_holders(self, held: dict[str, dict[str, str]]) -> None:
        changed: set[Path] = set()
        for shard in _subdirs(self._holders):
            for folder in _subdirs(shard):
                wanted = held.get(shard.name + folder.name, {})
                with os.scandir(folder) as entries:
                    stale = [m.path for m in entries
                             if m.name not in wanted and not m.is_dir(follow_symlinks=False)]
                for name in stale:
                    os.unlink(name)
                    changed.add(folder)
                if not wanted:
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                        changed.add(shard)
        for digest, markers in held.items():
            folder = self._holder_dir(digest)
            changed.update(_make_dirs(folder))
            for name, key in markers.items():
                path = folder / name
                try:
                    right = path.read_bytes() == key.encode()
                except FileNotFoundError:
                    right = False
                if not right:
                    _write_marker(path, key)
                    changed.add(folder)
        for folder in changed:
            _fsync_dir(folder)
        if not self._indexed.is_file():  # last: every marker above is durable
            _write_marker(self._indexed, "holder markers built from the references\n")
            _fsync_dir(self._indexed.parent)

    # reads ------------------------------------------------------------------------------
    def info(self, key: str) -> ObjectInfo:
        """See :meth:`ObjectStore.info`."""
        info = self._read_ref(key)
        if not self.blob_path(info.sha256).is_file():
            raise ObjectCorrupted(
                f"the blob of {key!r} ({info.sha256}) is missing from {self._blobs}; restore it "
                "from a backup or reinstall the plugin",
                details={"key": key, "sha256": info.sha256},
            )
        return info

    def sha256(self, key: str) -> str:
        """See :meth:`ObjectStore.sha256`."""
        return self.info(key).sha256

    def exists(self, key: str) -> bool:
        """See :meth:`ObjectStore.exists`."""
        return self._ref_path(key).is_file()

    def get(self, key: str) -> bytes:
        """See :meth:`ObjectStore.get` (re-hashes the blob: bit rot is reported, not served)."""
        info = self.info(key)
        data = self.blob_path(info.sha256).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise ObjectCorrupted(
                f"the stored bytes of {key!r} hash to {digest}, not {info.sha256}: the blob is "
                "corrupted; reinstall the plugin or restore the object store from a backup",
                details={"key": key, "sha256": info.sha256, "actual": digest},
            )
        return data

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[IO[bytes]]:
        """See :meth:`ObjectStore.open`."""
        info = self.info(key)
        with self.blob_path(info.sha256).open("rb") as fh:
            yield fh

    def download(self, key: str, dest: Path) -> ObjectInfo:
        """See :meth:`ObjectStore.download`."""
        info = self.info(key)
        with self.blob_path(info.sha256).open("rb") as src:
            _atomic_copy(key, src, Path(dest), info.sha256)
        return info

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """See :meth:`ObjectStore.list`."""
        out: list[ObjectInfo] = []
        for key in self.keys(prefix):
            with contextlib.suppress(ObjectNotFound):  # deleted while listing
                out.append(self._read_ref(key))
        return out

    def keys(self, prefix: str = "") -> builtins.list[str]:
        """See :meth:`ObjectStore.keys` (names only: no reference file is read)."""
        # Walk only below the prefix's directory part (keys are /-separated paths).
        base = prefix.rpartition("/")[0]
        start = self._keys / base if base else self._keys
        out = []
        for folder, _dirs, files in os.walk(start):
            rel = os.path.relpath(folder, self._keys).replace(os.sep, "/")
            for name in files:
                if name.endswith(".ref") and not name.startswith(".tmp-"):
                    key = name[: -len(".ref")] if rel == "." else f"{rel}/{name[: -len('.ref')]}"
                    if key.startswith(prefix):
                        out.append(key)
        return sorted(out)

    # deletes ----------------------------------------------------------------------------
    def delete(self, key: str) -> bool:
        """See :meth:`ObjectStore.delete`. The blob goes too unless another key shares it
        (its holder markers say so: no other key's reference is read)."""
        ref = self._ref_path(key)
        with self._store_lock():
            try:
                info: ObjectInfo | None = self._read_ref(key)
            except ObjectNotFound:
                return False
            except ObjectCorrupted:
                info = None  # which blob it named is unknown: gc() judges its marker
            with contextlib.suppress(FileNotFoundError):
                ref.unlink()
            _fsync_dir(ref.parent)
            self._prune_empty_dirs(ref.parent, self._keys)
            if info is not None:
                self._release(info.sha256, key)
        return True

    def _prune_empty_dirs(self, start: Path, stop: Path) -> None:
        path = start
        while path != stop and stop in path.parents:
            try:
                path.rmdir()
            except OSError:
                return
            path = path.parent

    def children(self, prefix: str) -> builtins.list[str]:
        """See :meth:`ObjectStore.children`."""
        folder = self._keys / prefix.rstrip("/") if prefix.strip("/") else self._keys
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n[: -len(".ref")] if n.endswith(".ref") else n
                      for n in names if not n.startswith(".tmp-"))

    def has_temporary_files(self) -> bool:
        """Whether a write left a temporary file (in ``tmp/``): one was interrupted."""
        return any(True for _ in self._tmp.iterdir())

    def gc(self) -> builtins.list[str]:
        """Remove temp files and blobs no key refers to (leftovers of interrupted writes and of
        crashes between the blob and the reference); returns the removed digests. The
        references are the authority: the holder markers are rebuilt from them (stale ones
        removed, missing ones written). Run it when no write is in progress (at host
        start)."""
        removed = []
        with self._store_lock():
            for tmp in self._tmp.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            for tmp in self._keys.rglob(".tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            referenced = self._sync_holders()
            for shard in self._blobs.iterdir():
                for blob in shard.iterdir():
                    digest = shard.name + blob.name
                    if digest not in referenced:
                        blob.unlink()
                        removed.append(digest)
        return sorted(removed)


def _marker_name(key: str) -> str:
    """The name of ``key``'s holder marker: a fixed-length name for any key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _write_marker(path: Path, text: str) -> None:
    # A marker's existence is what counts (its directory is fsynced by the caller); its text,
    # the key, lets gc() check it, and gc() rewrites one a crash left short.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> builtins.list[Path]:
    """Create ``path`` and its missing parents; return the directories that gained an entry
    (to fsync, so the new ones survive a crash)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
    return [folder.parent for folder in missing]


def _empty(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def _subdirs(path: Path) -> builtins.list[Path]:
    with os.scandir(path) as entries:
        return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]


def _fsync_dir(path: Path) -> None:
    # Make the rename itself durable; some filesystems do not support fsync on directories.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_copy(key: str, src: IO[bytes], dest: Path, expected: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".tmp-{dest.name}.")
    tmp = Path(name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != expected:
            raise ObjectCorrupted(
                f"the stored bytes of {key!r} hash to {digest}, not {expected}; nothing was "
                "written to the destination",
                details={"key": key, "sha256": expected, "actual": digest},
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


class S3ObjectStore:
    """Objects in an S3 bucket (AWS, MinIO, Ceph, moto...), under an optional key prefix.

    :param bucket: the bucket (must exist, unless ``create_bucket=True``).
    :param prefix: prepended to every key (``"prod/"`` → ``prod/plugins/...``).
    :param client: a boto3 S3 client; default: one from boto3's credential chain with
        ``endpoint_url`` and ``region_name``.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
        create_bucket: bool = False,
    ) -> None:
        try:
            import boto3
            import botocore.exceptions
        except ImportError as exc:
            raise ExtraNotInstalled("The S3 object store", "s3", "boto3") from exc
        self._errors = botocore.exceptions
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if self.prefix:
            validate_key(self.prefix.rstrip("/"))
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name
        )
        if create_bucket:
            with self._translate(""):
                try:
                    self.client.head_bucket(Bucket=bucket)
                except self._errors.ClientError:
                    self.client.create_bucket(Bucket=bucket)

    def __repr__(self) -> str:
        return f"<S3ObjectStore s3://{self.bucket}/{self.prefix}>"

    def _full(self, key: str) -> str:
        return self.prefix + validate_key(key)

    @contextlib.contextmanager
    def _translate(self, key: str) -> Iterator[None]:
        try:
            yield
        except self._errors.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(f"no object is stored under {key!r}",
                                     details={"key": key}) from None
            raise ObjectStoreUnavailable(
                f"S3 refused the request for {key!r} in bucket {self.bucket!r}: {code} "
                f"{exc}; check the bucket exists and the credentials may use it",
                details={"key": key, "bucket": self.bucket, "code": code},
            ) from exc
        except self._errors.BotoCoreError as exc:
            raise ObjectStoreUnavailable(
                f"cannot reach S3 for bucket {self.bucket!r}: {exc}; check endpoint_url and "
                "credentials",
                details={"key": key, "bucket": self.bucket},
            ) from exc

    def put(
        self,
        key: str,
        data: Data,
        *,
        sha256: str | None = None,
        max_size: int | None = None,
    ) -> ObjectInfo:
        """See :meth:`ObjectStore.put`. Content is spooled (memory up to 8 MiB, then a temp
        file) so its digest is known before the single, atomic ``PutObject``."""
        full = self._full(key)
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            h = hashlib.sha256()
            size = 0
            with _as_stream(data) as src:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise _too_large(key, max_size)
                    h.update(chunk)
                    spool.write(chunk)
            digest = h.hexdigest()
            _check_expected(key, digest, sha256)
            spool.seek(0)
            with self._translate(key):
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=full,
                    Body=spool,
                    ContentLength=size,
                    ContentType="application/octet-stream",
                    Metadata={"sha256": digest},
                )
        return ObjectInfo(key, digest, size)

    def info(self, key: str) -> ObjectInfo:
        """See :meth:`ObjectStore.info` (a ``HeadObject``)."""
        with self._translate(key):
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        digest = head.get("Metadata", {}).get("sha256", "")
        if not _HEX64.match(digest):
            raise ObjectCorrupted(
                f"the S3 object for {key!r} has no valid sha256 metadata; it was not written by "
                "plughost — reinstall the plugin",
                details={"key": key},
            )
        return ObjectInfo(key, digest, int(head["ContentLength"]))

    def sha256(self, key: str) -> str:
        """See :meth:`ObjectStore.sha256`."""
        return self.info(key).sha256

    def exists(self, key: str) -> bool:
        """See :meth:`ObjectStore.exists`."""
        try:
            with self._translate(key):
                self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ObjectNotFound:
            return False
        return True

    def get(self, key: str) -> bytes:
        """See :meth:`ObjectStore.get`."""
        with self._translate(key):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            data: bytes = resp["Body"].read()
        expected = resp.get("Metadata", {}).get("sha256", "")
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise ObjectCorrupted(
                f"the S3 object for {key!r} hashes to {digest}, but its metadata says "
                f"{expected or '<none>'}; the object was altered — reinstall the plugin",
                details={"key": key, "sha256": expected, "actual": digest},
            )
        return data

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[IO[bytes]]:
        """See :meth:`ObjectStore.open`."""
        with self._translate(key):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        body = resp["Body"]
        try:
            yield body
        finally:
            body.close()

    def download(self, key: str, dest: Path) -> ObjectInfo:
        """See :meth:`ObjectStore.download`."""
        with self._translate(key):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        expected = resp.get("Metadata", {}).get("sha256", "")
        body = resp["Body"]
        try:
            _atomic_copy(key, body, Path(dest), expected)
        finally:
            body.close()
        return ObjectInfo(key, expected, int(resp["ContentLength"]))

    def delete(self, key: str) -> bool:
        """See :meth:`ObjectStore.delete`."""
        if not self.exists(key):
            return False
        with self._translate(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))
        return True

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """See :meth:`ObjectStore.list` (one ``HeadObject`` per object for its digest)."""
        out = []
        for key in self.keys(prefix):
            with contextlib.suppress(ObjectNotFound):  # deleted while listing
                out.append(self.info(key))
        return out

    def children(self, prefix: str) -> builtins.list[str]:
        """See :meth:`ObjectStore.children` (one delimited listing)."""
        with self._translate(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
            )
            names = set()
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.add(common["Prefix"][len(self.prefix + prefix):].rstrip("/"))
                for obj in page.get("Contents", []):
                    names.add(obj["Key"][len(self.prefix + prefix):])
            return sorted(names)

    def keys(self, prefix: str = "") -> builtins.list[str]:
        """See :meth:`ObjectStore.keys` (the listing only: no ``HeadObject``)."""
        with self._translate(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            return sorted(obj["Key"][len(self.prefix):] for page in pages
                          for obj in page.get("Contents", []))


def object_store_from_url(url: str) -> ObjectStore:
    """Open the object store a URL names.

    ``file:///abs/path`` (or a plain path)
        :class:`FilesystemObjectStore` rooted there (created if missing).
    ``s3://bucket[/prefix][?endpoint_url=http://host:9000&region=eu-west-1]``
        :class:`S3ObjectStore`; credentials come from boto3's usual chain (environment,
        ``~/.aws``, instance role), never from the URL.

    :raises ConfigurationError: for other schemes or a bucket-less S3 URL.
    """
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = unquote(parts.path if parts.scheme else url)
        if parts.scheme == "file" and parts.netloc and parts.netloc != "localhost":
            path = parts.netloc + path  # file://relative/dir
        if not path:
            raise ConfigurationError(f"object_store {url!r} names no directory")
        return FilesystemObjectStore(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigurationError(
                f"object_store {url!r} names no bucket; use s3://BUCKET/PREFIX"
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"endpoint_url", "region", "create_bucket"})
        if unknown:
            raise ConfigurationError(
                f"object_store {url!r}: unknown option(s) {', '.join(unknown)}; supported: "
                "endpoint_url, region, create_bucket"
            )
        return S3ObjectStore(
            parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint_url=query.get("endpoint_url"),
            region_name=query.get("region"),
            create_bucket=query.get("create_bucket", "").lower() in ("1", "true", "yes"),
        )
    raise ConfigurationError(
        f"object_store {url!r} uses the unsupported scheme {parts.scheme!r}; use file:// or s3://"
    )
