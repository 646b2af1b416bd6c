"""Finding plugins: plugin folders in directories, and the ``plughost.plugins`` entry-point group.

Nothing is imported here: discovery reads manifests only, so a thousand lazy plugins cost a
thousand small file reads. A :class:`DiscoveryCache` keeps the validated manifests keyed by the
manifest file's path and ``stat`` (size, modification and change times, inode, device) and by a
digest of its bytes, so an unchanged plugin is neither parsed nor validated again; any change to
the file invalidates its entry, even one that keeps the size, the time and the inode.

A plugin folder costs one ``stat`` of its manifest and one read of it (open, read, close; a
folder's other manifest name is looked for only when the manifest is parsed, and entries are
not ``stat``-ed to learn whether they are folders: the manifest's ``stat`` says so); a cached
manifest whose file has not changed for a few seconds costs the ``stat`` alone (see
:class:`DiscoveryCache`). Anything out of the ordinary (no ``plugin.toml``, a manifest that is
not a regular file, a read that fails) goes the general way,
:func:`~plughost.core.manifest.load_manifest`, which reports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import operator
import os
import stat as stat_module
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Final

from plughost._version import __version__
from plughost.core._gc import collector_paused
from plughost.core.manifest import (
    MANIFEST_FILES,
    MAX_MANIFEST_BYTES,
    Manifest,
    _load_read,
    load_manifest,
    manifest_from_dict,
    manifest_from_own_dict,
    read_manifest_data,
)
from plughost.core.wire import orjson_reads_back
from plughost.errors import ManifestError, PlughostError, Problem

__all__ = [
    "ENTRY_POINT_GROUP",
    "Discovered",
    "DiscoveryCache",
    "discover",
    "discover_directories",
    "discover_entry_points",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "plughost.plugins"
_CACHE_FORMAT = 8
_HEAD: Final = f"plughost-discovery-cache {_CACHE_FORMAT} {__version__} ".encode()
_ORJSON: Final = b"orjson"
_JSON: Final = b"json"
_CODECS: Final = (_ORJSON, _JSON)
# How long a manifest file must have gone unchanged (by its modification and change times)
# before its cache entry is trusted on its ``stat`` alone: more than the coarsest file-system
# clock tick (FAT's 2 s) plus the lag of the kernel's coarse clock behind ``time.time_ns``.
_SETTLE_NS: Final = 3_000_000_000
# Only where ``st_ctime`` is the inode's change time, which nobody can set back (on Windows
# it is the creation time): there every entry is checked against the bytes, always.
_CHANGE_TIMES: Final = os.name == "posix"
_now_ns = time.time_ns
# Opening a manifest found to be a regular file: no controlling terminal, no waiting on a FIFO
# put there in the meantime, no newline translation (Windows).
_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_BINARY", 0))


@dataclass(slots=True)
class Discovered:
    """One candidate plugin: a valid manifest, or the error that stopped it. (Read it, do not
    change it; not frozen because a frozen dataclass sets each field through
    ``object.__setattr__``, which made one cost three times as much, a tenth of discovering a
    cached plugin.)"""

    location: str
    """Where it was found: the folder path, or ``entry point NAME (DIST)``."""
    source: str
    """``directory`` or ``entry-point``."""
    root: Path | None
    manifest: Manifest | None = None
    error: PlughostError | None = None


class DiscoveryCache:
    """Validated manifests keyed by the manifest file's path and ``stat`` (size, ``mtime_ns``,
    ``ctime_ns``, inode, device) and by the BLAKE2b digest of its bytes, persisted as one file.

    The file is a header line (format, plughost version, the codec that reads the rest, the
    CRC-32 of the rest) and the entries as JSON. An entry is served only while its
    file has the same ``stat`` *and* the bytes read from it now have the digest recorded with
    the entry: the times and the inode alone cannot tell a file rewritten within one tick of
    the file system's clock from the one that was validated, the bytes can.

    Except for a *settled* entry, served on its ``stat`` alone, without opening the file (what
    git does for its index's "racily clean" entries): one whose file's modification and change
    times were both more than :data:`_SETTLE_NS` older than the clock when a discovery began,
    and whose bytes were read and digested in that discovery. Any later change to the file
    sets its change time to the time of that change, which is past that clock less one tick
    of the file system's clock, so it can no longer equal the one recorded: ``os.utime`` can
    put a modification time back, nothing but the clock puts a change time back. A file
    changed between its ``stat`` and its read was recorded with the older ``stat``, which no
    longer matches. This rests on the file system's clock agreeing with this machine's within
    :data:`_SETTLE_NS`; a network share whose server's clock runs behind by more, rewritten
    twice within one of its clock ticks around a discovery, could keep an entry that the
    bytes would have refused. Where the change time is not such a time (Windows), no entry
    settles.

    A served entry is rebuilt without validating it again
    (:func:`~plughost.core.manifest.manifest_from_own_dict`), because it was validated when it
    was written and the file's checksum shows the entries are byte for byte what plughost
    wrote. A file whose checksum does not match (edited by hand, truncated) or that another
    plughost version wrote is ignored as a whole: every manifest is parsed and validated again
    and the file is written afresh. The checksum catches edits and corruption; it is not a
    signature, and a digest would be no more of one: whoever can write the home can write the
    plugin folders too, and the cache file with a matching digest of any kind. (A CRC-32: a
    quarter of a BLAKE2b's cost on a small discovery, where reading the cache file is a third
    of the whole.)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = os.fspath(path)  # read as given; a Path only to write (see path)
        # manifest path -> [size, mtime_ns, ctime_ns, inode, device, BLAKE2b of the bytes,
        # settled, manifest.to_dict()] (a list, not an object: a quarter less JSON to read
        # back for ten thousand entries)
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        self._settled_before = _now_ns() - _SETTLE_NS
        self._load()

    @property
    def path(self) -> Path:
        """The cache file."""
        return Path(self._file)

    def _load(self) -> None:
        try:
            raw = _read_whole(self._file)
            end = raw.find(b"\n")
            head = raw[:end]
            body = memoryview(raw)[end + 1:]  # the entries, not copied out of the file's bytes
            codec = head[len(_HEAD):].partition(b" ")[0]
            if end < 0 or codec not in _CODECS or head != _header(codec, body):
                logger.info("discovery cache %s was not written by this plughost or was "
                            "changed since; every manifest is read again", self.path)
                return
            with collector_paused():  # ten thousand entries, all kept
                entries = _load_entries(body, fast=codec == _ORJSON)
        except (OSError, ValueError, RecursionError):  # unreadable: start afresh
            return
        if isinstance(entries, dict):
            self._entries = entries

    def begin(self) -> None:
        """Mark the start of a discovery, before its first ``stat``: files unchanged for
        :data:`_SETTLE_NS` before now may settle (until then, since the cache was opened)."""
        self._settled_before = _now_ns() - _SETTLE_NS

    def _settles(self, stat: os.stat_result) -> bool:
        before = self._settled_before
        return _CHANGE_TIMES and stat.st_mtime_ns < before and stat.st_ctime_ns < before

    def _matching(self, manifest_path: str, stat: os.stat_result) -> list[Any] | None:
        """The entry for ``manifest_path`` if it was written for a file with this ``stat``
        (and has the shape this plughost writes); ``None`` otherwise."""
        entry = self._entries.get(manifest_path)
        if type(entry) is not list or len(entry) != 8 or entry[:5] != _signature(stat):
            return None
        return entry

    def _rebuilt(self, entry: list[Any]) -> Manifest | None:
        try:
            return manifest_from_own_dict(entry[7])
        except (KeyError, TypeError, ValueError, AttributeError):  # not this model's shape
            return None

    def settled(self, manifest_path: str, stat: os.stat_result) -> Manifest | None:
        """The manifest of a settled entry whose file still has this ``stat`` (the file need
        not be read); ``None`` otherwise: read the file and ask :meth:`get`."""
        entry = self._matching(manifest_path, stat)
        if entry is None or entry[6] is not True:
            return None
        return self._rebuilt(entry)

    def get(self, manifest_path: str, stat: os.stat_result, content: bytes) -> Manifest | None:
        """The manifest validated from ``content``, if this entry was written from exactly
        these bytes at this path, with this ``stat``. The entry settles if its file is old
        enough (see the class)."""
        entry = self._matching(manifest_path, stat)
        if entry is None or entry[5] != _digest(content):
            return None
        manifest = self._rebuilt(entry)
        if manifest is not None and entry[6] is not True and self._settles(stat):
            entry[6] = True
            self._dirty = True
        return manifest

    def put(self, manifest_path: str, stat: os.stat_result, content: bytes,
            manifest: Manifest) -> None:
        """Remember ``manifest``, validated from ``content`` (the bytes read from the file at
        ``manifest_path`` after ``stat`` was taken)."""
        self._entries[manifest_path] = [*_signature(stat), _digest(content),
                                        self._settles(stat), manifest.to_dict()]
        self._dirty = True

    def prune(self, seen: set[str]) -> None:
        for key in [k for k in self._entries if k not in seen]:
            del self._entries[key]
            self._dirty = True

    def save(self) -> None:
        """Write atomically (temp file + rename) if anything changed."""
        if not self._dirty:
            return
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(self._entries, separators=(",", ":")).encode()
        codec = _ORJSON if orjson_reads_back(self._entries) else _JSON
        payload = _header(codec, body) + b"\n" + body
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".discovery-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._dirty = False


def _read_whole(path: str) -> bytes:
    """The whole file, read with the system calls alone (no buffered file object: a tenth of
    what a small discovery spends before its first plugin): one read of up to
    :data:`_FIRST_READ` bytes, which is the whole of a small file (a read of a regular file
    shorter than asked ends at its end) without asking its size first, and for a bigger one a
    read of the rest of its size, then on to its end (it may have grown)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        data = os.read(fd, _FIRST_READ)
        if len(data) < _FIRST_READ:
            return data
        chunks = [data, os.read(fd, max(os.fstat(fd).st_size - _FIRST_READ, 0) + 1)]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_FIRST_READ: Final = 1 << 16  # the cache of about 150 plugins


def _signature(stat: os.stat_result) -> list[int]:
    """What a cache entry records of its file's ``stat``, first in the entry, in this order."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _digest(content: bytes) -> str:
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def _header(codec: bytes, body: bytes | memoryview) -> bytes:
    """The cache file's first line for ``body``, the entries as written: the format, the
    plughost version, the codec that reads the entries as written (``orjson`` when it reads
    every number in them as ``json`` does, see :func:`~plughost.core.wire.orjson_reads_back`;
    ``json`` otherwise: decided once, when the file is written, not at each read) and the
    CRC-32 of ``body`` continued from the codec's name's, in hexadecimal (compared as bytes
    when read)."""
    return b"%s%s %08x" % (_HEAD, codec, zlib.crc32(body, zlib.crc32(codec)))


def _load_entries(body: bytes | memoryview, *, fast: bool) -> Any:
    """The entries as the standard library's ``json`` reads them; by orjson (twice as fast)
    where the ``fast`` extra installed it and ``fast`` says it reads them alike (the file's
    codec). orjson refuses some of what ``json`` alone reads right (a lone surrogate in a
    manifest's text, say): ``json`` reads that then."""
    if fast:
        # No orjson (the extra is not installed), or text it refuses (its JSONDecodeError
        # is a ValueError): json reads it.
        with contextlib.suppress(ImportError, ValueError):
            import orjson

            return orjson.loads(body)
    return json.loads(bytes(body))


def _manifest_file(folder: Path) -> Path | None:
    for name in MANIFEST_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _manifest_stat(folder: str) -> tuple[str, os.stat_result] | None:
    """The first manifest file in ``folder`` and its stat, with one ``stat`` call per name tried.

    (A folder holding both files is refused by ``load_manifest`` when it is parsed; a cache hit
    does not look for the second name, which keeps discovery at one system call per plugin.)
    """
    for name in MANIFEST_FILES:
        path = os.path.join(folder, name)
        try:
            stat = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat_module.S_ISDIR(stat.st_mode):
            return path, stat
    return None


_FIRST: Final = MANIFEST_FILES[0]
_BY_NAME: Final = operator.attrgetter("name")
_FORMATS: Final = {name: name.rpartition(".")[2] for name in MANIFEST_FILES}


def _folder_manifest(location: str, entry: os.DirEntry[str] | None
                     ) -> tuple[str, os.stat_result] | None:
    """:func:`_manifest_stat` for ``location``, or ``None`` when ``entry`` (the directory entry
    it was listed as) is not a folder: ``plugin.toml``'s ``stat`` alone in the usual case, which
    also tells that the entry is a folder (the entry's own ``stat``, through a link, is saved).
    """
    if entry is not None:
        path = location + os.sep + _FIRST
        # Not a folder, no plugin.toml, or an error: asked again the general way below.
        try:
            stat: os.stat_result | None = os.stat(path)
        except OSError:
            stat = None
        if stat is not None and stat_module.S_ISREG(stat.st_mode):
            return path, stat
        if not entry.is_dir():
            return None
    return _manifest_stat(location)


def _plugin_folders(directory: Path
                    ) -> Iterator[tuple[str, Path, os.DirEntry[str] | None]]:
    """The candidate plugin folders in ``directory`` (or ``directory`` itself if it is one),
    sorted, as (path as a string, path as a ``Path``, the directory entry or ``None`` for
    ``directory`` itself). Entries are not checked to be folders here (see
    :func:`_folder_manifest`), and ``directory`` is asked whether it is a plugin folder itself
    only when it lists a manifest name. The ``Path`` is built from ``directory``'s by adding
    the name, without parsing each folder's whole path again."""
    text = os.fspath(directory)
    try:
        entries = sorted(os.scandir(text), key=_BY_NAME)
    except FileNotFoundError:
        logger.info("plugin directory %s does not exist; nothing to discover there", text)
        return
    base = directory if isinstance(directory, Path) else Path(directory)
    # (lowercased: on a case-insensitive file system Plugin.toml is plugin.toml to stat)
    if (any(e.name.lower() in MANIFEST_FILES for e in entries)
            and _manifest_stat(text) is not None):
        yield text, base, None
        return
    # ``base / name`` parses ``name`` as a path (a quarter of what a cached plugin costs to
    # list); a directory entry's name is one component, which CPython's pathlib joins
    # without parsing where it has the (private) method for it, as its own glob does.
    child = getattr(base, "_make_child_relpath", None) or base.__truediv__
    for entry in entries:
        name = entry.name
        if name.startswith((".", "_")):
            continue
        yield entry.path, child(name), entry


def _read_regular(path: str, size: int) -> bytes:
    """At most MAX_MANIFEST_BYTES + 1 bytes of the regular file ``path`` (``size``: its size
    when it was ``stat``-ed; one ``read`` when it has not grown since)."""
    want = MAX_MANIFEST_BYTES + 1
    fd = os.open(path, _READ_FLAGS)
    try:
        data = os.read(fd, want)
        if len(data) < min(size, want):  # shrunk, or a short read: read on to the end
            while len(data) < want:
                more = os.read(fd, want - len(data))
                if not more:
                    break
                data += more
        return data
    finally:
        os.close(fd)


def _load_folder(key: str, stat: os.stat_result, folder: Path,
                 cache: DiscoveryCache | None) -> Manifest:
    """The manifest of the plugin folder ``folder``, whose manifest file ``key`` was found with
    ``stat``: from the cache when its entry is settled or the bytes read now are the ones it
    was validated from, otherwise parsed and validated as
    :func:`~plughost.core.manifest.load_manifest` does.

    :raises PlughostError, OSError: as ``load_manifest`` does.
    """
    if not stat_module.S_ISREG(stat.st_mode):
        return load_manifest(folder)  # a FIFO, a device...: refused there, never opened
    if cache is not None:
        manifest = cache.settled(key, stat)
        if manifest is not None:
            return manifest
    try:
        data = _read_regular(key, stat.st_size)
    except OSError:
        return load_manifest(folder)  # reports it (or reads it, if it was passing)
    if cache is not None:
        manifest = cache.get(key, stat, data)
        if manifest is not None:
            return manifest
    name = os.path.basename(key)
    other = MANIFEST_FILES[1] if name == _FIRST else _FIRST
    text = os.fspath(folder)
    if os.path.isfile(os.path.join(text, other)):
        manifest = load_manifest(folder)  # both names: refused there (manifest.ambiguous)
    else:
        manifest = _load_read(os.path.join(text, name), _FORMATS[name], data)
    if cache is not None:
        cache.put(key, stat, data, manifest)
    return manifest


def discover_directories(
    directories: Iterable[Path], *, cache: DiscoveryCache | None = None
) -> list[Discovered]:
    """Read and validate the manifest of every plugin folder under ``directories``."""
    found: list[Discovered] = []
    seen: set[str] = set()
    if cache is not None:
        cache.begin()
    for directory in directories:
        for location, folder, entry in _plugin_folders(directory):
            hit = _folder_manifest(location, entry)
            if hit is None:
                if entry is None or entry.is_dir():
                    # A folder without a manifest is simply not a plugin; say so at debug level.
                    logger.debug("skipping %s: no %s", location, " or ".join(MANIFEST_FILES))
                continue
            key, stat = hit
            seen.add(key)
            try:
                manifest = _load_folder(key, stat, folder, cache)
            except PlughostError as exc:
                found.append(Discovered(location, "directory", folder, error=exc))
                continue
            except OSError as exc:
                error = ManifestError(
                    [Problem("", "manifest.unreadable", f"cannot read {key}: {exc}")],
                    source=key,
                )
                found.append(Discovered(location, "directory", folder, error=error))
                continue
            found.append(Discovered(location, "directory", folder, manifest=manifest))
    if cache is not None:
        cache.prune(seen)
        cache.save()
    return found


def _entry_point_manifest(ep: metadata.EntryPoint) -> tuple[Manifest, Path | None]:
    """The manifest of an entry-point plugin, without importing its module.

    A ``plugin.toml`` / ``manifest.json`` beside the entry module wins; otherwise a manifest is
    built from the distribution's metadata (id = entry-point name, version = the distribution's).
    """
    module = ep.value.partition(":")[0]
    top = module.split(".")[0]
    spec = find_spec(top)
    if spec is not None and spec.submodule_search_locations:
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        sub = package_dir.joinpath(*module.split(".")[1:])
        for folder in (sub if sub.is_dir() else sub.parent, package_dir):
            manifest_path = _manifest_file(folder)
            if manifest_path is not None:
                data = read_manifest_data(manifest_path)
                data.setdefault("entry", ep.value)
                return manifest_from_dict(data, source=str(manifest_path)), None
    dist = ep.dist
    version = dist.version if dist is not None else "0.0.0"
    summary = (dist.metadata["Summary"] if dist is not None else None) or ""
    data = {
        "id": ep.name,
        "name": ep.name,
        "version": version,
        "description": summary,
        "entry": ep.value,
    }
    return manifest_from_dict(data, source=f"entry point {ep.name}"), None


def discover_entry_points(group: str = ENTRY_POINT_GROUP) -> list[Discovered]:
    """Plugins declared by installed distributions in the ``group`` entry-point group."""
    found: list[Discovered] = []
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        location = f"entry point {ep.name} = {ep.value} ({dist})"
        try:
            manifest, root = _entry_point_manifest(ep)
        except PlughostError as exc:
            found.append(Discovered(location, "entry-point", None, error=exc))
            continue
        except (OSError, ValueError) as exc:
            error = ManifestError(
                [Problem("", "manifest.unreadable", f"{type(exc).__name__}: {exc}")],
                source=location,
            )
            found.append(Discovered(location, "entry-point", None, error=error))
            continue
        found.append(Discovered(location, "entry-point", root, manifest=manifest))
    return found


def discover(
    directories: Iterable[Path],
    *,
    entry_points: bool = False,
    cache: DiscoveryCache | None = None,
) -> list[Discovered]:
    """Everything in ``directories`` and, if asked, the entry-point group."""
    with collector_paused():
        found = discover_directories(directories, cache=cache)
        if entry_points:
            found.extend(discover_entry_points())
    return found
