"""schemathesis hooks for test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The event and log streams are endless by design; every request schemathesis makes to them
gets a bounded ``max_seconds`` (an out-of-range or malformed value it generated is left alone:
those are answered 422 at once, which is what they test).
"""

from __future__ import annotations

import math
from typing import Any

import schemathesis

STREAMS = frozenset({"/api/v1/events", "/api/v1/logs/stream"})
LONGEST = 0.5


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    if case.operation.path not in STREAMS:
        return
    query = dict(case.query or {})
    value = query.get("max_seconds")
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return  # not a number: refused with 422
    if seconds is None or (math.isfinite(seconds) and seconds > LONGEST) or seconds == math.inf:
        query["max_seconds"] = LONGEST
        case.query = query
