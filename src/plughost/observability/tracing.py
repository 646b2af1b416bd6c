"""OpenTelemetry spans for the host's dispatches (the ``otel`` extra).

:func:`enable_tracing` installs one dispatch monitor on the host's communication layer: every
hook call, event delivery, command, channel opening and direct ``host.call`` becomes a span named
``plughost.<kind> <name>`` (``plughost.command notify.send``), a child of the span that was
current when it started, with the correlation id and the owning plugin when one is known;
every install, update, rollback and uninstall step of this process too (``plughost.install
extract``, with the plugin id and version);
a failure is recorded on the span and sets its status to error::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    undo = enable_tracing(host, tracer_provider=provider)

With no monitor installed the dispatch path pays nothing; ``undo()`` removes it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from plughost.errors import ExtraNotInstalled

    raise ExtraNotInstalled("Tracing", "otel", "opentelemetry-api") from exc

from plughost.core.correlation import correlation_id, trace_context
from plughost.core.monitoring import step_monitors

__all__ = ["enable_tracing", "wire_fields"]


def _owner(host: Any, kind: str, name: str, payload: Any) -> str | None:
    """The plugin a command belongs to (hooks and events may reach several)."""
    if isinstance(payload, dict) and "plugin_id" in payload:  # a direct call, an install step
        return str(payload["plugin_id"]) if payload["plugin_id"] else None
    if kind != "command":
        return None
    get = getattr(getattr(host, "commands", None), "get", None)
    command = get(name) if callable(get) else None
    owner = getattr(command, "owner", None)
    return str(owner) if owner else None


def wire_fields(span: Any) -> dict[str, str]:
    """The W3C ``traceparent`` (and ``tracestate``) of ``span``, as the process protocol
    carries them to a plugin (docs/protocol.md, "Trace context")."""
    sc = span.get_span_context()
    fields = {"traceparent": f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"}
    state = sc.trace_state.to_header() if sc.trace_state else ""
    if state:
        fields["tracestate"] = state
    return fields


def enable_tracing(host: Any, *, tracer_provider: Any = None) -> Callable[[], None]:
    """Trace every dispatch of ``host`` (see the module doc); returns the undo."""
    tracer = trace.get_tracer("plughost", tracer_provider=tracer_provider)

    def monitor(kind: str, name: str, payload: Any) -> Any:
        span = tracer.start_span(f"plughost.{kind} {name}", kind=trace.SpanKind.INTERNAL)
        span.set_attribute("plughost.kind", kind)
        span.set_attribute("plughost.name", name)
        cid = correlation_id.get()
        if cid:
            span.set_attribute("plughost.correlation_id", cid)
        owner = _owner(host, kind, name, payload)
        if owner:
            span.set_attribute("plughost.plugin_id", owner)
        if isinstance(payload, dict) and payload.get("version"):
            span.set_attribute("plughost.plugin_version", str(payload["version"]))
        token = otel_context.attach(trace.set_span_in_context(span))
        wire_token = trace_context.set(wire_fields(span))

        def finish(error: BaseException | None, result: Any) -> None:
            with contextlib.suppress(Exception):  # finished in another context: still ends
                otel_context.detach(token)
            with contextlib.suppress(Exception):
                trace_context.reset(wire_token)
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                code = getattr(error, "code", None)
                if code:
                    span.set_attribute("plughost.error_code", str(code))
            span.end()

        return finish

    undo_dispatch = host.comms.add_monitor(monitor)
    undo_steps = step_monitors.add(monitor)

    def undo() -> None:
        undo_dispatch()
        undo_steps()

    return undo
