"""Installing from a marketplace through the real host: the request and its dependencies
resolved together against what is installed, fetched through TUF, installed dependencies
first — or nothing at all; outdated and update through the host's update path."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from plughost.errors import PlughostError
from plughost.services.market.client import MarketClient
from plughost.services.market.index import SearchQuery
from plughost.services.market.service import Market
from tests.services.market.conftest import publish

FAILING = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        raise RuntimeError("cannot start")
"""


@pytest.fixture
def market(service: Any, market_repo: Any, served: Any) -> Market:
    client = MarketClient(service.settings.home)
    client.add("main", served.url, (market_repo.path / "root.json").read_bytes())
    return Market(service, client)


async def test_install_brings_every_dependency_first(service, market, market_repo,
                                                     make_package):
    publish(market_repo, make_package, "base", "1.0.0")
    publish(market_repo, make_package, "base", "2.0.0")
    publish(market_repo, make_package, "util", "1.2.0", dependencies={"base": "^1.0"})
    publish(market_repo, make_package, "app", "0.3.1",
            dependencies={"util": "^1.0", "base": ">=1.0"})
    publish(market_repo, make_package, "app", "0.4.0", dependencies={"util": "^1.0"})
    market.client.refresh("main")
    result = await market.install("app@^0.3")
    assert [(r.plugin_id, r.version) for r in result.installed] == [
        ("base", "1.0.0"), ("util", "1.2.0"), ("app", "0.3.1")]
    assert {r.state for r in result.installed} == {"active"}
    stored = service.repository.require_plugin("app")
    assert (stored.source, stored.source_uri) == ("market", "market:main/app@0.3.1")


async def test_installed_versions_are_used_and_kept(service, market, market_repo,
                                                    make_package):
    await service.install(make_package("base", "1.0.0"))
    publish(market_repo, make_package, "base", "1.5.0")
    publish(market_repo, make_package, "util", "1.0.0", dependencies={"base": "^1.0"})
    market.client.refresh("main")
    result = await market.install("util")
    assert [r.plugin_id for r in result.installed] == ["util"]
    assert result.plan.already_installed == ("base",)
    assert service.repository.require_plugin("base").version == "1.0.0"


async def test_a_failing_dependency_installs_nothing(service, market, market_repo,
                                                     make_package, state_snapshot):
    publish(market_repo, make_package, "base", "1.0.0")
    publish(market_repo, make_package, "util", "1.0.0", code=FAILING,
            dependencies={"base": "^1.0"})
    publish(market_repo, make_package, "app", "1.0.0", dependencies={"util": "^1.0"})
    market.client.refresh("main")
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError) as info:
        await market.install("app")
    assert info.value.plugin_id == "util"
    assert info.value.details["rolled_back"] == ["base"]
    assert state_snapshot(service.settings, service) == before


async def test_a_tampered_package_installs_nothing(service, market, market_repo,
                                                   make_package, state_snapshot):
    publish(market_repo, make_package, "base", "1.0.0")
    publish(market_repo, make_package, "app", "1.0.0", dependencies={"base": "*"})
    market.client.refresh("main")
    [zip_] = (market_repo.targets_dir / "packages" / "app").glob("*.zip")
    zip_.write_bytes(zip_.read_bytes()[:-10] + b"0123456789")
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError) as info:
        await market.install("app")
    assert info.value.code == "market.tampered"
    assert state_snapshot(service.settings, service) == before


async def test_yanked_versions_only_when_pinned(market, market_repo, make_package):
    publish(market_repo, make_package, "hello", "1.0.0")
    publish(market_repo, make_package, "hello", "1.1.0")
    market_repo.yank("hello", "1.1.0", reason="broken config migration")
    market.client.refresh("main")
    plan = await market.plan("hello")
    assert [str(p.version.version) for p in plan.packages] == ["1.0.0"]
    assert "broken config migration" in plan.excluded["hello"]["1.1.0"]
    pinned = await market.plan("hello@1.1.0")
    assert [str(p.version.version) for p in pinned.packages] == ["1.1.0"]
    with pytest.raises(PlughostError) as info:
        await market.plan("hello@^1.1")
    assert info.value.code == "market.incompatible"
    assert "yanked" in info.value.message


async def test_incompatible_versions_are_left_out_with_the_reason(market, market_repo,
                                                                  make_package):
    publish(market_repo, make_package, "hello", "1.0.0")
    publish(market_repo, make_package, "hello", "2.0.0", extra='host = ">=99.0"')
    publish(market_repo, make_package, "needy", "1.0.0", dependencies={"hello": "^2.0"})
    market.client.refresh("main")
    plan = await market.plan("hello")
    assert [str(p.version.version) for p in plan.packages] == ["1.0.0"]
    assert "needs plughost >=99.0" in plan.excluded["hello"]["2.0.0"]
    with pytest.raises(PlughostError) as info:
        await market.plan("needy")
    assert info.value.code.startswith("resolve.")
    assert "needs plughost >=99.0" in info.value.message
    page = await market.search(SearchQuery(compatible=True))
    shown = {h.plugin.id: str(h.version.version) for h in page.hits}
    assert shown == {"hello": "1.0.0", "needy": "1.0.0"}  # search shows; install resolves


async def test_runtimes_come_from_the_hosts_registry(market, market_repo, make_package):
    # No list of the marketplace's own: a runtime the host does not have is a stated reason,
    # and one registered with the host (host.add_runtime) makes the same version installable.
    publish(market_repo, make_package, "luaish", "1.0.0", extra='runtime = "lua"')
    market.client.refresh("main")
    assert (await market.search(SearchQuery("luaish", compatible=True))).total == 0
    [hit] = (await market.search(SearchQuery("luaish"))).hits
    assert hit.incompatible.startswith("needs the 'lua' runtime, which this host does not "
                                       "have (it has ")
    with pytest.raises(PlughostError) as info:
        await market.plan("luaish")
    assert info.value.code == "market.incompatible"
    assert "'lua' runtime" in info.value.message
    undo = market.service.host.add_runtime(SimpleNamespace(name="lua"))
    try:
        assert (await market.search(SearchQuery("luaish", compatible=True))).total == 1
        assert [p.version.id for p in (await market.plan("luaish")).packages] == ["luaish"]
    finally:
        undo()


async def test_outdated_and_update_use_the_update_path(service, market, market_repo,
                                                       make_package):
    publish(market_repo, make_package, "hello", "1.0.0")
    market.client.refresh("main")
    await market.install("hello")
    assert await market.outdated() == []
    publish(market_repo, make_package, "hello", "1.2.0")
    market_repo.advise("hello", "PHSA-1", "<1.2.0", severity="high", fixed="1.2.0",
                       force=True)
    [item] = await market.outdated(refresh=True)
    assert (item.installed, item.latest, item.forced) == ("1.0.0", "1.2.0", True)
    [outcome] = await market.update_all(actor="test")
    assert outcome["ok"] and outcome["to_version"] == "1.2.0"
    assert await service.host.call("hello", "ping") == ["1.2.0", 1]
    assert await market.outdated() == []


async def test_an_id_is_taken_from_the_first_marketplace(service, market, market_repo,
                                                         make_package, tmp_path):
    from plughost.services.market.repo import MarketRepository
    from plughost.services.market.serve import RepositoryServer

    publish(market_repo, make_package, "hello", "1.0.0")
    other = MarketRepository.init(tmp_path / "other")
    publish(other, make_package, "hello", "9.0.0")
    with RepositoryServer(other.public) as server:
        market.client.add("other", server.url, (other.path / "root.json").read_bytes(),
                          priority=200)
        market.client.refresh("other")
        market.client.refresh("main")
        plan = await market.plan("hello")
    assert [(p.source, str(p.version.version)) for p in plan.packages] == [("main", "1.0.0")]
