"""Safe reading and extraction of zip archives: refuse, never sanitise.

Opening an archive (:func:`open_archive`) checks its *structure* without decompressing
anything: the end-of-central-directory record, every central-directory entry, and the local
header each entry points to (parsed here with :mod:`struct`, because :mod:`zipfile` quietly
trusts the central directory and hides disagreements). Every entry name, type and size is checked,
and the entries must tile the file exactly — no bytes before the first entry, between entries,
or after the end record.

Content is checked while it streams (:meth:`SafeArchive.read`, :meth:`SafeArchive.check`,
:meth:`SafeArchive.extract`): the compression ratio and the unpacked total are measured on the
bytes actually produced, so a bomb is stopped after about ``ratio_threshold_bytes`` of output
whatever its headers claim; sizes and CRCs must match the headers; nested archives are
recognised by their magic bytes; and, when an expected file list is given (the package's
integrity file), every file must be listed with the right size and SHA-256 and every listed file
must be present.

Each refusal raises :class:`~plughost.errors.ArchiveError` with its own code:

=========================  ========================================================================
``archive.path``           absolute path, ``..`` or ``.`` component, backslash, drive letter,
                           empty component, control character, undecodable or ambiguous name
``archive.link``           symbolic link or hard link (Unix mode, reparse point, link extra field)
``archive.special``        device, FIFO, socket or unknown file type
``archive.duplicate``      the same name twice, or one path used as both a file and a directory
``archive.case_collision`` names equal up to case or Unicode (NFC/NFKC) normalisation
``archive.too_many_entries`` more entries than ``max_entries``
``archive.too_large``      more unpacked bytes than ``max_total_size``
``archive.ratio``          compression ratio above ``max_ratio``, measured while streaming
``archive.encrypted``      an encrypted entry (traditional, strong or AES) or encrypted directory
``archive.nested``         an archive inside the archive (zip, tar, gzip, bzip2, xz, 7z, rar, ...)
``archive.prefix_data``    bytes before the first entry (self-extractor stubs, polyglots)
``archive.trailing_data``  bytes after the end-of-central-directory record
``archive.overlap``        two entries share bytes (the overlapping-entry zip bomb)
``archive.header_mismatch`` central directory and local header (or data descriptor) disagree on
                           name, sizes, compression method, CRC or flags
``archive.integrity``      a file absent from the integrity list, a listed file absent from the
                           archive, or a size / SHA-256 / executable-bit mismatch
``archive.unsupported``    ZIP64, multi-disk archives, compression other than stored/deflate
``archive.corrupt``        anything else that is not a well-formed zip (bad CRC, truncated data,
                           data larger than declared, gaps between entries, ...)
``archive.destination``    extraction target already exists or its parent is missing
``archive.missing``        :meth:`SafeArchive.read` of a name the archive does not hold
``archive.unreadable``     the archive file cannot be opened (missing, a directory, no access)
=========================  ========================================================================
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mmap
import os
import re
import secrets
import shutil
import stat
import struct
import unicodedata
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from plughost.errors import ArchiveError, ConfigurationError

__all__ = [
    "DEFAULT_LIMITS",
    "ArchiveEntry",
    "ArchiveLimits",
    "ExpectedFile",
    "SafeArchive",
    "check_entry_name",
    "detect_archive_magic",
    "open_archive",
    "remove_tree",
]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024

_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_EOCD_SIG = b"PK\x05\x06"
_DESCRIPTOR_SIG = b"PK\x07\x08"

# signature, version needed, flags, method, time, date, crc, csize, usize, name len, extra len
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
# signature, version made by, version needed, flags, method, time, date, crc, csize, usize,
# name len, extra len, comment len, disk start, internal attrs, external attrs, local offset
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
# signature, disk, cd disk, entries on disk, entries total, cd size, cd offset, comment len
_EOCD = struct.Struct("<4sHHHHIIH")

_STORED = 0
_DEFLATED = 8
_AES_METHOD = 99

_FLAG_ENCRYPTED = 0x0001
_FLAG_DESCRIPTOR = 0x0008
_FLAG_STRONG_ENCRYPTION = 0x0040
_FLAG_UTF8 = 0x0800
_FLAG_MASKED_DIRECTORY = 0x2000
# Flags that change how an entry is read: local and central copies must agree on these.
_FLAGS_COMPARED = _FLAG_ENCRYPTED | _FLAG_DESCRIPTOR | _FLAG_STRONG_ENCRYPTION | _FLAG_UTF8

_SYSTEM_UNIX = 3
_SYSTEM_OSX = 19
_DOS_REPARSE_POINT = 0x400  # Windows FILE_ATTRIBUTE_REPARSE_POINT: a symlink or junction

_EXTRA_ZIP64 = 0x0001
_EXTRA_PKWARE_UNIX = 0x000D  # variable part holds a symlink or hard-link target

_IN_CHUNK = 64 * 1024
_OUT_CHUNK = 256 * 1024
_MAGIC_HEAD = 512  # enough bytes to see a tar header's "ustar" at offset 257

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# (offset, magic, format) — leading bytes that identify an archive or compressed stream.
_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip (empty)"),
    (0, b"PK\x07\x08", "zip (spanned)"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"\x1f\x9d", "compress (.Z)"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "rar"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
    (0, b"\x04\x22\x4d\x18", "lz4"),
    (0, b"MSCF\x00\x00\x00\x00", "cab"),
    (0, b"LZIP", "lzip"),
    (0, b"!<arch>\n", "ar"),
    (0, b"xar!", "xar"),
    (0, b"070701", "cpio"),
    (0, b"070702", "cpio"),
    (0, b"070707", "cpio"),
    (257, b"ustar", "tar"),
)
_BZIP2 = re.compile(rb"^BZh[1-9]1AY&SY")


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Limits applied to every archive. All sizes are in bytes.

    :param max_entries: most entries (files and directories) an archive may hold.
    :param max_total_size: most bytes all entries may unpack to, counted on the bytes actually
        produced (and checked against the declared sizes before anything is decompressed).
    :param max_ratio: highest compression ratio (unpacked / packed) allowed, measured while
        streaming for each entry and for the archive as a whole.
    :param ratio_threshold_bytes: the ratio is enforced once an entry (or the archive) has
        produced this many bytes; below it a ratio means nothing (a 4 KiB file of spaces
        compresses 200:1) and a bomb has done no harm yet.
    :param refuse_nested: refuse entries whose content starts with an archive's magic bytes.
    """

    max_entries: int = 10_000
    max_total_size: int = 200 * MiB
    max_ratio: float = 100.0
    ratio_threshold_bytes: int = 1 * MiB
    refuse_nested: bool = True

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_total_size", "ratio_threshold_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigurationError(
                    f"ArchiveLimits.{name} must be a non-negative integer, got {value!r}."
                )
        if not self.max_ratio >= 1:
            raise ConfigurationError(
                f"ArchiveLimits.max_ratio must be at least 1, got {self.max_ratio!r}."
            )


DEFAULT_LIMITS = ArchiveLimits()


@dataclass(frozen=True, slots=True)
class ExpectedFile:
    """What the integrity list says about one file.

    :param size: exact size in bytes.
    :param sha256: lowercase hex SHA-256 of the content.
    :param executable: whether the entry must (True) or must not (False) carry an execute bit;
        ``None`` leaves it unchecked.
    """

    size: int
    sha256: str
    executable: bool | None = None


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One checked entry of a :class:`SafeArchive`."""

    name: str
    """Path inside the archive, ``/``-separated, without a trailing ``/`` for directories."""
    is_dir: bool
    size: int
    """Unpacked size as declared by the (agreeing) headers."""
    compressed_size: int
    crc: int
    method: int
    mode: int | None
    """Unix permission bits when the archive records them, else ``None``."""
    header_offset: int
    data_offset: int
    end_offset: int
    """First byte after the entry's data (and data descriptor, if any)."""

    @property
    def executable(self) -> bool:
        """True when the recorded Unix mode has any execute bit."""
        return self.mode is not None and bool(self.mode & 0o111)


def _refuse(code: str, message: str, *, entry: str | None = None, **details: Any) -> ArchiveError:
    if entry is not None:
        details["entry"] = entry
    return ArchiveError(message, code=code, details=details)


def check_entry_name(name: str) -> list[str]:
    """Check an entry path (``/``-separated, directories may end in ``/``); return its parts.

    Refuses with ``archive.path``: empty names, absolute paths, backslashes, drive letters,
    control characters, empty, ``.`` or ``..`` components, components over 255 bytes.
    """
    shown = name.encode("unicode_escape").decode("ascii")

    def bad(why: str) -> ArchiveError:
        return _refuse(
            "archive.path",
            f"Entry {shown!r} has an unsafe path ({why}). Archives are refused, not repaired: "
            "rebuild the package with `plughost pack`.",
            entry=name,
        )

    if not name or name == "/":
        raise bad("empty name")
    if _CONTROL.search(name):
        raise bad("control character in the name")
    if "\\" in name:
        raise bad("backslash; zip paths use '/'")
    if name.startswith("/"):
        raise bad("absolute path")
    if _DRIVE.match(name):
        raise bad("drive letter")
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    for part in parts:
        if part == "":
            raise bad("empty path component ('//')")
        if part in (".", ".."):
            raise bad(f"{part!r} component")
        if len(part.encode("utf-8")) > 255:
            raise bad("a path component longer than 255 bytes")
    if len(name.encode("utf-8")) > 4096:
        raise bad("longer than 4096 bytes")
    return parts


def detect_archive_magic(head: bytes) -> str | None:
    """Return the archive format whose magic bytes ``head`` starts with, else ``None``."""
    for offset, magic, fmt in _MAGICS:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if _BZIP2.match(head):
        return "bzip2"
    return None


def _fold(path: str) -> str:
    """Key under which two names count as the same on a case-insensitive, normalising FS."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", path).casefold())


def _iter_extra(extra: bytes, *, entry: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise _refuse("archive.corrupt", f"Entry {entry!r} has a truncated extra field.",
                          entry=entry)
        tag, size = struct.unpack_from("<HH", extra, pos)
        pos += 4
        if pos + size > len(extra):
            raise _refuse("archive.corrupt", f"Entry {entry!r} has an extra field overrunning "
                          "its header.", entry=entry)
        yield tag, extra[pos : pos + size]
        pos += size


def _check_extra(extra: bytes, *, entry: str) -> None:
    for tag, data in _iter_extra(extra, entry=entry):
        # PKWARE's Unix field: atime, mtime, uid, gid (12 bytes), then the link target of a
        # symbolic or hard link. Any target at all makes the entry a link.
        if tag == _EXTRA_PKWARE_UNIX and len(data) > 12:
            raise _refuse("archive.link", f"Entry {entry!r} is a link (its Unix extra field "
                          "names a link target). Links are refused: ship the file itself.",
                          entry=entry)


class _Budget:
    """Running totals of one streaming pass, shared by all its entries."""

    __slots__ = ("limits", "total_in", "total_out")

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.total_in = 0
        self.total_out = 0


class SafeArchive:
    """A zip archive whose structure has been checked; content is checked as it streams.

    Use :func:`open_archive`. The archive is memory-mapped, so checking and extracting read the
    same bytes even if the file is replaced meanwhile. Close it (or use ``with``).
    """

    def __init__(self, path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
        self.path = Path(path)
        self.limits = limits
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - owned, closed in close()
        except OSError as exc:
            raise _refuse("archive.unreadable", f"Cannot read {self.path}: {exc.strerror}. "
                          "Check the path and its permissions.") from None
        self._mm: mmap.mmap | None = None
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            if self.size == 0:
                raise _refuse("archive.corrupt", f"{self.path.name} is empty, not a zip archive.")
            self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.entries: tuple[ArchiveEntry, ...] = self._parse()
        except BaseException:
            self.close()
            raise
        self._by_name = {e.name: e for e in self.entries}
        self._sha256: str | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Release the mapping and the file. Idempotent."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._file.close()

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def _buf(self) -> mmap.mmap:
        if self._mm is None:
            raise ValueError(f"The archive {self.path} is closed.")
        return self._mm

    # -- structure ------------------------------------------------------------------------
    def _find_eocd(self) -> tuple[int, tuple[Any, ...]]:
        buf = self._buf
        start = max(0, self.size - (_EOCD.size + 0xFFFF))
        pos = buf.rfind(_EOCD_SIG, start)
        while pos >= 0:
            if pos + _EOCD.size <= self.size:
                rec = _EOCD.unpack_from(buf, pos)
                end = pos + _EOCD.size + rec[7]
                if end <= self.size and rec[5] <= pos:
                    if end < self.size:
                        raise _refuse(
                            "archive.trailing_data",
                            f"{self.path.name} has {self.size - end} byte(s) after the end of the "
                            "zip archive. Refused: data outside the archive could be read "
                            "differently by another tool.", extra_bytes=self.size - end,
                        )
                    return pos, rec
            pos = buf.rfind(_EOCD_SIG, start, pos)
        raise _refuse("archive.corrupt", f"{self.path.name} is not a zip archive (no end of "
                      "central directory record found).")

    def _parse(self) -> tuple[ArchiveEntry, ...]:
        buf = self._buf
        limits = self.limits
        eocd_pos, rec = self._find_eocd()
        _, disk, cd_disk, on_disk, total, cd_size, cd_offset, _ = rec
        if 0xFFFF in (on_disk, total) or 0xFFFFFFFF in (cd_size, cd_offset):
            raise _refuse("archive.unsupported", "ZIP64 archives are not supported: plugin "
                          "packages are far below 4 GiB. Rebuild with `plughost pack`.")
        if disk != 0 or cd_disk != 0 or on_disk != total:
            raise _refuse("archive.unsupported", "Multi-disk (spanned) zip archives are not "
                          "supported.")
        if total > limits.max_entries:
            raise _refuse("archive.too_many_entries", f"The archive has {total} entries; the "
                          f"limit is {limits.max_entries}.", entries=total,
                          limit=limits.max_entries)
        expected_cd = eocd_pos - cd_size
        if cd_offset < expected_cd:
            raise _refuse("archive.prefix_data", f"{self.path.name} has "
                          f"{expected_cd - cd_offset} byte(s) before the zip archive (a "
                          "self-extractor stub or a polyglot file). Refused.",
                          extra_bytes=expected_cd - cd_offset)
        if cd_offset > expected_cd:
            raise _refuse("archive.corrupt", "The central directory does not end where the end "
                          "record says it does.")

        entries: list[ArchiveEntry] = []
        seen: dict[str, bool] = {}  # path -> is_dir, including implied parent directories
        explicit: set[str] = set()
        folded: dict[str, str] = {}
        declared_total = 0
        pos = cd_offset
        for _ in range(total):
            if pos + _CENTRAL.size > eocd_pos or buf[pos : pos + 4] != _CENTRAL_SIG:
                raise _refuse("archive.corrupt", "The central directory is truncated or has a "
                              "bad entry signature.")
            (_, made_by, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen,
             disk_start, _, ext_attr, offset) = _CENTRAL.unpack_from(buf, pos)
            name_bytes = bytes(buf[pos + _CENTRAL.size : pos + _CENTRAL.size + nlen])
            extra = bytes(buf[pos + _CENTRAL.size + nlen : pos + _CENTRAL.size + nlen + elen])
            pos += _CENTRAL.size + nlen + elen + clen
            if pos > eocd_pos:
                raise _refuse("archive.corrupt", "A central directory entry overruns the "
                              "directory.")
            name = self._decode_name(name_bytes, flags)
            if (flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_MASKED_DIRECTORY)
                    or method == _AES_METHOD):
                raise _refuse("archive.encrypted", f"Entry {name!r} is encrypted. Encrypted "
                              "archives cannot be checked and are refused.", entry=name)
            if 0xFFFFFFFF in (csize, usize, offset) or disk_start == 0xFFFF:
                raise _refuse("archive.unsupported", f"Entry {name!r} needs ZIP64, which is "
                              "not supported.", entry=name)
            if disk_start != 0:
                raise _refuse("archive.unsupported", "Multi-disk zip archives are not "
                              "supported.", entry=name)
            if method not in (_STORED, _DEFLATED):
                raise _refuse("archive.unsupported", f"Entry {name!r} uses compression method "
                              f"{method}; only stored (0) and deflate (8) are supported.",
                              entry=name, method=method)
            parts = check_entry_name(name)
            is_dir = name.endswith("/")
            mode = self._check_type(name, made_by, ext_attr, is_dir)
            _check_extra(extra, entry=name)
            path = "/".join(parts)
            if is_dir and usize:
                raise _refuse("archive.corrupt", f"Directory entry {name!r} has content.",
                              entry=name)
            # Duplicates: the same path twice, or one path both a file and a directory.
            if path in explicit:
                raise _refuse("archive.duplicate", f"The archive holds {path!r} twice.",
                              entry=path)
            explicit.add(path)
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                sub_is_dir = is_dir or i < len(parts)
                known = seen.get(sub)
                if known is not None and known != sub_is_dir:
                    raise _refuse("archive.duplicate", f"{sub!r} is both a file and a directory "
                                  "in the archive.", entry=sub)
                seen[sub] = sub_is_dir
                key = _fold(sub)
                other = folded.setdefault(key, sub)
                if other != sub:
                    raise _refuse(
                        "archive.case_collision",
                        f"{other!r} and {sub!r} differ only in case or Unicode normalisation; "
                        "they would overwrite each other on macOS and Windows. Rename one.",
                        entry=sub, other=other,
                    )
            declared_total += usize
            if declared_total > limits.max_total_size:
                raise _refuse("archive.too_large", f"The archive unpacks to more than "
                              f"{limits.max_total_size} bytes (limit).",
                              limit=limits.max_total_size)
            entries.append(self._check_local(
                name=name, path=path, is_dir=is_dir, flags=flags, method=method, crc=crc,
                csize=csize, usize=usize, offset=offset, mode=mode, name_bytes=name_bytes,
                cd_offset=cd_offset,
            ))
        if pos != eocd_pos:
            raise _refuse("archive.corrupt", "The central directory holds more data than its "
                          "entry count says.")

        # The entries must tile the file from byte 0 to the central directory exactly.
        expected = 0
        for entry in sorted(entries, key=lambda e: e.header_offset):
            if entry.header_offset > expected:
                if expected == 0:
                    raise _refuse("archive.prefix_data", f"{self.path.name} has "
                                  f"{entry.header_offset} byte(s) before its first entry. "
                                  "Refused.", extra_bytes=entry.header_offset)
                raise _refuse("archive.corrupt", f"There are {entry.header_offset - expected} "
                              f"unaccounted byte(s) before entry {entry.name!r}.",
                              entry=entry.name)
            if entry.header_offset < expected:
                raise _refuse("archive.overlap", f"Entry {entry.name!r} overlaps the entry "
                              "before it (an overlapping-entries zip bomb?).", entry=entry.name)
            expected = entry.end_offset
        if expected != cd_offset:
            if not entries:
                raise _refuse("archive.prefix_data", f"{self.path.name} has {cd_offset} "
                              "byte(s) before the archive.", extra_bytes=cd_offset)
            raise _refuse("archive.corrupt", f"There are {cd_offset - expected} unaccounted "
                          "byte(s) before the central directory.")
        return tuple(sorted(entries, key=lambda e: e.header_offset))

    def _decode_name(self, raw: bytes, flags: int) -> str:
        if flags & _FLAG_UTF8:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _refuse("archive.path", f"Entry name {raw!r} is flagged UTF-8 but is not "
                              "valid UTF-8.", entry=raw.decode("utf-8", "replace")) from None
        if raw.isascii():
            return raw.decode("ascii")
        raise _refuse("archive.path", f"Entry name {raw!r} is not ASCII and lacks the UTF-8 "
                      "flag, so its encoding is ambiguous. Rebuild with a tool that marks UTF-8 "
                      "names (`plughost pack` does).", entry=raw.decode("utf-8", "replace"))

    def _check_type(self, name: str, made_by: int, ext_attr: int, is_dir: bool) -> int | None:
        if ext_attr & _DOS_REPARSE_POINT:
            raise _refuse("archive.link", f"Entry {name!r} is a Windows reparse point (a link). "
                          "Links are refused: ship the file itself.", entry=name)
        if made_by >> 8 not in (_SYSTEM_UNIX, _SYSTEM_OSX):
            return None
        mode = ext_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise _refuse("archive.link", f"Entry {name!r} is a symbolic link. Links are "
                          "refused: ship the file itself.", entry=name)
        if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            what = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                    stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}[kind]
            raise _refuse("archive.special", f"Entry {name!r} is {what}. Only regular files "
                          "and directories are allowed.", entry=name)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse("archive.special", f"Entry {name!r} has an unknown file type "
                          f"({oct(kind)}).", entry=name)
        if kind == stat.S_IFDIR and not is_dir:
            raise _refuse("archive.corrupt", f"Entry {name!r} is a directory without a "
                          "trailing '/'.", entry=name)
        if kind == stat.S_IFREG and is_dir:
            raise _refuse("archive.corrupt", f"Entry {name!r} ends in '/' but is a regular "
                          "file.", entry=name)
        return stat.S_IMODE(mode) if kind else None

    def _check_local(
        self, *, name: str, path: str, is_dir: bool, flags: int, method: int, crc: int,
        csize: int, usize: int, offset: int, mode: int | None, name_bytes: bytes,
        cd_offset: int,
    ) -> ArchiveEntry:
        buf = self._buf

        def mismatch(what: str) -> ArchiveError:
            return _refuse("archive.header_mismatch", f"Entry {name!r}: the central directory "
                           f"and the local header disagree on {what}. Refused: tools would "
                           "read different files.", entry=name, field=what)

        if offset + _LOCAL.size > cd_offset or buf[offset : offset + 4] != _LOCAL_SIG:
            raise _refuse("archive.corrupt", f"Entry {name!r} points to no local header.",
                          entry=name)
        (_, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, lnlen,
         lelen) = _LOCAL.unpack_from(buf, offset)
        lname = bytes(buf[offset + _LOCAL.size : offset + _LOCAL.size + lnlen])
        lextra = bytes(buf[offset + _LOCAL.size + lnlen : offset + _LOCAL.size + lnlen + lelen])
        if lname != name_bytes:
            raise mismatch("the name")
        if (lflags ^ flags) & _FLAGS_COMPARED:
            if (lflags ^ flags) & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
                raise _refuse("archive.encrypted", f"Entry {name!r} is encrypted (local "
                              "header).", entry=name)
            raise mismatch("the flags")
        if lmethod != method:
            raise mismatch("the compression method")
        _check_extra(lextra, entry=name)
        data_offset = offset + _LOCAL.size + lnlen + lelen
        data_end = data_offset + csize
        if data_end > cd_offset:
            raise _refuse("archive.corrupt", f"Entry {name!r} runs past the central "
                          "directory (truncated archive?).", entry=name)
        end = data_end
        if flags & _FLAG_DESCRIPTOR:
            # Local values may be zero (written before the data was known); non-zero must agree.
            for local, central, what in ((lcrc, crc, "the CRC"), (lcsize, csize,
                                         "the compressed size"), (lusize, usize, "the size")):
                if local and local != central:
                    raise mismatch(what)
            end = self._check_descriptor(name, data_end, cd_offset, crc, csize, usize)
        else:
            if lcrc != crc:
                raise mismatch("the CRC")
            if lcsize != csize:
                raise mismatch("the compressed size")
            if lusize != usize:
                raise mismatch("the size")
        if method == _STORED and csize != usize:
            raise mismatch("the size (a stored entry's sizes must be equal)")
        return ArchiveEntry(
            name=path, is_dir=is_dir, size=usize, compressed_size=csize, crc=crc, method=method,
            mode=mode, header_offset=offset, data_offset=data_offset, end_offset=end,
        )

    def _check_descriptor(
        self, name: str, pos: int, limit: int, crc: int, csize: int, usize: int
    ) -> int:
        buf = self._buf
        candidates = []
        if buf[pos : pos + 4] == _DESCRIPTOR_SIG:
            candidates.append(pos + 4)
        candidates.append(pos)
        for start in candidates:
            if start + 12 <= limit and struct.unpack_from("<III", buf, start) == (crc, csize,
                                                                                 usize):
                return start + 12
        raise _refuse("archive.header_mismatch", f"Entry {name!r}: the data descriptor "
                      "disagrees with the central directory (CRC or sizes).", entry=name,
                      field="data descriptor")

    # -- content --------------------------------------------------------------------------
    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the whole archive file (as mapped when opened)."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self._buf).hexdigest()
        return self._sha256

    def names(self) -> list[str]:
        """Names of the file entries (not directories), in archive order."""
        return [e.name for e in self.entries if not e.is_dir]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> ArchiveEntry:
        """The entry called ``name``; ``archive.missing`` when absent."""
        try:
            return self._by_name[name]
        except KeyError:
            raise _refuse("archive.missing", f"The archive has no entry {name!r}.",
                          entry=name) from None

    def read(self, name: str) -> bytes:
        """Return one file's content, streamed through every content check."""
        entry = self.get(name)
        return b"".join(self._stream(entry, _Budget(self.limits)))

    def _stream(self, entry: ArchiveEntry, budget: _Budget) -> Iterator[bytes]:
        """Yield an entry's content in chunks, enforcing ratio, size, CRC and nesting."""
        if entry.is_dir:
            return
        buf = self._buf
        limits = budget.limits
        start, length = entry.data_offset, entry.compressed_size
        crc = 0
        produced = 0
        consumed = 0
        head = b""
        head_done = not limits.refuse_nested

        def account(out: bytes, now_consumed: int) -> None:
            nonlocal produced, consumed, crc, head, head_done
            budget.total_in += now_consumed - consumed
            consumed = now_consumed
            produced += len(out)
            budget.total_out += len(out)
            if budget.total_out > limits.max_total_size:
                raise _refuse("archive.too_large", f"The archive unpacks to more than "
                              f"{limits.max_total_size} bytes (limit).", entry=entry.name,
                              limit=limits.max_total_size, bytes_out=budget.total_out)
            for out_n, in_n, scope in ((produced, consumed, "entry"),
                                       (budget.total_out, budget.total_in, "archive")):
                if out_n > limits.ratio_threshold_bytes and out_n > limits.max_ratio * max(
                        in_n, 1):
                    raise _refuse(
                        "archive.ratio",
                        f"Entry {entry.name!r} decompresses at more than "
                        f"{limits.max_ratio:g}:1 ({scope} ratio {out_n / max(in_n, 1):.0f}:1 "
                        f"after {out_n} bytes): a decompression bomb? Refused.",
                        entry=entry.name, scope=scope, bytes_out=out_n, bytes_in=in_n,
                    )
            if produced > entry.size:
                raise _refuse("archive.corrupt", f"Entry {entry.name!r} holds more data than "
                              f"its headers declare ({entry.size} bytes).", entry=entry.name)
            crc = zlib.crc32(out, crc)
            if not head_done:
                head = (head + out)[:_MAGIC_HEAD]
                if len(head) >= _MAGIC_HEAD or produced == entry.size:
                    head_done = True
                    fmt = detect_archive_magic(head)
                    if fmt is not None:
                        raise _refuse("archive.nested", f"Entry {entry.name!r} is itself an "
                                      f"archive ({fmt}). Nested archives are refused: ship "
                                      "the files unpacked.", entry=entry.name, format=fmt)

        if entry.method == _STORED:
            for off in range(0, length, _IN_CHUNK):
                out = buf[start + off : start + min(off + _IN_CHUNK, length)]
                account(out, off + len(out))
                yield out
        else:
            d = zlib.decompressobj(-zlib.MAX_WBITS)
            pos = 0
            try:
                while not d.eof:
                    if d.unconsumed_tail:
                        data = d.unconsumed_tail
                    elif pos < length:
                        data = buf[start + pos : start + min(pos + _IN_CHUNK, length)]
                        pos += len(data)
                    else:
                        data = b""
                    out = d.decompress(data, _OUT_CHUNK)
                    if not out and not data:
                        break
                    account(out, pos - len(d.unconsumed_tail))
                    if out:
                        yield out
            except zlib.error as exc:
                raise _refuse("archive.corrupt", f"Entry {entry.name!r} has corrupt deflate "
                              f"data ({exc}).", entry=entry.name) from None
            if not d.eof:
                raise _refuse("archive.corrupt", f"Entry {entry.name!r}: the compressed data "
                              "is truncated.", entry=entry.name)
            if d.unused_data or pos < length:
                raise _refuse("archive.corrupt", f"Entry {entry.name!r} has bytes after the end "
                              "of its compressed data.", entry=entry.name)
        if produced != entry.size:
            raise _refuse("archive.corrupt", f"Entry {entry.name!r} unpacks to {produced} bytes "
                          f"but its headers declare {entry.size}.", entry=entry.name)
        if crc != entry.crc:
            raise _refuse("archive.corrupt", f"Entry {entry.name!r} fails its CRC check "
                          "(damaged or tampered data).", entry=entry.name)

    def _check_listing(
        self, expected: Mapping[str, ExpectedFile] | None, exempt: Collection[str]
    ) -> None:
        if expected is None:
            return
        present = {e.name for e in self.entries if not e.is_dir and e.name not in exempt}
        listed = {n for n in expected if n not in exempt}
        unlisted = sorted(present - listed)
        if unlisted:
            raise _refuse("archive.integrity", f"{len(unlisted)} file(s) in the archive are not "
                          f"in the integrity list: {', '.join(map(repr, unlisted[:5]))}. The "
                          "package was modified after it was built.", entry=unlisted[0],
                          unlisted=unlisted)
        missing = sorted(listed - present)
        if missing:
            raise _refuse("archive.integrity", f"{len(missing)} file(s) in the integrity list "
                          f"are missing from the archive: {', '.join(map(repr, missing[:5]))}.",
                          entry=missing[0], missing=missing)
        for name in sorted(present):
            want = expected[name]
            entry = self._by_name[name]
            if entry.size != want.size:
                raise _refuse("archive.integrity", f"{name!r} is {entry.size} bytes; the "
                              f"integrity list says {want.size}.", entry=name)
            if want.executable is not None and want.executable != entry.executable:
                raise _refuse("archive.integrity", f"{name!r}: the execute bit differs from "
                              "the integrity list.", entry=name)

    @staticmethod
    def _check_digest(entry: ArchiveEntry, digest: str, want: ExpectedFile | None) -> None:
        if want is not None and not hmac.compare_digest(digest, want.sha256.lower()):
            raise _refuse("archive.integrity", f"{entry.name!r} does not match the SHA-256 in "
                          "the integrity list: the file was modified after the package was "
                          "built.", entry=entry.name)

    def check(
        self,
        *,
        expected: Mapping[str, ExpectedFile] | None = None,
        exempt: Collection[str] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, str]:
        """Stream every entry through all content checks without writing anything.

        :param expected: the integrity list; when given, files and list must match exactly.
        :param exempt: names left out of the integrity comparison (the list itself, a
            signature file); they are still checked for everything else.
        :param progress: called with ``(bytes_done, bytes_total)`` as data streams.
        :returns: the hex SHA-256 of every file.
        """
        self._check_listing(expected, exempt)
        budget = _Budget(self.limits)
        total = sum(e.size for e in self.entries)
        digests: dict[str, str] = {}
        for entry in self.entries:
            if entry.is_dir:
                continue
            h = hashlib.sha256()
            for chunk in self._stream(entry, budget):
                h.update(chunk)
                if progress is not None:
                    progress(budget.total_out, total)
            digests[entry.name] = h.hexdigest()
            if entry.name not in exempt:
                self._check_digest(entry, digests[entry.name],
                                   expected.get(entry.name) if expected is not None else None)
        return digests

    def extract(
        self,
        dest: Path,
        *,
        expected: Mapping[str, ExpectedFile] | None = None,
        exempt: Collection[str] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> Path:
        """Extract into the new directory ``dest``, checking everything as it streams.

        ``dest`` must not exist; its parent must. Files are written to a hidden sibling
        directory which is renamed to ``dest`` only when everything passed, so ``dest`` never
        exists half-written. Files end up read-only (0o444, or 0o555 when the archive marks them
        executable) and directories 0o555. On any refusal or error everything written is
        removed and nothing else is touched.

        :returns: ``dest``.
        """
        dest = Path(dest)
        if os.path.lexists(dest):
            raise _refuse("archive.destination", f"{dest} already exists; extraction never "
                          "writes over existing files. Choose a new directory.",
                          destination=str(dest))
        if not dest.parent.is_dir():
            raise _refuse("archive.destination", f"The parent of {dest} does not exist; create "
                          "it first.", destination=str(dest))
        self._check_listing(expected, exempt)
        staging = dest.parent / f".{dest.name}.extract-{secrets.token_hex(6)}"
        os.mkdir(staging, 0o700)
        try:
            dirs = self._extract_into(staging, expected, exempt, progress)
            for d in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
                os.chmod(staging / d, 0o555)
            try:
                os.rename(staging, dest)
            except OSError as exc:
                raise _refuse("archive.destination", f"{dest} appeared while extracting "
                              f"({exc.strerror}); nothing was written there.",
                              destination=str(dest)) from None
            os.chmod(dest, 0o555)
        except BaseException:
            remove_tree(staging)
            raise
        return dest

    def _extract_into(
        self, root: Path, expected: Mapping[str, ExpectedFile] | None,
        exempt: Collection[str], progress: Callable[[int, int], None] | None,
    ) -> set[str]:
        budget = _Budget(self.limits)
        total = sum(e.size for e in self.entries)
        dirs: set[str] = set()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(
            os, "O_CLOEXEC", 0)

        def ensure_dir(rel: str) -> None:
            if not rel or rel in dirs:
                return
            parent = rel.rpartition("/")[0]
            ensure_dir(parent)
            os.mkdir(root / rel, 0o700)
            dirs.add(rel)

        for entry in self.entries:
            if entry.is_dir:
                ensure_dir(entry.name)
                continue
            ensure_dir(entry.name.rpartition("/")[0])
            fd = os.open(root / entry.name, flags, 0o600)
            with open(fd, "wb") as fh:
                h = hashlib.sha256()
                for chunk in self._stream(entry, budget):
                    h.update(chunk)
                    fh.write(chunk)
                    if progress is not None:
                        progress(budget.total_out, total)
                if entry.name not in exempt:
                    self._check_digest(entry, h.hexdigest(),
                                       expected.get(entry.name) if expected is not None else None)
                os.fchmod(fh.fileno(), 0o555 if entry.executable else 0o444)
        return dirs


def open_archive(path: Path | str, limits: ArchiveLimits = DEFAULT_LIMITS) -> SafeArchive:
    """Open ``path`` and check its structure; raise :class:`ArchiveError` on any refusal."""
    return SafeArchive(Path(path), limits)


def remove_tree(path: Path | str) -> None:
    """Remove a directory tree even where it was made read-only (extracted packages are).

    Only permission bits of entries *inside* ``path`` are changed, and only to delete them.
    A missing ``path`` is not an error.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    for current, subdirs, _ in os.walk(path):
        os.chmod(current, 0o700)
        for name in subdirs:
            sub = os.path.join(current, name)
            if not os.path.islink(sub):
                os.chmod(sub, 0o700)
    shutil.rmtree(path)
