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


TRACED = """
from opentelemetry import trace
from plughost.sdk import Plugin, command


class Main(Plugin):
    def _seen(self):
        span = trace.get_current_span().get_span_context()
        return {"traceparent": self.ctx.trace_parent,
                "trace_id": f"{span.trace_id:032x}" if span.is_valid else None}

    def where(self):
        return self._seen()

    @command("where")
    async def where_async(self):
        return self._seen()
"""


async def test_a_process_plugin_joins_the_host_trace_of_a_direct_call_and_a_command(
    tmp_path: Path, write_plugin: Any
) -> None:
    write_plugin("proc", "2.1.0", code=TRACED, runtime="process")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with PluginHost([tmp_path / "plugins"]) as host:
        report = await host.start()
        assert report.ok, report
        untraced = await host.call("proc", "where")
        undo = enable_tracing(host, tracer_provider=provider)
        called = await host.call("proc", "where")
        commanded = await host.commands.execute("proc.where", {})
        undo()
    assert untraced == {"traceparent": None, "trace_id": None}
    spans = {s.name: s for s in exporter.get_finished_spans()}
    call = spans["plughost.call proc:where"]
    assert call.attributes["plughost.plugin_id"] == "proc"
    assert call.attributes["plughost.plugin_version"] == "2.1.0"
    command = spans["plughost.command proc.where"]
    for span, seen in ((call, called), (command, commanded)):
        ctx = span.context
        assert seen["traceparent"] == (
            f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}")
        assert seen["trace_id"] == f"{ctx.trace_id:032x}"  # the child's own span, same trace
    assert call.context.trace_id != command.context.trace_id


async def test_every_install_update_rollback_and_uninstall_step_is_a_span(
    tmp_path: Path, write_plugin: Any
) -> None:
    from plughost.security.package import pack
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    packages = []
    for version in ("1.0.0", "1.1.0"):
        root = write_plugin("hello", version, directory=tmp_path / "src" / version)
        packages.append(pack(root, tmp_path / f"hello-{version}.zip"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = HostSettings(home=tmp_path / "home", require_signature="never")
    async with PluginService(settings) as service:
        undo = enable_tracing(service.host, tracer_provider=provider)
        try:
            await service.install(packages[0])
            await service.update("hello", packages[1])
            await service.rollback("hello")
            await service.uninstall("hello")
        finally:
            undo()
        await service.install(packages[0])  # not traced any more
    spans = exporter.get_finished_spans()
    steps = {s.name: s for s in spans}
    assert {"plughost.stage fetch", "plughost.stage verify", "plughost.install resolve",
            "plughost.install extract", "plughost.install store", "plughost.install activate",
            "plughost.install commit", "plughost.update extract", "plughost.update switch",
            "plughost.update commit", "plughost.rollback switch", "plughost.rollback commit",
            "plughost.uninstall deactivate", "plughost.uninstall commit",
            "plughost.uninstall files"} <= set(steps)
    for name, version in (("plughost.install extract", "1.0.0"),
                          ("plughost.update switch", "1.1.0"),
                          ("plughost.rollback commit", "1.0.0"),
                          ("plughost.uninstall files", "1.0.0")):
        assert steps[name].attributes["plughost.plugin_id"] == "hello", name
        assert steps[name].attributes["plughost.plugin_version"] == version, name
    assert len([s for s in spans if s.name == "plughost.install extract"]) == 1
