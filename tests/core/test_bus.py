from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from plughost.core.bus import Event, EventBus, Subscription, topic_matches
from plughost.errors import EventQueueFull, InvalidExport, PermissionDenied, TopicError


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll with a deadline (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.001)


# --------------------------------------------------------------------------------- message shape


def test_event_has_the_seed_message_shape_and_is_frozen() -> None:
    bus = EventBus(name="h1")
    got: list[Event] = []
    bus.subscribe("chat.message", got.append)
    bus.emit("chat.message", {"text": "hi"}, source="chat", reply_to="h1-0")
    event = got[0]
    assert [f.name for f in dataclasses.fields(Event)] == [
        "id", "type", "source", "topic", "payload", "timestamp", "reply_to"]
    assert (event.type, event.source, event.topic, event.payload, event.reply_to) == (
        "event", "chat", "chat.message", {"text": "hi"}, "h1-0")
    assert event.id.startswith("h1-")
    assert event.timestamp > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.topic = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
    assert event.to_dict()["pluginId"] == "chat"
    assert event == Event(event.id, "event", "chat", "chat.message", {"text": "hi"},
                          event.timestamp, "h1-0")


def test_event_ids_are_unique() -> None:
    bus = EventBus()
    got: list[Event] = []
    bus.subscribe("a", got.append)
    for _ in range(100):
        bus.emit("a")
    assert len({e.id for e in got}) == 100


# ------------------------------------------------------------------------------------ wildcards


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("chat.message", "chat.message", True),
        ("chat.message", "chat.messages", False),
        ("chat.*", "chat.message", True),
        ("chat.*", "chat.message.sent", False),
        ("chat.*", "chat", False),
        ("*.message", "chat.message", True),
        ("chat.#", "chat", True),
        ("chat.#", "chat.message.sent", True),
        ("chat.#", "chatter.message", False),
        ("#", "anything.at.all", True),
        ("plugin.*.active", "plugin.hello.active", True),
        ("plugin.#.active", "plugin.a.b.active", True),
        ("plugin.#.active", "plugin.active", True),
        ("plugin.#.active", "plugin.a.b.failed", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
    ],
)
def test_wildcard_matching(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected
    bus = EventBus()
    got: list[Event] = []
    bus.subscribe(pattern, got.append)
    bus.emit(topic)
    assert len(got) == int(expected)


@pytest.mark.parametrize("bad", ["", "chat..message", "chat.", "chat message", "chat.*"])
def test_emit_refuses_bad_topics(bad: str) -> None:
    bus = EventBus()
    bus.subscribe("#", lambda e: None)
    with pytest.raises(TopicError):
        bus.emit(bad)


def test_subscribe_refuses_bad_patterns_and_options() -> None:
    bus = EventBus()
    with pytest.raises(TopicError, match="bad segment"):
        bus.subscribe("chat.**", lambda e: None)
    with pytest.raises(InvalidExport, match="when_full"):
        bus.subscribe("chat", lambda e: None, when_full="wait")  # type: ignore[arg-type]
    with pytest.raises(InvalidExport, match="queue"):
        bus.subscribe("chat", lambda e: None, queue=0)
    assert bus.subscriptions() == []


def test_resolution_cache_is_invalidated_on_subscribe_and_unsubscribe() -> None:
    bus = EventBus()
    got: list[str] = []
    bus.subscribe("chat.#", lambda e: got.append("wide"))
    bus.emit("chat.message")
    narrow = bus.subscribe("chat.message", lambda e: got.append("narrow"))
    bus.emit("chat.message")
    narrow()
    bus.emit("chat.message")
    assert got == ["wide", "wide", "narrow", "wide"]


# -------------------------------------------------------------------------------- sync delivery


def test_sync_subscribers_run_inline_in_subscription_order() -> None:
    bus = EventBus()
    got: list[str] = []
    for name in ("first", "second", "third"):
        bus.subscribe("chat.*", lambda e, name=name: got.append(name))
    assert bus.emit("chat.message") == 3
    assert got == ["first", "second", "third"]


def test_failing_subscriber_is_isolated_counted_and_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    reports: list[tuple[Subscription, Event, BaseException]] = []
    bus = EventBus(on_error=lambda s, e, x: reports.append((s, e, x)))
    got: list[str] = []
    bus.subscribe("a", lambda e: got.append("before"))
    bad = bus.subscribe("a", lambda e: 1 / 0, owner="buggy")
    bus.subscribe("a", lambda e: got.append("after"))
    with caplog.at_level(logging.ERROR):
        bus.emit("a")
    assert got == ["before", "after"]
    assert bad.failed == 1
    assert bus.failures == 1
    assert reports[0][0] is bad and isinstance(reports[0][2], ZeroDivisionError)
    assert "buggy" in caplog.text


def test_unsubscribe_is_the_returned_undo_and_is_idempotent() -> None:
    bus = EventBus()
    got: list[Event] = []
    sub = bus.subscribe("a", got.append)
    sub()
    sub()
    assert bus.emit("a") == 0
    assert got == [] and not sub.active


def test_emit_with_no_subscribers_reaches_nobody() -> None:
    assert EventBus().emit("nobody.listens") == 0


def test_subscribers_answer_alike_before_any_subscription_and_after_the_last_leaves() -> None:
    bus = EventBus()
    assert bus.subscribers("a.b") == ()
    sub = bus.subscribe("a.*", lambda e: None)
    assert bus.subscribers("a.b") == (sub,)  # the route cached now ...
    sub()  # unsubscribes
    assert bus.subscribers("a.b") == ()  # ... is not served once nobody subscribes


# ------------------------------------------------------------------------------- async delivery


async def test_async_subscriber_receives_events_in_emit_order() -> None:
    bus = EventBus()
    got: list[int] = []

    async def handler(event: Event) -> None:
        await asyncio.sleep(0)
        got.append(event.payload)

    sub = bus.subscribe("tokens", handler)
    for i in range(50):
        bus.emit("tokens", i)
    await bus.drain()
    assert got == list(range(50))
    assert sub.delivered == 50


async def test_slow_async_subscriber_does_not_delay_others() -> None:
    bus = EventBus()
    release = asyncio.Event()
    fast: list[int] = []

    async def slow(event: Event) -> None:
        await release.wait()

    async def quick(event: Event) -> None:
        fast.append(event.payload)

    bus.subscribe("t", slow)
    bus.subscribe("t", quick)
    for i in range(3):
        bus.emit("t", i)
    await wait_for(lambda: fast == [0, 1, 2])
    release.set()
    await bus.drain()


async def test_full_queue_with_drop_policy_discards_and_counts() -> None:
    bus = EventBus()
    release = asyncio.Event()
    got: list[int] = []

    async def handler(event: Event) -> None:
        await release.wait()
        got.append(event.payload)

    sub = bus.subscribe("t", handler, queue=2, when_full="drop")
    bus.emit("t", 0)
    await wait_for(lambda: sub.pending == 0)  # the worker holds event 0
    for i in range(1, 6):
        bus.emit("t", i)  # 1 and 2 fit; 3, 4, 5 are dropped
    assert sub.dropped == 3
    assert sub.stats()["dropped"] == 3
    release.set()
    await bus.drain()
    assert got == [0, 1, 2]


async def test_full_queue_with_block_policy_makes_aemit_wait() -> None:
    bus = EventBus()
    release = asyncio.Event()
    got: list[int] = []

    async def handler(event: Event) -> None:
        await release.wait()
        got.append(event.payload)

    sub = bus.subscribe("t", handler, queue=1, when_full="block")
    await bus.aemit("t", 0)
    await wait_for(lambda: sub.pending == 0)
    await bus.aemit("t", 1)  # fills the queue
    blocked = asyncio.ensure_future(bus.aemit("t", 2))
    for _ in range(20):  # let every ready task run; the blocked one must still wait
        await asyncio.sleep(0)
    assert not blocked.done()  # the emitter waits for space
    release.set()
    await asyncio.wait_for(blocked, 5)
    await bus.drain()
    assert got == [0, 1, 2]
    assert sub.dropped == 0


async def test_sync_emit_to_a_full_block_queue_raises_after_delivering_to_others() -> None:
    bus = EventBus()
    release = asyncio.Event()
    others: list[int] = []

    async def stuck(event: Event) -> None:
        await release.wait()

    sub = bus.subscribe("t", stuck, queue=1, owner="slow")
    bus.subscribe("t", lambda e: others.append(e.payload))
    bus.emit("t", 0)
    await wait_for(lambda: sub.pending == 0)
    bus.emit("t", 1)
    with pytest.raises(EventQueueFull, match="aemit") as info:
        bus.emit("t", 2)
    assert others == [0, 1, 2]
    assert info.value.details["subscribers"] == ["t"]
    release.set()
    await bus.drain()


async def test_failing_async_subscriber_keeps_receiving_later_events() -> None:
    bus = EventBus()
    got: list[int] = []

    async def flaky(event: Event) -> None:
        if event.payload == 1:
            raise RuntimeError("flaky")
        got.append(event.payload)

    sub = bus.subscribe("t", flaky)
    for i in range(3):
        bus.emit("t", i)
    await bus.drain()
    assert got == [0, 2]
    assert (sub.delivered, sub.failed) == (2, 1)


def test_events_emitted_before_a_loop_runs_wait_in_the_queue_until_drain() -> None:
    bus = EventBus()
    got: list[int] = []

    async def handler(event: Event) -> None:
        got.append(event.payload)

    sub = bus.subscribe("t", handler)
    bus.emit("t", 1)  # no event loop here: queued, not lost
    bus.emit("t", 2)
    assert sub.pending == 2 and got == []
    asyncio.run(bus.drain())
    assert got == [1, 2]


# ----------------------------------------------------------------------- permissions, cleanup


def test_denying_checker_refuses_emit_and_nothing_is_delivered() -> None:
    def deny(plugin_id: str | None, action: str, target: str) -> None:
        if plugin_id == "intruder":
            raise PermissionDenied(f"{plugin_id} may not {action} {target}", plugin_id=plugin_id)

    bus = EventBus(checker=deny)
    got: list[Event] = []
    bus.subscribe("secrets.#", got.append)
    with pytest.raises(PermissionDenied):
        bus.emit("secrets.key", source="intruder")
    bus.emit("secrets.key", source="friend")
    assert [e.source for e in got] == ["friend"]


async def test_unregister_owner_removes_subscriptions_and_cancels_workers() -> None:
    bus = EventBus()
    release = asyncio.Event()

    async def busy(event: Event) -> None:
        await release.wait()

    bus.subscribe("a.#", busy, owner="p")
    bus.subscribe("b", lambda e: None, owner="p")
    bus.subscribe("a.#", lambda e: None, owner="q")
    bus.emit("a.x")
    await wait_for(lambda: len(bus.tasks.of("p")) == 1)
    workers = bus.tasks.of("p")
    assert bus.unregister_owner("p") == 2
    await asyncio.gather(*workers, return_exceptions=True)
    assert all(t.cancelled() for t in workers)
    assert bus.subscriptions("p") == []
    assert bus.tasks.of("p") == []
    assert [s.owner for s in bus.subscribers("a.x")] == ["q"]


def test_monitor_sees_each_delivery_and_undo_removes_it() -> None:
    bus = EventBus()
    bus.subscribe("a", lambda e: None)
    seen: list[tuple[str, str]] = []
    undo = bus.add_monitor(lambda kind, name, payload: seen.append((kind, name)))
    bus.emit("a")
    undo()
    bus.emit("a")
    assert seen == [("event", "a")]


def test_redeliver_reaches_only_the_named_owners() -> None:
    bus = EventBus()
    got: list[str] = []
    bus.subscribe("a", lambda e: got.append("early"), owner="early")
    events: list[Event] = []
    bus.subscribe("a", events.append)
    bus.emit("a")
    bus.subscribe("a", lambda e: got.append("late"), owner="late")
    assert bus.redeliver(events[0], {"late"}) == 1
    assert got == ["early", "late"]
