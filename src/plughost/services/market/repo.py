"""The publisher's side: a marketplace repository on disk, as TUF metadata plus targets.

::

    REPO/
      market.json                 the repository's settings (name, expiry periods); not served
      keys/                       private signing keys, one PEM per key (0600); never served
        root-1.pem targets-1.pem snapshot-1.pem timestamp-1.pem
      root.json                   the current root, to hand to operators (`market add --root`)
      public/                     everything a static server (or S3) serves, as is
        metadata/
          1.root.json 2.root.json ...      every root version (clients walk the chain)
          timestamp.json                   the only file that changes in place
          <N>.snapshot.json <N>.targets.json
        targets/
          <sha256>.index.json              the searchable index (a signed target)
          packages/<id>/<sha256>.<id>-<version>.zip

Consistent snapshots are on: every file except ``timestamp.json`` is immutable once written,
so a publish never changes a file a client may be reading, and any static file server or
object store can serve the repository. Writes are serialised by a lock file; each new file is
written to a temporary name and renamed into place, ``timestamp.json`` last, so a reader sees
either the old repository state or the new one.

Expiry: ``timestamp`` 7 days, ``snapshot`` 30 days, ``targets`` 365 days, ``root`` 365 days by
default (``market.json``). Re-sign the timestamp before it expires with
:meth:`MarketRepository.refresh_timestamp` (``plughost market timestamp REPO``), e.g. daily
from cron; a client refuses a repository whose timestamp expired (a freeze attack looks the
same).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from plughost.core.version import Version, VersionRange
from plughost.errors import MarketError, VersionError
from plughost.services.market._files import atomic_write, locked
from plughost.services.market.index import (
    INDEX_TARGET,
    Advisory,
    Index,
    IndexPlugin,
    iso_now,
    package_target,
    parse_index,
    plugin_with_version,
    version_from_manifest,
)

__all__ = ["DEFAULT_EXPIRY", "ROLES", "MarketRepository", "PublishResult"]

log = logging.getLogger(__name__)

ROLES = ("root", "targets", "snapshot", "timestamp")
#: Default validity of each role's metadata, in days.
DEFAULT_EXPIRY: Mapping[str, int] = {"root": 365, "targets": 365, "snapshot": 30,
                                     "timestamp": 7}
_SETTINGS = "market.json"
_SETTINGS_FORMAT = "plughost-market-repository/1"


def _tuf() -> Any:
    try:
        from tuf.api import metadata
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        from plughost.errors import ExtraNotInstalled

        raise ExtraNotInstalled("The marketplace", "market", "tuf") from exc
    return metadata


def _repo_error(message: str, **details: Any) -> MarketError:
    return MarketError(message, code="market.repository", details=details)


@dataclass(frozen=True, slots=True)
class PublishResult:
    plugin_id: str
    version: str
    target: str
    sha256: str
    size: int
    signed_by: tuple[str, ...]
    index_version: int

    def to_dict(self) -> dict[str, Any]:
        return {"plugin_id": self.plugin_id, "version": self.version, "target": self.target,
                "sha256": self.sha256, "size": self.size, "signed_by": list(self.signed_by),
                "targets_version": self.index_version}


class MarketRepository:
    """A repository directory (see the module doc). Open one with :meth:`open` or create one
    with :meth:`init`."""

    def __init__(self, path: Path, settings: Mapping[str, Any]) -> None:
        self.path = path
        self.settings = dict(settings)
        self.public = path / "public"
        self.metadata_dir = self.public / "metadata"
        self.targets_dir = self.public / "targets"
        self.keys_dir = path / "keys"

    # ------------------------------------------------------------------ create / open

    @classmethod
    def init(cls, path: Path | str, *, name: str = "", threshold: int = 1,
             root_keys: int = 1, expiry: Mapping[str, int] | None = None) -> MarketRepository:
        """Create a repository: keys for every role, version 1 of every metadata file and an
        empty index.

        :param threshold: signatures the ``root`` role needs (``root_keys`` keys are made).
        :raises MarketError: ``market.repository`` when ``path`` is not empty.
        """
        md = _tuf()
        from securesystemslib.signer._crypto_signer import CryptoSigner

        path = Path(path).expanduser().resolve()
        if path.exists() and any(path.iterdir()):
            raise _repo_error(f"{path} is not empty; give a new directory for the repository",
                              path=str(path))
        if not 1 <= threshold <= root_keys:
            raise _repo_error(f"the root threshold must be between 1 and the number of root "
                              f"keys ({root_keys}), not {threshold}", threshold=threshold)
        days = {**DEFAULT_EXPIRY, **(expiry or {})}
        settings = {"format": _SETTINGS_FORMAT, "name": name or path.name, "expiry": days}
        repo = cls(path, settings)
        path.mkdir(parents=True, exist_ok=True)
        repo.keys_dir.mkdir(mode=0o700)
        repo.metadata_dir.mkdir(parents=True)
        (repo.targets_dir / "packages").mkdir(parents=True)
        signers: dict[str, list[Any]] = {}
        for role in ROLES:
            count = root_keys if role == "root" else 1
            signers[role] = []
            for n in range(1, count + 1):
                signer = CryptoSigner.generate_ed25519()
                _write_private(repo.keys_dir / f"{role}-{n}.pem", signer.private_bytes)
                signers[role].append(signer)
        root = md.Root(expires=repo._expiry("root"), consistent_snapshot=True)
        for role, role_signers in signers.items():
            for signer in role_signers:
                root.add_key(signer.public_key, role)
        root.roles["root"].threshold = threshold
        root_md = md.Metadata(root)
        for signer in signers["root"]:
            root_md.sign(signer, append=True)
        _write_json(path / _SETTINGS, settings)
        repo._write_metadata(root_md, f"{root.version}.root.json")
        (path / "root.json").write_bytes(root_md.to_bytes())
        with repo._locked():
            repo._commit(md.Metadata(md.Targets(expires=repo._expiry("targets"))),
                         Index({}, iso_now()), new=True)
        return repo

    @classmethod
    def open(cls, path: Path | str) -> MarketRepository:
        """Open an existing repository.

        :raises MarketError: ``market.repository`` when ``path`` is not one.
        """
        path = Path(path).expanduser().resolve()
        try:
            settings = json.loads((path / _SETTINGS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise _repo_error(f"{path} is not a marketplace repository (no readable "
                              f"{_SETTINGS}); create one with `plughost market init {path}`",
                              path=str(path)) from None
        if not isinstance(settings, dict) or settings.get("format") != _SETTINGS_FORMAT:
            raise _repo_error(f"{path / _SETTINGS} is not a {_SETTINGS_FORMAT} file",
                              path=str(path))
        return cls(path, settings)

    # ------------------------------------------------------------------ reading

    def _expiry(self, role: str) -> datetime:
        days = int(self.settings.get("expiry", {}).get(role, DEFAULT_EXPIRY[role]))
        return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)

    def _read(self, name: str) -> Any:
        md = _tuf()
        try:
            return md.Metadata.from_file(str(self.metadata_dir / name))
        except (OSError, ValueError) as exc:
            raise _repo_error(f"cannot read {name} of the repository at {self.path}: {exc}",
                              file=name) from None

    def root(self) -> Any:
        """The newest root metadata."""
        return self._read(f"{self.root_version()}.root.json")

    def root_version(self) -> int:
        versions = [int(p.name.split(".", 1)[0]) for p in self.metadata_dir.glob("*.root.json")
                    if p.name.split(".", 1)[0].isdigit()]
        if not versions:
            raise _repo_error(f"{self.metadata_dir} has no root metadata")
        return max(versions)

    def current(self) -> tuple[Any, Any, Any]:
        """The current ``(timestamp, snapshot, targets)`` metadata."""
        timestamp = self._read("timestamp.json")
        snapshot = self._read(f"{timestamp.signed.snapshot_meta.version}.snapshot.json")
        targets = self._read(f"{snapshot.signed.meta['targets.json'].version}.targets.json")
        return timestamp, snapshot, targets

    def index(self) -> Index:
        """The current index (as signed in the current targets metadata)."""
        _, _, targets = self.current()
        info = targets.signed.targets.get(INDEX_TARGET)
        if info is None:
            return Index({}, "")
        return parse_index(self._target_path(INDEX_TARGET, info.hashes["sha256"]).read_bytes())

    def _target_path(self, target: str, sha256: str) -> Path:
        folder, _, base = target.rpartition("/")
        return self.targets_dir / folder / f"{sha256}.{base}"

    # ------------------------------------------------------------------ signing

    def _signers(self, role: str) -> list[Any]:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from securesystemslib.signer._crypto_signer import CryptoSigner
        from securesystemslib.signer._key import SSlibKey

        root = self.root().signed
        wanted = set(root.roles[role].keyids)
        found = []
        for pem in sorted(self.keys_dir.glob(f"{role}-*.pem")):
            try:
                private = load_pem_private_key(pem.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as exc:
                raise _repo_error(f"cannot read the key {pem}: {exc}", key=str(pem)) from None
            public = SSlibKey.from_crypto(private.public_key())
            if public.keyid in wanted:
                found.append(CryptoSigner(private, public))
        if len(found) < root.roles[role].threshold:
            raise _repo_error(
                f"the {role} role needs {root.roles[role].threshold} signature(s) but only "
                f"{len(found)} of its keys are in {self.keys_dir}; put the missing key files "
                "there (or rotate the role's keys)", role=role)
        return found

    def _check_signers(self) -> None:
        """Refuse before writing anything when a role that signs every change lacks keys."""
        for role in ("targets", "snapshot", "timestamp"):
            self._signers(role)

    def _sign(self, metadata: Any, role: str) -> Any:
        metadata.signatures.clear()
        for signer in self._signers(role):
            metadata.sign(signer, append=True)
        return metadata

    def _write_metadata(self, metadata: Any, name: str) -> None:
        atomic_write(self.metadata_dir / name, metadata.to_bytes())

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.path / ".lock")

    def _commit(self, targets_md: Any, index: Index, *, new: bool = False) -> int:
        """Write ``index`` as a target, then new targets, snapshot and timestamp metadata."""
        md = _tuf()
        self._check_signers()
        data = index.to_bytes()
        digest = hashlib.sha256(data).hexdigest()
        path = self._target_path(INDEX_TARGET, digest)
        atomic_write(path, data)
        targets = targets_md.signed
        targets.targets[INDEX_TARGET] = md.TargetFile(len(data), {"sha256": digest},
                                                      INDEX_TARGET)
        if not new:
            targets.version += 1
        targets.expires = self._expiry("targets")
        self._sign(targets_md, "targets")
        targets_bytes = targets_md.to_bytes()
        atomic_write(self.metadata_dir / f"{targets.version}.targets.json", targets_bytes)
        if new:
            snapshot = md.Snapshot(expires=self._expiry("snapshot"))
        else:
            snapshot = self.current()[1].signed
            snapshot.version += 1
            snapshot.expires = self._expiry("snapshot")
        snapshot.meta["targets.json"] = md.MetaFile(
            version=targets.version, length=len(targets_bytes),
            hashes={"sha256": hashlib.sha256(targets_bytes).hexdigest()})
        snapshot_md = self._sign(md.Metadata(snapshot), "snapshot")
        snapshot_bytes = snapshot_md.to_bytes()
        atomic_write(self.metadata_dir / f"{snapshot.version}.snapshot.json", snapshot_bytes)
        self._write_timestamp(snapshot.version, snapshot_bytes, new=new)
        return int(targets.version)

    def _write_timestamp(self, snapshot_version: int, snapshot_bytes: bytes, *,
                         new: bool = False) -> None:
        md = _tuf()
        if new:
            timestamp = md.Timestamp(expires=self._expiry("timestamp"))
        else:
            timestamp = self._read("timestamp.json").signed
            timestamp.version += 1
            timestamp.expires = self._expiry("timestamp")
        timestamp.snapshot_meta = md.MetaFile(
            version=snapshot_version, length=len(snapshot_bytes),
            hashes={"sha256": hashlib.sha256(snapshot_bytes).hexdigest()})
        self._write_metadata(self._sign(md.Metadata(timestamp), "timestamp"), "timestamp.json")

    # ------------------------------------------------------------------ operations

    def publish(self, package: Path | str, *, allow_unsigned: bool = False) -> PublishResult:
        """Add a package (a ``.zip`` from ``plughost pack``, signed with ``plughost sign``) as a
        target and to the index, and sign new metadata.

        Every signature in the package must verify (a forged one is refused); a package
        without one is refused unless ``allow_unsigned``. Hosts installing it apply their own
        trust store and signature policy as for any package.

        :raises MarketError: ``market.repository`` (same version already published with other
            bytes), ``market.unsigned``; package errors (archive, manifest, signature) as is.
        """
        from plughost.security.package import open_package
        from plughost.security.signing import SignaturePolicy, TrustStore, verify_signature

        source = Path(package).expanduser()
        if not source.is_file():
            raise _repo_error(f"{source} is not a package file; build one with `plughost pack`",
                              source=str(source))
        with open_package(source) as opened:
            info = opened.info
            verify_signature(info, TrustStore(self.path / "publishers.json"),
                             SignaturePolicy("never"))
            signers = _signer_ids(info.signature_bytes)
        if not signers and not allow_unsigned:
            raise MarketError(
                f"{info.plugin_id} {info.version} is not signed; sign it with `plughost sign` "
                "first (or publish with --allow-unsigned, and hosts will apply their own "
                "signature policy)", code="market.unsigned",
                plugin_id=info.plugin_id)
        md = _tuf()
        target = package_target(info.plugin_id, info.version)
        with self._locked():
            _, _, targets_md = self.current()
            existing = targets_md.signed.targets.get(target)
            if existing is not None:
                if existing.hashes.get("sha256") == info.sha256:
                    return PublishResult(info.plugin_id, info.version, target, info.sha256,
                                         info.size, tuple(signers),
                                         int(targets_md.signed.version))
                raise _repo_error(
                    f"{info.plugin_id} {info.version} is already published with other "
                    "content; published versions never change — publish a new version (or "
                    f"yank this one with `plughost market yank {info.plugin_id}@{info.version}`)",
                    plugin_id=info.plugin_id, version=info.version)
            self._check_signers()
            dest = self._target_path(target, info.sha256)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{secrets.token_hex(6)}.tmp")
            shutil.copyfile(source, tmp)
            if _sha256(tmp) != info.sha256:  # the file changed under us while publishing
                tmp.unlink()
                raise _repo_error(f"{source} changed while it was being published; try again")
            os.replace(tmp, dest)
            targets_md.signed.targets[target] = md.TargetFile(
                info.size, {"sha256": info.sha256}, target)
            index = self.index()
            entry = version_from_manifest(info.manifest, target=target, sha256=info.sha256,
                                          size=info.size, signed_by=signers,
                                          published=iso_now())
            plugins = dict(index.plugins)
            plugins[info.plugin_id] = plugin_with_version(plugins.get(info.plugin_id),
                                                          info.manifest, entry)
            version = self._commit(targets_md, Index(plugins, iso_now()))
        return PublishResult(info.plugin_id, info.version, target, info.sha256, info.size,
                             tuple(signers), version)

    def _change_plugin(self, plugin_id: str, change: Any) -> int:
        with self._locked():
            _, _, targets_md = self.current()
            index = self.index()
            plugin = index.get(plugin_id)
            if plugin is None:
                raise MarketError(f"{plugin_id} is not published in this repository",
                                  code="market.not_found", plugin_id=plugin_id)
            plugins = dict(index.plugins)
            plugins[plugin_id] = change(plugin)
            return self._commit(targets_md, Index(plugins, iso_now()))

    def yank(self, plugin_id: str, version: str, *, reason: str = "",
             undo: bool = False) -> int:
        """Mark a version yanked (kept, but only installed when pinned exactly), or undo it."""
        from dataclasses import replace

        try:
            wanted = Version.parse(version)
        except VersionError as exc:
            raise _repo_error(exc.message) from None

        def change(plugin: IndexPlugin) -> IndexPlugin:
            if plugin.version(wanted) is None:
                raise MarketError(f"{plugin_id} {version} is not published",
                                  code="market.not_found", plugin_id=plugin_id)
            return replace(plugin, versions=tuple(
                replace(v, yanked=not undo, yanked_reason="" if undo else reason)
                if v.version == wanted else v for v in plugin.versions))

        return self._change_plugin(plugin_id, change)

    def advise(self, plugin_id: str, advisory_id: str, affected: str, *,
               severity: str = "medium", summary: str = "", fixed: str = "",
               force: bool = False) -> int:
        """Publish (or replace, by id) a security advisory for ``plugin_id``."""
        from dataclasses import replace

        try:
            rng = VersionRange(affected)
        except VersionError as exc:
            raise _repo_error(f"affected: {exc.message}") from None
        advisory = Advisory(advisory_id, rng, severity, summary, fixed, force)

        def change(plugin: IndexPlugin) -> IndexPlugin:
            kept = tuple(a for a in plugin.advisories if a.id != advisory_id)
            return replace(plugin, advisories=(*kept, advisory))

        return self._change_plugin(plugin_id, change)

    def refresh_timestamp(self) -> int:
        """Re-sign ``timestamp.json`` with a new expiry (run it more often than it expires)."""
        with self._locked():
            _, snapshot, _ = self.current()
            self._write_timestamp(snapshot.signed.version,
                                  (self.metadata_dir /
                                   f"{snapshot.signed.version}.snapshot.json").read_bytes())
            return int(self._read("timestamp.json").signed.version)

    def rotate_keys(self, role: str) -> int:
        """Replace ``role``'s key with a new one, signing a new root with the old and the new
        root keys (clients follow the chain of roots). Returns the new root version."""
        _tuf()
        from securesystemslib.signer._crypto_signer import CryptoSigner

        if role not in ROLES:
            raise _repo_error(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        with self._locked():
            root_md = self.root()
            old_root_signers = self._signers("root")
            root = root_md.signed
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
            new = CryptoSigner.generate_ed25519()
            root.add_key(new.public_key, role)
            root.version += 1
            root.expires = self._expiry("root")
            for old in self.keys_dir.glob(f"{role}-*.pem"):
                old.rename(old.with_name(f"retired-{root.version}-{old.name}"))
            _write_private(self.keys_dir / f"{role}-1.pem", new.private_bytes)
            root_md.signatures.clear()
            signers = old_root_signers + ([new] if role == "root" else [])
            for signer in signers:
                root_md.sign(signer, append=True)
            self._write_metadata(root_md, f"{root.version}.root.json")
            (self.path / "root.json").write_bytes(root_md.to_bytes())
            # Re-sign the other roles so they verify under the new root.
            _, _, targets_md = self.current()
            self._commit(targets_md, self.index())
            return int(root.version)


def _signer_ids(signature_bytes: bytes | None) -> list[str]:
    if not signature_bytes:
        return []
    try:
        doc = json.loads(signature_bytes)
        return [str(s["key_id"]) for s in doc.get("signatures", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

