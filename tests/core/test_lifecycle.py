from __future__ import annotations

import itertools

import pytest

from plughost.core.lifecycle import (
    TRANSITIONS,
    LifecycleEvent,
    LifecycleEvents,
    State,
    transition,
)
from plughost.errors import InvalidTransition

ALL_PAIRS = list(itertools.product(State, State))
ALLOWED = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
REFUSED = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]


def test_every_state_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(State)


def test_the_documented_happy_path_is_allowed() -> None:
    path = [
        State.DISCOVERED,
        State.INSTALLED,
        State.RESOLVED,
        State.LOADED,
        State.ACTIVE,
        State.DEACTIVATED,
        State.ACTIVE,
        State.DEACTIVATED,
        State.UNINSTALLED,
    ]
    for current, target in itertools.pairwise(path):
        assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), ALLOWED, ids=lambda s: s.value)
def test_allowed_transition_returns_target(current: State, target: State) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), REFUSED, ids=lambda s: s.value)
def test_refused_transition_names_both_states(current: State, target: State) -> None:
    with pytest.raises(InvalidTransition) as info:
        transition(current, target, plugin_id="hello")
    err = info.value
    assert err.code == "lifecycle.transition"
    assert repr(current.value) in err.message and repr(target.value) in err.message
    assert err.plugin_id == "hello"
    assert err.details == {"from": current.value, "to": target.value}
    assert isinstance(err, RuntimeError)


def test_uninstalled_is_terminal() -> None:
    assert TRANSITIONS[State.UNINSTALLED] == frozenset()


def test_active_plugin_cannot_be_uninstalled_directly_and_says_why() -> None:
    with pytest.raises(InvalidTransition, match="deactivate it first"):
        transition(State.ACTIVE, State.UNINSTALLED)


def test_listeners_receive_events_with_timestamps_and_undo_unsubscribes() -> None:
    events = LifecycleEvents()
    seen: list[LifecycleEvent] = []
    undo = events.subscribe(seen.append)
    events.publish(LifecycleEvent("hello", State.LOADED, State.ACTIVE))
    undo()
    undo()  # idempotent
    events.publish(LifecycleEvent("hello", State.ACTIVE, State.DEACTIVATED))
    assert [(e.old, e.new) for e in seen] == [(State.LOADED, State.ACTIVE)]
    assert seen[0].timestamp > 0
    assert seen[0].to_dict()["new"] == "active"


def test_a_listener_subscribed_first_hears_before_the_ones_already_there() -> None:
    events = LifecycleEvents()
    heard: list[str] = []
    events.subscribe(lambda e: heard.append("earlier"))
    events.subscribe(lambda e: heard.append("first"), first=True)
    events.subscribe(lambda e: heard.append("later"))
    events.publish(LifecycleEvent("x", State.INSTALLED, State.RESOLVED))
    assert heard == ["first", "earlier", "later"]


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    events = LifecycleEvents()
    seen: list[LifecycleEvent] = []

    def boom(_: LifecycleEvent) -> None:
        raise RuntimeError("listener bug")

    events.subscribe(boom)
    events.subscribe(seen.append)
    events.publish(LifecycleEvent("x", State.INSTALLED, State.RESOLVED))
    assert len(seen) == 1
    assert "listener bug" in caplog.text


def test_a_listener_that_wants_some_states_gets_only_those_and_listening_says_so() -> None:
    events = LifecycleEvents()
    seen: list[State] = []
    assert not events.listening(State.ACTIVE)
    undo = events.subscribe(lambda e: seen.append(e.new), wants=lambda s: s is State.FAILED)
    assert events.listening(State.FAILED) and not events.listening(State.INSTALLED)
    events.publish(LifecycleEvent("x", State.DISCOVERED, State.INSTALLED))
    events.publish(LifecycleEvent("x", State.INSTALLED, State.FAILED))
    assert seen == [State.FAILED]
    events.subscribe(lambda e: None)  # wants every change
    assert events.listening(State.INSTALLED)
    undo()
    assert events.listening(State.INSTALLED) and len(events) == 1
