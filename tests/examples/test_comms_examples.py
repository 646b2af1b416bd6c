"""The communication examples (chat-filter-*, ai-stream) run through PluginHost."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.core.bus import Event

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def chat_host(tmp_path: Path, *names: str) -> PluginHost:
    """A host over copies of the named examples only, with the chat extension point declared."""
    for name in names:
        shutil.copytree(EXAMPLES / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    host = PluginHost([tmp_path], on_plugin_error="fail")

    def before_send(message: str) -> str:
        """Transform an outgoing message; each filter gets the previous one's output."""

    host.hooks.add_spec(before_send, name="chat.before_send", policy="pipeline")
    return host


async def test_filter_pipeline_order_comes_from_before_after(tmp_path: Path) -> None:
    async with chat_host(tmp_path, "chat-filter-links", "chat-filter-profanity") as host:
        report = await host.start()
        assert report.ok, report
        order = [i.plugin_id for i in host.hooks["chat.before_send"].implementations()]
        # links has the higher priority; profanity's before= constraint still puts it first
        assert order == ["chat-filter-profanity", "chat-filter-links"]
        out = host.hooks.call("chat.before_send",
                              message="Darn, see https://heck.example.org/page?id=1")
        assert out == "****, see <link: ****.example.org>"
        assert await host.commands.execute("chat-filter-profanity.stats") == {"masked": 2}


async def test_deactivating_a_filter_removes_it_from_the_pipeline(tmp_path: Path) -> None:
    async with chat_host(tmp_path, "chat-filter-links", "chat-filter-profanity") as host:
        await host.start()
        await host.deactivate("chat-filter-profanity")
        leftovers = host.comms.owned_by("chat-filter-profanity")
        assert not any(leftovers.values()), leftovers
        assert host.hooks.call("chat.before_send", message="darn https://x.org/a") == \
            "darn <link: x.org>"
        await host.activate("chat-filter-profanity")
        assert host.hooks.call("chat.before_send", message="darn") == "****"


async def test_ai_stream_is_activated_by_its_command_then_streams_tokens(tmp_path: Path) -> None:
    async with chat_host(tmp_path, "ai-stream") as host:
        await host.start()
        assert host.get("ai-stream").state is State.RESOLVED  # lazy: nothing imported yet
        done: list[Event] = []
        host.bus.subscribe("ai-stream.reply.done", done.append)

        whole = await host.commands.execute("ai-stream.complete", {"prompt": "why?"})
        assert host.get("ai-stream").state is State.ACTIVE

        ch = await host.channels.open("ai-stream.chat")
        await ch.send("why?")
        tokens: list[str] = []
        async for message in ch:
            if message.get("done"):
                assert message["tokens"] == len(tokens)
                break
            tokens.append(message["token"])
        assert len(tokens) > 5
        assert "".join(tokens) == whole
        assert done[0].source == "ai-stream" and done[0].payload["tokens"] == len(tokens)
        ch.close()


async def test_ai_stream_slow_reader_holds_the_model_back(tmp_path: Path) -> None:
    async with chat_host(tmp_path, "ai-stream") as host:
        await host.start()
        await host.activate("ai-stream")
        ch = await host.channels.open("ai-stream.chat", buffer=2)
        await ch.send("hold on")
        for _ in range(50):
            await asyncio.sleep(0)
        assert ch.buffered == 2  # the plugin is waiting in send(), not piling up tokens
        first = [await ch.receive() for _ in range(3)]
        assert all("token" in m for m in first)
        ch.close()


async def test_deactivating_ai_stream_closes_open_channels(tmp_path: Path) -> None:
    from plughost.errors import ChannelClosed

    async with chat_host(tmp_path, "ai-stream") as host:
        await host.start()
        await host.activate("ai-stream")
        ch = await host.channels.open("ai-stream.chat", buffer=1)
        await ch.send("a long question")
        await ch.receive()
        await host.deactivate("ai-stream")
        with pytest.raises(ChannelClosed, match="deactivated"):
            while True:
                await ch.receive()
        assert host.comms.tasks.of("ai-stream") == []


async def test_lifecycle_changes_are_published_on_the_bus(tmp_path: Path) -> None:
    async with chat_host(tmp_path, "chat-filter-links") as host:
        seen: list[tuple[Any, ...]] = []
        host.bus.subscribe("plugin.lifecycle.*",
                           lambda e: seen.append((e.topic, e.source, e.payload["plugin_id"])))
        await host.start()
        await host.deactivate("chat-filter-links")
        topics = [t for t, _, pid in seen if pid == "chat-filter-links"]
        assert topics == ["plugin.lifecycle.installed", "plugin.lifecycle.resolved",
                          "plugin.lifecycle.loaded", "plugin.lifecycle.active",
                          "plugin.lifecycle.deactivated"]
        assert {s for _, s, _ in seen} == {None}  # the host speaks, not the plugin
