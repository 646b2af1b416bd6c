"""Name and option checks shared by the registries and the SDK decorators.

Kept apart from ``bus``/``commands``/``hookimpls`` on purpose: the decorators run when a plugin's
module is imported, also inside an out-of-process child, and must not pull in asyncio or
inspect (tens of milliseconds of start-up) just to validate a topic or a priority.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from plughost.errors import InvalidExport, TopicError

__all__ = ["WhenFull", "impl_options", "qualify", "split_topic"]

WhenFull = Literal["block", "drop"]
"""What an async subscriber's full queue does: make the emitter wait, or drop (and count)."""

_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]+$")


def split_topic(topic: str, *, pattern: bool) -> tuple[str, ...]:
    what = "pattern" if pattern else "topic"
    if not isinstance(topic, str) or not topic:
        raise TopicError(f"Invalid {what} {topic!r}: use a dotted name such as 'chat.message'.")
    parts = tuple(topic.split("."))
    for part in parts:
        if pattern and part in ("*", "#"):
            continue
        if not _SEGMENT.match(part):
            hint = (
                " Wildcards (* and #) are only allowed when subscribing."
                if not pattern and part in ("*", "#") else
                " Segments use letters, digits, '_' and '-', separated by single dots."
            )
            raise TopicError(f"Invalid {what} {topic!r}: bad segment {part!r}.{hint}")
    return parts


def qualify(owner: str | None, name: str) -> str:
    """The full command/channel name: ``<owner>.<name>`` unless already under the namespace.

    The host (``owner=None``) registers names as given.
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise InvalidExport(f"Invalid name {name!r}: use a non-empty dotted name without spaces.")
    if owner is None or name.startswith(owner + "."):
        return name
    return f"{owner}.{name}"


def impl_options(where: str, priority: float, tryfirst: bool, trylast: bool,
                  before: Iterable[str] | str, after: Iterable[str] | str, wrapper: bool,
                  timeout: float | None) -> dict[str, Any]:
    if tryfirst and trylast:
        raise InvalidExport(f"{where}: tryfirst and trylast are exclusive; choose one.")
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        raise InvalidExport(f"{where}: priority must be a number, got {priority!r}.")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise InvalidExport(f"{where}: timeout must be a positive number, got {timeout!r}.")
    b = (before,) if isinstance(before, str) else tuple(before)
    a = (after,) if isinstance(after, str) else tuple(after)
    for x in (*b, *a):
        if not isinstance(x, str) or not x:
            raise InvalidExport(f"{where}: before/after must name plugin ids, got {x!r}.")
    return {
        "priority": priority, "tryfirst": bool(tryfirst), "trylast": bool(trylast),
        "before": b, "after": a, "wrapper": bool(wrapper),
        "timeout": float(timeout) if timeout is not None else None,
    }
