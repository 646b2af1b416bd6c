"""Uploaded packages: streamed to the staging area; Arcade's plain zips and ``manifest`` part.

Arcade builds packages with ``zip plugin.so manifest.json`` and may send the manifest as a
separate form part. plughost installs packages built by ``plughost pack`` (with an integrity
list, optionally signed), so an upload is normalised first:

* a package built by ``plughost pack`` is installed as it is; a ``manifest`` part must then name
  the same plugin id and version (anything else is refused, naming both);
* a plain zip is unpacked with the safe extractor (every archive rule applies: no traversal,
  links, bombs...), the ``manifest`` part is added as ``manifest.json`` when given, and the
  folder is packed with :func:`~plughost.security.package.pack` — so the integrity list is
  computed here, and the signature policy still applies (a repacked package is unsigned);
* a single file that is not a zip needs the ``manifest`` part; the two become a package.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, BinaryIO

from plughost.core.manifest import (
    MANIFEST_FILES,
    MAX_MANIFEST_BYTES,
    Manifest,
    parse_manifest,
)
from plughost.errors import RequestInvalid
from plughost.security.archive import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    open_archive,
)
from plughost.security.package import INTEGRITY_FILE, pack

__all__ = ["normalise_upload", "safe_filename", "save_upload"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1024 * 1024
_EOCD_SEARCH = 22 + 65535  # the end record plus the longest comment


def safe_filename(name: str | None, default: str = "package.zip") -> str:
    """The uploaded file's base name reduced to safe characters."""
    base = Path(name or "").name
    base = _SAFE_NAME.sub("_", base).strip("._")
    return base[:120] or default


def save_upload(stream: BinaryIO, dest: Path) -> int:
    """Copy an uploaded (spooled) file to ``dest`` in chunks; returns the byte count."""
    size = 0
    with dest.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
            size += len(chunk)
    return size


def _parse_manifest_part(text: str) -> Manifest:
    # Size first (the manifest's own 64 KiB cap), then JSON, then the manifest rules.
    if len(text) > MAX_MANIFEST_BYTES // 4 and len(text.encode("utf-8", "replace")) \
            > MAX_MANIFEST_BYTES:
        return parse_manifest(text, format="json", source="manifest part")  # too large
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestInvalid(
            f"the manifest part is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "send the manifest as a JSON object, as in -F 'manifest={\"name\": ...}'",
            details={"field": "manifest"}) from None
    except RecursionError:
        raise RequestInvalid("the manifest part is nested too deeply to be a manifest",
                             details={"field": "manifest"}) from None
    if not isinstance(data, dict):
        raise RequestInvalid("the manifest part must be a JSON object",
                             details={"field": "manifest"})
    return parse_manifest(text, format="json", source="manifest part")


def _check_agrees(given: Any, text: bytes, inside: str) -> None:
    if inside.endswith(".toml"):
        packaged = parse_manifest(text, format="toml", source=inside)
    else:
        packaged = parse_manifest(text, format="json", source=inside)
    if (packaged.id, str(packaged.version)) != (given.id, str(given.version)):
        raise RequestInvalid(
            f"the manifest part describes {given.id} {given.version} but the package's "
            f"{inside} describes {packaged.id} {packaged.version}; drop the manifest part or "
            "make them agree",
            details={"part": f"{given.id} {given.version}",
                     "package": f"{packaged.id} {packaged.version}"})


def _is_zip(path: Path) -> bool:
    """Whether ``path`` is meant as a zip: it starts like one, or ends with a zip's end record
    (a zip with bytes in front, which the archive reader then refuses by name)."""
    with path.open("rb") as fh:
        if fh.read(2) == b"PK":
            return True
        fh.seek(max(0, path.stat().st_size - _EOCD_SEARCH))
        return b"PK\x05\x06" in fh.read()


def normalise_upload(upload: Path, manifest_text: str | None,
                     limits: ArchiveLimits = DEFAULT_LIMITS) -> Path:
    """Turn an upload into an installable package (see the module doc); returns its path.

    Every archive is read through :func:`~plughost.security.archive.open_archive` under
    ``limits`` (the installer's): a manifest inside a zip is read with the manifest's own size
    cap, checked on its declared size before anything is decompressed.

    :raises RequestInvalid: the manifest part is not a JSON object or disagrees with the
        package; a single file came without a manifest part.
    :raises ManifestError: a manifest is invalid (every problem listed).
    :raises ArchiveError: a zip breaks an archive rule (size, ratio, entries, nesting...).
    """
    given = _parse_manifest_part(manifest_text) if manifest_text is not None else None
    work = upload.parent.parent  # uploads are saved as <work>/upload/<name>
    folder = work / "unpacked"
    inside: str | None = None
    if _is_zip(upload):
        with open_archive(upload, limits) as archive:
            inside = next((n for n in MANIFEST_FILES if n in archive), None)
            if given is not None and inside is not None:
                _check_agrees(given, archive.read(inside, max_size=MAX_MANIFEST_BYTES + 1),
                              inside)
            if INTEGRITY_FILE in archive:
                return upload  # built by `plughost pack`: the installer checks it as it is
            if inside is None and given is None:
                raise RequestInvalid(
                    f"the zip has no {' or '.join(MANIFEST_FILES)} at its root; add one, or "
                    "send the manifest as the form part 'manifest'",
                    details={"field": "manifest"})
            archive.extract(folder)
        folder.chmod(0o700)  # extracted trees are read-only; the manifest is added below
    else:
        if given is None:
            raise RequestInvalid(
                "the uploaded file is not a zip package; send a package (plughost pack DIR, "
                "or zip with a manifest.json), or add the manifest as the form part "
                "'manifest'", details={"field": "file"})
        folder.mkdir()
        shutil.copyfile(upload, folder / upload.name)
    if manifest_text is not None and inside is None:
        (folder / "manifest.json").write_text(manifest_text, encoding="utf-8")
    out = work / "packed"
    out.mkdir()
    return pack(folder, out, limits=limits)
