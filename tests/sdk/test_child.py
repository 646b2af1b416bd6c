"""The Python runner's end of the protocol, over the in-memory pair (no process is started).

Each test speaks docs/protocol.md from the host's side (the real host session) to the real
runner serving an ordinary ``Plugin`` subclass.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plughost.core.wire import M
from plughost.errors import PluginError, PluginUnavailable
from plughost.sdk import Plugin, channel, command, on
from plughost.sdk.testing import wire_pair


class Sample(Plugin):
    """One of each: a command, a subscription, a channel, state, config and enable callbacks."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.count = 0

    @command("bump")
    def bump(self, by: int = 1) -> int:
        self.count += by
        return self.count

    @command("record")
    def record(self) -> list[Any]:
        return self.seen

    @command("level")
    def level(self) -> Any:
        return self.ctx.config.get("level")

    @command("emit")
    def emit(self, topic: str) -> Any:
        return self.ctx.bus.emit(topic, {"n": self.count})

    @on("order.*")
    def on_order(self, event: Any) -> None:
        self.seen.append([event.topic, event.payload, event.source])

    @channel("echo")
    async def echo(self, ch: Any) -> None:
        async for text in ch:
            if text == "stop":
                return
            if text == "boom":
                raise ValueError("asked to fail")
            await ch.send(text.upper())
            await ch.send(text.lower())

    def export_state(self) -> Any:
        return {"count": self.count}

    def import_state(self, state: Any, from_version: str) -> None:
        self.count = state["count"]
        self.seen.append(["imported", from_version])

    def on_config_change(self, old: Any, new: Any) -> None:
        if new.get("level") == "forbidden":
            raise ValueError("level 'forbidden' is not supported")

    def on_enable(self) -> None:
        self.seen.append("enabled")

    def on_disable(self) -> None:
        self.seen.append("disabled")


ACTIVATE = {"plugin_id": "test-plugin", "config": {"level": "low"}, "data_dir": None,
            "manifest": {}}


async def activate(session: Any) -> list[dict[str, Any]]:
    result = await session.request(M.ACTIVATE, ACTIVATE, 5)
    return list(result["exports"])


async def test_activate_answers_the_exports_in_the_documented_shape() -> None:
    async with wire_pair(Sample) as session:
        exports = await activate(session)
    assert {"kind": "event", "name": "order.*", "target": "on_order",
            "options": {"when_full": "block"}} in exports
    assert {(e["kind"], e["name"]) for e in exports} >= {("command", "bump"), ("channel", "echo")}


async def test_plugin_event_carries_topic_and_payload_and_reaches_the_subscription() -> None:
    async with wire_pair(Sample) as session:
        await activate(session)
        args = {"topic": "order.created", "payload": {"id": 7}, "source": "shop"}
        session.notify(M.EVENT, {"target": "on_order", "args": args})
        # sent with an id, plugin.event is answered null
        assert await session.request(M.EVENT, {"target": "on_order", "args": args}, 5) is None
        seen = await session.request(M.CALL, {"target": "record", "args": {}}, 5)
    assert seen == [["order.created", {"id": 7}, "shop"]] * 2


async def test_state_config_and_enable_methods_reach_the_plugin_callbacks() -> None:
    async with wire_pair(Sample) as session:
        assert await session.request(M.IMPORT_STATE, {"state": {"count": 41},
                                                      "from_version": "0.9.0"}, 5) is None
        await activate(session)
        assert await session.request(M.CALL, {"target": "bump", "args": {}}, 5) == 42
        assert await session.request(M.EXPORT_STATE, {}, 5) == {"state": {"count": 42}}
        change = {"old": {"level": "low"}, "new": {"level": "high"}}
        assert await session.request(M.CONFIG_CHANGE, change, 5) is None
        assert await session.request(M.CALL, {"target": "level", "args": {}}, 5) == "high"
        with pytest.raises(PluginError, match="'forbidden' is not supported"):
            await session.request(M.CONFIG_CHANGE, {"old": {}, "new": {"level": "forbidden"}}, 5)
        assert await session.request(M.CALL, {"target": "level", "args": {}}, 5) == "high"
        assert await session.request(M.DISABLE, {}, 5) is None
        assert await session.request(M.ENABLE, {}, 5) is None
        seen = await session.request(M.CALL, {"target": "record", "args": {}}, 5)
    assert seen == [["imported", "0.9.0"], "disabled", "enabled"]


async def test_unknown_target_is_the_documented_no_target_error() -> None:
    async with wire_pair(Sample) as session:
        await activate(session)
        with pytest.raises(PluginUnavailable) as info:
            await session.request(M.CALL, {"target": "nope", "args": {}}, 5)
    assert info.value.code == "plugin.no_target"
    assert info.value.details["wire_code"] == -32004


async def test_host_requests_from_the_plugin_reach_the_host_handler() -> None:
    def host(method: str, params: dict[str, Any]) -> Any:
        return {"method": method, **params}

    async with wire_pair(Sample, handler=host) as session:
        await activate(session)
        got = await session.request(M.CALL, {"target": "emit", "args": {"topic": "a.b"}}, 5)
    assert got == {"method": "host.emit", "topic": "a.b", "payload": {"n": 0}}


async def channel_messages(session: Any, inbox: asyncio.Queue[Any]) -> None:
    """Route the plugin's channel notifications into ``inbox`` (the host side of a stream)."""

    def host(method: str, params: dict[str, Any]) -> None:
        inbox.put_nowait((method, params))

    session.handler = host


async def test_channel_streams_flow_both_ways_and_either_side_closes() -> None:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    async with wire_pair(Sample) as session:
        await activate(session)
        await channel_messages(session, inbox)
        stream = {"channel": "echo", "stream": "1"}
        session.notify(M.CHANNEL_OPEN, {**stream, "target": "echo"})
        session.notify(M.CHANNEL_MESSAGE, {**stream, "data": "Hi"})
        assert await inbox.get() == (M.CHANNEL_MESSAGE, {**stream, "data": "HI"})
        assert await inbox.get() == (M.CHANNEL_MESSAGE, {**stream, "data": "hi"})
        session.notify(M.CHANNEL_MESSAGE, {**stream, "data": "stop"})  # the handler returns
        assert await inbox.get() == (M.CHANNEL_CLOSE, stream)
        # a handler that raises closes its stream with the reason
        other = {"channel": "echo", "stream": "2"}
        session.notify(M.CHANNEL_OPEN, {**other, "target": "echo"})
        session.notify(M.CHANNEL_MESSAGE, {**other, "data": "boom"})
        method, params = await inbox.get()
        assert (method, params["stream"]) == (M.CHANNEL_CLOSE, "2")
        assert "ValueError: asked to fail" in params["reason"]
        # the host closing a stream ends the handler's loop quietly: no close comes back
        third = {"channel": "echo", "stream": "3"}
        session.notify(M.CHANNEL_OPEN, {**third, "target": "echo"})
        session.notify(M.CHANNEL_CLOSE, third)
        session.notify(M.CHANNEL_OPEN, {**stream, "stream": "4", "target": "nope"})
        method, params = await inbox.get()
        assert (method, params["stream"]) == (M.CHANNEL_CLOSE, "4")
        assert "no export or public method 'nope'" in params["reason"]
    assert inbox.empty()
