from __future__ import annotations

import pytest

from plughost.core.lifecycle import State
from plughost.core.manifest import manifest_from_dict
from plughost.core.registry import PluginRecord, Registry, capabilities_of
from plughost.errors import OperationRefused, PluginNotFound


def record(pid: str, **fields: object) -> PluginRecord:
    data = {"id": pid, "name": pid, "version": "1.0.0", "entry": "m:P", **fields}
    return PluginRecord(manifest_from_dict(data), None)


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add(record("slack", type="notify", tags=["chat"],
                   provides={"commands": ["slack.send"], "extension-points": ["notify.send"]}))
    reg.add(record("mail", type="notify", provides={"extension-points": ["notify.send"]}))
    reg.add(record("netease", type="music-source", tags=["chat", "music"],
                   provides={"events": ["music.played"], "channels": ["music.stream"]}))
    return reg


def test_get_unknown_id_names_known_ids(registry: Registry) -> None:
    with pytest.raises(PluginNotFound, match="known: mail, netease, slack"):
        registry.get("nope")


def test_duplicate_id_is_refused_unless_replacing(registry: Registry) -> None:
    with pytest.raises(OperationRefused) as info:
        registry.add(record("mail"))
    assert info.value.code == "registry.duplicate"
    registry.add(record("mail", type="other"), replace=True)
    assert [r.id for r in registry.by_type("notify")] == ["slack"]
    assert [r.id for r in registry.by_type("other")] == ["mail"]


def test_indexes_by_type_extension_capability_and_tag(registry: Registry) -> None:
    assert [r.id for r in registry.by_type("notify")] == ["mail", "slack"]
    assert [r.id for r in registry.by_extension_point("notify.send")] == ["mail", "slack"]
    assert [r.id for r in registry.by_capability("command:slack.send")] == ["slack"]
    assert [r.id for r in registry.by_capability("channel:music.stream")] == ["netease"]
    assert [r.id for r in registry.by_tag("chat")] == ["netease", "slack"]
    assert registry.by_type("missing") == []


def test_query_combines_filters(registry: Registry) -> None:
    registry.get("mail").state = State.ACTIVE
    assert [r.id for r in registry.query(type="notify", state="active")] == ["mail"]
    assert [r.id for r in registry.query(tag="chat", type="notify")] == ["slack"]
    assert [r.id for r in registry.query()] == ["mail", "netease", "slack"]
    assert registry.query(type="notify", extension_point="nothing") == []


def test_remove_cleans_every_index(registry: Registry) -> None:
    removed = registry.remove("slack")
    assert removed.id == "slack"
    assert "slack" not in registry
    assert [r.id for r in registry.by_extension_point("notify.send")] == ["mail"]
    assert registry.by_capability("command:slack.send") == []
    assert len(registry) == 2


def test_remove_takes_out_what_add_indexed_even_after_the_manifest_was_swapped() -> None:
    reg = Registry()
    swapped = record("x", type="a", tags=["t"], provides={"commands": ["x.go"]},
                     dependencies={"lib": "^1.0"})
    reg.add(swapped)
    reg.add(record("y", type="a", provides={"commands": ["y.go"]}))
    assert [r.id for r in reg.by_type("a")] == ["x", "y"]  # indexed by this first query
    swapped.manifest = record("x", type="b").manifest  # in place, as a replacement does
    reg.add(swapped, replace=True)
    assert [r.id for r in reg.by_type("a")] == ["y"] and reg.by_tag("t") == []
    assert reg.by_capability("command:x.go") == [] and reg.dependents("lib") == []
    assert [r.id for r in reg.by_type("b")] == ["x"]
    reg.remove("x")
    assert reg.by_type("b") == [] and [r.id for r in reg.query()] == ["y"]
    assert [r.id for r in reg.by_capability("command:y.go")] == ["y"]


def test_capabilities_of_lists_every_kind() -> None:
    m = manifest_from_dict({"id": "x", "name": "x", "version": "1.0.0", "entry": "m:P",
                            "provides": {"commands": ["x.a"], "events": ["e"],
                                         "channels": ["c"], "extension-points": ["p"]}})
    assert capabilities_of(m) == {"command:x.a", "event:e", "channel:c", "extension:p"}


def test_record_to_dict_is_json_ready(registry: Registry) -> None:
    data = registry.get("slack").to_dict()
    assert data["id"] == "slack" and data["state"] == "discovered" and data["error"] is None


def test_dependents_come_from_an_index_kept_in_step_with_add_replace_and_remove() -> None:
    reg = Registry()
    reg.add(record("lib"))
    reg.add(record("mid", dependencies={"lib": "^1.0"}))
    reg.add(record("app", dependencies={"mid": "^1.0"}))
    reg.add(record("opt", **{"optional-dependencies": {"lib": "^1.0"}}))  # optional: not needed
    assert reg.dependents("lib") == ["app", "mid"]
    assert reg.dependents("mid") == ["app"] and reg.dependents("app") == []
    # Only the considered plugins count, and the chain runs through them only.
    assert reg.dependents("lib", considered=lambda r: r.id != "mid") == []
    reg.add(record("mid"), replace=True)  # a new version that no longer needs lib
    assert reg.dependents("lib") == []
    reg.remove("app")
    assert reg.dependents("mid") == []
    reg.add(PluginRecord(record("dev", dependencies={"lib": "^1.0"}).manifest, None,
                         source="directory"))
    assert reg.dependents("lib") == ["dev"]
    assert [r.id for r in reg.not_from("installed")] == ["dev", "lib", "mid", "opt"]
    assert [r.id for r in reg.not_from("directory")] == []



def test_users_are_the_direct_required_and_optional_users_kept_in_step() -> None:
    reg = Registry()
    reg.add(record("lib"))
    reg.add(record("mid", dependencies={"lib": "^1.0"}))
    reg.add(record("app", dependencies={"mid": "^1.0"}))
    reg.add(record("opt", **{"optional-dependencies": {"lib": "^1.0"}}))
    assert reg.users("lib") == {"mid", "opt"}  # direct only: not app
    assert reg.users("app") == set() and reg.users("nobody") == set()
    reg.add(record("opt"), replace=True)  # a new version that no longer uses lib
    assert reg.users("lib") == {"mid"}
    reg.remove("mid")
    assert reg.users("lib") == set()


def test_awake_records_and_state_counts_follow_noted_states_add_replace_and_remove(
        registry: Registry) -> None:
    assert registry.awake() == []  # discovered: asleep
    total = len(registry)
    assert registry.state_counts()[State.DISCOVERED] == total
    slack = registry.get("slack")
    for state, awake in ((State.RESOLVED, []), (State.LOADED, ["slack"]),
                         (State.ACTIVE, ["slack"]), (State.DEACTIVATED, ["slack"]),
                         (State.RESOLVED, []), (State.FAILED, ["slack"]),
                         (State.DISABLED, [])):
        old, slack.state = slack.state, state
        registry.note_state(slack, old)
        assert [r.id for r in registry.awake()] == awake
        counts = registry.state_counts()
        assert counts[state] == 1 and counts[State.DISCOVERED] == total - 1
        assert sum(counts.values()) == total
    old, slack.state = slack.state, State.ACTIVE
    registry.note_state(slack, old)
    registry.add(slack, replace=True)  # re-indexed as it is
    assert registry.awake() == [slack]
    assert registry.state_counts()[State.ACTIVE] == 1
    stranger = record("slack")  # not the registered record: ignored
    stranger.state = State.RESOLVED
    registry.note_state(stranger, State.DISCOVERED)
    assert registry.awake() == [slack]
    assert registry.state_counts()[State.RESOLVED] == 0
    registry.remove("slack")
    assert registry.awake() == []
    assert registry.state_counts()[State.ACTIVE] == 0
    assert sum(registry.state_counts().values()) == total - 1


def test_moving_records_together_keeps_states_counts_and_awake_as_one_by_one(
        registry: Registry) -> None:
    records = list(registry)
    registry.move_all(records, State.DISCOVERED, State.RESOLVED, 123.0)
    assert {r.state for r in records} == {State.RESOLVED} and {r.since for r in records} == {123.0}
    counts = registry.state_counts()
    assert (counts[State.RESOLVED], counts[State.DISCOVERED]) == (len(records), 0)
    assert registry.awake() == []  # asleep to asleep
    registry.move_all(records[:2], State.RESOLVED, State.FAILED, 124.0)
    assert [r.id for r in registry.awake()] == [r.id for r in records[:2]]
    registry.move_all(records[:1], State.FAILED, State.DISABLED, 125.0)
    assert [r.id for r in registry.awake()] == [records[1].id]
    counts = registry.state_counts()
    assert (counts[State.FAILED], counts[State.DISABLED]) == (1, 1)
    assert sum(counts.values()) == len(records)


def test_records_are_indexed_by_the_first_query_as_they_are_then() -> None:
    # Added, replaced and removed before any query: nothing of them was indexed, and nothing
    # of them is found; what is left is found by what its manifest says when first asked.
    reg = Registry()
    gone = record("gone", type="a", provides={"commands": ["gone.go"]})
    kept = record("kept", type="a", tags=["t"], dependencies={"lib": "^1.0"})
    reg.add(gone)
    reg.add(kept)
    reg.remove("gone")
    kept.manifest = record("kept", type="b", tags=["u"], dependencies={"lib": "^1.0"}).manifest
    reg.add(kept, replace=True)
    assert reg.by_type("a") == [] and reg.by_capability("command:gone.go") == []
    assert [r.id for r in reg.by_type("b")] == ["kept"] and reg.by_tag("t") == []
    assert reg.dependents("lib") == ["kept"] and reg.users("lib") == {"kept"}
    # The counts by state and what is awake do not wait for a query.
    assert reg.state_counts()[State.DISCOVERED] == 1 and len(reg) == 1
    reg.add(record("late", type="b"))
    reg.catch_up()  # indexed now, not by the next query
    assert not reg._unindexed
    assert [r.id for r in reg.query(type="b")] == ["kept", "late"]
    reg.remove("kept")
    assert [r.id for r in reg.by_type("b")] == ["late"] and reg.dependents("lib") == []


def test_records_are_the_records_of_the_ids_in_their_order(registry: Registry) -> None:
    assert [r.id for r in registry.records(["slack", "mail"])] == ["slack", "mail"]
    with pytest.raises(PluginNotFound, match="'nope'"):
        registry.records(["mail", "nope"])
