from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plughost.errors import TrustStoreError
from plughost.security.keys import key_id, keygen
from plughost.security.trust import TrustStore


@pytest.fixture
def store(tmp_path: Path) -> TrustStore:
    return TrustStore.for_home(tmp_path / "home")

# -- trust store ----------------------------------------------------------------------------------

def test_trust_store_round_trips_through_its_file(tmp_path: Path) -> None:
    _, public = keygen(tmp_path / "keys", "acme")
    store = TrustStore.for_home(tmp_path / "home")
    added = store.add(public, "Acme Corp")
    again = TrustStore(tmp_path / "home" / "trust.json")
    assert again.list_keys() == [added]
    assert again.get(added.key_id.upper()) == added
    revoked = again.revoke(added.key_id, reason="rotated")
    assert revoked.revoked and revoked.revocation_reason == "rotated"
    assert store.list_keys() == [revoked]  # still recorded, with the revocation time
    assert store.revoke(added.key_id) == revoked  # idempotent


def test_trust_store_refuses_duplicates_reused_names_and_revoked_keys(
    tmp_path: Path, store: TrustStore
) -> None:
    a, b = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    store.add(a, "a")
    for key, name, code in [(a, "again", "trust.duplicate"), (b, "a", "trust.name_taken"),
                            (b, " ", "trust.name")]:
        with pytest.raises(TrustStoreError) as info:
            store.add(key, name)
        assert info.value.code == code
    store.revoke(key_id(a))
    with pytest.raises(TrustStoreError) as info:
        store.add(a, "back")
    assert info.value.code == "trust.revoked"
    with pytest.raises(TrustStoreError) as info:
        store.revoke("0123456789abcdef")
    assert info.value.code == "trust.unknown_key"


def test_corrupt_trust_store_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text('{"format": "plughost-trust/v1", "keys": [{"key_id": "x"}]}')
    before = path.read_bytes()
    store = TrustStore(path)
    with pytest.raises(TrustStoreError) as info:
        store.add(Ed25519PrivateKey.generate().public_key(), "x")
    assert info.value.code == "trust.corrupt"
    assert path.read_bytes() == before


def test_trust_store_write_is_atomic(tmp_path: Path, store: TrustStore,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store.add(Ed25519PrivateKey.generate().public_key(), "first")
    before = store.path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.add(Ed25519PrivateKey.generate().public_key(), "second")
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["trust.json", "trust.json.lock"]


def test_concurrent_adds_lose_no_key(tmp_path: Path) -> None:
    keys = [Ed25519PrivateKey.generate().public_key() for _ in range(8)]
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            TrustStore(tmp_path / "trust.json").add(keys[i], f"k{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(k.name for k in TrustStore(tmp_path / "trust.json").list_keys()) == [
        f"k{i}" for i in range(8)]
