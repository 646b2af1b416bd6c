"""Package signatures (Ed25519), the trust store of publisher keys, and the signature policy.

What is signed is a *statement*, not the zip bytes::

    {"id": "notify-slack", "integrity_sha256": "<hex>",
     "type": "plughost-package-signature/v1", "version": "1.0.0"}

serialised canonically (sorted keys, no whitespace, ASCII). It binds the plugin id, the version and
the SHA-256 of the package's integrity file — which in turn lists every file's size and SHA-256 —
so a signature cannot be moved to another plugin, another version or other content. The
signature lives inside the package as its last entry, ``PLUGHOST-SIGNATURE.json``::

    {"format": "plughost-signature/v1",
     "statement": {...},
     "signatures": [{"algorithm": "ed25519", "key_id": "<16 hex>",
                     "public_key": "<base64 raw 32 bytes>", "signature": "<base64 64 bytes>"}]}

Several keys may sign the same statement (a publisher and a marketplace). Signing is
deterministic (Ed25519), so signing the same package with the same key gives the same bytes.

A key's id is the first 16 hex digits of the SHA-256 of its raw 32-byte public key. The embedded
public key only lets ``verify`` tell "valid, but from a key you do not trust" from "forged";
trust always comes from the :class:`TrustStore`, never from the package.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from plughost.errors import (
    ArchiveError,
    ChecksumMismatch,
    ConfigurationError,
    ExtraNotInstalled,
    SignatureError,
    SigningKeyError,
    TrustStoreError,
)
from plughost.security.archive import DEFAULT_LIMITS, ArchiveLimits
from plughost.security.package import (
    SIGNATURE_FILE,
    PackageInfo,
    SourceFile,
    open_package,
    write_package,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "SIGNATURE_FORMAT",
    "STATEMENT_TYPE",
    "TRUST_FILE",
    "SignaturePolicy",
    "TrustStore",
    "TrustedKey",
    "VerificationResult",
    "canonical_statement",
    "check_sha256",
    "key_id",
    "keygen",
    "load_private_key",
    "load_public_key",
    "make_statement",
    "sign",
    "verify",
    "verify_signature",
]

logger = logging.getLogger(__name__)

STATEMENT_TYPE = "plughost-package-signature/v1"
SIGNATURE_FORMAT = "plughost-signature/v1"
TRUST_FORMAT = "plughost-trust/v1"
TRUST_FILE = "trust.json"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ExtraNotInstalled("Package signing", "security", "cryptography") from exc
    return ed25519


# -- statements -----------------------------------------------------------------------------------

def make_statement(plugin_id: str, version: str, integrity_sha256: str) -> dict[str, str]:
    """The statement a package signature covers."""
    return {"type": STATEMENT_TYPE, "id": plugin_id, "version": version,
            "integrity_sha256": integrity_sha256}


def canonical_statement(statement: dict[str, str]) -> bytes:
    """The exact bytes that are signed: sorted keys, no whitespace, ASCII-only JSON."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


# -- keys -----------------------------------------------------------------------------------------

def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = public_key if isinstance(public_key, bytes) else _raw_public(public_key)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(out_dir: Path | str, name: str = "signing") -> tuple[Path, Path]:
    """Create an Ed25519 key pair as PEM files ``<name>.key`` (mode 0600) and ``<name>.pub``.

    :raises SigningKeyError: ``key.exists`` when either file exists (keys are never overwritten).
    """
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
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

    ed25519 = _crypto()
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

    ed25519 = _crypto()
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


# -- trust store ----------------------------------------------------------------------------------

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
        raw = _raw_public(key)
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


# -- policy ---------------------------------------------------------------------------------------

RequireSignature = Literal["always", "never", "unless-allowlisted"]


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """When a package must carry a trusted signature.

    :param require_signature: ``always`` (default), ``never``, or ``unless-allowlisted``
        (required except for the plugin ids in ``allowlist``).
    :param allowlist: plugin ids that may be installed unsigned under ``unless-allowlisted``.

    Whatever the policy, a signature that is present is checked: a forged signature, one made
    for another plugin, version or content, or one by a revoked key is always refused. A valid
    signature by a key that is not in the trust store is refused only when a signature is
    required.
    """

    require_signature: RequireSignature = "always"
    allowlist: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.require_signature not in ("always", "never", "unless-allowlisted"):
            raise ConfigurationError(
                f"require_signature must be 'always', 'never' or 'unless-allowlisted', not "
                f"{self.require_signature!r}."
            )
        if isinstance(self.allowlist, str):
            raise ConfigurationError("SignaturePolicy.allowlist must be a collection of plugin "
                                     "ids, not one string.")
        object.__setattr__(self, "allowlist", frozenset(self.allowlist))

    def requires(self, plugin_id: str) -> bool:
        """Whether ``plugin_id`` must carry a trusted signature under this policy."""
        if self.require_signature == "always":
            return True
        if self.require_signature == "never":
            return False
        return plugin_id not in self.allowlist


# -- signing and verifying ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The outcome of a successful verification."""

    plugin_id: str
    version: str
    package_sha256: str
    integrity_sha256: str
    signed: bool
    trusted: bool
    """A signature by a trusted, unrevoked key verified."""
    key_id: str | None
    key_name: str | None
    """The trust store's name for the signing key (``None`` when untrusted or unsigned)."""
    signature_required: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON shape used by ``plughost verify --json``."""
        return {"plugin_id": self.plugin_id, "version": self.version,
                "package_sha256": self.package_sha256, "integrity_sha256": self.integrity_sha256,
                "signed": self.signed, "trusted": self.trusted, "key_id": self.key_id,
                "key_name": self.key_name, "signature_required": self.signature_required}


@dataclass(frozen=True, slots=True)
class _Sig:
    key_id: str
    public_key: bytes
    signature: bytes


def _parse_signature_document(data: bytes) -> tuple[dict[str, str], list[_Sig]]:
    def bad(why: str) -> SignatureError:
        return SignatureError(f"{SIGNATURE_FILE} is malformed: {why}. Sign the package again "
                              "with `plughost sign`.", code="signature.invalid")

    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
        raise bad(f"expected format {SIGNATURE_FORMAT!r}")
    statement = doc.get("statement")
    if not isinstance(statement, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in statement.items()):
        raise bad("'statement' must be an object of strings")
    items = doc.get("signatures")
    if not isinstance(items, list) or not items:
        raise bad("'signatures' must be a non-empty list")
    sigs = []
    for item in items:
        try:
            if item["algorithm"] != "ed25519":
                raise bad(f"unsupported algorithm {item['algorithm']!r}")
            public = base64.b64decode(item["public_key"], validate=True)
            signature = base64.b64decode(item["signature"], validate=True)
            kid = item["key_id"]
        except (KeyError, TypeError, binascii.Error):
            raise bad("each signature needs algorithm, key_id, public_key and signature") from None
        if len(public) != 32 or len(signature) != 64 or not isinstance(kid, str):
            raise bad("wrong key or signature length")
        if not hmac.compare_digest(key_id(public), kid):
            raise bad(f"key_id {kid!r} does not match the embedded public key")
        sigs.append(_Sig(kid, public, signature))
    return statement, sigs


def _signature_document(statement: dict[str, str], sigs: Iterable[_Sig]) -> bytes:
    doc = {"format": SIGNATURE_FORMAT, "statement": statement,
           "signatures": [{"algorithm": "ed25519", "key_id": s.key_id,
                           "public_key": base64.b64encode(s.public_key).decode("ascii"),
                           "signature": base64.b64encode(s.signature).decode("ascii")}
                          for s in sigs]}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _valid(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    ed25519 = _crypto()
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def sign(
    package: Path | str,
    key: Path | str | Ed25519PrivateKey,
    *,
    out: Path | str | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> Path:
    """Sign a package with an Ed25519 private key; write it to ``out`` (default: in place).

    The package's files are checked against its integrity file first (a damaged package is
    never signed). Signatures by other keys over the same statement are kept; an older
    signature by the same key is replaced. Signing is deterministic.

    :returns: the path of the signed package.
    """
    private = key if not isinstance(key, (str, Path)) else load_private_key(key)
    public_raw = _raw_public(private.public_key())
    kid = key_id(public_raw)
    package = Path(package)
    dest = Path(out) if out is not None else package
    with open_package(package, limits) as pkg:
        pkg.check_integrity()
        info = pkg.info
        statement = make_statement(info.plugin_id, info.version, info.integrity_sha256)
        kept: list[_Sig] = []
        if info.signature_bytes is not None:
            old_statement, old_sigs = _parse_signature_document(info.signature_bytes)
            if old_statement == statement:
                kept = [s for s in old_sigs if s.key_id != kid]
            else:
                logger.warning("dropping signatures over a different statement in %s", package)
        new = _Sig(kid, public_raw, private.sign(canonical_statement(statement)))
        files = [f for f in pkg.files() if f.name != SIGNATURE_FILE]
    document = _signature_document(statement, [*kept, new])
    tmp = dest.parent / f".{dest.name}.tmp-{secrets.token_hex(6)}"
    try:
        write_package(tmp, [*files, SourceFile(SIGNATURE_FILE, document, False)])
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("signed %s %s with key %s", info.plugin_id, info.version, kid)
    return dest


def check_sha256(actual: str, expected: str) -> None:
    """Compare two hex SHA-256 digests in constant time; ``integrity.checksum`` on mismatch."""
    wanted = expected.strip().lower()
    if not _HEX64.match(wanted):
        raise ChecksumMismatch(f"Expected checksum {expected!r} is not a SHA-256 (64 hex "
                               "digits).", details={"expected": expected})
    if not hmac.compare_digest(actual.lower(), wanted):
        raise ChecksumMismatch(f"The package's SHA-256 is {actual}, but {wanted} was expected. "
                               "The download is damaged or not the file you meant.",
                               details={"expected": wanted, "actual": actual})


def verify_signature(
    info: PackageInfo, trust_store: TrustStore, policy: SignaturePolicy | None = None
) -> VerificationResult:
    """Check a package's signature (not its files: see :func:`verify`) against the trust store.

    :raises SignatureError: ``signature.missing``, ``signature.invalid``,
        ``signature.untrusted_key``, ``signature.revoked_key`` or ``signature.mismatch``.
    """
    policy = policy or SignaturePolicy()
    required = policy.requires(info.plugin_id)

    def result(**kw: Any) -> VerificationResult:
        return VerificationResult(plugin_id=info.plugin_id, version=info.version,
                                  package_sha256=info.sha256,
                                  integrity_sha256=info.integrity_sha256,
                                  signature_required=required, **kw)

    if info.signature_bytes is None:
        if required:
            raise SignatureError(
                f"{info.plugin_id} {info.version} is not signed, and the policy requires a "
                "signature. Ask the publisher for a signed package, or allow this plugin "
                "(require_signature = 'unless-allowlisted' with it in the allowlist).",
                code="signature.missing", plugin_id=info.plugin_id)
        return result(signed=False, trusted=False, key_id=None, key_name=None)

    statement, sigs = _parse_signature_document(info.signature_bytes)
    expected = make_statement(info.plugin_id, info.version, info.integrity_sha256)
    if statement != expected:
        fields = sorted(k for k in set(statement) | set(expected)
                        if statement.get(k) != expected.get(k))
        raise SignatureError(
            f"The signature was made for another package (it differs in: {', '.join(fields)}; "
            f"signed for {statement.get('id')!r} {statement.get('version')!r}). A signature "
            "cannot be moved between plugins, versions or contents.",
            code="signature.mismatch", plugin_id=info.plugin_id,
            details={"fields": fields, "signed": statement, "package": expected})
    message = canonical_statement(expected)
    invalid: list[str] = []
    revoked: list[TrustedKey] = []
    untrusted: list[str] = []
    for sig in sigs:
        trusted = trust_store.get(sig.key_id)
        # Trust comes from the store's copy of the key, never from the one in the package.
        public = trusted.public_key if trusted is not None else sig.public_key
        if not _valid(public, sig.signature, message):
            invalid.append(sig.key_id)
        elif trusted is None:
            untrusted.append(sig.key_id)
        elif trusted.revoked:
            revoked.append(trusted)
        else:
            return result(signed=True, trusted=True, key_id=trusted.key_id,
                          key_name=trusted.name)
    if invalid:
        raise SignatureError(f"The signature by key {invalid[0]} does not verify: the package "
                             "or its signature was tampered with. Do not install it.",
                             code="signature.invalid", plugin_id=info.plugin_id,
                             details={"key_ids": invalid})
    if revoked:
        k = revoked[0]
        raise SignatureError(f"{info.plugin_id} {info.version} is signed by key {k.key_id} "
                             f"({k.name}), which was revoked at {k.revoked_at}. Signatures by "
                             "revoked keys are refused; get a package signed with a current key.",
                             code="signature.revoked_key", plugin_id=info.plugin_id,
                             details={"key_id": k.key_id, "revoked_at": k.revoked_at})
    if required:
        raise SignatureError(f"{info.plugin_id} {info.version} is signed by key {untrusted[0]}, "
                             "which is not in the trust store. If you trust this publisher, add "
                             "their public key: `plughost trust add KEYFILE --name NAME`.",
                             code="signature.untrusted_key", plugin_id=info.plugin_id,
                             details={"key_ids": untrusted})
    return result(signed=True, trusted=False, key_id=untrusted[0], key_name=None)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ArchiveError(f"Cannot read {path}: {exc.strerror}. Check the path and its "
                           "permissions.", code="archive.unreadable") from None
    return h.hexdigest()


def verify(
    package: Path | str,
    trust_store: TrustStore,
    policy: SignaturePolicy | None = None,
    *,
    expected_sha256: str | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> VerificationResult:
    """Fully verify a package file: checksum, archive safety, every file, then the signature.

    :param expected_sha256: the SHA-256 the caller expects the package file to have
        (``integrity.checksum`` when it differs).
    :raises ArchiveError, PackageError, ManifestError, SignatureError: on any refusal.
    """
    if expected_sha256 is not None:
        # Checked before anything else: a wrong download should say so, not fail obscurely.
        check_sha256(_file_sha256(Path(package)), expected_sha256)
    with open_package(package, limits) as pkg:
        if expected_sha256 is not None:
            check_sha256(pkg.info.sha256, expected_sha256)  # the bytes actually checked
        pkg.check_integrity()
        return verify_signature(pkg.info, trust_store, policy)
