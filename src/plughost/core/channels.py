"""Channels: bidirectional message streams between the host (or a plugin) and a plugin.

A plugin registers a channel *handler* under its namespace; each :meth:`ChannelRegistry.open`
creates a pair of connected :class:`Channel` ends, gives one to the handler (run as a task owned
by the plugin) and returns the other to the opener::

    async def stream(ch: Channel) -> None:          # in the plugin
        prompt = await ch.receive()
        for token in reply_to(prompt):
            await ch.send(token)                    # waits while the opener's buffer is full
        # returning closes the plugin's end: the opener's loop ends after the last token

    ch = await channels.open("ai.stream")           # in the host / another plugin
    await ch.send("Hello?")
    async for token in ch:
        print(token, end="")

Each direction has a bounded buffer: ``send`` waits while the peer's buffer is full
(backpressure). Closing is orderly from either side: after ``close()`` the peer still receives
what was already buffered, then its iteration ends; sending to a closed channel raises
:class:`~plughost.errors.ChannelClosed`. A channel ended abnormally (the handler raised, the
plugin was deactivated) makes the peer's ``receive`` raise ``ChannelClosed`` with the reason once
the buffer is drained, instead of ending quietly.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from plughost.core.bus import PermissionChecker
from plughost.core.monitoring import Monitor, MonitorSet
from plughost.core.names import qualify
from plughost.core.tasks import OwnerTasks
from plughost.errors import ChannelClosed, ChannelNotFound, CommandConflict, InvalidExport

__all__ = ["Channel", "ChannelHandler", "ChannelRegistry"]

logger = logging.getLogger(__name__)

ChannelHandler = Callable[["Channel"], Awaitable[Any]]


class _Pipe:
    """One direction: a bounded FIFO with close, readable after close until drained."""

    __slots__ = ("_items", "_maxsize", "_not_empty", "_not_full", "closed", "error")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Any] = deque()
        self._maxsize = maxsize
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self.closed = False
        self.error: str | None = None  # set when closed abnormally

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Any, name: str) -> None:
        while not self.closed and len(self._items) >= self._maxsize:
            self._not_full.clear()
            await self._not_full.wait()
        if self.closed:
            raise ChannelClosed(
                f"Channel {name!r} is closed; nothing more can be sent"
                + (f" ({self.error})." if self.error else "."),
                details={"channel": name, "reason": self.error},
            )
        self._items.append(item)
        self._not_empty.set()

    async def get(self, name: str) -> Any:
        while not self._items:
            if self.closed:
                if self.error:
                    raise ChannelClosed(
                        f"Channel {name!r} was closed: {self.error}",
                        details={"channel": name, "reason": self.error},
                    )
                raise StopAsyncIteration
            self._not_empty.clear()
            await self._not_empty.wait()
        item = self._items.popleft()
        self._not_full.set()
        return item

    def close(self, error: str | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.error = error
        self._not_empty.set()
        self._not_full.set()

    def discard(self) -> None:
        self._items.clear()
        self._not_full.set()


class Channel:
    """One end of a channel. Async-iterable; an async context manager that closes on exit."""

    __slots__ = ("_closed", "_inbox", "_outbox", "_registry", "id", "name", "owner", "peer")

    def __init__(self, registry: ChannelRegistry | None, id: str, name: str, owner: str | None,
                 peer: str | None, inbox: _Pipe, outbox: _Pipe) -> None:
        self._registry = registry
        self.id = id
        self.name = name
        self.owner = owner  # who holds this end (plugin id, None for the host)
        self.peer = peer  # who holds the other end
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False

    def __repr__(self) -> str:
        return f"<Channel {self.name!r} #{self.id} owner={self.owner!r} closed={self.closed}>"

    @property
    def closed(self) -> bool:
        """True once this end can no longer send (either end closed, or the channel aborted)."""
        return self._closed or self._outbox.closed

    @property
    def buffered(self) -> int:
        """Messages received and not read yet."""
        return len(self._inbox)

    async def send(self, message: Any) -> None:
        """Send ``message`` to the other end; waits while its buffer is full (backpressure).

        Raises :class:`~plughost.errors.ChannelClosed` when either end has closed.
        """
        if self._closed:
            raise ChannelClosed(f"Channel {self.name!r}: this end is closed; open a new one.",
                                details={"channel": self.name})
        await self._outbox.put(message, self.name)

    async def receive(self) -> Any:
        """The next message. Raises :class:`StopAsyncIteration` after an orderly close and
        :class:`~plughost.errors.ChannelClosed` after an abnormal one."""
        return await self._inbox.get(self.name)

    def __aiter__(self) -> Channel:
        return self

    async def __anext__(self) -> Any:
        return await self._inbox.get(self.name)

    def close(self) -> None:
        """Close this end, orderly: the peer reads what is buffered, then its iteration ends.

        Idempotent. Messages sent to this end and not read yet are discarded.
        """
        if self._closed:
            return
        self._closed = True
        self._outbox.close()
        self._inbox.close()
        self._inbox.discard()
        if self._registry is not None:
            self._registry._ended(self)

    def abort(self, reason: str) -> None:
        """Close both directions abnormally: the peer's reads fail with ``reason``."""
        self._closed = True
        self._outbox.close(reason)
        self._inbox.close(reason)
        self._inbox.discard()
        if self._registry is not None:
            self._registry._ended(self)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True, eq=False)
class _Registration:
    name: str
    owner: str | None
    handler: ChannelHandler
    buffer: int


@dataclass(slots=True, eq=False)
class _Open:
    id: str
    registration: _Registration
    opener: str | None
    host_end: Channel
    plugin_end: Channel
    task: asyncio.Task[Any] | None = None


def _name_of(name: str, caller: str | None, buffer: int) -> tuple[str, Any]:
    return name, {"caller": caller, "buffer": buffer}


class ChannelRegistry:
    """Channel handlers of one host and the channels open on them.

    :param checker: the permission checker (``channels:open``); ``None`` allows everything.
    :param default_buffer: messages buffered per direction when neither side chooses.
    """

    def __init__(self, *, checker: PermissionChecker | None = None, default_buffer: int = 64,
                 monitors: MonitorSet | None = None, tasks: OwnerTasks | None = None) -> None:
        self._handlers: dict[str, _Registration] = {}
        self._open: dict[str, _Open] = {}
        self._ids = itertools.count(1)
        self.checker = checker
        self.default_buffer = default_buffer
        self.tasks = tasks if tasks is not None else OwnerTasks()
        self.monitors = monitors if monitors is not None else MonitorSet()
        self._dispatch: Callable[..., Awaitable[Channel]] = self._open_channel
        self.monitors.on_change(self._rewrap)

    def _rewrap(self) -> None:
        self._dispatch = self.monitors.wrap_async("channel", self._open_channel, _name_of)

    def add_monitor(self, monitor: Monitor) -> Callable[[], None]:
        """Observe every channel opening; returns the undo."""
        return self.monitors.add(monitor)

    def register(self, owner: str | None, name: str, handler: ChannelHandler, *,
                 buffer: int | None = None) -> Callable[[], None]:
        """Serve channel ``<owner>.<name>`` with ``async handler(channel)``; returns the undo.

        The handler runs as a task owned by ``owner`` for each opened channel; when it returns,
        its end is closed (orderly); when it raises, the channel is aborted with the error.
        """
        full = qualify(owner, name)
        target = handler
        while hasattr(target, "func"):
            target = target.func
        if not callable(handler) or not (
            inspect.iscoroutinefunction(target)
            or inspect.iscoroutinefunction(getattr(target, "__call__", None))  # noqa: B004
        ):
            raise InvalidExport(
                f"Channel handler for {full!r} must be an async function taking the channel; "
                f"got {handler!r}."
            )
        if buffer is not None and (isinstance(buffer, bool) or not isinstance(buffer, int)
                                   or buffer < 1):
            raise InvalidExport(f"Channel {full!r}: buffer must be a positive integer.")
        if full in self._handlers:
            raise CommandConflict(
                f"Channel {full!r} is already registered by "
                f"{self._handlers[full].owner or 'the host'}; channel names are unique.",
                plugin_id=owner, details={"channel": full},
            )
        reg = _Registration(full, owner, handler, buffer or self.default_buffer)
        self._handlers[full] = reg

        def undo() -> None:
            if self._handlers.get(full) is reg:
                del self._handlers[full]
                self._abort_where(lambda o: o.registration is reg, "its handler was removed")

        return undo

    async def open(self, name: str, *, caller: str | None = None,
                   buffer: int | None = None) -> Channel:
        """Open channel ``name``; returns the opener's end. ``buffer`` overrides the size of
        each direction's buffer."""
        if self.checker is not None:
            self.checker(caller, "channels:open", name)
        if name not in self._handlers:
            known = ", ".join(sorted(self._handlers)) or "(none)"
            raise ChannelNotFound(
                f"No channel named {name!r} is registered. Registered: {known}.",
                details={"channel": name},
            )
        if buffer is not None and (isinstance(buffer, bool) or not isinstance(buffer, int)
                                   or buffer < 1):
            raise InvalidExport(f"Channel {name!r}: buffer must be a positive integer.")
        return await self._dispatch(name, caller, buffer or self._handlers[name].buffer)

    async def _open_channel(self, name: str, caller: str | None, buffer: int) -> Channel:
        reg = self._handlers[name]
        cid = str(next(self._ids))
        to_plugin, to_opener = _Pipe(buffer), _Pipe(buffer)
        opener_end = Channel(self, cid, name, caller, reg.owner, to_opener, to_plugin)
        plugin_end = Channel(self, cid, name, reg.owner, caller, to_plugin, to_opener)
        record = _Open(cid, reg, caller, opener_end, plugin_end)
        self._open[cid] = record
        record.task = self.tasks.spawn(reg.owner, self._serve(record), name=f"channel:{name}")
        return opener_end

    async def _serve(self, record: _Open) -> None:
        end = record.plugin_end
        try:
            await record.registration.handler(end)
        except asyncio.CancelledError:
            end.abort(f"the plugin {record.registration.owner!r} stopped serving it")
            raise
        except ChannelClosed:
            end.close()  # the opener went away mid-send: an orderly end for the handler
        except Exception as exc:
            logger.error("channel handler %r failed", record.registration.name, exc_info=exc)
            end.abort(f"the handler failed: {type(exc).__name__}: {exc}")
        else:
            end.close()

    def _ended(self, end: Channel) -> None:
        record = self._open.get(end.id)
        if record is None:
            return
        # Either close ends the exchange (both directions are shut); the other end may still
        # drain what was buffered, which needs no bookkeeping here.
        del self._open[end.id]

    def _abort_where(self, pred: Callable[[_Open], bool], reason: str, *,
                     server: bool = True, opener: bool = False) -> int:
        """Abort matching channels from the side that is going away.

        ``server``: the serving plugin's end (its handler task is cancelled); ``opener``: the
        opener's end. The other end keeps what was already buffered for it, then its
        ``receive`` raises ``ChannelClosed`` with ``reason``.
        """
        records = [r for r in self._open.values() if pred(r)]
        for r in records:
            if opener:
                r.host_end.abort(reason)
            if server:
                r.plugin_end.abort(reason)
                if r.task is not None:
                    r.task.cancel()
            self._open.pop(r.id, None)
        return len(records)

    def unregister_owner(self, owner: str) -> int:
        """Remove ``owner``'s handlers and abort every channel it serves or opened."""
        names = [n for n, r in self._handlers.items() if r.owner == owner]
        for n in names:
            del self._handlers[n]
        reason = f"plugin {owner!r} was deactivated"
        aborted = self._abort_where(lambda r: r.registration.owner == owner, reason)
        aborted += self._abort_where(lambda r: r.opener == owner, reason,
                                     server=False, opener=True)
        self.tasks.cancel_owner(owner)
        return len(names) + aborted

    def names(self, owner: str | None = None) -> list[str]:
        """Registered channel names (of ``owner`` when given), sorted."""
        return sorted(n for n, r in self._handlers.items() if owner is None or r.owner == owner)

    def open_channels(self, owner: str | None = None) -> list[Channel]:
        """Opener ends of the channels currently open (served by or opened by ``owner``)."""
        return [
            r.host_end for r in self._open.values()
            if owner is None or owner in (r.registration.owner, r.opener)
        ]

    async def aclose(self) -> None:
        """Abort every open channel and remove every handler."""
        tasks = [r.task for r in self._open.values() if r.task is not None]
        self._abort_where(lambda r: True, "the host is shutting down", opener=True)
        self._handlers.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
