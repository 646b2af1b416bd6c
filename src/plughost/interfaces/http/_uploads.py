"""Uploaded packages: streamed to the staging area, and Arcade's separate ``manifest`` part.

Seed 003 uploads a plugin file and, optionally, its manifest as a separate form part. plughost
installs packages (a zip with the manifest inside), so:

* a zip that carries its own manifest is installed as it is; a ``manifest`` part must then name
  the same plugin id and version (anything else is refused, naming both);
* a zip without a manifest, or a single file that is not a zip, is wrapped with the ``manifest``
  part as ``manifest.json`` into a new zip, which is then installed like any package (checked,
  unsigned unless the policy allows it).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from plughost.core.manifest import MANIFEST_FILES, manifest_from_dict, parse_manifest
from plughost.errors import ManifestError, RequestInvalid

__all__ = ["combine_with_manifest", "new_upload_dir", "save_upload"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1024 * 1024
#: Files that make a package signed/integrity-checked: such a package cannot be re-wrapped.
_SEALS = ("PLUGHOST-INTEGRITY.json", "PLUGHOST-SIGNATURE.json")


def new_upload_dir(staging_dir: Path) -> Path:
    """A fresh private directory under ``<staging>/uploads`` (swept at start if left over)."""
    path = staging_dir / "uploads" / uuid.uuid4().hex
    path.mkdir(parents=True, mode=0o700)
    return path


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


def _parse_manifest_part(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestInvalid(
            f"the manifest part is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "send the manifest as a JSON object, as in -F 'manifest={\"name\": ...}'",
            details={"field": "manifest"}) from None
    if not isinstance(data, dict):
        raise RequestInvalid("the manifest part must be a JSON object",
                             details={"field": "manifest"})
    return data


def combine_with_manifest(upload: Path, manifest_text: str) -> Path:
    """Apply the seed's ``manifest`` part to an uploaded file (see the module doc).

    Returns the path of the package to install (``upload`` itself or a new zip beside it).

    :raises RequestInvalid: the part is not a JSON object, or disagrees with the package.
    :raises ManifestError: the part is not a valid manifest (every problem listed).
    """
    data = _parse_manifest_part(manifest_text)
    given = manifest_from_dict(data, source="manifest part")
    if zipfile.is_zipfile(upload):
        with zipfile.ZipFile(upload) as zf:
            names = set(zf.namelist())
            inside = next((n for n in MANIFEST_FILES if n in names), None)
            if inside is not None:
                fmt = "toml" if inside.endswith(".toml") else "json"
                try:
                    packaged = parse_manifest(zf.read(inside), format=fmt, source=inside)
                except ManifestError:
                    raise
                if (packaged.id, str(packaged.version)) != (given.id, str(given.version)):
                    raise RequestInvalid(
                        f"the manifest part describes {given.id} {given.version} but the "
                        f"package's {inside} describes {packaged.id} {packaged.version}; drop "
                        "the manifest part or make them agree",
                        details={"part": f"{given.id} {given.version}",
                                 "package": f"{packaged.id} {packaged.version}"})
                return upload
            sealed = sorted(n for n in names if n in _SEALS)
            if sealed:
                raise RequestInvalid(
                    f"the package is sealed ({', '.join(sealed)}) but has no manifest at its "
                    "root; a sealed package cannot be changed — rebuild it with its manifest")
            out = upload.with_name(f"{given.id}-{given.version}.zip")
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    with zf.open(info) as src, dst.open(info.filename, "w") as target:
                        shutil.copyfileobj(src, target, _CHUNK)
                dst.writestr("manifest.json", json.dumps(data, indent=2))
            return out
    out = upload.with_name(f"{given.id}-{given.version}.zip")
    if out == upload:
        out = upload.with_name(f"{given.id}-{given.version}-package.zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        dst.write(upload, upload.name)
        dst.writestr("manifest.json", json.dumps(data, indent=2))
    return out
