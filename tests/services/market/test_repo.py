"""The publisher's repository: init, publish (refusals change nothing), yank, advisories,
timestamp re-signing and key rotation — checked by reading the metadata back with TUF."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from plughost.errors import PlughostError
from plughost.services.market.index import INDEX_TARGET
from plughost.services.market.repo import MarketRepository
from tests.services.market.conftest import tree_state


def test_init_writes_signed_metadata_and_keeps_keys_private(market_repo):
    root = Metadata.from_file(str(market_repo.metadata_dir / "1.root.json"))
    assert root.signed.consistent_snapshot
    root.signed.verify_delegate("root", root.signed_bytes, root.signatures)
    assert (market_repo.path / "root.json").read_bytes() == root.to_bytes()
    for key in market_repo.keys_dir.iterdir():
        assert key.stat().st_mode & 0o077 == 0
    assert not any("keys" in p.parts for p in market_repo.public.rglob("*"))
    _, _, targets = market_repo.current()
    assert INDEX_TARGET in targets.signed.targets
    assert market_repo.index().plugins == {}


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "x").write_text("x")
    with pytest.raises(PlughostError) as info:
        MarketRepository.init(tmp_path / "repo")
    assert info.value.code == "market.repository"
    with pytest.raises(PlughostError) as info:
        MarketRepository.init(tmp_path / "r2", root_keys=1, threshold=2)
    assert info.value.code == "market.repository"
    with pytest.raises(PlughostError) as info:
        MarketRepository.open(tmp_path)
    assert info.value.code == "market.repository"


def test_publish_adds_the_target_and_the_index_entry(market_repo, make_package):
    package = make_package("hello", "1.0.0", dependencies={"base": "^1.0"})
    result = market_repo.publish(package)
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    assert (result.plugin_id, result.version, result.sha256) == ("hello", "1.0.0", digest)
    served = market_repo.targets_dir / "packages" / "hello" / f"{digest}.hello-1.0.0.zip"
    assert served.read_bytes() == package.read_bytes()
    entry = market_repo.index().plugins["hello"].latest
    assert (entry.sha256, str(entry.dependencies["base"]), len(entry.signed_by)) == (
        digest, "^1.0", 1)
    # publishing the same bytes again is a no-op
    assert market_repo.publish(package).index_version == result.index_version


def test_publish_refusals_change_nothing(market_repo, make_package):
    market_repo.publish(make_package("hello", "1.0.0"))
    before = tree_state(market_repo.path)
    for package, code in ((make_package("hello", "1.0.0", files={"x.txt": "other"}),
                           "market.repository"),
                          (make_package("unsigned", "1.0.0", signed=False), "market.unsigned"),
                          (Path("/nonexistent.zip"), "market.repository")):
        with pytest.raises(PlughostError) as info:
            market_repo.publish(package)
        assert info.value.code == code
        assert tree_state(market_repo.path) == before


def test_yank_advise_and_timestamp(market_repo, make_package):
    market_repo.publish(make_package("hello", "1.0.0"))
    market_repo.publish(make_package("hello", "1.1.0"))
    market_repo.yank("hello", "1.1.0", reason="broken")
    plugin = market_repo.index().plugins["hello"]
    assert str(plugin.latest.version) == "1.0.0"
    assert plugin.version("1.1.0").yanked_reason == "broken"
    market_repo.yank("hello", "1.1.0", undo=True)
    assert str(market_repo.index().plugins["hello"].latest.version) == "1.1.0"
    market_repo.advise("hello", "PHSA-1", "<1.1.0", severity="high", force=True)
    [advisory] = market_repo.index().plugins["hello"].advisories_for("1.0.0")
    assert advisory.force and advisory.severity == "high"
    with pytest.raises(PlughostError) as info:
        market_repo.yank("nope", "1.0.0")
    assert info.value.code == "market.not_found"
    before = market_repo.current()[0].signed.version
    assert market_repo.refresh_timestamp() == before + 1


def test_a_role_below_its_threshold_cannot_sign(market_repo, make_package):
    for key in market_repo.keys_dir.glob("targets-*.pem"):
        key.unlink()
    before = tree_state(market_repo.public)
    with pytest.raises(PlughostError) as info:
        market_repo.publish(make_package("hello", "1.0.0"))
    assert info.value.code == "market.repository" and "targets" in info.value.message
    assert tree_state(market_repo.public) == before
