"""OpenTelemetry spans for the host's dispatches (the ``otel`` extra).

:func:`enable_tracing` installs one dispatch monitor on the host's communication layer: every
hook call, event delivery, command and channel opening becomes a span named
``plughost.<kind> <name>`` (``plughost.command notify.send``), a child of the span that was
current when it started, with the correlation id and the owning plugin when one is known;
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

from plughost.core.correlation import correlation_id

__all__ = ["enable_tracing"]


def _owner(host: Any, kind: str, name: str) -> str | None:
    """The plugin a command belongs to (hooks and events may reach several)."""
    if kind != "command":
        return None
    get = getattr(getattr(host, "commands", None), "get", None)
    command = get(name) if callable(get) else None
    owner = getattr(command, "owner", None)
    return str(owner) if owner else None


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
        owner = _owner(host, kind, name)
        if owner:
            span.set_attribute("plughost.plugin_id", owner)
        token = otel_context.attach(trace.set_span_in_context(span))

        def finish(error: BaseException | None, result: Any) -> None:
            with contextlib.suppress(Exception):  # finished in another context: still ends
                otel_context.detach(token)
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                code = getattr(error, "code", None)
                if code:
                    span.set_attribute("plughost.error_code", str(code))
            span.end()

        return finish

    return host.comms.add_monitor(monitor)  # type: ignore[no-any-return]
