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
                           empty component, control character, undecodable or ambiguous name,
                           too long or too deep
``archive.link``           symbolic link or hard link (Unix mode, reparse point, link extra field)
``archive.special``        device, FIFO, socket or unknown file type
``archive.duplicate``      the same name twice, or one path used as both a file and a directory
``archive.case_collision`` names equal up to case or Unicode (NFC/NFKC) normalisation
``archive.too_many_entries`` more files and directories (implied ones included) than
                           ``max_entries``
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
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from plughost.security._zipstructure import (
    DEFAULT_LIMITS,
    STORED,
    ArchiveEntry,
    ArchiveLimits,
    ZipStructure,
    check_entry_name,
)
from plughost.security._zipstructure import refuse as _refuse

__all__ = [
    "CONTENT_ENCODINGS",
    "DEFAULT_LIMITS",
    "ArchiveEntry",
    "ArchiveLimits",
    "ExpectedFile",
    "Inflater",
    "SafeArchive",
    "check_entry_name",
    "detect_archive_magic",
    "inflate",
    "open_archive",
    "remove_tree",
]

logger = logging.getLogger(__name__)

_IN_CHUNK = 64 * 1024
_OUT_CHUNK = 256 * 1024
_MAGIC_HEAD = 512  # enough bytes to see a tar header's "ustar" at offset 257

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

def detect_archive_magic(head: bytes) -> str | None:
    """Return the archive format whose magic bytes ``head`` starts with, else ``None``."""
    for offset, magic, fmt in _MAGICS:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if _BZIP2.match(head):
        return "bzip2"
    return None

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
            self.entries: tuple[ArchiveEntry, ...] = ZipStructure(
                self._mm, self.size, self.path.name, limits).parse()
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

    def read(self, name: str, *, max_size: int | None = None) -> bytes:
        """Return one file's content, streamed through every content check.

        :param max_size: a lower cap than the limits' ``max_entry_size`` for this read (a
            manifest, an integrity file); checked on the declared size before anything is
            decompressed, and the stream cannot exceed the declared size.
        """
        entry = self.get(name)
        if max_size is not None and entry.size > max_size:
            raise _refuse("archive.too_large", f"Entry {name!r} unpacks to {entry.size} bytes; "
                          f"at most {max_size} are read here.", entry=name, limit=max_size,
                          size=entry.size)
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

        if entry.method == STORED:
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


#: HTTP ``Content-Encoding`` values :func:`inflate` decodes.
CONTENT_ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")


def inflate(
    chunks: Iterable[bytes],
    encoding: str,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    *,
    max_size: int | None = None,
    what: str = "the data",
) -> Iterator[bytes]:
    """Decode a compressed stream (an HTTP ``Content-Encoding``) chunk by chunk, bounded.

    The same limits as for archives apply, measured on the bytes actually produced: at most
    ``max_size`` (default ``limits.max_entry_size``) bytes out, and the ratio
    ``limits.max_ratio`` once ``limits.ratio_threshold_bytes`` have been produced. Each output
    chunk is at most 256 KiB, whatever the input, so a bomb never sits in memory whole.
    :class:`Inflater` is the same decoder fed one chunk at a time (for asynchronous input).

    :param encoding: ``identity`` (passed through, size-capped), ``gzip`` (several members
        allowed) or ``deflate`` (zlib-wrapped or raw); a comma-separated list of them.
    :raises ArchiveError: ``archive.unsupported`` (another encoding), ``archive.too_large``,
        ``archive.ratio``, ``archive.corrupt``.
    """
    inflater = Inflater(encoding, limits, max_size=max_size, what=what)
    for chunk in chunks:
        yield from inflater.feed(chunk)
    yield from inflater.finish()


class Inflater:
    """:func:`inflate`, fed one chunk at a time: ``feed(chunk)`` for each input chunk, then
    ``finish()``; both return iterators of output chunks (at most 256 KiB each), which must be
    exhausted before the next call. The same limits and refusals as :func:`inflate`; an
    unsupported encoding is refused here, before any input.
    """

    def __init__(
        self,
        encoding: str,
        limits: ArchiveLimits = DEFAULT_LIMITS,
        *,
        max_size: int | None = None,
        what: str = "the data",
    ) -> None:
        self.limits = limits
        self.max_size = limits.max_entry_size if max_size is None else max_size
        self.what = what
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        unknown = [c for c in codings if c not in CONTENT_ENCODINGS]
        if unknown or len(codings) > 1:
            raise _refuse("archive.unsupported", f"{what} is compressed as {encoding!r}; "
                          "plughost decodes only gzip or deflate (one of them). Serve the file "
                          "uncompressed.", encoding=encoding)
        self.coding = codings[0] if codings else "identity"
        self._gzip_like = self.coding in ("gzip", "x-gzip")
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip_like else zlib.MAX_WBITS)
        self._started = False  # deflate: the zlib wrapper was accepted (else: raw deflate)
        self._head = b""  # deflate: the first bytes, until there are enough to tell them apart
        #: bytes produced and consumed so far
        self.produced = 0
        self.consumed = 0

    def _account(self, out: bytes, used: int) -> None:
        self.produced += len(out)
        self.consumed += used
        produced, consumed, limits, cap = self.produced, self.consumed, self.limits, self.max_size
        if produced > cap:
            raise _refuse("archive.too_large", f"{self.what} unpacks to more than {cap} bytes "
                          "(limit).", limit=cap, bytes_out=produced)
        if produced > limits.ratio_threshold_bytes and produced > limits.max_ratio * max(
                consumed, 1):
            raise _refuse("archive.ratio", f"{self.what} decompresses at more than "
                          f"{limits.max_ratio:g}:1 ({produced / max(consumed, 1):.0f}:1 after "
                          f"{produced} bytes): a decompression bomb? Refused.",
                          bytes_out=produced, bytes_in=consumed)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Decode one input chunk."""
        if self.coding == "identity":
            self._account(chunk, len(chunk))
            yield chunk
            return
        try:
            data = chunk
            if not self._gzip_like and not self._started and len(self._head + data) < 2:
                self._head += data
                return
            data, self._head = self._head + data, b""
            while data:
                if self._d.eof:
                    if not self._gzip_like:
                        raise _refuse("archive.corrupt", f"{self.what} has bytes after the end "
                                      "of its compressed data.")
                    self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)  # the next gzip member
                try:
                    out = self._d.decompress(data, _OUT_CHUNK)
                except zlib.error:
                    if self._gzip_like or self._started:
                        raise
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" without wrapper
                    out = self._d.decompress(data, _OUT_CHUNK)
                self._started = True
                rest = self._d.unconsumed_tail or self._d.unused_data
                self._account(out, len(data) - len(rest))
                if out:
                    yield out
                data = rest
        except zlib.error as exc:
            raise self._corrupt(exc) from None

    def finish(self) -> Iterator[bytes]:
        """Drain what the decoder still holds; refuse truncated input."""
        if self.coding == "identity":
            return
        if self._head:
            raise _refuse("archive.corrupt", f"{self.what}: the {self.coding} data is truncated.")
        try:
            # max_length may have left output behind in the decompressor.
            while not self._d.eof:
                out = self._d.decompress(b"", _OUT_CHUNK)
                if not out:
                    break
                self._account(out, 0)
                yield out
        except zlib.error as exc:
            raise self._corrupt(exc) from None
        if self._started and not self._d.eof:
            raise _refuse("archive.corrupt", f"{self.what}: the {self.coding} data is truncated.")

    def _corrupt(self, exc: zlib.error) -> Exception:
        return _refuse("archive.corrupt", f"{self.what} has corrupt {self.coding} data ({exc}).")


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
