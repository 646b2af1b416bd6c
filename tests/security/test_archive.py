from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from plughost.errors import ArchiveError, ConfigurationError
from plughost.security.archive import (
    ArchiveLimits,
    ExpectedFile,
    check_entry_name,
    detect_archive_magic,
    open_archive,
    remove_tree,
)

from .zipcraft import CENTRAL, LOCAL, Raw, build


def write(tmp_path: Path, data: bytes, name: str = "a.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path, code: str, limits: ArchiveLimits | None = None) -> ArchiveError:
    """Open (and fully check) ``path``; assert it is refused with ``code``."""
    with pytest.raises(ArchiveError) as info, open_archive(path, limits or ArchiveLimits()) as ar:
        ar.check()
    assert info.value.code == code, info.value.message
    return info.value


def good_files() -> dict[str, bytes]:
    return {"plugin.toml": b'id = "x"\n', "pkg/__init__.py": b"", "pkg/mod.py": b"print(1)\n" * 50,
            "bin/run": b"#!/bin/sh\necho hi\n"}


def good_zip(tmp_path: Path) -> Path:
    path = tmp_path / "good.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in good_files().items():
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o100755 if name.startswith("bin/") else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def expected_for(files: dict[str, bytes]) -> dict[str, ExpectedFile]:
    return {n: ExpectedFile(len(d), hashlib.sha256(d).hexdigest()) for n, d in files.items()}


# -- accepted archives --------------------------------------------------------------------------

def test_well_formed_archive_reads_and_extracts_read_only(tmp_path: Path) -> None:
    path = good_zip(tmp_path)
    dest = tmp_path / "out"
    with open_archive(path) as ar:
        assert set(ar.names()) == set(good_files())
        assert ar.read("pkg/mod.py") == good_files()["pkg/mod.py"]
        ar.extract(dest, expected=expected_for(good_files()))
    for name, data in good_files().items():
        assert (dest / name).read_bytes() == data
    assert stat.S_IMODE((dest / "pkg/mod.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((dest / "bin/run").stat().st_mode) == 0o555
    assert stat.S_IMODE((dest / "pkg").stat().st_mode) == 0o555
    assert stat.S_IMODE(dest.stat().st_mode) == 0o555
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.zip", "out"]
    remove_tree(dest)
    assert not dest.exists()


def test_archive_with_data_descriptors_is_accepted(tmp_path: Path) -> None:
    # zipfile writes data descriptors when the output is not seekable.
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.buf += b
            return len(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("a.txt", "w") as fh:
        fh.write(b"hello " * 100)
    raw = bytes(sink.buf)
    assert struct.unpack_from("<H", raw, 6)[0] & 0x8
    with open_archive(write(tmp_path, raw)) as ar:
        assert ar.read("a.txt") == b"hello " * 100


def test_small_highly_compressible_file_is_not_a_bomb(tmp_path: Path) -> None:
    path = write(tmp_path, build([Raw("spaces.txt", b" " * 4096)]))
    with open_archive(path) as ar:
        assert ar.read("spaces.txt") == b" " * 4096


def test_text_starting_like_a_magic_is_not_nested() -> None:
    assert detect_archive_magic(b"BZh is a word\n") is None
    assert detect_archive_magic(b"PKG-INFO") is None


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        ArchiveLimits(max_entries=-1)
    with pytest.raises(ConfigurationError):
        ArchiveLimits(max_ratio=0.5)


# -- archive.path ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../evil.py", "a/../../evil.py", "a\\b.py", "C:/x.py", "c:evil", "./a.py",
     "a//b.py", "a/\x00b", "bad\nname"],
)
def test_unsafe_entry_paths_are_refused(tmp_path: Path, name: str) -> None:
    err = refused(write(tmp_path, build([Raw(name, b"x")])), "archive.path")
    assert "unsafe path" in err.message


def test_name_checker_returns_parts_of_safe_names() -> None:
    assert check_entry_name("a/b/c.py") == ["a", "b", "c.py"]
    assert check_entry_name("dir/") == ["dir"]


def test_non_utf8_name_flagged_utf8_is_refused(tmp_path: Path) -> None:
    data = build([Raw("a.txt", b"x", local={"name": b"\xff.txt", "flags": 0x800},
                      central={"name": b"\xff.txt", "flags": 0x800})])
    refused(write(tmp_path, data), "archive.path")


def test_non_ascii_name_without_utf8_flag_is_refused(tmp_path: Path) -> None:
    data = build([Raw("a.txt", b"x", local={"name": "café".encode(), "flags": 0},
                      central={"name": "café".encode(), "flags": 0})])
    refused(write(tmp_path, data), "archive.path")


# -- archive.link / archive.special ---------------------------------------------------------------

def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("link", b"/etc/passwd", unix_mode=0o120777)])),
            "archive.link")


def test_windows_reparse_point_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("link", b"x", unix_mode=None,
                                       central={"ext_attr": 0x400})])), "archive.link")


def test_hardlink_in_unix_extra_field_is_refused(tmp_path: Path) -> None:
    extra = struct.pack("<HH", 0x000D, 12 + 6) + b"\0" * 12 + b"target"
    refused(write(tmp_path, build([Raw("hard", b"", central={"extra": extra})])), "archive.link")


@pytest.mark.parametrize("mode", [stat.S_IFCHR | 0o644, stat.S_IFBLK | 0o644,
                                  stat.S_IFIFO | 0o644, stat.S_IFSOCK | 0o644])
def test_device_fifo_and_socket_entries_are_refused(tmp_path: Path, mode: int) -> None:
    refused(write(tmp_path, build([Raw("dev", b"", unix_mode=mode)])), "archive.special")


# -- archive.duplicate / archive.case_collision ---------------------------------------------------

def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a.py", b"1"), Raw("a.py", b"2")])), "archive.duplicate")


def test_path_used_as_file_and_directory_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"1"), Raw("a/b.py", b"2")])), "archive.duplicate")


@pytest.mark.parametrize(
    "first,second",
    [("README.md", "readme.md"),
     ("caf\u00e9.txt", "cafe\u0301.txt"),       # NFC vs NFD
     ("\ufb01le.txt", "file.txt"),              # NFKC: the "fi" ligature
     ("Lib/a.py", "lib/b.py")],                 # directories collide too
)
def test_names_equal_up_to_case_or_normalisation_are_refused(
    tmp_path: Path, first: str, second: str
) -> None:
    err = refused(write(tmp_path, build([Raw(first, b"1"), Raw(second, b"2")])),
                  "archive.case_collision")
    assert err.details["other"]


# -- size limits ----------------------------------------------------------------------------------

def test_more_than_ten_thousand_entries_are_refused(tmp_path: Path) -> None:
    entries = [Raw(f"f{i}", b"", method=0) for i in range(10_001)]
    err = refused(write(tmp_path, build(entries)), "archive.too_many_entries")
    assert err.details["limit"] == 10_000


def test_entry_limit_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path, build([Raw(f"f{i}", b"") for i in range(4)]))
    refused(path, "archive.too_many_entries", ArchiveLimits(max_entries=3))
    with open_archive(path, ArchiveLimits(max_entries=4)) as ar:
        ar.check()


def test_declared_unpacked_size_over_limit_is_refused_before_decompressing(
    tmp_path: Path,
) -> None:
    data = os.urandom(600 * 1024)
    path = write(tmp_path, build([Raw("a.bin", data), Raw("b.bin", data)]))
    err = refused(path, "archive.too_large", ArchiveLimits(max_total_size=1024 * 1024))
    assert "bytes_out" not in err.details  # refused from the headers, nothing decompressed


def zeros_stream(chunks: int) -> bytes:
    """A raw deflate stream of ``chunks`` MiB of zeros, built without compressing a gigabyte."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor state is reset, so every block compresses identically.
    return block * chunks + c.flush()


def test_one_gigabyte_bomb_with_lying_headers_is_stopped_early_by_the_streaming_ratio(
    tmp_path: Path,
) -> None:
    stream = zeros_stream(1024)
    # Headers claim 90 MiB (under the entry and total limits): only the measured ratio can
    # catch it.
    bomb = Raw("zeros.bin", b"", packed=stream,
               local={"usize": 90 << 20, "crc": 0}, central={"usize": 90 << 20, "crc": 0})
    err = refused(write(tmp_path, build([bomb])), "archive.ratio")
    assert err.details["bytes_out"] < 4 << 20, "must stop after a few MiB, not a gigabyte"
    assert zlib.decompressobj(-15).decompress(stream[:1 << 16], 1) == b"\0"


def test_one_gigabyte_bomb_with_honest_headers_is_refused_before_decompressing(
    tmp_path: Path,
) -> None:
    bomb = Raw("zeros.bin", b"", packed=zeros_stream(1024),
               local={"usize": 1 << 30, "crc": 0}, central={"usize": 1 << 30, "crc": 0})
    err = refused(write(tmp_path, build([bomb])), "archive.too_large")
    assert "bytes_out" not in err.details


def test_many_small_compressible_entries_trip_the_archive_wide_ratio(tmp_path: Path) -> None:
    entries = [Raw(f"z{i}", b"\0" * (512 * 1024)) for i in range(4)]
    err = refused(write(tmp_path, build(entries)), "archive.ratio")
    assert err.details["scope"] == "archive"


def test_ratio_limit_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path, build([Raw("z", b"ab" * (1 << 20))]))
    refused(path, "archive.ratio", ArchiveLimits(ratio_threshold_bytes=1024))
    with open_archive(path, ArchiveLimits(max_ratio=10_000)) as ar:
        ar.check()


# -- archive.encrypted / archive.unsupported ------------------------------------------------------

def test_encrypted_entry_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"x", local={"flags": 1}, central={"flags": 1})])),
            "archive.encrypted")


def test_aes_encrypted_entry_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"x", local={"method": 99},
                                       central={"method": 99})])), "archive.encrypted")


def test_entry_encrypted_only_in_its_local_header_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"x", local={"flags": 1})])), "archive.encrypted")


def test_unsupported_compression_method_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"x", local={"method": 12},
                                       central={"method": 12})])), "archive.unsupported")


# -- archive.nested -------------------------------------------------------------------------------

def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("x.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner.txt", "x")
    return buf.getvalue()


@pytest.mark.parametrize(
    "payload,fmt",
    [(_zip_bytes(), "zip"), (gzip.compress(b"x"), "gzip"), (_tar_bytes(), "tar"),
     (__import__("bz2").compress(b"x" * 100), "bzip2"), (__import__("lzma").compress(b"x"), "xz"),
     (b"7z\xbc\xaf\x27\x1c" + b"\0" * 30, "7z")],
)
def test_nested_archive_is_refused_by_magic_bytes(tmp_path: Path, payload: bytes, fmt: str) -> None:
    err = refused(write(tmp_path, build([Raw("vendor/thing.dat", payload)])), "archive.nested")
    assert err.details["format"] == fmt


# -- data outside the archive ---------------------------------------------------------------------

def test_trailing_data_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"x")], suffix=b"hidden payload")),
            "archive.trailing_data")


def test_trailing_data_after_a_comment_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"x")], comment=b"note", suffix=b"!")),
            "archive.trailing_data")


def test_prefix_data_is_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"x")], prefix=b"#!/bin/sh\nexit 0\n")),
            "archive.prefix_data")


def test_prefix_data_with_adjusted_offsets_is_refused(tmp_path: Path) -> None:
    # `zip -A` rewrites offsets so the central directory is consistent; the stub stays.
    stub = b"MZ-stub" * 10
    body = build([Raw("a", b"x")])
    cd_offset = struct.unpack_from("<I", body, len(body) - 6)[0]
    adjusted = bytearray(stub + body)
    cd_pos = len(stub) + cd_offset
    struct.pack_into("<I", adjusted, cd_pos + 42, len(stub))
    struct.pack_into("<I", adjusted, len(adjusted) - 6, cd_pos)
    refused(write(tmp_path, bytes(adjusted)), "archive.prefix_data")


def test_a_comment_is_allowed(tmp_path: Path) -> None:
    with open_archive(write(tmp_path, build([Raw("a", b"x")], comment=b"hi"))) as ar:
        assert ar.read("a") == b"x"


# -- archive.header_mismatch ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "local",
    [{"name": b"b"}, {"csize": 1}, {"usize": 5}, {"crc": 1234}, {"method": 0}],
    ids=["name", "csize", "usize", "crc", "method"],
)
def test_central_directory_disagreeing_with_local_header_is_refused(
    tmp_path: Path, local: dict[str, object]
) -> None:
    err = refused(write(tmp_path, build([Raw("a", b"hello world", local=local)])),
                  "archive.header_mismatch")
    assert err.details["entry"] == "a"


def test_data_descriptor_disagreeing_with_central_directory_is_refused(tmp_path: Path) -> None:
    raw = bytearray(build([Raw("a", b"hello", descriptor=True)]))
    pos = raw.index(b"PK\x07\x08")
    struct.pack_into("<I", raw, pos + 4, 0xDEADBEEF)
    refused(write(tmp_path, bytes(raw)), "archive.header_mismatch")


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    inner_data = b"payload"
    inner = LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(inner_data), len(inner_data),
                       len(inner_data), 1, 0) + b"b" + inner_data
    outer_data = b"xxxx" + inner
    outer = LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(outer_data), len(outer_data),
                       len(outer_data), 1, 0) + b"a" + outer_data
    cd = CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, zlib.crc32(outer_data),
                      len(outer_data), len(outer_data), 1, 0, 0, 0, 0, 0, 0) + b"a"
    cd += CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, zlib.crc32(inner_data),
                       len(inner_data), len(inner_data), 1, 0, 0, 0, 0, 0, 31 + 4) + b"b"
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 2, 2, len(cd), len(outer), 0)
    refused(write(tmp_path, outer + cd + eocd), "archive.overlap")


# -- archive.corrupt ------------------------------------------------------------------------------

def test_not_a_zip_is_corrupt(tmp_path: Path) -> None:
    refused(write(tmp_path, b"just text"), "archive.corrupt")
    refused(write(tmp_path, b"", "empty.zip"), "archive.corrupt")


def test_truncated_archive_is_corrupt(tmp_path: Path) -> None:
    data = good_zip(tmp_path).read_bytes()
    err = refused(write(tmp_path, data[: len(data) // 2], "cut.zip"), "archive.corrupt")
    assert err.message


def test_data_not_matching_its_crc_is_corrupt(tmp_path: Path) -> None:
    e = Raw("a", b"hello", method=0, local={"crc": 1}, central={"crc": 1})
    err = refused(write(tmp_path, build([e])), "archive.corrupt")
    assert "CRC" in err.message


def test_entry_larger_than_declared_is_corrupt(tmp_path: Path) -> None:
    e = Raw("a", b"hello" * 1000, local={"usize": 10}, central={"usize": 10})
    refused(write(tmp_path, build([e])), "archive.corrupt")


def test_garbage_deflate_data_is_corrupt(tmp_path: Path) -> None:
    refused(write(tmp_path, build([Raw("a", b"hello", packed=b"\xff\xff\xff\xff")])),
            "archive.corrupt")


def test_gap_between_entries_is_refused(tmp_path: Path) -> None:
    # Entry b's central offset skips 3 junk bytes hidden after entry a.
    a = build([Raw("a", b"x", method=0)])
    first_local = a[: 31 + 1]
    junk = b"zzz"
    b_local = LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(b"y"), 1, 1, 1, 0) + b"by"
    cd = CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, zlib.crc32(b"x"), 1, 1, 1, 0, 0, 0,
                      0, 0, 0) + b"a"
    cd += CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, zlib.crc32(b"y"), 1, 1, 1, 0, 0, 0,
                       0, 0, len(first_local) + 3) + b"b"
    body = first_local + junk + b_local
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 2, 2, len(cd), len(body), 0)
    err = refused(write(tmp_path, body + cd + eocd), "archive.corrupt")
    assert "unaccounted" in err.message


# -- archive.integrity ----------------------------------------------------------------------------

def test_unlisted_file_fails_integrity(tmp_path: Path) -> None:
    expected = expected_for(good_files())
    del expected["pkg/mod.py"]
    with open_archive(good_zip(tmp_path)) as ar, pytest.raises(ArchiveError) as info:
        ar.check(expected=expected)
    assert info.value.code == "archive.integrity"
    assert info.value.details["unlisted"] == ["pkg/mod.py"]


def test_missing_listed_file_fails_integrity(tmp_path: Path) -> None:
    expected = expected_for({**good_files(), "gone.py": b"x"})
    with open_archive(good_zip(tmp_path)) as ar, pytest.raises(ArchiveError) as info:
        ar.check(expected=expected)
    assert info.value.code == "archive.integrity"
    assert info.value.details["missing"] == ["gone.py"]


def test_modified_content_fails_integrity_while_extracting_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    expected = expected_for(good_files())
    expected["pkg/mod.py"] = ExpectedFile(expected["pkg/mod.py"].size, "0" * 64)
    dest = tmp_path / "out"
    before = sorted(os.listdir(tmp_path))
    with open_archive(good_zip(tmp_path)) as ar, pytest.raises(ArchiveError) as info:
        ar.extract(dest, expected=expected)
    assert info.value.code == "archive.integrity"
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "good.zip"])


def test_size_and_execute_bit_mismatches_fail_integrity(tmp_path: Path) -> None:
    files = good_files()
    for name, want in [("pkg/mod.py", ExpectedFile(1, "0" * 64)),
                       ("bin/run", ExpectedFile(len(files["bin/run"]),
                                                hashlib.sha256(files["bin/run"]).hexdigest(),
                                                executable=False))]:
        expected = {**expected_for(files), name: want}
        with open_archive(good_zip(tmp_path)) as ar, pytest.raises(ArchiveError) as info:
            ar.check(expected=expected)
        assert info.value.code == "archive.integrity"
        assert info.value.details["entry"] == name


def test_exempt_names_are_left_out_of_the_integrity_comparison(tmp_path: Path) -> None:
    files = good_files()
    expected = expected_for({n: d for n, d in files.items() if n != "plugin.toml"})
    with open_archive(good_zip(tmp_path)) as ar:
        digests = ar.check(expected=expected, exempt={"plugin.toml"})
    assert digests["plugin.toml"] == hashlib.sha256(files["plugin.toml"]).hexdigest()


# -- extraction target ----------------------------------------------------------------------------

def test_extraction_never_writes_over_an_existing_directory(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with open_archive(good_zip(tmp_path)) as ar, pytest.raises(ArchiveError) as info:
        ar.extract(dest)
    assert info.value.code == "archive.destination"
    assert os.listdir(dest) == ["keep.txt"]


def test_extraction_needs_an_existing_parent(tmp_path: Path) -> None:
    with open_archive(good_zip(tmp_path)) as ar, pytest.raises(ArchiveError) as info:
        ar.extract(tmp_path / "no" / "such")
    assert info.value.code == "archive.destination"


def test_refused_bomb_extraction_removes_everything_it_wrote(tmp_path: Path) -> None:
    entries = [Raw("ok.txt", b"fine"), Raw("sub/zeros", b"", packed=zeros_stream(64),
                                          local={"usize": 64 << 20, "crc": 0},
                                          central={"usize": 64 << 20, "crc": 0})]
    path = write(tmp_path, build(entries))
    with open_archive(path) as ar, pytest.raises(ArchiveError) as info:
        ar.extract(tmp_path / "out")
    assert info.value.code == "archive.ratio"
    assert os.listdir(tmp_path) == ["a.zip"]


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    with open_archive(good_zip(tmp_path)) as ar:
        ar.check(progress=lambda done, total: seen.append((done, total)))
    total = sum(len(d) for d in good_files().values())
    assert seen[-1] == (total, total)


def test_closed_archive_refuses_reads(tmp_path: Path) -> None:
    ar = open_archive(good_zip(tmp_path))
    ar.close()
    ar.close()
    with pytest.raises(ValueError):
        ar.read("plugin.toml")


def test_reading_a_missing_entry_names_it(tmp_path: Path) -> None:
    with open_archive(good_zip(tmp_path)) as ar, pytest.raises(ArchiveError) as info:
        ar.read("nope")
    assert info.value.code == "archive.missing"


def test_mutated_archives_fail_only_with_archive_errors(tmp_path: Path) -> None:
    """Random byte flips, cuts and insertions: every outcome is success or an ArchiveError."""
    import random

    base = build([Raw("plugin.toml", b'id = "x"\n' * 5), Raw("pkg/a.py", b"print(1)\n" * 100),
                  Raw("b.bin", bytes(range(256)), method=0),
                  Raw("d.txt", b"hello" * 10, descriptor=True)])
    rng = random.Random(5)
    path = tmp_path / "m.zip"
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(data))
            op = rng.random()
            if op < 0.6:
                data[pos] = rng.randrange(256)
            elif op < 0.8:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        path.write_bytes(bytes(data))
        try:
            with open_archive(path) as ar:
                ar.check()
            outcomes["ok"] += 1
        except ArchiveError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 300  # most mutations break something, and say so


def test_paths_nested_too_deep_are_refused(tmp_path: Path) -> None:
    deep = "/".join(["d"] * 65)
    err = refused(write(tmp_path, build([Raw(deep, b"x")])), "archive.path")
    assert "deeper than 64" in err.message
    with open_archive(write(tmp_path, build([Raw(deep, b"x")]), "ok.zip"),
                      ArchiveLimits(max_depth=100)) as ar:
        assert ar.read(deep) == b"x"


def test_implied_directories_count_towards_the_entry_limit(tmp_path: Path) -> None:
    # 200 files, each in its own 60-deep chain of directories: 12,200 paths to create.
    entries = [Raw("/".join(f"d{i}x{j}" for j in range(60)) + "/f", b"", method=0)
               for i in range(200)]
    err = refused(write(tmp_path, build(entries)), "archive.too_many_entries")
    assert err.details["entries"] > 10_000


# -- one entry's size, and reads with their own cap ---------------------------------------------

def test_an_entry_larger_than_max_entry_size_is_refused_before_decompressing(
    tmp_path: Path
) -> None:
    path = write(tmp_path, build([Raw("small.txt", b"a" * 10), Raw("big.bin", b"b" * 5000)]))
    err = refused(path, "archive.too_large", ArchiveLimits(max_entry_size=4096))
    assert err.details["entry"] == "big.bin" and err.details["limit"] == 4096
    with open_archive(path, ArchiveLimits(max_entry_size=5000)) as ar:
        ar.check()


def test_read_with_a_cap_refuses_on_the_declared_size(tmp_path: Path) -> None:
    from .zipcraft import bomb

    path = write(tmp_path, build([bomb("manifest.json", 50 << 20)]))
    with open_archive(path) as ar, pytest.raises(ArchiveError) as info:
        ar.read("manifest.json", max_size=65537)
    assert info.value.code == "archive.too_large"
    assert info.value.details["size"] == 50 << 20


# -- inflate: compressed streams under the same limits ------------------------------------------

def _chunks(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("encoding,pack", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda d: zlib.compress(d)[2:-4]),   # raw deflate, as some servers send it
    ("identity", lambda d: d),
    ("gzip, identity", gzip.compress),
])
def test_inflate_decodes_each_supported_encoding(encoding: str, pack: object) -> None:
    from plughost.security.archive import inflate

    data = os.urandom(3000) * 50
    for size in (1, 1000):  # one byte at a time too: the header split across reads
        out = b"".join(inflate(_chunks(pack(data), size), encoding))  # type: ignore[operator]
        assert out == data


def test_inflate_reads_every_gzip_member() -> None:
    from plughost.security.archive import inflate

    body = gzip.compress(b"first ") + gzip.compress(b"second")
    assert b"".join(inflate([body], "gzip")) == b"first second"


def test_inflate_never_yields_more_than_a_bounded_chunk() -> None:
    from plughost.security.archive import inflate

    body = gzip.compress(b"\0" * (4 << 20))
    limits = ArchiveLimits(max_ratio=10_000)
    sizes = [len(c) for c in inflate([body], "gzip", limits)]
    assert sum(sizes) == 4 << 20 and max(sizes) <= 256 * 1024


@pytest.mark.parametrize("limits,code", [
    (ArchiveLimits(), "archive.ratio"),
    (ArchiveLimits(max_ratio=100_000, max_entry_size=2 << 20), "archive.too_large"),
])
def test_inflate_stops_a_bomb(limits: ArchiveLimits, code: str) -> None:
    from plughost.security.archive import inflate

    body = gzip.compress(b"\0" * (16 << 20))
    produced = 0
    with pytest.raises(ArchiveError) as info:
        for chunk in inflate([body], "gzip", limits, what="the download"):
            produced += len(chunk)
    assert info.value.code == code
    assert produced <= 3 << 20


@pytest.mark.parametrize("encoding,body,code", [
    ("br", b"x", "archive.unsupported"),
    ("gzip, deflate", b"x", "archive.unsupported"),
    ("gzip", gzip.compress(b"hello" * 100)[:-12], "archive.corrupt"),
    ("gzip", b"not gzip at all", "archive.corrupt"),
    ("deflate", zlib.compress(b"hello") + b"junk", "archive.corrupt"),
])
def test_inflate_refuses_what_it_cannot_decode(encoding: str, body: bytes, code: str) -> None:
    from plughost.security.archive import inflate

    with pytest.raises(ArchiveError) as info:
        b"".join(inflate([body], encoding))
    assert info.value.code == code
