from __future__ import annotations

import types

import pytest

from plughost.core.bus import Event
from plughost.core.channels import Channel
from plughost.errors import InvalidExport, TopicError
from plughost.runtimes.base import Export
from plughost.sdk import channel, collect_exports, command, hookimpl, on


class Base:
    @on("app.started")
    def started(self, event: Event) -> None: ...


class ChatFilter(Base):
    @hookimpl("chat.before_send", priority=5, before=["chat-filter-links"])
    def scrub(self, message: str) -> str:
        return message

    @on("chat.message.*", queue=10, when_full="drop")
    @on("chat.typing")
    async def seen(self, event: Event) -> None: ...

    @command("greet", timeout=2)
    async def greet(self, name: str) -> str:
        return f"hi {name}"

    @channel("stream", buffer=8)
    async def stream(self, ch: Channel) -> None: ...

    @hookimpl("chat.before_send", wrapper=True, tryfirst=True)
    def around(self, message: str):  # type: ignore[no-untyped-def]
        return (yield)

    def helper(self) -> None:
        """Not exported."""


def test_collect_exports_turns_marks_into_exports_in_definition_order() -> None:
    exports = collect_exports(ChatFilter())
    assert exports == [
        Export("event", "app.started", "started", {"when_full": "block"}),
        Export("hook", "chat.before_send", "scrub",
               {"priority": 5, "before": ["chat-filter-links"]}),
        Export("event", "chat.typing", "seen", {"when_full": "block"}),
        Export("event", "chat.message.*", "seen", {"when_full": "drop", "queue": 10}),
        Export("command", "greet", "greet", {"timeout": 2.0}),
        Export("channel", "stream", "stream", {"buffer": 8}),
        Export("hook", "chat.before_send", "around",
               {"priority": 0, "tryfirst": True, "wrapper": True}),
    ]


def test_target_is_the_attribute_that_resolves_to_the_bound_method() -> None:
    plugin = ChatFilter()
    for export in collect_exports(plugin):
        assert callable(getattr(plugin, export.target))


def test_an_override_without_the_decorator_is_no_longer_exported() -> None:
    class Quiet(ChatFilter):
        def started(self, event: Event) -> None: ...

    assert "started" not in [e.target for e in collect_exports(Quiet())]


def test_marks_do_not_change_the_function() -> None:
    plugin = ChatFilter()
    assert plugin.scrub("x") == "x"


def test_collect_exports_from_a_module_object() -> None:
    module = types.ModuleType("plug")

    @command("ping")
    def ping() -> str:
        return "pong"

    module.ping = ping  # type: ignore[attr-defined]
    module.other = 1  # type: ignore[attr-defined]
    assert collect_exports(module) == [Export("command", "ping", "ping", {})]


def test_decorators_validate_their_options_where_written() -> None:
    with pytest.raises(InvalidExport, match="exclusive"):
        hookimpl("a.b", tryfirst=True, trylast=True)
    with pytest.raises(InvalidExport, match="priority"):
        hookimpl("a.b", priority="high")  # type: ignore[arg-type]
    with pytest.raises(InvalidExport, match="when_full"):
        on("a.b", when_full="wait")  # type: ignore[arg-type]
    with pytest.raises(InvalidExport, match="queue"):
        on("a.b", queue=-1)
    with pytest.raises(TopicError):
        on("a..b")
    with pytest.raises(InvalidExport, match="timeout"):
        command("greet", timeout=0)
    with pytest.raises(InvalidExport):
        command("bad name")
    with pytest.raises(InvalidExport, match="buffer"):
        channel("s", buffer=0)
    with pytest.raises(InvalidExport, match="extension point name"):
        hookimpl("")
