"""OpenTelemetry spans for dispatches: names, nesting, plugin, correlation id, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from plughost.core.correlation import correlated
from plughost.host import PluginHost
from plughost.observability.tracing import enable_tracing

ORDERS = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    @command("place")
    def place(self, item):
        if not item:
            raise ValueError("nothing to order")
        self.ctx.emit("order.placed", {"item": item})
        return "ok"
"""

AUDIT = """
from plughost.sdk import Plugin, on

class Main(Plugin):
    @on("order.placed")
    def seen(self, event):
        pass
"""


async def test_a_command_and_the_event_it_emits_are_nested_spans(
    tmp_path: Path, write_plugin: Any
) -> None:
    write_plugin("orders", code=ORDERS, permissions=["events:emit:order.*"])
    write_plugin("audit", code=AUDIT)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with PluginHost([tmp_path / "plugins"]) as host:
        report = await host.start()
        assert report.ok, report
        undo = enable_tracing(host, tracer_provider=provider)
        with correlated("req-9"):
            assert await host.commands.execute("orders.place", {"item": "tea"}) == "ok"
        with pytest.raises(Exception, match="nothing to order"):
            await host.commands.execute("orders.place", {"item": ""})
        undo()
        await host.commands.execute("orders.place", {"item": "untraced"})
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert names.count("plughost.command orders.place") == 2
    assert "plughost.event order.placed" in names
    command = next(s for s in spans if s.name == "plughost.command orders.place"
                   and s.status.is_ok)
    event = next(s for s in spans if s.name == "plughost.event order.placed")
    assert event.parent is not None and event.parent.span_id == command.context.span_id
    assert command.attributes["plughost.plugin_id"] == "orders"
    assert command.attributes["plughost.correlation_id"] == "req-9"
    failed = next(s for s in spans if s.name == "plughost.command orders.place"
                  and not s.status.is_ok)
    assert failed.events[0].name == "exception"
    assert len([n for n in names if n.startswith("plughost.command")]) == 2  # none after undo
