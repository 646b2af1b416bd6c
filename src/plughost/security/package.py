"""The plugin package format: build it reproducibly, open it safely, check its integrity.

A package is a zip archive holding, at its root, the plugin's manifest (``plugin.toml`` or
``manifest.json``), the plugin's files, and ``PLUGHOST-INTEGRITY.json``: every other file with its
size, SHA-256 and execute bit. A signature (:mod:`plughost.security.signing`) is an extra entry,
``PLUGHOST-SIGNATURE.json``, appended last; it signs the integrity file's digest, so the
integrity file does not list it.

:func:`pack` is reproducible: the same files give the same bytes whatever their timestamps,
owners or the order the file system lists them in (sorted entries, timestamps fixed at
1980-01-01 00:00, permissions 0644 / 0755, no extra fields, deflate level 6).

This module lives in ``security`` rather than ``services``: it is a format and its checks, with
no orchestration across storage or runtimes; the installer (a service) composes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from plughost.core.manifest import (
    MANIFEST_FILES,
    MAX_MANIFEST_BYTES,
    Manifest,
    load_manifest,
    parse_manifest,
)
from plughost.errors import ArchiveError, PackageError
from plughost.security.archive import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    ExpectedFile,
    SafeArchive,
    check_entry_name,
    open_archive,
)

__all__ = [
    "EXCLUDED_DIRS",
    "EXCLUDED_FILES",
    "EXCLUDED_SUFFIXES",
    "INTEGRITY_FILE",
    "INTEGRITY_FORMAT",
    "RESERVED_NAMES",
    "SIGNATURE_FILE",
    "Package",
    "PackageInfo",
    "build_integrity",
    "collect_files",
    "open_package",
    "pack",
    "package_filename",
    "parse_integrity",
    "write_package",
]

logger = logging.getLogger(__name__)

INTEGRITY_FILE = "PLUGHOST-INTEGRITY.json"
SIGNATURE_FILE = "PLUGHOST-SIGNATURE.json"
RESERVED_NAMES = (INTEGRITY_FILE, SIGNATURE_FILE)
INTEGRITY_FORMAT = "plughost-integrity/v1"

EXCLUDED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache",
                           ".pytest_cache", ".ruff_cache"})
EXCLUDED_FILES = frozenset({".DS_Store"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6
_FILE_MODE = 0o644
_EXEC_MODE = 0o755
_MAX_SIGNATURE = 1024 * 1024
_MAX_INTEGRITY = 16 * 1024 * 1024
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file going into a package."""

    name: str
    """Path inside the package, ``/``-separated."""
    data: bytes
    executable: bool


def package_filename(plugin_id: str, version: str) -> str:
    """The conventional file name of a package: ``<id>-<version>.zip``."""
    return f"{plugin_id}-{version}.zip"


# -- integrity file -------------------------------------------------------------------------------

def build_integrity(files: Iterable[tuple[str, ExpectedFile]]) -> bytes:
    """Serialise the integrity file (canonical: sorted keys, two-space indent, final newline)."""
    listing: dict[str, dict[str, Any]] = {}
    for name, f in files:
        item: dict[str, Any] = {"sha256": f.sha256, "size": f.size}
        if f.executable:
            item["executable"] = True
        listing[name] = item
    doc = {"algorithm": "sha256", "files": listing, "format": INTEGRITY_FORMAT}
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PackageError(f"{INTEGRITY_FILE} lists {key!r} twice.",
                               code="package.integrity", details={"entry": key})
        out[key] = value
    return out


def parse_integrity(data: bytes) -> dict[str, ExpectedFile]:
    """Parse and strictly validate an integrity file; ``package.integrity`` when malformed."""

    def bad(why: str) -> PackageError:
        return PackageError(f"{INTEGRITY_FILE} is malformed: {why}. Rebuild the package with "
                            "`plughost pack`.", code="package.integrity")

    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not JSON ({exc})") from None
    except RecursionError:
        raise bad("JSON nested too deeply") from None
    if not isinstance(doc, dict) or set(doc) != {"algorithm", "files", "format"}:
        raise bad("expected exactly the keys 'algorithm', 'files' and 'format'")
    if doc["format"] != INTEGRITY_FORMAT:
        raise bad(f"unknown format {doc['format']!r} (this plughost reads {INTEGRITY_FORMAT!r})")
    if doc["algorithm"] != "sha256":
        raise bad(f"unsupported algorithm {doc['algorithm']!r}")
    if not isinstance(doc["files"], dict):
        raise bad("'files' must be an object")
    out: dict[str, ExpectedFile] = {}
    for name, item in doc["files"].items():
        try:
            check_entry_name(name)
        except ArchiveError:
            raise bad(f"unsafe path {name!r}") from None
        if name.endswith("/") or name in RESERVED_NAMES:
            raise bad(f"{name!r} cannot be listed")
        if not isinstance(item, dict) or not {"sha256", "size"} <= set(item) <= {
                "sha256", "size", "executable"}:
            raise bad(f"entry {name!r} needs 'sha256' and 'size' (and optionally 'executable')")
        size, digest, executable = item["size"], item["sha256"], item.get("executable", False)
        if type(size) is not int or size < 0:
            raise bad(f"entry {name!r} has an invalid size")
        if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
            raise bad(f"entry {name!r} has an invalid sha256 (64 lowercase hex digits)")
        if not isinstance(executable, bool):
            raise bad(f"entry {name!r} has a non-boolean 'executable'")
        out[name] = ExpectedFile(size=size, sha256=digest, executable=executable)
    return out


# -- building -------------------------------------------------------------------------------------

def collect_files(src: Path, *, exclude: Iterable[Path] = ()) -> list[SourceFile]:
    """Read the files of plugin folder ``src`` that go into its package, sorted by path.

    Skips :data:`EXCLUDED_DIRS`, :data:`EXCLUDED_FILES`, files ending in
    :data:`EXCLUDED_SUFFIXES`, and the paths in ``exclude``. Refuses symbolic links
    (``package.symlink``), anything but regular files and directories (``package.special``),
    the reserved names (``package.reserved``) and unsafe names (``package.path``).
    """
    src = Path(src)
    skip = {os.path.realpath(p) for p in exclude}
    files: list[SourceFile] = []

    def walk(directory: Path, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        with os.scandir(directory) as it:
            items = sorted(it, key=lambda e: e.name)
        for item in items:
            yield prefix + item.name, item

    stack = [(src, "")]
    while stack:
        directory, prefix = stack.pop()
        for rel, item in walk(directory, prefix):
            if item.is_symlink():
                raise PackageError(
                    f"{rel!r} in {src} is a symbolic link. Packages never contain links: "
                    "replace it with the file it points to, or remove it.",
                    code="package.symlink", details={"path": rel},
                )
            if item.is_dir(follow_symlinks=False):
                if item.name not in EXCLUDED_DIRS:
                    stack.append((Path(item.path), rel + "/"))
                continue
            if (item.name in EXCLUDED_FILES or item.name.endswith(EXCLUDED_SUFFIXES)
                    or os.path.realpath(item.path) in skip):
                continue
            st = item.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise PackageError(f"{rel!r} in {src} is not a regular file (a device, FIFO or "
                                   "socket). Remove it from the plugin folder.",
                                   code="package.special", details={"path": rel})
            if rel in RESERVED_NAMES:
                raise PackageError(f"{rel!r} is reserved for plughost's own use; remove it from "
                                   f"{src} (pack writes it).", code="package.reserved",
                                   details={"path": rel})
            try:
                check_entry_name(rel)
            except ArchiveError as exc:
                raise PackageError(f"{rel!r} cannot go into a package: {exc.message}",
                                   code="package.path", details={"path": rel}) from None
            with open(item.path, "rb") as fh:
                data = fh.read()
            files.append(SourceFile(rel, data, bool(st.st_mode & stat.S_IXUSR)))
    files.sort(key=lambda f: f.name)
    return files


def _zipinfo(name: str, executable: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_EPOCH)
    info.create_system = 3  # Unix, so the permission bits below are meaningful
    info.external_attr = (stat.S_IFREG | (_EXEC_MODE if executable else _FILE_MODE)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_package(
    out: Path, files: Iterable[SourceFile], *, compresslevel: int = COMPRESS_LEVEL
) -> None:
    """Write ``files`` (in the given order) as a deterministic zip at ``out``."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.writestr(_zipinfo(f.name, f.executable), f.data, compresslevel=compresslevel)


def _digest_listing(files: Iterable[SourceFile]) -> list[tuple[str, ExpectedFile]]:
    return [(f.name, ExpectedFile(len(f.data), hashlib.sha256(f.data).hexdigest(), f.executable))
            for f in files]


def _resolve_output(out: Path | None, filename: str) -> Path:
    if out is None:
        return Path.cwd() / filename
    out = Path(out)
    if out.is_dir():
        return out / filename
    if not out.parent.is_dir():
        raise PackageError(f"Cannot write {out}: the folder {out.parent} does not exist.",
                           code="package.output")
    return out


def _replace_atomically(tmp: Path, dest: Path) -> None:
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)


def pack(
    src: Path | str,
    out: Path | str | None = None,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    compresslevel: int = COMPRESS_LEVEL,
) -> Path:
    """Build the package of plugin folder ``src``; return its path.

    :param out: a file path, or an existing folder to write ``<id>-<version>.zip`` into;
        default: ``<id>-<version>.zip`` in the current directory. If it lies inside ``src`` it
        is left out of the package.
    :param limits: the built package is opened and checked exactly as an installer would,
        so ``pack`` never produces a package ``install`` refuses.
    :raises PackageError: the folder cannot be packed (links, reserved names, ...).
    :raises ManifestError: the manifest is missing or invalid.
    :raises ArchiveError: the result breaks an archive rule (e.g. a nested archive, names equal
        up to case); the message names the file.
    """
    src = Path(src)
    if not src.is_dir():
        raise PackageError(f"{src} is not a folder. Pass the plugin's folder to pack.",
                           code="package.source")
    manifest = load_manifest(src)
    dest = _resolve_output(Path(out) if out is not None else None,
                           package_filename(manifest.id, str(manifest.version)))
    files = collect_files(src, exclude=[dest])
    if not any(f.name in MANIFEST_FILES for f in files):
        raise PackageError(f"{src} has no {' or '.join(MANIFEST_FILES)} at its root.",
                           code="package.manifest")
    listing = _digest_listing(files)
    integrity = build_integrity(listing)
    tmp = dest.parent / f".{dest.name}.tmp-{secrets.token_hex(6)}"
    try:
        write_package(tmp, [*files, SourceFile(INTEGRITY_FILE, integrity, False)],
                      compresslevel=compresslevel)
        try:
            with open_archive(tmp, limits) as ar:
                ar.check(expected=dict(listing), exempt=RESERVED_NAMES)
        except ArchiveError as exc:
            entry = exc.details.get("entry")
            where = f" Fix or remove {src / entry} and pack again." if entry else ""
            raise ArchiveError(f"The package would be refused at install: {exc.message}{where}",
                               code=exc.code, details=exc.details) from None
        _replace_atomically(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("packed %s %s into %s (%d files)", manifest.id, manifest.version, dest,
                len(files))
    return dest


# -- reading --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PackageInfo:
    """What a package says about itself, read without unpacking its files."""

    path: Path
    sha256: str
    """SHA-256 of the whole package file."""
    size: int
    plugin_id: str
    version: str
    manifest_name: str
    manifest: Manifest
    integrity: Mapping[str, ExpectedFile]
    integrity_bytes: bytes
    integrity_sha256: str
    signature_bytes: bytes | None
    """Content of ``PLUGHOST-SIGNATURE.json``, or ``None`` when unsigned."""


class Package:
    """An open, structurally checked package. Use :func:`open_package`; close it (or ``with``)."""

    def __init__(self, archive: SafeArchive, info: PackageInfo) -> None:
        self.archive = archive
        self.info = info

    def check_integrity(
        self, *, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, str]:
        """Stream every file and compare it with the integrity file (``archive.integrity``)."""
        return self.archive.check(expected=self.info.integrity, exempt=RESERVED_NAMES,
                                  progress=progress)

    def extract(
        self, dest: Path, *, progress: Callable[[int, int], None] | None = None
    ) -> Path:
        """Extract into the new directory ``dest``, checking integrity as files stream."""
        return self.archive.extract(dest, expected=self.info.integrity, exempt=RESERVED_NAMES,
                                    progress=progress)

    def files(self) -> list[SourceFile]:
        """Every file's content (checked), in archive order; used to re-write when signing."""
        return [SourceFile(e.name, self.archive.read(e.name), e.executable)
                for e in self.archive.entries if not e.is_dir]

    def close(self) -> None:
        """Close the underlying archive. Idempotent."""
        self.archive.close()

    def __enter__(self) -> Package:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _read_meta(archive: SafeArchive, name: str, cap: int, code: str) -> bytes:
    entry = archive.get(name)
    if entry.size > cap:
        raise PackageError(f"{name} is {entry.size} bytes; at most {cap} are allowed.",
                           code=code, details={"entry": name})
    return archive.read(name, max_size=cap)


def open_package(path: Path | str, limits: ArchiveLimits = DEFAULT_LIMITS) -> Package:
    """Open a package: check the archive's structure and read manifest, integrity and signature.

    File contents are not checked here; call :meth:`Package.check_integrity` or
    :meth:`Package.extract`.
    """
    path = Path(path)
    archive = open_archive(path, limits)
    try:
        present = [n for n in MANIFEST_FILES if n in archive]
        if len(present) > 1:
            raise PackageError(f"{path.name} holds both {' and '.join(present)}; a package "
                               "keeps exactly one manifest at its root.", code="package.manifest")
        manifest_name = present[0] if present else None
        if manifest_name is None:
            nested = [n for n in archive.names() if n.rpartition("/")[2] in MANIFEST_FILES]
            hint = (f" (found {nested[0]!r}: zip the folder's contents, not the folder — or use "
                    "`plughost pack`)") if nested else ""
            raise PackageError(f"{path.name} has no {' or '.join(MANIFEST_FILES)} at its "
                               f"root{hint}.", code="package.manifest")
        # One byte over the manifest limit is enough for parse_manifest to refuse it by name.
        manifest_bytes = _read_meta(archive, manifest_name, MAX_MANIFEST_BYTES + 1,
                                    "package.manifest")
        fmt: Literal["toml", "json"] = "toml" if manifest_name.endswith(".toml") else "json"
        manifest = parse_manifest(manifest_bytes, format=fmt, source=f"{path.name}!{manifest_name}")
        if INTEGRITY_FILE not in archive:
            raise PackageError(f"{path.name} has no {INTEGRITY_FILE}; it was not built by "
                               "`plughost pack`. Rebuild it with `plughost pack DIR`.",
                               code="package.integrity")
        integrity_bytes = _read_meta(archive, INTEGRITY_FILE, _MAX_INTEGRITY, "package.integrity")
        integrity = parse_integrity(integrity_bytes)
        signature = (_read_meta(archive, SIGNATURE_FILE, _MAX_SIGNATURE, "package.signature")
                     if SIGNATURE_FILE in archive else None)
        info = PackageInfo(
            path=path, sha256=archive.sha256, size=archive.size, plugin_id=manifest.id,
            version=str(manifest.version), manifest_name=manifest_name, manifest=manifest,
            integrity=integrity, integrity_bytes=integrity_bytes,
            integrity_sha256=hashlib.sha256(integrity_bytes).hexdigest(),
            signature_bytes=signature,
        )
    except BaseException:
        archive.close()
        raise
    return Package(archive, info)
