"""Plugin lifecycle: a state enum, one transition table, one guard, and lifecycle events.

::

    discovered → installed → resolved → loaded → active ⇄ deactivated → uninstalled
                     ↑   ↘ disabled (persisted)       ↘ failed (reason + phase)
                                         loaded ↘ needs-config (required settings missing)

``needs-config`` is not a failure: the plugin is installed and visible, its configuration can be
set, and activating (or enabling) it once the configuration is valid runs it.

Every change goes through :func:`transition`, which raises :class:`InvalidTransition` naming both
states when the table does not allow it. :class:`LifecycleEvents` fans each change out to
listeners; ``subscribe`` returns its undo.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from plughost.errors import InvalidTransition

__all__ = [
    "CONFIG_HINT",
    "TRANSITIONS",
    "LifecycleEvent",
    "LifecycleEvents",
    "LifecycleListener",
    "State",
    "transition",
]

logger = logging.getLogger(__name__)


class State(enum.StrEnum):
    """Where a plugin is in its life. The string values are stable (persisted, shown in APIs)."""

    DISCOVERED = "discovered"
    """Found on disk or through an entry point; manifest not validated yet."""
    INSTALLED = "installed"
    """Manifest valid, files in place; dependencies not resolved yet."""
    RESOLVED = "resolved"
    """Every dependency and the host constraint are satisfied."""
    LOADED = "loaded"
    """Code imported / process spawned / module compiled; not activated."""
    ACTIVE = "active"
    """``activate`` succeeded; the plugin serves calls."""
    DEACTIVATED = "deactivated"
    """``deactivate`` ran; code still loaded and may be re-activated."""
    UNINSTALLED = "uninstalled"
    """Removed. Terminal."""
    DISABLED = "disabled"
    """Switched off by the operator; persisted, survives restarts, not loaded at start."""
    FAILED = "failed"
    """Something went wrong; the record carries the reason and the phase."""
    NEEDS_CONFIG = "needs-config"
    """Installed and enabled, but its configuration is missing required values (or is
    invalid): not activated until the operator sets them; the record names what to set."""


S = State

TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    S.DISCOVERED: frozenset({S.INSTALLED, S.FAILED, S.DISABLED}),
    S.INSTALLED: frozenset({S.RESOLVED, S.DISABLED, S.FAILED, S.UNINSTALLED}),
    S.RESOLVED: frozenset({S.LOADED, S.INSTALLED, S.DISABLED, S.FAILED, S.UNINSTALLED}),
    S.LOADED: frozenset({S.ACTIVE, S.RESOLVED, S.FAILED, S.DISABLED, S.UNINSTALLED,
                         S.NEEDS_CONFIG}),
    S.ACTIVE: frozenset({S.DEACTIVATED, S.FAILED}),
    S.DEACTIVATED: frozenset({S.ACTIVE, S.RESOLVED, S.DISABLED, S.FAILED, S.UNINSTALLED,
                              S.NEEDS_CONFIG}),
    S.NEEDS_CONFIG: frozenset({S.RESOLVED, S.INSTALLED, S.DISABLED, S.FAILED, S.UNINSTALLED}),
    S.DISABLED: frozenset({S.INSTALLED, S.UNINSTALLED}),
    S.FAILED: frozenset({S.INSTALLED, S.DISABLED, S.UNINSTALLED}),
    S.UNINSTALLED: frozenset(),
}
"""Allowed moves: ``TRANSITIONS[current]`` is the set of states reachable in one step."""

CONFIG_HINT: Final = (
    "set the values named above with `plughost config set {id} KEY=VALUE` (or in the settings "
    "file, or PluginHost(config=...) when embedding), then `plughost enable {id}`")
"""What to do about a plugin in ``needs-config`` (``.format(id=plugin_id)``)."""

_HINTS: Final[dict[State, str]] = {
    S.ACTIVE: "deactivate it first",
    S.UNINSTALLED: "an uninstalled plugin cannot change state; install it again",
    S.DISABLED: "enable it first",
    S.FAILED: "fix the cause shown in its status, then enable it again",
    S.NEEDS_CONFIG: CONFIG_HINT.replace("the values named above", "its required settings")
    .format(id="<id>"),
}


def transition(current: State, target: State, *, plugin_id: str | None = None) -> State:
    """Return ``target`` if ``current → target`` is allowed, else raise :class:`InvalidTransition`.

    The message names both states and, where one helps, what to do instead.
    """
    if target in TRANSITIONS[current]:
        return target
    allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none"
    hint = _HINTS.get(current)
    who = f"plugin {plugin_id!r}" if plugin_id else "a plugin"
    message = (
        f"Cannot move {who} from {current.value!r} to {target.value!r}; "
        f"from {current.value!r} it can go to: {allowed}."
    )
    if hint:
        message += f" ({hint})"
    raise InvalidTransition(
        message,
        plugin_id=plugin_id,
        details={"from": current.value, "to": target.value},
    )


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle change, as delivered to listeners and published on the bus."""

    plugin_id: str
    old: State
    new: State
    timestamp: float = field(default_factory=time.time)
    """Seconds since the epoch (``time.time()``) when the change happened."""
    reason: str | None = None
    """Why, when there is more to say than the states (the error for ``failed``)."""
    phase: str | None = None
    """For ``failed``: the phase that failed (discover, manifest, resolve, import, activate...)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "plugin_id": self.plugin_id,
            "old": self.old.value,
            "new": self.new.value,
            "timestamp": self.timestamp,
            "reason": self.reason,
            "phase": self.phase,
        }


LifecycleListener = Callable[[LifecycleEvent], None]


class LifecycleEvents:
    """Synchronous fan-out of :class:`LifecycleEvent` to listeners.

    A listener that raises is logged and skipped; it never blocks the change or the other
    listeners. A listener may say which changes it wants (``wants``, asked with the new state):
    when no listener wants a change, :meth:`listening` is false and the host builds no event
    at all (discovering ten thousand plugins with nobody watching costs no events).
    """

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        #: (listener, its ``wants`` or None for every change), in subscription order.
        self._listeners: list[tuple[LifecycleListener, Callable[[State], bool] | None]] = []

    def subscribe(self, listener: LifecycleListener, *,
                  wants: Callable[[State], bool] | None = None,
                  first: bool = False) -> Callable[[], None]:
        """Call ``listener`` on every change (``wants``: only on changes to the states for
        which it returns true; ``first``: before the listeners subscribed so far); returns a
        callable that unsubscribes it."""
        entry = (listener, wants)
        self._listeners.insert(0 if first else len(self._listeners), entry)

        def undo() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return undo

    def listening(self, new: State) -> bool:
        """Whether any listener wants a change to ``new``."""
        return any(wants is None or wants(new) for _, wants in self._listeners)

    def publish(self, event: LifecycleEvent) -> None:
        for listener, wants in tuple(self._listeners):
            if wants is not None and not wants(event.new):
                continue
            try:
                listener(event)
            except Exception:
                logger.exception("lifecycle listener %r failed on %s", listener, event)

    def __len__(self) -> int:
        return len(self._listeners)
