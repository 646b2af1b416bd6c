"""The layout of a zip archive, parsed with :mod:`struct` and checked entry by entry.

Part of :mod:`plughost.security.archive`, which documents every refusal code. Reading the
layout — end record, central directory, local headers and data descriptors, entry names and
types — is kept apart from streaming and extracting content. Nothing here decompresses.
"""

from __future__ import annotations

import functools
import re
import stat
import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from plughost.errors import ArchiveError, ConfigurationError

__all__ = [
    "DEFAULT_LIMITS",
    "STORED",
    "ArchiveEntry",
    "ArchiveLimits",
    "ZipStructure",
    "check_entry_name",
    "refuse",
]

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

STORED = 0
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


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    :param max_depth: most path components an entry name may have.
    :param max_entry_size: most bytes one entry may unpack to (declared, and counted while
        streaming). Smaller reads (a manifest, an integrity file) pass their own, lower cap
        to :meth:`~plughost.security.archive.SafeArchive.read`.

    One instance applies to every archive and every compressed input plughost reads: package
    archives wherever they come from (a file, a URL, an upload, the object store), plain zips
    uploaded with a ``manifest`` part, and compressed HTTP downloads
    (:func:`~plughost.security.archive.inflate`).
    """

    max_entries: int = 10_000
    max_total_size: int = 200 * MiB
    max_ratio: float = 100.0
    ratio_threshold_bytes: int = 1 * MiB
    refuse_nested: bool = True
    max_depth: int = 64
    max_entry_size: int = 100 * MiB

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_total_size", "ratio_threshold_bytes", "max_depth",
                     "max_entry_size"):
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


def refuse(code: str, message: str, *, entry: str | None = None, **details: Any) -> ArchiveError:
    if entry is not None:
        details["entry"] = entry
    return ArchiveError(message, code=code, details=details)


def check_entry_name(name: str, *, max_depth: int = 64) -> list[str]:
    """Check an entry path (``/``-separated, directories may end in ``/``); return its parts.

    Refuses with ``archive.path``: empty names, absolute paths, backslashes, drive letters,
    control characters, empty, ``.`` or ``..`` components, components over 255 bytes, names
    over 4096 bytes, more than ``max_depth`` components.
    """
    shown = name.encode("unicode_escape").decode("ascii")

    def bad(why: str) -> ArchiveError:
        return refuse(
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
        if len(part) > 63 and len(part.encode("utf-8")) > 255:  # UTF-8: at most 4 bytes/char
            raise bad("a path component longer than 255 bytes")
    if len(name.encode("utf-8")) > 4096:
        raise bad("longer than 4096 bytes")
    if len(parts) > max_depth:
        raise bad(f"nested deeper than {max_depth} levels")
    return parts


@functools.lru_cache(maxsize=4096)
def _fold(path: str) -> str:
    """Key under which two names count as the same on a case-insensitive, normalising FS."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", path).casefold())


def _register(
    key: tuple[str, ...],
    is_dir: bool,
    folded_key: tuple[str, ...],
    seen: dict[tuple[str, ...], bool],
    folded: dict[tuple[str, ...], tuple[str, ...]],
) -> None:
    """Record one path (file or directory); refuse file/directory clashes and collisions."""
    known = seen.get(key)
    if known is not None and known != is_dir:
        path = "/".join(key)
        raise refuse(
            "archive.duplicate",
            f"{path!r} is both a file and a directory in the archive.",
            entry=path,
        )
    seen[key] = is_dir
    other = folded.setdefault(folded_key, key)
    if other != key:
        a, b = "/".join(other), "/".join(key)
        raise refuse(
            "archive.case_collision",
            f"{a!r} and {b!r} differ only in case or Unicode normalisation; they would "
            "overwrite each other on macOS and Windows. Rename one.",
            entry=b,
            other=a,
        )


def _iter_extra(extra: bytes, *, entry: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise refuse(
                "archive.corrupt", f"Entry {entry!r} has a truncated extra field.", entry=entry
            )
        tag, size = struct.unpack_from("<HH", extra, pos)
        pos += 4
        if pos + size > len(extra):
            raise refuse(
                "archive.corrupt",
                f"Entry {entry!r} has an extra field overrunning its header.",
                entry=entry,
            )
        yield tag, extra[pos : pos + size]
        pos += size


def _check_extra(extra: bytes, *, entry: str) -> None:
    for tag, data in _iter_extra(extra, entry=entry):
        # PKWARE's Unix field: atime, mtime, uid, gid (12 bytes), then the link target of a
        # symbolic or hard link. Any target at all makes the entry a link.
        if tag == _EXTRA_PKWARE_UNIX and len(data) > 12:
            raise refuse(
                "archive.link",
                f"Entry {entry!r} is a link (its Unix extra field "
                "names a link target). Links are refused: ship the file itself.",
                entry=entry,
            )


class ZipStructure:
    """Parse and check the layout of the zip held in ``buf`` (``size`` bytes, named ``name``).

    :meth:`parse` returns the entries, sorted by position, or raises :class:`ArchiveError`.
    """

    def __init__(self, buf: Any, size: int, name: str, limits: ArchiveLimits) -> None:
        self._buf = buf
        self.size = size
        self.name = name
        self.limits = limits

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
                        raise refuse(
                            "archive.trailing_data",
                            f"{self.name} has {self.size - end} byte(s) after the end of the "
                            "zip archive. Refused: data outside the archive could be read "
                            "differently by another tool.",
                            extra_bytes=self.size - end,
                        )
                    return pos, rec
            pos = buf.rfind(_EOCD_SIG, start, pos)
        raise refuse(
            "archive.corrupt",
            f"{self.name} is not a zip archive (no end of central directory record found).",
        )

    def parse(self) -> tuple[ArchiveEntry, ...]:
        buf = self._buf
        limits = self.limits
        eocd_pos, rec = self._find_eocd()
        _, disk, cd_disk, on_disk, total, cd_size, cd_offset, _ = rec
        if 0xFFFF in (on_disk, total) or 0xFFFFFFFF in (cd_size, cd_offset):
            raise refuse(
                "archive.unsupported",
                "ZIP64 archives are not supported: plugin "
                "packages are far below 4 GiB. Rebuild with `plughost pack`.",
            )
        if disk != 0 or cd_disk != 0 or on_disk != total:
            raise refuse(
                "archive.unsupported", "Multi-disk (spanned) zip archives are not supported."
            )
        if total > limits.max_entries:
            raise refuse(
                "archive.too_many_entries",
                f"The archive has {total} entries; the limit is {limits.max_entries}.",
                entries=total,
                limit=limits.max_entries,
            )
        expected_cd = eocd_pos - cd_size
        if cd_offset < expected_cd:
            raise refuse(
                "archive.prefix_data",
                f"{self.name} has "
                f"{expected_cd - cd_offset} byte(s) before the zip archive (a "
                "self-extractor stub or a polyglot file). Refused.",
                extra_bytes=expected_cd - cd_offset,
            )
        if cd_offset > expected_cd:
            raise refuse(
                "archive.corrupt",
                "The central directory does not end where the end record says it does.",
            )

        entries: list[ArchiveEntry] = []
        seen: dict[tuple[str, ...], bool] = {}  # path -> is_dir, with implied parent dirs
        explicit: set[tuple[str, ...]] = set()
        folded: dict[tuple[str, ...], tuple[str, ...]] = {}
        declared_total = 0
        pos = cd_offset
        for _ in range(total):
            if pos + _CENTRAL.size > eocd_pos or buf[pos : pos + 4] != _CENTRAL_SIG:
                raise refuse(
                    "archive.corrupt",
                    "The central directory is truncated or has a bad entry signature.",
                )
            (
                _,
                made_by,
                _,
                flags,
                method,
                _,
                _,
                crc,
                csize,
                usize,
                nlen,
                elen,
                clen,
                disk_start,
                _,
                ext_attr,
                offset,
            ) = _CENTRAL.unpack_from(buf, pos)
            name_bytes = bytes(buf[pos + _CENTRAL.size : pos + _CENTRAL.size + nlen])
            extra = bytes(buf[pos + _CENTRAL.size + nlen : pos + _CENTRAL.size + nlen + elen])
            pos += _CENTRAL.size + nlen + elen + clen
            if pos > eocd_pos:
                raise refuse("archive.corrupt", "A central directory entry overruns the directory.")
            name = self._decode_name(name_bytes, flags)
            if (
                flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_MASKED_DIRECTORY)
                or method == _AES_METHOD
            ):
                raise refuse(
                    "archive.encrypted",
                    f"Entry {name!r} is encrypted. Encrypted "
                    "archives cannot be checked and are refused.",
                    entry=name,
                )
            if 0xFFFFFFFF in (csize, usize, offset) or disk_start == 0xFFFF:
                raise refuse(
                    "archive.unsupported",
                    f"Entry {name!r} needs ZIP64, which is not supported.",
                    entry=name,
                )
            if disk_start != 0:
                raise refuse(
                    "archive.unsupported", "Multi-disk zip archives are not supported.", entry=name
                )
            if method not in (STORED, _DEFLATED):
                raise refuse(
                    "archive.unsupported",
                    f"Entry {name!r} uses compression method "
                    f"{method}; only stored (0) and deflate (8) are supported.",
                    entry=name,
                    method=method,
                )
            parts = check_entry_name(name, max_depth=limits.max_depth)
            is_dir = name.endswith("/")
            mode = self._check_type(name, made_by, ext_attr, is_dir)
            _check_extra(extra, entry=name)
            path = "/".join(parts)
            if is_dir and usize:
                raise refuse(
                    "archive.corrupt", f"Directory entry {name!r} has content.", entry=name
                )
            # Duplicates and collisions, over the entry and its implied parent directories.
            # Keys are tuples of components, so a deep path costs O(depth), not O(depth * len).
            key = tuple(parts)
            if key in explicit:
                raise refuse("archive.duplicate", f"The archive holds {path!r} twice.", entry=path)
            explicit.add(key)
            folded_parts = tuple(_fold(p) for p in parts)
            _register(key, is_dir, folded_parts, seen, folded)
            for i in range(len(parts) - 1, 0, -1):
                if seen.get(key[:i]) is True:
                    break  # this directory, and so all its ancestors, are registered already
                _register(key[:i], True, folded_parts[:i], seen, folded)
            if len(seen) > limits.max_entries:
                # Implied directories count too: a few files nested 60 deep are 60 entries.
                raise refuse(
                    "archive.too_many_entries",
                    f"The archive's files and directories "
                    f"number more than {limits.max_entries} (limit).",
                    entries=len(seen),
                    limit=limits.max_entries,
                )
            if usize > limits.max_entry_size:
                raise refuse(
                    "archive.too_large",
                    f"Entry {path!r} unpacks to {usize} bytes; one entry may unpack to at most "
                    f"{limits.max_entry_size} bytes (limit).",
                    entry=path, limit=limits.max_entry_size, size=usize,
                )
            declared_total += usize
            if declared_total > limits.max_total_size:
                raise refuse(
                    "archive.too_large",
                    f"The archive unpacks to more than {limits.max_total_size} bytes (limit).",
                    limit=limits.max_total_size,
                )
            entries.append(
                self._check_local(
                    name=name,
                    path=path,
                    is_dir=is_dir,
                    flags=flags,
                    method=method,
                    crc=crc,
                    csize=csize,
                    usize=usize,
                    offset=offset,
                    mode=mode,
                    name_bytes=name_bytes,
                    cd_offset=cd_offset,
                )
            )
        if pos != eocd_pos:
            raise refuse(
                "archive.corrupt",
                "The central directory holds more data than its entry count says.",
            )

        # The entries must tile the file from byte 0 to the central directory exactly.
        expected = 0
        for entry in sorted(entries, key=lambda e: e.header_offset):
            if entry.header_offset > expected:
                if expected == 0:
                    raise refuse(
                        "archive.prefix_data",
                        f"{self.name} has "
                        f"{entry.header_offset} byte(s) before its first entry. "
                        "Refused.",
                        extra_bytes=entry.header_offset,
                    )
                raise refuse(
                    "archive.corrupt",
                    f"There are {entry.header_offset - expected} "
                    f"unaccounted byte(s) before entry {entry.name!r}.",
                    entry=entry.name,
                )
            if entry.header_offset < expected:
                raise refuse(
                    "archive.overlap",
                    f"Entry {entry.name!r} overlaps the entry "
                    "before it (an overlapping-entries zip bomb?).",
                    entry=entry.name,
                )
            expected = entry.end_offset
        if expected != cd_offset:
            if not entries:
                raise refuse(
                    "archive.prefix_data",
                    f"{self.name} has {cd_offset} byte(s) before the archive.",
                    extra_bytes=cd_offset,
                )
            raise refuse(
                "archive.corrupt",
                f"There are {cd_offset - expected} unaccounted "
                "byte(s) before the central directory.",
            )
        return tuple(sorted(entries, key=lambda e: e.header_offset))

    def _decode_name(self, raw: bytes, flags: int) -> str:
        if flags & _FLAG_UTF8:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise refuse(
                    "archive.path",
                    f"Entry name {raw!r} is flagged UTF-8 but is not valid UTF-8.",
                    entry=raw.decode("utf-8", "replace"),
                ) from None
        if raw.isascii():
            return raw.decode("ascii")
        raise refuse(
            "archive.path",
            f"Entry name {raw!r} is not ASCII and lacks the UTF-8 "
            "flag, so its encoding is ambiguous. Rebuild with a tool that marks UTF-8 "
            "names (`plughost pack` does).",
            entry=raw.decode("utf-8", "replace"),
        )

    def _check_type(self, name: str, made_by: int, ext_attr: int, is_dir: bool) -> int | None:
        if ext_attr & _DOS_REPARSE_POINT:
            raise refuse(
                "archive.link",
                f"Entry {name!r} is a Windows reparse point (a link). "
                "Links are refused: ship the file itself.",
                entry=name,
            )
        if made_by >> 8 not in (_SYSTEM_UNIX, _SYSTEM_OSX):
            return None
        mode = ext_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise refuse(
                "archive.link",
                f"Entry {name!r} is a symbolic link. Links are refused: ship the file itself.",
                entry=name,
            )
        if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            what = {
                stat.S_IFCHR: "a character device",
                stat.S_IFBLK: "a block device",
                stat.S_IFIFO: "a FIFO",
                stat.S_IFSOCK: "a socket",
            }[kind]
            raise refuse(
                "archive.special",
                f"Entry {name!r} is {what}. Only regular files and directories are allowed.",
                entry=name,
            )
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise refuse(
                "archive.special",
                f"Entry {name!r} has an unknown file type ({oct(kind)}).",
                entry=name,
            )
        if kind == stat.S_IFDIR and not is_dir:
            raise refuse(
                "archive.corrupt",
                f"Entry {name!r} is a directory without a trailing '/'.",
                entry=name,
            )
        if kind == stat.S_IFREG and is_dir:
            raise refuse(
                "archive.corrupt", f"Entry {name!r} ends in '/' but is a regular file.", entry=name
            )
        return stat.S_IMODE(mode) if kind else None

    def _check_local(
        self,
        *,
        name: str,
        path: str,
        is_dir: bool,
        flags: int,
        method: int,
        crc: int,
        csize: int,
        usize: int,
        offset: int,
        mode: int | None,
        name_bytes: bytes,
        cd_offset: int,
    ) -> ArchiveEntry:
        buf = self._buf

        def mismatch(what: str) -> ArchiveError:
            return refuse(
                "archive.header_mismatch",
                f"Entry {name!r}: the central directory "
                f"and the local header disagree on {what}. Refused: tools would "
                "read different files.",
                entry=name,
                field=what,
            )

        if offset + _LOCAL.size > cd_offset or buf[offset : offset + 4] != _LOCAL_SIG:
            raise refuse(
                "archive.corrupt", f"Entry {name!r} points to no local header.", entry=name
            )
        (_, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, lnlen, lelen) = _LOCAL.unpack_from(
            buf, offset
        )
        lname = bytes(buf[offset + _LOCAL.size : offset + _LOCAL.size + lnlen])
        lextra = bytes(buf[offset + _LOCAL.size + lnlen : offset + _LOCAL.size + lnlen + lelen])
        if lname != name_bytes:
            raise mismatch("the name")
        if (lflags ^ flags) & _FLAGS_COMPARED:
            if (lflags ^ flags) & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
                raise refuse(
                    "archive.encrypted", f"Entry {name!r} is encrypted (local header).", entry=name
                )
            raise mismatch("the flags")
        if lmethod != method:
            raise mismatch("the compression method")
        _check_extra(lextra, entry=name)
        data_offset = offset + _LOCAL.size + lnlen + lelen
        data_end = data_offset + csize
        if data_end > cd_offset:
            raise refuse(
                "archive.corrupt",
                f"Entry {name!r} runs past the central directory (truncated archive?).",
                entry=name,
            )
        end = data_end
        if flags & _FLAG_DESCRIPTOR:
            # Local values may be zero (written before the data was known); non-zero must agree.
            for local, central, what in (
                (lcrc, crc, "the CRC"),
                (lcsize, csize, "the compressed size"),
                (lusize, usize, "the size"),
            ):
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
        if method == STORED and csize != usize:
            raise mismatch("the size (a stored entry's sizes must be equal)")
        return ArchiveEntry(
            name=path,
            is_dir=is_dir,
            size=usize,
            compressed_size=csize,
            crc=crc,
            method=method,
            mode=mode,
            header_offset=offset,
            data_offset=data_offset,
            end_offset=end,
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
            if start + 12 <= limit and struct.unpack_from("<III", buf, start) == (
                crc,
                csize,
                usize,
            ):
                return start + 12
        raise refuse(
            "archive.header_mismatch",
            f"Entry {name!r}: the data descriptor "
            "disagrees with the central directory (CRC or sizes).",
            entry=name,
            field="data descriptor",
        )
