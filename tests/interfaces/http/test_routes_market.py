"""``/api/v1/market`` and ``source=market``: search in the catalog shape the dashboard reads,
details, ratings (one per token holder, admin moderation), install with dependencies, outdated
and update policies — against a real repository served over HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plughost.services.market.client import MarketClient
from plughost.services.market.repo import MarketRepository
from plughost.services.market.serve import RepositoryServer


@pytest.fixture
def repo(tmp_path: Path, make_package: Any) -> MarketRepository:
    repo = MarketRepository.init(tmp_path / "repo")
    for pid, version, deps in (("base", "1.0.0", None), ("lyrics-lrc", "0.3.1", {"base": "^1.0"}),
                               ("other", "2.0.0", None)):
        repo.publish(make_package(pid, version, dependencies=deps, description=f"{pid} lyrics"
                                  if pid != "other" else "something else"),
                     allow_unsigned=True)
    return repo


@pytest.fixture
def served(repo: MarketRepository, settings: Any) -> Iterator[str]:
    with RepositoryServer(repo.public) as server:
        MarketClient(settings.home).add("main", server.url,
                                        (repo.path / "root.json").read_bytes())
        yield server.url


async def test_search_answers_the_catalog_shape(api, served):
    r = await api.client.get("/api/v1/market/search", params={"q": "lyrics", "limit": 1})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 2 and page["next_cursor"]
    [item] = page["items"]
    for key in ("id", "version", "description", "type", "tags", "runtime", "rating",
                "ratings_count", "downloads", "installed_version", "yanked"):
        assert key in item
    assert (item["id"], item["installed_version"], item["rating"]) == ("lyrics-lrc", None, None)
    r = await api.client.get("/api/v1/market/search",
                             params={"q": "lyrics", "cursor": page["next_cursor"]})
    assert [i["id"] for i in r.json()["items"]] == ["base"]
    bad = await api.client.get("/api/v1/market/search", params={"cursor": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "market.invalid"


def _no_read_of_every_plugin(service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make reading every installed plugin fail: what a marketplace page or plan reads must
    be read by id."""
    def every(*_: Any, **__: Any) -> Any:
        raise AssertionError("read every installed plugin")

    monkeypatch.setattr(type(service.repository), "iter_plugins", every)


async def test_source_market_installs_with_dependencies(api, served, monkeypatch):
    # The plan, its install, a plugin's details and a search page read the installed
    # plugins they reach or show, not every installed one.
    _no_read_of_every_plugin(api.service, monkeypatch)
    r = await api.client.post("/api/v1/plugins/install",
                              json={"source": "market", "marketId": "lyrics-lrc",
                                    "version": "^0.3"})
    assert r.status_code == 201, r.text
    assert (r.json()["plugin_id"], r.json()["source"]) == ("lyrics-lrc", "market")
    page = (await api.client.get("/api/v1/market/search", params={"q": "lyrics"})).json()
    assert {i["id"]: (i["installed_version"], i["downloads"]) for i in page["items"]} == {
        "lyrics-lrc": ("0.3.1", 1), "base": ("1.0.0", 1)}
    details = (await api.client.get("/api/v1/market/plugins/lyrics-lrc")).json()
    assert details["installed_version"] == "0.3.1"
    assert details["versions"][0]["dependencies"] == {"base": "^1.0"}


async def test_source_market_without_a_marketplace_says_so(api):
    r = await api.client.post("/api/v1/plugins/install",
                              json={"source": "market", "marketId": "lyrics-lrc"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "marketplace.unavailable"


async def test_a_disabled_marketplace_answers_alike_for_search_and_install(settings, served):
    # A marketplace is configured; enable_market = false is what refuses, and both say so.
    from dataclasses import replace

    from tests.interfaces.http.conftest import open_api

    async for api in open_api(replace(settings, enable_market=False)):
        search = await api.client.get("/api/v1/market/search", params={"q": "lyrics"})
        install = await api.client.post("/api/v1/plugins/install",
                                        json={"source": "market", "marketId": "lyrics-lrc"})
        assert search.status_code == install.status_code == 409
        assert search.json()["error"] == install.json()["error"]
        error = install.json()["error"]
        assert error["code"] == "market.disabled"
        assert "set enable_market = true" in error["message"]
        assert (await api.client.get("/api/v1/plugins")).json()["items"] == []


async def test_market_api_is_not_used_and_the_server_says_so(settings, served, caplog):
    # What docs/market.md says: the setting is read, a warning names it, and downloads are
    # counted by this server (nothing is sent to the address, which here answers nothing).
    from dataclasses import replace

    from tests.interfaces.http.conftest import open_api

    with caplog.at_level("WARNING", logger="plughost.interfaces.http._routes_market"):
        async for api in open_api(replace(settings, market_api="http://127.0.0.1:9/api")):
            assert "market_api = 'http://127.0.0.1:9/api' is set but not used" in caplog.text
            r = await api.client.post("/api/v1/plugins/install",
                                      json={"source": "market", "marketId": "other"})
            assert r.status_code == 201, r.text
            found = (await api.client.get("/api/v1/market/plugins/other")).json()
            assert found["downloads"] == 1


async def test_one_rating_per_token_holder_and_moderation(api, served):
    alice = api.auth("viewer")
    r = await api.client.put("/api/v1/market/plugins/lyrics-lrc/ratings",
                             json={"rating": 2, "review": "meh"}, headers=alice)
    assert r.status_code == 200, r.text
    r = await api.client.put("/api/v1/market/plugins/lyrics-lrc/ratings",
                             json={"rating": 5, "review": "great after all"}, headers=alice)
    rating_id = r.json()["id"]
    admin = api.auth("admin")
    await api.client.put("/api/v1/market/plugins/lyrics-lrc/ratings",
                         json={"rating": 1, "review": "spam spam"}, headers=admin)
    page = (await api.client.get("/api/v1/market/plugins/lyrics-lrc/ratings",
                                 headers=alice)).json()
    assert page["total"] == 2 and [i["rating"] for i in page["items"]] == [1, 5]
    found = (await api.client.get("/api/v1/market/search", params={"q": "lrc"},
                                  headers=alice)).json()["items"][0]
    assert (found["rating"], found["ratings_count"]) == (3.0, 2)
    # viewers cannot moderate; admins hide, and the hidden one leaves the average
    spam = page["items"][0]["id"]
    r = await api.client.post(f"/api/v1/market/ratings/{spam}/moderation",
                              json={"hidden": True, "reason": "spam"}, headers=alice)
    assert r.status_code == 403
    r = await api.client.post(f"/api/v1/market/ratings/{spam}/moderation",
                              json={"hidden": True, "reason": "spam"}, headers=admin)
    assert r.status_code == 200 and r.json()["hidden"] is True
    page = (await api.client.get("/api/v1/market/plugins/lyrics-lrc/ratings",
                                 headers=alice)).json()
    assert [i["id"] for i in page["items"]] == [rating_id]
    found = (await api.client.get("/api/v1/market/plugins/lyrics-lrc", headers=alice)).json()
    assert (found["rating"], found["ratings_count"]) == (5.0, 1)



async def test_a_hidden_review_stays_hidden_when_its_author_sends_it_again(api, served):
    bob, admin = api.auth("viewer"), api.auth("admin")
    r = await api.client.put("/api/v1/market/plugins/lyrics-lrc/ratings",
                             json={"rating": 1, "review": "spam spam"}, headers=bob)
    spam = r.json()["id"]
    r = await api.client.post(f"/api/v1/market/ratings/{spam}/moderation",
                              json={"hidden": True, "reason": "spam"}, headers=admin)
    assert r.status_code == 200 and r.json()["hidden"] is True
    for body in ({"rating": 1, "review": "spam spam"}, {"rating": 2, "review": "edited"}):
        r = await api.client.put("/api/v1/market/plugins/lyrics-lrc/ratings", json=body,
                                 headers=bob)
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["rating"], r.json()["hidden"]) == (
            spam, body["rating"], True)
        shown = (await api.client.get("/api/v1/market/plugins/lyrics-lrc/ratings",
                                      headers=bob)).json()
        assert shown["items"] == []
        found = (await api.client.get("/api/v1/market/plugins/lyrics-lrc",
                                      headers=bob)).json()
        assert (found["rating"], found["ratings_count"]) == (None, 0)
    everything = (await api.client.get("/api/v1/market/plugins/lyrics-lrc/ratings",
                                       params={"include_hidden": "true"},
                                       headers=admin)).json()["items"]
    assert [(i["review"], i["hidden"], i["moderation_reason"]) for i in everything] == [
        ("edited", True, "spam")]
    # only an admin lifts it
    r = await api.client.post(f"/api/v1/market/ratings/{spam}/moderation",
                              json={"hidden": False}, headers=admin)
    assert r.status_code == 200 and r.json()["hidden"] is False
    found = (await api.client.get("/api/v1/market/plugins/lyrics-lrc", headers=bob)).json()
    assert (found["rating"], found["ratings_count"]) == (2.0, 1)


@pytest.mark.parametrize("body", [{"rating": 0}, {"rating": 6}, {"rating": "5"},
                                  {"rating": 3, "review": "x" * 5001}, {"rating": 3, "x": 1}])
async def test_bad_ratings_are_refused(api, served, body):
    r = await api.client.put("/api/v1/market/plugins/lyrics-lrc/ratings", json=body)
    assert r.status_code in (400, 422), r.text
    assert (await api.client.get("/api/v1/market/plugins/lyrics-lrc/ratings")).json()[
        "items"] == []


async def test_rating_an_unlisted_plugin_is_refused(api, served):
    r = await api.client.put("/api/v1/market/plugins/nope/ratings", json={"rating": 4})
    assert r.status_code == 404 and r.json()["error"]["code"] == "market.not_found"


async def test_policies_and_a_check_update_auto_plugins(api, served, repo, make_package):
    r = await api.client.post("/api/v1/plugins/install",
                              json={"source": "market", "marketId": "other"})
    assert r.status_code == 201, r.text
    r = await api.client.put("/api/v1/market/plugins/other/policy",
                             json={"policy": "auto", "window": "25:00-26:00"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "market.invalid"
    r = await api.client.put("/api/v1/market/plugins/other/policy", json={"policy": "auto"})
    assert r.status_code == 200 and r.json()["policy"] == "auto"
    repo.publish(make_package("other", "2.1.0"), allow_unsigned=True)
    r = await api.client.get("/api/v1/market/outdated", params={"refresh": True})
    assert [(i["id"], i["latest_version"]) for i in r.json()["items"]] == [("other", "2.1.0")]
    r = await api.client.post("/api/v1/market/check")
    assert [(d["id"], d["action"]) for d in r.json()["items"]] == [("other", "updated")]
    assert (await api.client.get("/api/v1/market/outdated")).json()["items"] == []
