"""Property-based tests of the zip validator (plughost.security.archive): whatever the bytes —
well-formed zips of hostile names, zips with flipped bytes, raw garbage — opening, checking,
reading and extracting either succeed or raise ArchiveError with an archive.* code; nothing
else escapes, and a refused extraction leaves nothing behind. Also the bounded inflater.

Profiles: tests/conftest.py ("ci" by default; HYPOTHESIS_PROFILE=night for long runs).
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from plughost.errors import ArchiveError
from plughost.security.archive import ArchiveLimits, inflate, open_archive
from tests.security.zipcraft import Raw, build

LIMITS = ArchiveLimits(max_entries=50, max_total_size=1 << 20, max_entry_size=256 << 10,
                       max_ratio=50.0, ratio_threshold_bytes=16 << 10)

NAMES = st.one_of(
    st.from_regex(r"\A[a-z]{1,8}(/[a-z]{1,8}){0,3}(\.[a-z]{1,3})?\Z"),
    st.sampled_from(["../evil", "/abs", "a/../../b", "a//b", "C:\\x", "a\\b", "con", "x\x00y",
                     "A", "a", "dir/", "./a", "é", "e\u0301", "..", ".", " ", "a" * 300,
                     "plugin.toml", "manifest.json"]),
    st.text(min_size=1, max_size=20))
ENTRIES = st.builds(
    Raw, name=NAMES, data=st.binary(max_size=2000), method=st.sampled_from([0, 8, 8, 12, 99]),
    unix_mode=st.sampled_from([0o100644, 0o100755, 0o120777, 0o040755, 0o010644, None]),
    descriptor=st.booleans())


@st.composite
def zips(draw: st.DrawFn) -> bytes:
    entries = draw(st.lists(ENTRIES, max_size=6))
    try:
        data = build(entries, prefix=draw(st.sampled_from([b"", b"#!/bin/sh\n"])),
                     comment=draw(st.binary(max_size=20)))
    except (UnicodeEncodeError, ValueError, OverflowError):
        data = b""
    flips = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4))
    mutable = bytearray(data)
    for pos, value in flips:
        if mutable:
            mutable[pos % len(mutable)] = value
    cut = draw(st.one_of(st.none(), st.integers(0, max(len(mutable), 1))))
    return bytes(mutable[:cut] if cut is not None else mutable)


def _exercise(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.zip"
        path.write_bytes(data)
        dest = Path(tmp) / "out"
        try:
            with open_archive(path, LIMITS) as archive:
                for name in archive.names()[:3]:
                    assert len(archive.read(name)) <= LIMITS.max_entry_size
                archive.check()
                archive.extract(dest)
        except ArchiveError as exc:
            assert exc.code.startswith("archive."), exc.code
            assert exc.message
            assert not dest.exists(), "a refused extraction leaves nothing"
            assert sorted(os.listdir(tmp)) == ["p.zip"], "nor any temporary directory"
            return
        for root, _dirs, files in os.walk(dest):
            for f in files:
                full = Path(root, f)
                assert full.resolve().is_relative_to(dest.resolve())
                assert not full.is_symlink()


@given(zips())
@example(b"")
@example(b"PK\x05\x06" + b"\0" * 18)
@example(b"PK\x03\x04" + b"\xff" * 26)
def test_any_zip_is_accepted_or_refused_with_an_archive_code(data: bytes) -> None:
    _exercise(data)


@given(st.binary(max_size=3000))
def test_random_bytes_are_refused_with_an_archive_code(data: bytes) -> None:
    _exercise(data)


@given(st.sampled_from(["gzip", "deflate", "identity", "br", "gzip, deflate", ""]),
       st.binary(max_size=5000), st.lists(st.integers(0, 5000), max_size=4), st.booleans())
@example("gzip", b"\0" * 5000, [], True)
def test_inflate_yields_bounded_chunks_or_an_archive_error(
    encoding: str, payload: bytes, cuts: list[int], encode: bool
) -> None:
    if encode and encoding.startswith("gzip"):
        payload = gzip.compress(payload)
    elif encode and encoding == "deflate":
        payload = zlib.compress(payload)
    chunks, start = [], 0
    for cut in sorted(c % (len(payload) + 1) for c in cuts):
        chunks.append(payload[start:cut])
        start = cut
    chunks.append(payload[start:])
    produced = 0
    try:
        for out in inflate(chunks, encoding, LIMITS, max_size=4096):
            produced += len(out)
            assert len(out) <= 256 << 10
    except ArchiveError as exc:
        assert exc.code.startswith("archive.")
        return
    assert produced <= 4096
