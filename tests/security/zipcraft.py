"""Build zip archives byte by byte, so tests can craft hostile ones zipfile refuses to write."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL = struct.Struct("<4sHHHHHIIIHH")
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
EOCD = struct.Struct("<4sHHHHIIH")


@dataclass
class Raw:
    """One entry. ``data`` is the content; ``packed`` overrides the stored (compressed) bytes.

    ``local`` / ``central`` override header fields by name: flags, method, crc, csize, usize,
    name (bytes), extra (bytes), made_by, ext_attr.
    """

    name: str
    data: bytes = b""
    method: int = 8
    packed: bytes | None = None
    unix_mode: int | None = 0o100644
    descriptor: bool = False
    local: dict[str, Any] = field(default_factory=dict)
    central: dict[str, Any] = field(default_factory=dict)


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def build(entries: list[Raw], *, prefix: bytes = b"", suffix: bytes = b"",
          comment: bytes = b"", adjust_offsets: bool = False) -> bytes:
    body = bytearray(prefix)
    base = 0 if adjust_offsets else len(prefix)
    centrals = []
    for e in entries:
        packed = e.packed if e.packed is not None else (
            deflate(e.data) if e.method == 8 else e.data)
        name = e.name.encode("utf-8")
        flags = 0x800 if not name.isascii() else 0
        if e.descriptor:
            flags |= 0x8
        f = {"flags": flags, "method": e.method, "crc": zlib.crc32(e.data), "csize": len(packed),
             "usize": len(e.data), "name": name, "extra": b""}
        lf = {**f, **e.local}
        cf = {**f, **e.central}
        offset = len(body) - base
        lcrc, lcs, lus = (0, 0, 0) if e.descriptor and "crc" not in e.local else (
            lf["crc"], lf["csize"], lf["usize"])
        body += LOCAL.pack(b"PK\x03\x04", 20, lf["flags"], lf["method"], 0, 0x21, lcrc, lcs, lus,
                           len(lf["name"]), len(lf["extra"])) + lf["name"] + lf["extra"]
        body += packed
        if e.descriptor:
            body += struct.pack("<4sIII", b"PK\x07\x08", f["crc"], f["csize"], f["usize"])
        made_by = cf.get("made_by", (3 << 8 | 20) if e.unix_mode is not None else 20)
        ext = cf.get("ext_attr", (e.unix_mode << 16) if e.unix_mode is not None else 0)
        centrals.append(CENTRAL.pack(
            b"PK\x01\x02", made_by, 20, cf["flags"], cf["method"], 0, 0x21, cf["crc"],
            cf["csize"], cf["usize"], len(cf["name"]), len(cf["extra"]), 0, 0, 0, ext,
            cf.get("offset", offset)) + cf["name"] + cf["extra"])
    cd_offset = len(body) - base
    cd = b"".join(centrals)
    body += cd
    body += EOCD.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), len(cd), cd_offset,
                      len(comment)) + comment
    body += suffix
    return bytes(body)


def rewrite(src: Path, dest: Path, *, change: dict[str, bytes | None]) -> Path:
    """Copy a zip, replacing (bytes) or dropping (None) entries and appending new ones."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in change:
                if change[info.filename] is not None:
                    zout.writestr(info, change[info.filename])
            else:
                zout.writestr(info, zin.read(info.filename))
        for name, data in change.items():
            if name not in zin.namelist() and data is not None:
                zout.writestr(name, data)
    return dest


def bomb(name: str, size: int, *, byte: bytes = b"\0") -> Raw:
    """An entry of ``size`` copies of ``byte``, deflated at the highest ratio (~1000:1), built
    in 1 MiB steps so the test itself never holds the unpacked bytes."""
    packed, crc = _deflated_repeat(size, byte)
    fields = {"crc": crc, "usize": size, "csize": len(packed)}
    return Raw(name, packed=packed, local=dict(fields), central=dict(fields))


_BOMBS: dict[tuple[int, bytes], tuple[bytes, int]] = {}


def _deflated_repeat(size: int, byte: bytes) -> tuple[bytes, int]:
    key = (size, byte)
    if key not in _BOMBS:
        step = byte * (1 << 20)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        parts, crc, left = [], 0, size
        while left:
            chunk = step[: min(left, len(step))]
            parts.append(c.compress(chunk))
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        parts.append(c.flush())
        _BOMBS[key] = (b"".join(parts), crc)
    return _BOMBS[key]
