"""Requests (``id``, ``id@version``, ``id@range``) and their refusals; what a plan reads."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from plughost.core.manifest import Manifest, manifest_from_dict
from plughost.core.version import Version
from plughost.errors import MarketError
from plughost.services.market.index import (
    Index,
    IndexPlugin,
    plugin_with_version,
    version_from_manifest,
)
from plughost.services.market.plan import parse_request, plan_install, reachable


@pytest.mark.parametrize(("text", "shown"), [
    ("lyrics-lrc", "lyrics-lrc"), ("lyrics-lrc@0.3.1", "lyrics-lrc@0.3.1"),
    ("lyrics-lrc@^0.3", "lyrics-lrc@^0.3"), (" a@>=1.0 <2 ", "a@>=1.0 <2"),
])
def test_requests_parse(text, shown):
    assert str(parse_request(text)) == shown


@pytest.mark.parametrize("text", ["", "Bad", "a@", "a@not a range!", "../x", "a/b", "a" * 70])
def test_bad_requests_say_how_to_write_one(text):
    with pytest.raises(MarketError) as info:
        parse_request(text)
    assert info.value.code == "market.invalid"


def _manifest(pid: str, version: str, **deps: str) -> Manifest:
    return manifest_from_dict({"id": pid, "name": pid, "version": version, "entry": "m:P",
                               "dependencies": {k.replace("_", "-"): v
                                                for k, v in deps.items()}})


def _index(*manifests: Manifest) -> Index:
    plugins: dict[str, IndexPlugin] = {}
    for m in manifests:
        entry = version_from_manifest(m, target=f"{m.id}-{m.version}.zip", sha256="0" * 64,
                                      size=1, signed_by=(), published="2026-01-01")
        plugins[m.id] = plugin_with_version(plugins.get(m.id), m, entry)
    return Index(plugins)


def test_a_plan_reads_and_judges_only_what_the_request_reaches():
    # app 2.0 needs lib (not installed; its 1.x needs core, installed), app 1.0 needs old
    # (listed); bystanders, installed and listed, are neither read nor judged.
    index = _index(_manifest("app", "1.0.0", old="^1"), _manifest("app", "2.0.0", lib="^1"),
                   _manifest("lib", "1.0.0", core="^1"), _manifest("old", "1.0.0"),
                   _manifest("core", "1.0.0"), _manifest("core", "2.0.0"),
                   *(_manifest(f"other-{i}", "1.0.0") for i in range(50)))
    installed = {"core": _manifest("core", "1.0.0"),
                 **{f"installed-{i}": _manifest(f"installed-{i}", "1.0.0") for i in range(50)}}
    asked: list[set[str]] = []

    def lookup(ids: Collection[str]) -> dict[str, Manifest]:
        asked.append(set(ids))
        return {i: installed[i] for i in ids if i in installed}

    plan = plan_install(parse_request("app"), [("main", index)], lookup,
                        host_version=Version.parse("1.0.0"))
    assert [(p.version.id, str(p.version.version)) for p in plan.packages] == [
        ("lib", "1.0.0"), ("app", "2.0.0")]
    assert plan.already_installed == ("core",)
    assert set().union(*asked) == {"app", "lib", "old", "core"}
    assert asked[0] == {"app"}  # one step at a time, each id once
    assert sum(len(a) for a in asked) == 4
    # The same plan from a mapping of everything installed.
    assert plan_install(parse_request("app"), [("main", index)], installed,
                        host_version=Version.parse("1.0.0")) == plan


def test_an_installed_dependency_is_followed_by_its_installed_version():
    # The installed core 1.0 needs base; the listed core 2.0 would need extra: a plan that
    # keeps core at 1.0 reaches base, never extra.
    index = _index(_manifest("app", "1.0.0", core="^1"), _manifest("core", "2.0.0", extra="^1"),
                   _manifest("extra", "1.0.0"), _manifest("base", "1.0.0"))
    installed = {"core": _manifest("core", "1.0.0", base="^1")}
    listing, found = reachable("app", [("main", index)], installed)
    assert set(listing) == {"app", "base"} and set(found) == {"core"}
