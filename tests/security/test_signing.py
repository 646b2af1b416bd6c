from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plughost.errors import (
    ArchiveError,
    ChecksumMismatch,
    ConfigurationError,
    SignatureError,
)
from plughost.security.package import INTEGRITY_FILE, SIGNATURE_FILE, open_package, pack
from plughost.security.signing import (
    SignaturePolicy,
    TrustStore,
    canonical_statement,
    key_id,
    make_statement,
    sign,
    verify,
)

from .zipcraft import rewrite


@pytest.fixture
def store(tmp_path: Path) -> TrustStore:
    return TrustStore.for_home(tmp_path / "home")


@pytest.fixture
def publisher(tmp_path: Path, store: TrustStore) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    store.add(key.public_key(), "acme")
    return key


@pytest.fixture
def signed(plugin_dir: Path, publisher: Ed25519PrivateKey) -> Path:
    return sign(pack(plugin_dir), publisher)


def sig_error(path: Path, store: TrustStore, code: str, **kw: object) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify(path, store, **kw)  # type: ignore[arg-type]
    assert info.value.code == code, info.value.message
    return info.value


# -- sign / verify --------------------------------------------------------------------------------

def test_valid_signature_names_the_key_that_signed(signed: Path, store: TrustStore,
                                                   publisher: Ed25519PrivateKey) -> None:
    result = verify(signed, store)
    assert result.trusted and result.signed
    assert result.key_name == "acme"
    assert result.key_id == key_id(publisher.public_key())
    assert (result.plugin_id, result.version) == ("notify-slack", "1.0.0")
    assert result.package_sha256 == hashlib.sha256(signed.read_bytes()).hexdigest()


def test_signature_statement_binds_id_version_and_integrity_digest(signed: Path) -> None:
    with open_package(signed) as pkg:
        doc = json.loads(pkg.info.signature_bytes or b"")
        integrity = pkg.info.integrity_sha256
        assert SIGNATURE_FILE not in pkg.info.integrity
    assert doc["statement"] == make_statement("notify-slack", "1.0.0", integrity)
    assert canonical_statement(doc["statement"]) == (
        b'{"id":"notify-slack","integrity_sha256":"' + integrity.encode()
        + b'","type":"plughost-package-signature/v1","version":"1.0.0"}')


def test_signing_is_deterministic_and_keeps_the_package_reproducible(
    plugin_dir: Path, tmp_path: Path, publisher: Ed25519PrivateKey
) -> None:
    a = sign(pack(plugin_dir, tmp_path / "a.zip"), publisher).read_bytes()
    b = sign(pack(plugin_dir, tmp_path / "b.zip"), publisher).read_bytes()
    assert a == b
    assert sign(tmp_path / "a.zip", publisher).read_bytes() == a  # re-signing: same bytes


def test_signing_with_a_second_key_keeps_the_first(signed: Path, store: TrustStore) -> None:
    market = Ed25519PrivateKey.generate()
    sign(signed, market)
    with open_package(signed) as pkg:
        doc = json.loads(pkg.info.signature_bytes or b"")
    assert len(doc["signatures"]) == 2
    store.add(market.public_key(), "market")
    assert verify(signed, store).key_name == "acme"


# -- every signature must pass, not just one ---------------------------------------------------

ALL_POLICIES = [SignaturePolicy("always"), SignaturePolicy("never"),
                SignaturePolicy("unless-allowlisted"),
                SignaturePolicy("unless-allowlisted", allowlist={"notify-slack"})]


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: f"{p.require_signature}"
                         f"{'+listed' if p.allowlist else ''}")
def test_a_revoked_signature_beside_a_trusted_one_is_refused_under_every_policy(
    plugin_dir: Path, store: TrustStore, publisher: Ed25519PrivateKey, policy: SignaturePolicy
) -> None:
    old = Ed25519PrivateKey.generate()
    store.add(old.public_key(), "old laptop")
    package = sign(sign(pack(plugin_dir), old), publisher)   # revoked first, trusted second
    store.revoke(key_id(old.public_key()), reason="stolen")
    err = sig_error(package, store, "signature.revoked_key", policy=policy)
    assert err.details["key_id"] == key_id(old.public_key())
    # the other order too: the trusted signature first
    again = sign(sign(pack(plugin_dir, plugin_dir.parent / "b.zip"), publisher), old)
    sig_error(again, store, "signature.revoked_key", policy=policy)


def _with_signatures(package: Path, dest: Path, edit: Callable[[list[dict[str, str]]], None]
                     ) -> Path:
    with open_package(package) as pkg:
        doc = json.loads(pkg.info.signature_bytes or b"")
    edit(doc["signatures"])
    return rewrite(package, dest, change={SIGNATURE_FILE: json.dumps(doc).encode()})


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: f"{p.require_signature}"
                         f"{'+listed' if p.allowlist else ''}")
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_corrupted_signature_beside_a_valid_one_is_refused_under_every_policy(
    signed: Path, tmp_path: Path, store: TrustStore, publisher: Ed25519PrivateKey,
    policy: SignaturePolicy, where: str,
) -> None:
    import base64

    def corrupt(sigs: list[dict[str, str]]) -> None:
        bad = dict(sigs[0])
        raw = bytearray(base64.b64decode(bad["signature"]))
        raw[0] ^= 0x01  # one flipped bit
        bad["signature"] = base64.b64encode(bytes(raw)).decode()
        sigs.insert(0 if where == "before" else 1, bad)

    forged = _with_signatures(signed, tmp_path / "forged.zip", corrupt)
    err = sig_error(forged, store, "signature.invalid", policy=policy)
    assert err.details["key_ids"] == [key_id(publisher.public_key())]


def test_a_malformed_signature_entry_beside_a_valid_one_is_refused(
    signed: Path, tmp_path: Path, store: TrustStore
) -> None:
    forged = _with_signatures(signed, tmp_path / "forged.zip",
                              lambda sigs: sigs.insert(0, {"algorithm": "ed25519"}))
    sig_error(forged, store, "signature.invalid", policy=SignaturePolicy("never"))


def test_an_untrusted_signature_beside_a_trusted_one_is_refused_when_a_signature_is_required(
    signed: Path, store: TrustStore
) -> None:
    stranger = Ed25519PrivateKey.generate()
    sign(signed, stranger)
    err = sig_error(signed, store, "signature.untrusted_key")
    assert err.details["key_ids"] == [key_id(stranger.public_key())]
    assert "acme" in err.message
    # Not required: the trusted signature is reported, the unknown one tolerated.
    result = verify(signed, store, SignaturePolicy("never"))
    assert result.trusted and result.key_name == "acme"


def test_a_signature_file_nested_too_deeply_is_invalid_not_a_crash(
    signed: Path, tmp_path: Path, store: TrustStore
) -> None:
    bad = rewrite(signed, tmp_path / "deep.zip", change={SIGNATURE_FILE: b"[" * 200_000})
    sig_error(bad, store, "signature.invalid")


def test_sign_refuses_a_damaged_package(plugin_dir: Path, tmp_path: Path,
                                        publisher: Ed25519PrivateKey) -> None:
    bad = rewrite(pack(plugin_dir), tmp_path / "bad.zip",
                  change={"README.md": b"changed"})
    before = bad.read_bytes()
    with pytest.raises(ArchiveError):
        sign(bad, publisher)
    assert bad.read_bytes() == before


def test_signature_by_an_unknown_key_is_untrusted(plugin_dir: Path, store: TrustStore) -> None:
    pkg = sign(pack(plugin_dir), Ed25519PrivateKey.generate())
    err = sig_error(pkg, store, "signature.untrusted_key")
    assert "plughost trust add" in err.message


def test_forged_signature_claiming_a_trusted_key_is_invalid(
    signed: Path, tmp_path: Path, publisher: Ed25519PrivateKey, store: TrustStore
) -> None:
    with open_package(signed) as pkg:
        doc = json.loads(pkg.info.signature_bytes or b"")
    wrong = Ed25519PrivateKey.generate().sign(canonical_statement(doc["statement"]))
    import base64

    doc["signatures"][0]["signature"] = base64.b64encode(wrong).decode()
    forged = rewrite(signed, tmp_path / "forged.zip",
                     change={SIGNATURE_FILE: json.dumps(doc).encode()})
    sig_error(forged, store, "signature.invalid")


def test_signature_by_a_revoked_key_is_refused_with_its_own_code(
    signed: Path, store: TrustStore, publisher: Ed25519PrivateKey
) -> None:
    store.revoke(key_id(publisher.public_key()), reason="laptop stolen")
    err = sig_error(signed, store, "signature.revoked_key")
    assert err.details["revoked_at"]
    # Even a policy that does not require signatures refuses a revoked key's.
    sig_error(signed, store, "signature.revoked_key", policy=SignaturePolicy("never"))


def _move_signature(from_pkg: Path, to_pkg: Path, dest: Path) -> Path:
    with open_package(from_pkg) as pkg:
        sig = pkg.info.signature_bytes
    return rewrite(to_pkg, dest, change={SIGNATURE_FILE: sig})


def test_signature_of_another_plugin_is_a_mismatch(
    plugin_factory: Callable[..., Path], tmp_path: Path, publisher: Ed25519PrivateKey,
    store: TrustStore,
) -> None:
    theirs = sign(pack(plugin_factory(plugin_id="other"), tmp_path / "o.zip"), publisher)
    mine = pack(plugin_factory(), tmp_path / "m.zip")
    err = sig_error(_move_signature(theirs, mine, tmp_path / "x.zip"), store,
                    "signature.mismatch")
    assert "id" in err.details["fields"]


def test_signature_of_another_version_is_a_mismatch(
    plugin_factory: Callable[..., Path], tmp_path: Path, publisher: Ed25519PrivateKey,
    store: TrustStore,
) -> None:
    old = sign(pack(plugin_factory(version="1.0.0"), tmp_path / "1.zip"), publisher)
    new = pack(plugin_factory(version="1.0.1"), tmp_path / "2.zip")
    err = sig_error(_move_signature(old, new, tmp_path / "x.zip"), store, "signature.mismatch")
    assert "version" in err.details["fields"]


def test_modified_file_after_signing_is_refused(signed: Path, tmp_path: Path,
                                               store: TrustStore) -> None:
    bad = rewrite(signed, tmp_path / "bad.zip",
                  change={"notify_slack/plugin.py": b"import os\nos.system('rm -rf ~')\n"})
    with pytest.raises(ArchiveError) as info:
        verify(bad, store)
    assert info.value.code == "archive.integrity"


def test_modified_file_with_a_rewritten_integrity_file_is_a_signature_mismatch(
    signed: Path, tmp_path: Path, store: TrustStore
) -> None:
    evil = b"import os\n"
    with open_package(signed) as pkg:
        doc = json.loads(pkg.info.integrity_bytes)
    doc["files"]["notify_slack/plugin.py"] = {"sha256": hashlib.sha256(evil).hexdigest(),
                                              "size": len(evil)}
    bad = rewrite(signed, tmp_path / "bad.zip", change={
        "notify_slack/plugin.py": evil, INTEGRITY_FILE: json.dumps(doc).encode()})
    err = sig_error(bad, store, "signature.mismatch")
    assert err.details["fields"] == ["integrity_sha256"]


def test_unlisted_file_added_after_signing_is_refused(signed: Path, tmp_path: Path,
                                                     store: TrustStore) -> None:
    bad = rewrite(signed, tmp_path / "bad.zip", change={"notify_slack/extra.py": b"x = 1\n"})
    with pytest.raises(ArchiveError) as info:
        verify(bad, store)
    assert info.value.code == "archive.integrity"
    assert info.value.details["unlisted"] == ["notify_slack/extra.py"]


def test_expected_sha256_is_checked_first(signed: Path, store: TrustStore) -> None:
    actual = hashlib.sha256(signed.read_bytes()).hexdigest()
    assert verify(signed, store, expected_sha256=actual.upper()).trusted
    with pytest.raises(ChecksumMismatch) as info:
        verify(signed, store, expected_sha256="0" * 64)
    assert info.value.code == "integrity.checksum"
    assert info.value.details["actual"] == actual
    with pytest.raises(ChecksumMismatch, match="not a SHA-256"):
        verify(signed, store, expected_sha256="abc")


def test_unsigned_package_is_refused_when_a_signature_is_required(
    plugin_dir: Path, store: TrustStore
) -> None:
    err = sig_error(pack(plugin_dir), store, "signature.missing")
    assert err.plugin_id == "notify-slack"


def test_malformed_signature_file_is_invalid(signed: Path, tmp_path: Path,
                                             store: TrustStore) -> None:
    for i, doc in enumerate([b"nope", b'{"format": "plughost-signature/v1"}',
                             json.dumps({"format": "plughost-signature/v1", "statement": {},
                                         "signatures": []}).encode()]):
        bad = rewrite(signed, tmp_path / f"bad{i}.zip", change={SIGNATURE_FILE: doc})
        sig_error(bad, store, "signature.invalid")


def test_verify_of_a_missing_file_is_a_clear_error(tmp_path: Path, store: TrustStore) -> None:
    with pytest.raises(ArchiveError) as info:
        verify(tmp_path / "nope.zip", store)
    assert info.value.code == "archive.unreadable"


# -- policy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "policy,kind,outcome",
    [
        ("always", "unsigned", "signature.missing"),
        ("always", "trusted", "trusted"),
        ("always", "untrusted", "signature.untrusted_key"),
        ("never", "unsigned", "unsigned"),
        ("never", "trusted", "trusted"),
        ("never", "untrusted", "untrusted"),
        ("never", "revoked", "signature.revoked_key"),
        ("unless-allowlisted", "unsigned", "signature.missing"),
        ("unless-allowlisted", "unsigned-allowlisted", "unsigned"),
        ("unless-allowlisted", "untrusted", "signature.untrusted_key"),
        ("unless-allowlisted", "untrusted-allowlisted", "untrusted"),
        ("unless-allowlisted", "trusted", "trusted"),
        ("unless-allowlisted", "revoked-allowlisted", "signature.revoked_key"),
    ],
)
def test_policy_matrix(
    plugin_dir: Path, store: TrustStore, publisher: Ed25519PrivateKey, policy: str, kind: str,
    outcome: str,
) -> None:
    allow = {"notify-slack"} if kind.endswith("-allowlisted") else {"someone-else"}
    kind = kind.removesuffix("-allowlisted")
    path = pack(plugin_dir)
    if kind == "trusted":
        sign(path, publisher)
    elif kind == "untrusted":
        sign(path, Ed25519PrivateKey.generate())
    elif kind == "revoked":
        stranger = Ed25519PrivateKey.generate()
        store.add(stranger.public_key(), "old")
        store.revoke(key_id(stranger.public_key()))
        sign(path, stranger)
    pol = SignaturePolicy(policy, allowlist=allow)  # type: ignore[arg-type]
    if outcome.startswith("signature."):
        sig_error(path, store, outcome, policy=pol)
        return
    result = verify(path, store, pol)
    assert result.signed == (outcome != "unsigned")
    assert result.trusted == (outcome == "trusted")
    assert result.signature_required == pol.requires("notify-slack")


def test_policy_validates_its_fields() -> None:
    with pytest.raises(ConfigurationError):
        SignaturePolicy("sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SignaturePolicy("unless-allowlisted", allowlist="notify-slack")  # type: ignore[arg-type]
    policy = SignaturePolicy("unless-allowlisted", allowlist=["a"])  # type: ignore[arg-type]
    assert policy.allowlist == frozenset({"a"})
    with pytest.raises(AttributeError):
        policy.require_signature = "never"  # type: ignore[misc]
