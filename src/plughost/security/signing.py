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

Keys live in :mod:`plughost.security.keys` and the trust store in :mod:`plughost.security.trust`;
both are re-exported here so one import serves the signing workflow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from plughost.errors import (
    ArchiveError,
    ChecksumMismatch,
    ConfigurationError,
    SignatureError,
)
from plughost.security.archive import DEFAULT_LIMITS, ArchiveLimits
from plughost.security.keys import (
    crypto,
    key_id,
    keygen,
    load_private_key,
    load_public_key,
    raw_public_key,
)
from plughost.security.package import (
    SIGNATURE_FILE,
    PackageInfo,
    SourceFile,
    open_package,
    write_package,
)
from plughost.security.trust import TRUST_FILE, TrustedKey, TrustStore
from plughost.settings import DEFAULT_REQUIRE_SIGNATURE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
    )

    from plughost.settings import HostSettings

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
    "unsigned_hint",
    "verify",
    "verify_signature",
]

logger = logging.getLogger(__name__)

STATEMENT_TYPE = "plughost-package-signature/v1"
SIGNATURE_FORMAT = "plughost-signature/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# -- statements -----------------------------------------------------------------------------------

def make_statement(plugin_id: str, version: str, integrity_sha256: str) -> dict[str, str]:
    """The statement a package signature covers."""
    return {"type": STATEMENT_TYPE, "id": plugin_id, "version": version,
            "integrity_sha256": integrity_sha256}


def canonical_statement(statement: dict[str, str]) -> bytes:
    """The exact bytes that are signed: sorted keys, no whitespace, ASCII-only JSON."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")



# -- policy ---------------------------------------------------------------------------------------

RequireSignature = Literal["always", "never", "unless-allowlisted"]


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """When a package must carry a trusted signature.

    :param require_signature: ``unless-allowlisted`` (the default, the same as the host
        settings': with an empty allowlist every package must be signed), ``always`` or
        ``never``.
    :param allowlist: plugin ids that may be installed unsigned under ``unless-allowlisted``.

    Whatever the policy, every signature that is present is checked, and the package is
    refused if *any* of them fails: a forged or malformed signature, one made for another
    plugin, version or content, or one by a revoked key is always refused, even beside a valid
    signature by a trusted key. A valid signature by a key that is not in the trust store is
    refused only when a signature is required (then every signer must be trusted).
    """

    require_signature: RequireSignature = DEFAULT_REQUIRE_SIGNATURE
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

    @classmethod
    def from_settings(cls, settings: HostSettings) -> SignaturePolicy:
        """The policy a host's settings name (``require_signature``, ``signature_allowlist``):
        what ``install``, ``update`` and ``plughost verify`` apply by default."""
        return cls(settings.require_signature,  # type: ignore[arg-type]
                   frozenset(settings.signature_allowlist))

    def allowing(self, plugin_id: str) -> SignaturePolicy:
        """This policy, except that ``plugin_id`` may be unsigned (``install
        --allow-unsigned``). Signatures that are present are still all checked."""
        if not self.requires(plugin_id):
            return self
        return SignaturePolicy("unless-allowlisted", self.allowlist | {plugin_id}
                               if self.require_signature == "unless-allowlisted"
                               else frozenset({plugin_id}))

    def requires(self, plugin_id: str) -> bool:
        """Whether ``plugin_id`` must carry a trusted signature under this policy."""
        if self.require_signature == "always":
            return True
        if self.require_signature == "never":
            return False
        return plugin_id not in self.allowlist


def unsigned_hint(plugin_id: str, policy: SignaturePolicy) -> str:
    """What to do about an unsigned package: the exact flag or setting, never the policy
    already in force."""
    allow = (f"add it to `signature_allowlist` in plughost.toml "
             f"(or PLUGHOST_SIGNATURE_ALLOWLIST={plugin_id})")
    if policy.require_signature == "always":
        allow = (f"set `require_signature = \"unless-allowlisted\"` and {allow}")
    return (f"Ask the publisher for a signed package. For your own plugin in development, "
            f"install it once with `plughost install --allow-unsigned` (or `plughost update "
            f"{plugin_id} SOURCE --allow-unsigned`; recorded in the audit log), or {allow} to "
            f"always allow {plugin_id} unsigned.")


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
    except RecursionError:
        raise bad("JSON nested too deeply") from None
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

    ed25519 = crypto()
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
    public_raw = raw_public_key(private.public_key())
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
    """Apply the signature policy to a package (not its files: see :func:`verify`): the one
    place the policy is decided, for install, update and ``plughost verify`` alike.

    Every signature is checked against the trust store; one that is invalid, revoked, or
    untrusted while a signature is required refuses the package, whatever the others are.

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
                f"{info.plugin_id} {info.version} is not signed, and the signature policy "
                f"({policy.require_signature!r}) requires a signature. "
                + unsigned_hint(info.plugin_id, policy),
                code="signature.missing", plugin_id=info.plugin_id,
                details={"require_signature": policy.require_signature,
                         "hint": unsigned_hint(info.plugin_id, policy)})
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
    # Every signature must pass: one bad signature refuses the package even when another one
    # is by a trusted key. Otherwise a forged or revoked signature placed beside a good one
    # would be ignored, and revoking a key would not stop packages it co-signed.
    invalid: list[str] = []
    revoked: list[TrustedKey] = []
    untrusted: list[str] = []
    good: list[TrustedKey] = []
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
            good.append(trusted)
    if invalid:
        raise SignatureError(f"The signature by key {invalid[0]} does not verify: the package "
                             "or its signature was tampered with. Do not install it.",
                             code="signature.invalid", plugin_id=info.plugin_id,
                             details={"key_ids": invalid})
    if revoked:
        k = revoked[0]
        raise SignatureError(f"{info.plugin_id} {info.version} is signed by key {k.key_id} "
                             f"({k.name}), which was revoked at {k.revoked_at}. Signatures by "
                             "revoked keys are refused, whatever other keys signed; get a "
                             "package signed with current keys only.",
                             code="signature.revoked_key", plugin_id=info.plugin_id,
                             details={"key_id": k.key_id, "revoked_at": k.revoked_at})
    if required and untrusted:
        also = f" (it is also signed by {good[0].name})" if good else ""
        raise SignatureError(f"{info.plugin_id} {info.version} is signed by key {untrusted[0]}, "
                             f"which is not in the trust store{also}. When a signature is "
                             "required, every key that signed must be trusted. If you trust "
                             "this signer, add their public key: "
                             "`plughost trust add KEYFILE --name NAME`.",
                             code="signature.untrusted_key", plugin_id=info.plugin_id,
                             details={"key_ids": untrusted})
    if good:
        return result(signed=True, trusted=True, key_id=good[0].key_id,
                      key_name=good[0].name)
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
