"""The index format: what the reader refuses (naming the field), and search ranking,
filters and pagination."""

from __future__ import annotations

import json

import pytest

from plughost.core.version import Version
from plughost.errors import MarketError
from plughost.services.market.index import (
    Index,
    SearchQuery,
    decode_cursor,
    parse_index,
    search,
)

HOST = Version.parse("0.1.0")


def _doc(**plugins: dict) -> bytes:
    return json.dumps({"format": "plughost-market-index/1", "plugins": plugins}).encode()


def _plugin(pid: str, *versions: str, **fields: object) -> dict:
    return {"name": pid, **fields, "versions": [
        {"version": v, "target": f"packages/{pid}/{pid}-{v}.zip", "sha256": "a" * 64,
         "size": 10} for v in versions]}


def test_a_valid_index_round_trips():
    index = parse_index(_doc(hello=_plugin("hello", "1.0.0", "1.2.0", tags=["x"])))
    assert [str(v.version) for v in index.plugins["hello"].versions] == ["1.2.0", "1.0.0"]
    again = parse_index(index.to_bytes())
    assert again.plugins["hello"].to_dict() == index.plugins["hello"].to_dict()


@pytest.mark.parametrize(("doc", "field"), [
    (b"not json", "the document"),
    (json.dumps({"format": "other", "plugins": {}}).encode(), "format"),
    (_doc(**{"Bad Id": _plugin("x", "1.0.0")}), "plugins.'Bad Id'"),
    (_doc(hello={"versions": []}), "plugins.hello.versions"),
    (_doc(hello={"versions": [{"version": "1.0.0", "target": "../../etc/passwd",
                               "sha256": "a" * 64, "size": 1}]}),
     "plugins.hello.versions.1.0.0.target"),
    (_doc(hello={"versions": [{"version": "1.0.0",
                               "target": "packages/hello/hello-1.0.0.zip",
                               "sha256": "XYZ", "size": 1}]}),
     "plugins.hello.versions.1.0.0.sha256"),
    (_doc(hello={"versions": [{"version": "1.0.0",
                               "target": "packages/hello/hello-1.0.0.zip",
                               "sha256": "a" * 64, "size": 1,
                               "dependencies": {"x": "not a range!"}}]}),
     "plugins.hello.versions.1.0.0.dependencies.x"),
])
def test_a_malformed_index_is_refused_naming_the_field(doc, field):
    with pytest.raises(MarketError) as info:
        parse_index(doc)
    assert info.value.code == "market.invalid"
    assert info.value.details["field"] == field


def _index() -> Index:
    return parse_index(_doc(
        **{"lyrics-lrc": _plugin("lyrics-lrc", "0.3.1", description="synced lyrics",
                                 tags=["lyrics"], type="music-source"),
           "lyrics": _plugin("lyrics", "1.0.0", description="plain", type="music-source"),
           "notify-slack": _plugin("notify-slack", "1.0.0", description="lyrics to slack",
                                   type="notify", downloads=10),
           "zed": _plugin("zed", "1.0.0", description="nothing")}))


def test_search_ranks_exact_id_then_prefix_then_description():
    page = search([("m", _index())], SearchQuery("lyrics"), host_version=HOST)
    assert [h.plugin.id for h in page.hits] == ["lyrics", "lyrics-lrc", "notify-slack"]
    assert page.total == 3 and page.next_cursor is None


def test_search_filters_and_paginates():
    index = _index()
    assert [h.plugin.id for h in search([("m", index)], SearchQuery(type="notify"),
                                        host_version=HOST).hits] == ["notify-slack"]
    assert [h.plugin.id for h in search([("m", index)], SearchQuery(tag="lyrics"),
                                        host_version=HOST).hits] == ["lyrics-lrc"]
    first = search([("m", index)], SearchQuery(), host_version=HOST, limit=3)
    assert len(first.hits) == 3 and first.total == 4
    rest = search([("m", index)], SearchQuery(), host_version=HOST, limit=3,
                  cursor=first.next_cursor)
    assert len(rest.hits) == 1 and rest.next_cursor is None
    assert {h.plugin.id for h in first.hits + rest.hits} == set(index.plugins)


def test_an_earlier_marketplace_hides_the_same_id_in_a_later_one():
    a = parse_index(_doc(hello=_plugin("hello", "1.0.0")))
    b = parse_index(_doc(hello=_plugin("hello", "9.0.0")))
    [hit] = search([("a", a), ("b", b)], SearchQuery("hello"), host_version=HOST).hits
    assert (hit.source, str(hit.version.version)) == ("a", "1.0.0")


@pytest.mark.parametrize("cursor", ["x", "aGVsbG8", "%%%", "o:-1"])
def test_a_foreign_cursor_is_refused(cursor):
    with pytest.raises(MarketError) as info:
        decode_cursor(cursor)
    assert info.value.code == "market.invalid"


# -- search against a plain reference: the straightforward scan the fast search replaced ------

def _reference(indexes, query, limit, offset):
    """Every plugin checked in turn, every hit scored, all sorted: the rule, written plainly."""
    import math

    terms = [t for t in query.text.lower().split() if t]
    seen, hits = set(), []
    for _source, index in indexes:
        for pid, p in index.plugins.items():
            if pid in seen:
                continue
            seen.add(pid)
            if terms and not all(t in p.haystack for t in terms):
                continue
            if query.type and p.type != query.type:
                continue
            if query.tag and query.tag.lower() not in [t.lower() for t in p.tags]:
                continue
            shown = next((v for v in p.versions
                          if not (v.yanked and not query.include_yanked)
                          and not (query.compatible and v.incompatibility(HOST))), None)
            if shown is None or (query.runtime and shown.runtime != query.runtime):
                continue
            score = math.log10(1 + p.downloads)
            for term in terms:
                score += (100 if pid == term else 50 if pid.startswith(term)
                          else 30 if term in pid else 0)
                score += (20 if term in [t.lower() for t in p.tags] else 0)
                score += (15 if term in p.name.lower() else 0)
                score += (5 if term in p.description.lower() else 0)
            hits.append((-score, pid))
    hits.sort()
    return [pid for _, pid in hits[offset:offset + limit]], len(hits)


def _random_index(rng, n, words):
    plugins = {}
    for i in range(n):
        pid = f"{rng.choice(words)}-{i}"
        versions = [
            {"version": f"1.{v}.0", "target": f"packages/{pid}/{pid}-1.{v}.0.zip",
             "sha256": "a" * 64, "size": 10, "yanked": rng.random() < 0.2,
             "host": rng.choice([">=0.1.0", ">=9.0.0"]),
             "runtime": rng.choice(["python", "process", "wasm"])}
            for v in range(rng.randint(1, 3))]
        plugins[pid] = {"name": " ".join(rng.sample(words, 2)).title(),
                        "description": " ".join(rng.sample(words, 3)),
                        "type": rng.choice(["notify", "music-source", ""]),
                        "tags": rng.sample(words, 2), "downloads": rng.randint(0, 50),
                        "versions": versions}
    return parse_index(_doc(**plugins))


@pytest.mark.parametrize("seed", range(8))
def test_search_agrees_with_the_plain_scan(seed):
    import random

    rng = random.Random(seed)
    words = ["lyrics", "slack", "notify", "music", "sync", "wea", "ther", "ly"]
    sources = [("a", _random_index(rng, 120, words)), ("b", _random_index(rng, 60, words))]
    for _ in range(40):
        query = SearchQuery(
            text=" ".join(rng.sample([*words, "", "LY", "zz", "-1"], rng.randint(0, 2))),
            type=rng.choice(["", "", "notify"]), tag=rng.choice(["", "", "Sync"]),
            runtime=rng.choice(["", "", "wasm"]), compatible=rng.random() < 0.5,
            include_yanked=rng.random() < 0.3)
        limit, offset = rng.choice([1, 5, 20]), rng.choice([0, 0, 3, 30])
        from plughost.services.market.index import encode_cursor

        cursor = encode_cursor(offset) if offset else None
        for picked in (sources[:1], sources):
            page = search(picked, query, host_version=HOST, limit=limit, cursor=cursor)
            ids, total = _reference(picked, query, limit, offset)
            assert ([h.plugin.id for h in page.hits], page.total) == (ids, total), query
            assert (page.next_cursor is None) == (offset + limit >= total)
