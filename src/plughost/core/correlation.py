"""The correlation id of the call being served: one ``ContextVar`` every layer can read.

An HTTP request sets it to its request id; a hook call, event delivery or command that starts
outside any request gets a fresh one; nested dispatches keep the outer id, so every log line a
plugin writes while serving one request carries the same id::

    with correlated() as cid:          # keeps an id already set, else makes a new one
        ...                           # plugin log records captured here carry ``cid``

Only the standard library: the core, the runtimes and the log capture all read it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["correlated", "correlation_id", "new_correlation_id", "trace_context", "trace_fields"]

correlation_id: ContextVar[str | None] = ContextVar("plughost_correlation_id", default=None)


def new_correlation_id() -> str:
    """A fresh id (32 hex digits, like the API's request ids)."""
    return uuid.uuid4().hex


@contextlib.contextmanager
def correlated(value: str | None = None) -> Iterator[str]:
    """Run the block under ``value``, the id already set, or a new one; restore afterwards."""
    current = correlation_id.get()
    cid = value or current or new_correlation_id()
    if cid == current:
        yield cid
        return
    token = correlation_id.set(cid)
    try:
        yield cid
    finally:
        correlation_id.reset(token)


# --- W3C trace context -------------------------------------------------------------------
#: The W3C trace context of the span being served, as the wire carries it
#: (``{"traceparent": ..., "tracestate": ...}``), or ``None``. The tracing extra sets it for
#: each span it starts; the process runtime adds it to the messages it sends a plugin.
trace_context: ContextVar[dict[str, str] | None] = ContextVar("plughost_trace_context",
                                                              default=None)


def trace_fields() -> dict[str, str]:
    """The trace context fields to add to a message (empty when nothing is traced)."""
    return dict(trace_context.get() or {})
