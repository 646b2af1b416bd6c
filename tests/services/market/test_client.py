"""The marketplace client against a real repository served over HTTP on loopback: what it
accepts, and every TUF attack class refused with its own error code and the local copy
unchanged."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer._crypto_signer import CryptoSigner
from tuf.api.metadata import Metadata

from plughost.errors import MarketError
from plughost.services.market.client import MarketClient
from plughost.services.market.index import INDEX_TARGET
from plughost.services.market.repo import MarketRepository
from plughost.services.market.serve import RepositoryServer
from tests.services.market.conftest import publish


def _refused(client: MarketClient, home: Path, local_state: Any, code: str) -> MarketError:
    before = local_state(home)
    with pytest.raises(MarketError) as info:
        client.refresh("main", allow_offline=False)
    assert info.value.code == code, info.value.to_dict()
    assert local_state(home) == before, "a refused refresh changed the local copy"
    return info.value


def _resign(repo: MarketRepository, name: str, role: str, change: Any,
            signer: Any = None) -> None:
    """Rewrite a served metadata file: ``change(signed)``, then sign it with the role's key
    (or ``signer``)."""
    path = repo.metadata_dir / name
    md = Metadata.from_file(str(path))
    change(md.signed)
    md.signatures.clear()
    for s in [signer] if signer is not None else repo._signers(role):
        md.sign(s, append=True)
    path.write_bytes(md.to_bytes())


def test_refresh_verifies_and_reads_the_index(market_repo, make_package, market_client):
    publish(market_repo, make_package, "hello", "1.0.0")
    first = market_client.refresh("main")
    assert (first.offline, first.changed, first.targets_version) == (False, True, 2)
    again = market_client.refresh("main")
    assert (again.changed, again.targets_version) == (False, 2)
    index = market_client.index("main")
    assert [str(v.version) for v in index.plugins["hello"].versions] == ["1.0.0"]
    path = market_client.download("main", index.plugins["hello"].latest)
    assert path.read_bytes() == next(
        (market_repo.targets_dir / "packages" / "hello").glob("*.zip")).read_bytes()


def test_a_publish_is_seen_on_the_next_refresh(market_repo, make_package, market_client):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    publish(market_repo, make_package, "hello", "1.1.0")
    result = market_client.refresh("main")
    assert result.changed and result.targets_version == 3
    assert str(market_client.index("main").plugins["hello"].latest.version) == "1.1.0"


def test_rollback_of_the_timestamp_is_refused(market_repo, make_package, market_client,
                                              client_home, local_state):
    old = (market_repo.metadata_dir / "timestamp.json").read_bytes()
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    (market_repo.metadata_dir / "timestamp.json").write_bytes(old)  # replay the older one
    error = _refused(market_client, client_home, local_state, "market.rollback")
    assert "older" in error.message and "Nothing was changed locally" in error.message


def test_rollback_of_the_snapshot_is_refused(market_repo, make_package, market_client,
                                             client_home, local_state):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")  # trusts snapshot v2
    # A validly signed newer timestamp that points back at snapshot v1 (a compromised
    # timestamp key cannot roll the snapshot back either).
    _resign(market_repo, "timestamp.json", "timestamp",
            lambda t: (setattr(t, "version", t.version + 1),
                       setattr(t.snapshot_meta, "version", 1),
                       setattr(t.snapshot_meta, "hashes", None),
                       setattr(t.snapshot_meta, "length", None)))
    _refused(market_client, client_home, local_state, "market.rollback")


def test_an_expired_timestamp_is_refused_as_a_freeze(market_repo, make_package,
                                                     market_client, client_home,
                                                     local_state):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    _resign(market_repo, "timestamp.json", "timestamp",
            lambda t: (setattr(t, "version", t.version + 1), setattr(t, "expires", past)))
    error = _refused(market_client, client_home, local_state, "market.expired")
    assert "frozen" in error.message


def test_offline_uses_the_last_good_metadata_until_it_expires(market_repo, make_package,
                                                              client_home, tmp_path):
    publish(market_repo, make_package, "hello", "1.0.0")
    with RepositoryServer(market_repo.public) as server:
        client = MarketClient(client_home)
        client.add("main", server.url, (market_repo.path / "root.json").read_bytes())
        client.refresh("main")
    # The server is gone: the last good metadata serves, verified again from disk.
    fresh = MarketClient(client_home)
    result = fresh.refresh("main")
    assert result.offline and result.error and result.error["code"] == "market.unreachable"
    assert "hello" in fresh.index("main").plugins
    # Once the trusted timestamp has expired, offline use is refused.
    meta = (client_home / "market" / "main" / "metadata").resolve()
    ts = Metadata.from_file(str(meta / "timestamp.json"))
    ts.signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    ts.signatures.clear()
    for s in market_repo._signers("timestamp"):
        ts.sign(s, append=True)
    (meta / "timestamp.json").write_bytes(ts.to_bytes())
    with pytest.raises(MarketError) as info:
        MarketClient(client_home).refresh("main")
    assert info.value.code == "market.expired"


def test_mix_and_match_snapshot_is_refused(market_repo, make_package, market_client,
                                           client_home, local_state):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    publish(market_repo, make_package, "hello", "1.1.0")
    # The new timestamp names snapshot v3; serve v2's content under that name.
    (market_repo.metadata_dir / "3.snapshot.json").write_bytes(
        (market_repo.metadata_dir / "2.snapshot.json").read_bytes())
    _refused(market_client, client_home, local_state, "market.mix_and_match")


def test_mix_and_match_targets_is_refused(market_repo, make_package, market_client,
                                          client_home, local_state):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    publish(market_repo, make_package, "hello", "1.1.0")
    (market_repo.metadata_dir / "3.targets.json").write_bytes(
        (market_repo.metadata_dir / "2.targets.json").read_bytes())
    _refused(market_client, client_home, local_state, "market.mix_and_match")


def test_metadata_signed_by_the_wrong_key_is_refused(market_repo, make_package,
                                                     market_client, client_home,
                                                     local_state):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    attacker = CryptoSigner.generate_ed25519()
    _resign(market_repo, "timestamp.json", "timestamp",
            lambda t: setattr(t, "version", t.version + 1), signer=attacker)
    error = _refused(market_client, client_home, local_state, "market.signature")
    assert "threshold" in error.message


def test_a_root_below_its_threshold_is_refused(tmp_path, make_package, local_state):
    """Root needs 2 of 2 signatures; a thief of one root key cannot rotate the timestamp
    key to their own."""
    repo = MarketRepository.init(tmp_path / "repo2", root_keys=2, threshold=2)
    publish(repo, make_package, "hello", "1.0.0")
    with RepositoryServer(repo.public) as server:
        home = tmp_path / "home2"
        client = MarketClient(home)
        client.add("main", server.url, (repo.path / "root.json").read_bytes())
        client.refresh("main")
        stolen = repo._signers("root")[0]
        attacker = CryptoSigner.generate_ed25519()
        root = repo.root()
        for keyid in list(root.signed.roles["timestamp"].keyids):
            root.signed.revoke_key(keyid, "timestamp")
        root.signed.add_key(attacker.public_key, "timestamp")
        root.signed.version += 1
        root.signatures.clear()
        root.sign(stolen)
        (repo.metadata_dir / "2.root.json").write_bytes(root.to_bytes())
        before = local_state(home)
        with pytest.raises(MarketError) as info:
            client.refresh("main", allow_offline=False)
        assert info.value.code == "market.signature"
        assert local_state(home) == before


def test_a_tampered_package_is_refused_and_not_kept(market_repo, make_package, market_client,
                                                    client_home):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    [served_zip] = (market_repo.targets_dir / "packages" / "hello").glob("*.zip")
    data = bytearray(served_zip.read_bytes())
    data[100] ^= 0xFF
    served_zip.write_bytes(bytes(data))
    version = market_client.index("main").plugins["hello"].latest
    with pytest.raises(MarketError) as info:
        market_client.download("main", version)
    assert info.value.code == "market.tampered"
    assert not list((client_home / "market" / "main" / "targets").glob("*.zip"))
    assert not list((client_home / "market" / "main" / "targets").glob("*.part"))


def test_a_tampered_index_is_refused(market_repo, make_package, market_client, client_home,
                                     local_state):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    publish(market_repo, make_package, "evil", "1.0.0")
    _, _, targets = market_repo.current()
    digest = targets.signed.targets[INDEX_TARGET].hashes["sha256"]
    path = market_repo.targets_dir / f"{digest}.{INDEX_TARGET}"
    doc = json.loads(path.read_bytes())
    doc["plugins"]["evil"]["versions"][0]["sha256"] = "0" * 64
    path.write_bytes(json.dumps(doc).encode())
    _refused(market_client, client_home, local_state, "market.tampered")


def test_key_rotation_is_followed(market_repo, make_package, market_client):
    publish(market_repo, make_package, "hello", "1.0.0")
    market_client.refresh("main")
    for role in ("timestamp", "root"):
        market_repo.rotate_keys(role)
    result = market_client.refresh("main")
    assert result.changed
    root_history = market_client.dir / "main" / "metadata" / "root_history"
    assert sorted(p.name for p in root_history.iterdir()) == [
        "1.root.json", "2.root.json", "3.root.json"]


def test_add_refuses_a_root_that_is_not_one(client_home, served):
    client = MarketClient(client_home)
    with pytest.raises(MarketError) as info:
        client.add("main", served.url, b'{"signed": {}}')
    assert info.value.code == "market.source"
    with pytest.raises(MarketError) as info:
        client.add("Bad Name", served.url, b"{}")
    assert info.value.code == "market.source"
    assert client.sources() == []


def test_the_server_serves_public_files_only(market_repo, served):
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"{served.url}/metadata/timestamp.json") as r:
        assert r.status == 200
    for path in ("/../keys/root-1.pem", "/%2e%2e/keys/root-1.pem", "/metadata/", "/"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(served.url + path)
        assert info.value.code == 404
    shutil.rmtree(market_repo.keys_dir)  # nothing served depends on the keys
