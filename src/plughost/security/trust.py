"""The trust store: the publisher keys a host trusts, revocations included.

One JSON file (``<home>/trust.json``) written atomically (temporary file, ``fsync``,
``os.replace``) under an exclusive lock, so concurrent processes lose no update and a crash
leaves the old file or the new one. Revocation is permanent: a revoked key stays recorded with
its time and reason, and cannot be added again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.errors import TrustStoreError
from plughost.security.keys import key_id, load_public_key, raw_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["TRUST_FILE", "TRUST_FORMAT", "TrustStore", "TrustedKey"]

logger = logging.getLogger(__name__)

TRUST_FORMAT = "plughost-trust/v1"
TRUST_FILE = "trust.json"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A publisher key in the trust store. Revoked keys stay, with the time of revocation."""

    key_id: str
    name: str
    public_key: bytes
    """Raw 32-byte Ed25519 public key."""
    added_at: str
    revoked_at: str | None = None
    revocation_reason: str | None = None

    @property
    def revoked(self) -> bool:
        """True once the key has been revoked."""
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape, as stored and as printed by ``trust list --json``."""
        return {"key_id": self.key_id, "name": self.name,
                "public_key": base64.b64encode(self.public_key).decode("ascii"),
                "added_at": self.added_at, "revoked_at": self.revoked_at,
                "revocation_reason": self.revocation_reason}


class TrustStore:
    """The publisher keys this host trusts, persisted as one JSON file written atomically.

    Every read goes to the file, so several processes sharing a home see each other's changes;
    changes hold an exclusive lock on ``<file>.lock`` around read-modify-write.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @classmethod
    def for_home(cls, home: Path | str) -> TrustStore:
        """The trust store of a plughost home: ``<home>/trust.json``."""
        return cls(Path(home) / TRUST_FILE)

    def _load(self) -> list[TrustedKey]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TrustStoreError(f"Cannot read the trust store {self.path}: {exc.strerror}.",
                                  code="trust.corrupt") from None
        try:
            doc = json.loads(data)
            if doc.get("format") != TRUST_FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            keys = []
            for item in doc["keys"]:
                raw = base64.b64decode(item["public_key"], validate=True)
                if len(raw) != 32 or key_id(raw) != item["key_id"]:
                    raise ValueError(f"key {item.get('key_id')!r} does not match its public key")
                keys.append(TrustedKey(key_id=item["key_id"], name=item["name"], public_key=raw,
                                       added_at=item["added_at"],
                                       revoked_at=item.get("revoked_at"),
                                       revocation_reason=item.get("revocation_reason")))
            return keys
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise TrustStoreError(f"The trust store {self.path} is corrupt ({exc}). It was left "
                                  "untouched: restore it from a backup or move it away and "
                                  "re-add your keys.", code="trust.corrupt") from None

    def _save(self, keys: list[TrustedKey]) -> None:
        doc = {"format": TRUST_FORMAT, "keys": [k.to_dict() for k in keys]}
        payload = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.parent / f".{self.path.name}.tmp-{secrets.token_hex(6)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with open(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - non-POSIX: no cross-process lock
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def list_keys(self) -> list[TrustedKey]:
        """Every key, revoked ones included, in the order they were added."""
        return self._load()

    def get(self, key_id_: str) -> TrustedKey | None:
        """The key with that id (revoked or not), or ``None``."""
        wanted = key_id_.lower()
        return next((k for k in self._load() if k.key_id == wanted), None)

    def add(self, public_key: Path | str | bytes | Ed25519PublicKey, name: str) -> TrustedKey:
        """Trust a publisher key under ``name``.

        :raises TrustStoreError: ``trust.duplicate`` (already trusted), ``trust.revoked`` (it was
            revoked: revocation is permanent), ``trust.name_taken``.
        """
        if not isinstance(public_key, (bytes, str, Path)):
            key = public_key
        else:
            key = load_public_key(public_key)
        name = name.strip()
        if not name or len(name) > 64:
            raise TrustStoreError("A trusted key needs a name of 1-64 characters (--name).",
                                  code="trust.name")
        raw = raw_public_key(key)
        kid = key_id(raw)
        with self._locked():
            keys = self._load()
            for k in keys:
                if k.key_id == kid and k.revoked:
                    raise TrustStoreError(f"Key {kid} ({k.name}) was revoked at {k.revoked_at}; "
                                          "revocation is permanent. Ask the publisher for a new "
                                          "key.", code="trust.revoked", details={"key_id": kid})
                if k.key_id == kid:
                    raise TrustStoreError(f"Key {kid} is already trusted as {k.name!r}.",
                                          code="trust.duplicate", details={"key_id": kid})
                if k.name == name:
                    raise TrustStoreError(f"The name {name!r} is already used by key {k.key_id}; "
                                          "choose another.", code="trust.name_taken",
                                          details={"key_id": k.key_id})
            added = TrustedKey(key_id=kid, name=name, public_key=raw, added_at=_now())
            self._save([*keys, added])
        logger.info("trusted key %s as %r", kid, name)
        return added

    def revoke(self, key_id_: str, reason: str | None = None) -> TrustedKey:
        """Revoke a key: it stays recorded, and its signatures are refused from now on.

        Revoking an already revoked key changes nothing and returns it.

        :raises TrustStoreError: ``trust.unknown_key``.
        """
        wanted = key_id_.strip().lower()
        with self._locked():
            keys = self._load()
            for i, k in enumerate(keys):
                if k.key_id == wanted:
                    if k.revoked:
                        return k
                    revoked = TrustedKey(key_id=k.key_id, name=k.name, public_key=k.public_key,
                                         added_at=k.added_at, revoked_at=_now(),
                                         revocation_reason=reason)
                    keys[i] = revoked
                    self._save(keys)
                    logger.warning("revoked key %s (%s)", k.key_id, k.name)
                    return revoked
        raise TrustStoreError(f"No key {key_id_!r} in the trust store; `plughost trust list` "
                              "shows the key ids.", code="trust.unknown_key",
                              details={"key_id": key_id_})
