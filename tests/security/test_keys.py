from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plughost.errors import SigningKeyError
from plughost.security.keys import key_id, keygen, load_private_key, load_public_key

# -- keys -----------------------------------------------------------------------------------------

def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    private, public = keygen(tmp_path / "keys", "acme")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.name == "acme.key" and public.name == "acme.pub"
    assert key_id(load_private_key(private).public_key()) == key_id(load_public_key(public))
    assert len(key_id(load_public_key(public))) == 16


def test_keygen_never_overwrites_keys(tmp_path: Path) -> None:
    private, _ = keygen(tmp_path, "k")
    before = private.read_bytes()
    with pytest.raises(SigningKeyError) as info:
        keygen(tmp_path, "k")
    assert info.value.code == "key.exists"
    assert private.read_bytes() == before


def test_loading_the_wrong_kind_of_key_says_so(tmp_path: Path) -> None:
    private, public = keygen(tmp_path, "k")
    with pytest.raises(SigningKeyError, match="private key"):
        load_public_key(private)
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        load_private_key(public)
    with pytest.raises(SigningKeyError, match="Cannot read"):
        load_private_key(tmp_path / "missing.key")


def test_key_id_is_the_first_16_hex_of_the_raw_key_sha256() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(key) == hashlib.sha256(raw).hexdigest()[:16]
