"""Ed25519 keys: generate, load, and name them by key id.

A key's id is the first 16 hex digits of the SHA-256 of its raw 32-byte public key. Private
keys are PKCS#8 PEM files (mode 0600); public keys are SubjectPublicKeyInfo PEM files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.errors import ExtraNotInstalled, SigningKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "crypto",
    "key_id",
    "keygen",
    "load_private_key",
    "load_public_key",
    "raw_public_key",
]

logger = logging.getLogger(__name__)


def crypto() -> Any:
    """The ``cryptography`` Ed25519 module, or :class:`ExtraNotInstalled` naming the extra."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ExtraNotInstalled("Package signing", "security", "cryptography") from exc
    return ed25519


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of an Ed25519 public key."""
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(out_dir: Path | str, name: str = "signing") -> tuple[Path, Path]:
    """Create an Ed25519 key pair as PEM files ``<name>.key`` (mode 0600) and ``<name>.pub``.

    :raises SigningKeyError: ``key.exists`` when either file exists (keys are never overwritten).
    """
    from cryptography.hazmat.primitives import serialization

    ed25519 = crypto()
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise SigningKeyError(f"Key name {name!r} must be 1-64 letters, digits, '.', '_' or '-'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (private_path, public_path):
        if os.path.lexists(p):
            raise SigningKeyError(f"{p} already exists; plughost never overwrites keys. Choose "
                                  "another --name or folder.", code="key.exists",
                                  details={"path": str(p)})
    private = ed25519.Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, private_pem)
    finally:
        os.close(fd)
    try:
        fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(fd, "wb") as fh:
            fh.write(public_pem)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    logger.info("generated key %s in %s", key_id(private.public_key()), out)
    return private_path, public_path


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """Load an unencrypted PEM Ed25519 private key; ``key.invalid`` names what is wrong."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = crypto()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"Cannot read the key {path}: {exc.strerror}.") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningKeyError(f"{path} is encrypted; plughost reads unencrypted PEM keys "
                              "(keep them in a protected folder instead).") from None
    except ValueError:
        raise SigningKeyError(f"{path} is not a PEM private key. Create one with "
                              "`plughost keygen`.") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key; plughost signs with Ed25519 "
                              "(`plughost keygen`).")
    mode = path.stat().st_mode & 0o077
    if mode:
        logger.warning("private key %s is readable by group or others (mode %o); chmod 600 it",
                       path, path.stat().st_mode & 0o777)
    private: Ed25519PrivateKey = key
    return private


def load_public_key(source: Path | str | bytes) -> Ed25519PublicKey:
    """Load a PEM Ed25519 public key from a file path or PEM bytes."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = crypto()
    where = "the key"
    if isinstance(source, bytes):
        data = source
    else:
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"Cannot read {where}: {exc.strerror}.") from None
    if b"PRIVATE KEY" in data:
        raise SigningKeyError(f"{where} is a private key. Share and trust only the public key "
                              "(the .pub file `plughost keygen` wrote).")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise SigningKeyError(f"{where} is not a PEM public key.") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SigningKeyError(f"{where} is not an Ed25519 public key.")
    public: Ed25519PublicKey = key
    return public
