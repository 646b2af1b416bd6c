from __future__ import annotations

import asyncio

import pytest

from plughost.core.channels import Channel, ChannelRegistry
from plughost.errors import (
    ChannelClosed,
    ChannelNotFound,
    CommandConflict,
    InvalidExport,
    PermissionDenied,
)


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.001)


async def echo(ch: Channel) -> None:
    async for message in ch:
        await ch.send(f"echo:{message}")


async def test_open_send_and_iterate_both_ways() -> None:
    reg = ChannelRegistry()
    reg.register("ai", "echo", echo)
    ch = await reg.open("ai.echo")
    assert (ch.name, ch.owner, ch.peer) == ("ai.echo", None, "ai")
    await ch.send("a")
    await ch.send("b")
    assert await ch.receive() == "echo:a"
    assert await ch.receive() == "echo:b"
    ch.close()


async def test_handler_returning_closes_orderly_after_the_buffer_drains() -> None:
    async def stream(ch: Channel) -> None:
        prompt = await ch.receive()
        for token in prompt.split():
            await ch.send(token)

    reg = ChannelRegistry()
    reg.register("ai", "stream", stream)
    ch = await reg.open("ai.stream")
    await ch.send("one two three")
    tokens = [t async for t in ch]
    assert tokens == ["one", "two", "three"]
    assert ch.closed
    with pytest.raises(ChannelClosed):
        await ch.send("more")


async def test_backpressure_sender_waits_while_the_peer_buffer_is_full() -> None:
    sent: list[int] = []

    async def producer(ch: Channel) -> None:
        for i in range(10):
            await ch.send(i)
            sent.append(i)

    reg = ChannelRegistry()
    reg.register("ai", "produce", producer, buffer=3)
    ch = await reg.open("ai.produce")
    await wait_for(lambda: len(sent) == 3)
    for _ in range(20):  # let every ready task run; the blocked one must still wait
        await asyncio.sleep(0)
    assert sent == [0, 1, 2]  # blocked on the 4th: nobody has read
    assert ch.buffered == 3
    assert await ch.receive() == 0
    await wait_for(lambda: len(sent) == 4)
    received = [0] + [m async for m in ch]
    assert received == list(range(10))


async def test_opener_buffer_overrides_the_handler_default() -> None:
    sent: list[int] = []

    async def producer(ch: Channel) -> None:
        for i in range(5):
            await ch.send(i)
            sent.append(i)

    reg = ChannelRegistry()
    reg.register("ai", "produce", producer, buffer=100)
    ch = await reg.open("ai.produce", buffer=1)
    await wait_for(lambda: len(sent) == 1)
    for _ in range(20):  # let every ready task run; the blocked one must still wait
        await asyncio.sleep(0)
    assert sent == [0]
    assert [m async for m in ch] == list(range(5))


async def test_opener_close_ends_the_handler_iteration_after_buffered_messages() -> None:
    received: list[str] = []
    handler_done = asyncio.Event()

    async def sink(ch: Channel) -> None:
        async for message in ch:
            received.append(message)
        handler_done.set()

    reg = ChannelRegistry()
    reg.register("ai", "sink", sink)
    ch = await reg.open("ai.sink")
    await ch.send("a")
    await ch.send("b")
    ch.close()
    await asyncio.wait_for(handler_done.wait(), 5)
    assert received == ["a", "b"]
    with pytest.raises(ChannelClosed):
        await ch.send("c")
    assert reg.open_channels() == []


async def test_handler_sending_after_the_opener_closed_gets_channel_closed() -> None:
    errors: list[BaseException] = []
    finished = asyncio.Event()

    async def talker(ch: Channel) -> None:
        await ch.receive()
        try:
            await ch.send("late")
        except ChannelClosed as exc:
            errors.append(exc)
        finished.set()

    reg = ChannelRegistry()
    reg.register("ai", "talk", talker)
    ch = await reg.open("ai.talk")
    await ch.send("hi")
    ch.close()
    await asyncio.wait_for(finished.wait(), 5)
    assert len(errors) == 1 and errors[0].code == "channel.closed"


async def test_handler_failure_aborts_the_channel_with_the_reason() -> None:
    async def broken(ch: Channel) -> None:
        await ch.send("partial")
        raise RuntimeError("model crashed")

    reg = ChannelRegistry()
    reg.register("ai", "broken", broken)
    ch = await reg.open("ai.broken")
    assert await ch.receive() == "partial"
    with pytest.raises(ChannelClosed, match="model crashed"):
        await ch.receive()


async def test_unregister_owner_aborts_open_channels_and_cancels_handlers() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever(ch: Channel) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    reg = ChannelRegistry()
    reg.register("ai", "forever", forever)
    ch = await reg.open("ai.forever")
    await asyncio.wait_for(started.wait(), 5)
    assert reg.unregister_owner("ai") == 2  # the handler and the open channel
    await asyncio.wait_for(cancelled.wait(), 5)
    with pytest.raises(ChannelClosed, match="deactivated"):
        await ch.receive()
    with pytest.raises(ChannelClosed):
        await ch.send("x")
    assert reg.names() == [] and reg.open_channels() == []
    with pytest.raises(ChannelNotFound):
        await reg.open("ai.forever")


async def test_open_refuses_unknown_names_and_denied_callers() -> None:
    def deny(plugin_id: str | None, action: str, target: str) -> None:
        if action == "channels:open" and plugin_id == "guest":
            raise PermissionDenied("no", plugin_id=plugin_id)

    reg = ChannelRegistry(checker=deny)
    reg.register("ai", "echo", echo)
    with pytest.raises(ChannelNotFound, match=r"ai\.echo"):
        await reg.open("ai.nope")
    with pytest.raises(PermissionDenied):
        await reg.open("ai.echo", caller="guest")
    assert reg.open_channels() == []
    ch = await reg.open("ai.echo", caller="member")
    assert ch.owner == "member"
    ch.close()


def test_registration_checks_handler_buffer_and_duplicates() -> None:
    reg = ChannelRegistry()
    with pytest.raises(InvalidExport, match="async function"):
        reg.register("ai", "sync", lambda ch: None)
    with pytest.raises(InvalidExport, match="buffer"):
        reg.register("ai", "x", echo, buffer=0)
    reg.register("ai", "echo", echo)
    with pytest.raises(CommandConflict, match="already registered"):
        reg.register("ai", "echo", echo)
    assert reg.names() == ["ai.echo"]


async def test_context_manager_closes_the_channel() -> None:
    reg = ChannelRegistry()
    reg.register("ai", "echo", echo)
    async with await reg.open("ai.echo") as ch:
        await ch.send(1)
        assert await ch.receive() == "echo:1"
    assert ch.closed


async def test_deactivating_the_server_keeps_what_the_opener_has_buffered() -> None:
    async def chatty(ch: Channel) -> None:
        for i in range(3):
            await ch.send(i)
        await asyncio.Event().wait()

    reg = ChannelRegistry()
    reg.register("ai", "chatty", chatty, buffer=5)
    ch = await reg.open("ai.chatty")
    await wait_for(lambda: ch.buffered == 3)
    reg.unregister_owner("ai")
    assert [await ch.receive() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ChannelClosed, match="deactivated"):
        await ch.receive()


async def test_deactivating_the_opener_ends_the_handler_after_its_buffer() -> None:
    seen: list[object] = []
    outcome: list[str] = []

    async def sink(ch: Channel) -> None:
        try:
            async for message in ch:
                seen.append(message)
        except ChannelClosed as exc:
            outcome.append(exc.code)
            raise

    reg = ChannelRegistry()
    reg.register("store", "sink", sink)
    ch = await reg.open("store.sink", caller="ui-plugin")
    await ch.send("a")
    await ch.send("b")
    reg.unregister_owner("ui-plugin")
    await wait_for(lambda: outcome == ["channel.closed"])
    assert seen == ["a", "b"]
    assert reg.names() == ["store.sink"]  # the server's handler is still registered
