"""Several ``plughost serve`` on one database, object store and Redis: one cluster.

:class:`ClusterNode` is what a server runs beside its
:class:`~plughost.services.manager.PluginService`:

**Change propagation.** Every change is committed to the database first (with its number in
the change log), then *announced*: on Redis pub/sub when ``redis_url`` is set, else with
PostgreSQL ``NOTIFY`` when the database is PostgreSQL. An announcement is only a hint: a node
that hears one reads the change log from the last sequence number it applied and applies what
it finds by re-reading the state from the database (:meth:`PluginService.refresh` — install,
update, rollback, enable, disable, uninstall, config and grants; idempotent, so hearing a hint
twice or late is harmless). A node polls the change log every ``poll_interval`` seconds as well
(the last fallback: with Redis stopped, or on MySQL without Redis, changes arrive within that
delay), catches up from its sequence number after a disconnect, and reconciles at start (the
service loads everything from the database when it opens).

**Membership.** Every ``heartbeat_interval`` seconds a node writes its row in ``cluster_nodes``:
version, heartbeat, the change sequence it applied; and in ``cluster_node_plugins`` the live
state of each plugin whose state changed since its last beat (all of them on its first).
Its id is its owner id (:mod:`plughost.storage.locks`), so whether it lives is answered by its
owner lease (released by the database server when the process dies), not by guessing from the
heartbeat's age. Rows of nodes dead for :data:`FORGET_AFTER` are removed.

**Coordination.** Operations on one plugin are serialised across the cluster by the plugin's
lock (a row lock on PostgreSQL/MySQL, held on its own connection: released when the holder's
connection ends, ``kill -9`` included; TCP keepalives bound a vanished host to ~25 s).
Operations left ``running`` by a dead node are failed — and what they left half-done undone —
by the next node that notices (every :data:`TAKEOVER_EVERY` heartbeats), through the same
reconciliation a restart runs.

**Readiness.** :meth:`PluginService.storage_problem` says why a node cannot serve (the
database or the object store is unreachable, naming which); Redis being down only slows
propagation to polling, so it is reported in the node's figures but does not make the node
unready.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

from plughost.errors import PlughostError
from plughost.storage.records import PLUGIN_CHANGE_KINDS

__all__ = [
    "FORGET_AFTER",
    "RESYNC_EVERY",
    "TAKEOVER_EVERY",
    "ClusterNode",
    "NodeInfo",
    "list_nodes",
]

log = logging.getLogger(__name__)

#: Rows of nodes that are dead this long are removed from ``cluster_nodes``.
FORGET_AFTER: Final = timedelta(minutes=10)
#: Every this many heartbeats, a node looks for operations of dead nodes to take over.
TAKEOVER_EVERY: Final = 3
#: Every this many quiet polls, a node re-reads the whole state (whatever the change log says).
RESYNC_EVERY: Final = 5
_PG_CHANNEL: Final = "plughost_changes"
_RETRY: Final = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node as ``GET /api/v1/nodes`` and ``plughost nodes`` show it."""

    id: str
    name: str
    url: str
    version: str
    status: str
    """``up`` (lease held, heartbeat fresh), ``stale`` (lease held, heartbeat late) or
    ``down`` (its lease is free: the process is gone)."""
    started_at: datetime
    heartbeat_at: datetime
    applied_seq: int
    plugins: dict[str, str]
    transport: str
    this_node: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        plugins = [{"id": k, "state": v} for k, v in sorted(self.plugins.items())]
        return {"id": self.id, "name": self.name, "url": self.url, "version": self.version,
                "status": self.status, "this_node": self.this_node,
                "started_at": _iso(self.started_at), "heartbeat_at": _iso(self.heartbeat_at),
                "applied_seq": self.applied_seq, "transport": self.transport,
                "plugins": plugins, "package_cache": self.info.get("package_cache", {})}


def _needs_refresh(change: Any) -> bool:
    """Whether applying ``change`` means re-reading plugins: not for the lifecycle state a
    node records (each node runs its own), a cache path, nor tokens, keys and alert rules,
    which are read from the database on use."""
    if change.kind not in PLUGIN_CHANGE_KINDS:
        return False
    return (change.kind, change.action) not in (("plugin", "state"), ("version", "cache"))


def list_nodes(repo: Any, *, this_node: str | None = None, heartbeat_interval: float = 2.0,
               plugin_id: str | None = None) -> list[NodeInfo]:
    """The nodes that reported to ``repo``'s database, each ``up``, ``stale`` or ``down``
    (blocking), with every plugin's state on it, or ``plugin_id``'s alone. A node is down when
    its owner lease is free, whatever its last heartbeat."""
    late = timedelta(seconds=max(3 * heartbeat_interval, 5.0))
    now = datetime.now(UTC)
    out = []
    for n in repo.list_nodes(plugin_id=plugin_id):
        alive = n.id == this_node or repo.owner_alive(n.id)
        status = "down" if not alive else "stale" if now - n.heartbeat_at > late else "up"
        out.append(NodeInfo(id=n.id, name=n.name, url=n.url, version=n.version, status=status,
                            started_at=n.started_at, heartbeat_at=n.heartbeat_at,
                            applied_seq=n.applied_seq, plugins=dict(n.plugins),
                            transport=str(n.info.get("transport", "")),
                            this_node=n.id == this_node, info=dict(n.info)))
    return out


def _state_name(state: Any) -> str:
    return str(getattr(state, "value", state))


def _iso(value: datetime) -> str:
    # ISO 8601 UTC with milliseconds, as every other time in the API and the CLI
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class ClusterNode:
    """Propagation, membership and takeover for one server (see the module doc).

    :param service: the open :class:`~plughost.services.manager.PluginService`.
    :param redis_url: Redis for announcements (default ``settings.redis_url``).
    :param poll_interval: seconds between change-log polls (the fallback delay).
    :param heartbeat_interval: seconds between heartbeats.
    :param name: the node's name (default ``settings.node_name`` or the host name).
    :param url: where the node serves its API (shown to operators).
    """

    def __init__(self, service: Any, *, redis_url: str | None = None,
                 poll_interval: float = 2.0, heartbeat_interval: float = 2.0,
                 name: str = "", url: str = "") -> None:
        from plughost.host import HOST_VERSION

        self.service = service
        settings = service.settings
        self.redis_url = settings.redis_url if redis_url is None else redis_url
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.name = name or settings.node_name or socket.gethostname()
        self.url = url
        self.version = str(HOST_VERSION)
        self.started_at = datetime.now(UTC)
        self.applied_seq = 0
        self.transport = "polling"
        self.listening = False
        self._hint = asyncio.Event()
        self._applying = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._publisher: Any = None
        self._listeners: list[Callable[[int], None]] = []
        self._beats = 0
        self._closed = False
        #: ``{plugin id: state}`` as last written, kept current from the lifecycle events
        #: (``_stale``: ids changed since), so a beat costs what changed, not every plugin.
        self._states: dict[str, str] = {}
        self._stale: set[str] = set()
        self._states_written = False
        self._unsubscribe_states: Callable[[], None] | None = None
        db = service.repository.database
        self._postgres = db.dialect == "postgresql"
        safe = db.url.render_as_string(hide_password=True)
        #: The Redis channel, one per database so clusters sharing a Redis keep apart.
        self.channel = "plughost:changes:" + hashlib.sha256(safe.encode()).hexdigest()[:16]

    @property
    def id(self) -> str:
        """This node's id: the owner id of its storage."""
        return str(self.service.repository.owner_id)

    # ------------------------------------------------------------------ start / stop

    async def start(self) -> None:
        """Note where the change log stands, write the first heartbeat and start listening,
        polling and beating. The service has just loaded everything from the database."""
        if self.redis_url:
            self.transport = "redis"
            self._tasks.append(asyncio.create_task(self._listen_redis(), name="cluster redis"))
        elif self._postgres:
            self.transport = "postgres"
            self._tasks.append(asyncio.create_task(self._listen_postgres(),
                                                   name="cluster listen"))
        repo = self.service.repository
        self.applied_seq = await asyncio.to_thread(repo.last_change_seq)
        repo.origin = self.id  # its changes say they come from this node
        repo.on_commit(self._committed)
        host = self.service.host
        self._unsubscribe_states = host.lifecycle.subscribe(self._state_changed)
        self._states = {r.id: _state_name(r.state) for r in host.registry}
        self._tasks.append(asyncio.create_task(self._apply_forever(), name="cluster apply"))
        await self._beat()
        self._tasks.append(asyncio.create_task(self._beat_forever(), name="cluster heartbeat"))

    async def aclose(self) -> None:
        """Stop, and remove this node's row (it left; it did not die). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.service.repository.on_commit(self._committed, remove=True)
        if self._unsubscribe_states is not None:
            self._unsubscribe_states()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.aclose()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.service.repository.delete_node, self.id)

    def on_applied(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(seq)`` after this node applied changes up to ``seq``; returns the
        undo."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ------------------------------------------------------------------ announce

    def _committed(self, seq: int) -> None:
        """A change committed by this process (any thread): announce it and apply it here."""
        loop = self.service._loop
        if loop is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._announce_soon, seq)

    def _announce_soon(self, seq: int) -> None:
        self._hint.set()
        task = asyncio.get_running_loop().create_task(self.announce(seq))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def announce(self, seq: int) -> None:
        """Tell the other nodes that changes up to ``seq`` are committed (best effort: they
        poll anyway)."""
        try:
            if self.transport == "redis":
                if self._publisher is None:
                    import redis.asyncio as aioredis

                    self._publisher = aioredis.Redis.from_url(self.redis_url,
                                                              socket_timeout=2,
                                                              socket_connect_timeout=2)
                await self._publisher.publish(self.channel, str(seq))
            elif self.transport == "postgres":
                await asyncio.to_thread(self._notify_postgres, seq)
        except Exception as exc:  # the others will poll
            log.warning("could not announce change %d over %s (%s); the other nodes will "
                        "see it within %g s", seq, self.transport, exc, self.poll_interval)

    def _notify_postgres(self, seq: int) -> None:
        from sqlalchemy import text

        with self.service.repository.database.engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": _PG_CHANNEL, "p": str(seq)})

    # ------------------------------------------------------------------ listen

    async def _listen_redis(self) -> None:
        import redis.asyncio as aioredis

        attempt = 0
        while True:
            client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2,
                                             health_check_interval=5)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                self.listening, attempt = True, 0
                self._hint.set()  # catch up on what was missed while away
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._hint.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.listening:
                    log.warning("lost Redis (%s); polling every %g s until it is back", exc,
                                self.poll_interval)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(_RETRY[min(attempt, len(_RETRY) - 1)])
            attempt += 1

    async def _listen_postgres(self) -> None:
        import psycopg

        url = self.service.repository.database.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        attempt = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo,
                                                                 autocommit=True) as conn:
                    await conn.execute(f"LISTEN {_PG_CHANNEL}")
                    self.listening, attempt = True, 0
                    self._hint.set()
                    async for _ in conn.notifies():
                        self._hint.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.listening:
                    log.warning("lost the PostgreSQL notification connection (%s); polling "
                                "every %g s until it is back", exc, self.poll_interval)
            finally:
                self.listening = False
            await asyncio.sleep(_RETRY[min(attempt, len(_RETRY) - 1)])
            attempt += 1

    # ------------------------------------------------------------------ apply

    async def _apply_forever(self) -> None:
        quiet = 0
        while True:
            try:
                await asyncio.wait_for(self._hint.wait(), self.poll_interval)
            except TimeoutError:
                quiet += 1
            self._hint.clear()
            try:
                await self.catch_up()
                if quiet >= RESYNC_EVERY:
                    # The safety net: a change whose application failed here (a package not
                    # reachable for a moment) is applied again once the state is read anew.
                    quiet = 0
                    async with self._applying:
                        await self.service.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("applying changes from the database failed; retrying in %g s",
                              self.poll_interval)

    async def catch_up(self) -> int:
        """Apply every change committed after :attr:`applied_seq`; returns the new position.
        Idempotent: what is applied is the database's current state."""
        from plughost.errors import ChangesPruned

        repo = self.service.repository
        async with self._applying:
            try:
                changes = await asyncio.to_thread(repo.changes_since, self.applied_seq, 10_000)
            except ChangesPruned:
                last = await asyncio.to_thread(repo.last_change_seq)
                await self.service.refresh()
                return self._applied(last)
            if not changes:
                return self.applied_seq
            # This node's own changes are applied already (it made them).
            if any(_needs_refresh(c) and c.origin != self.id for c in changes):
                await self.service.refresh()
            return self._applied(changes[-1].seq)

    def _applied(self, seq: int) -> int:
        self.applied_seq = max(self.applied_seq, seq)
        for listener in list(self._listeners):
            try:
                listener(self.applied_seq)
            except Exception:
                log.exception("a change listener failed")
        return self.applied_seq

    # ------------------------------------------------------------------ membership

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    def _state_changed(self, event: Any) -> None:
        self._stale.add(event.plugin_id)

    def _current_states(self) -> dict[str, str | None] | None:
        """The plugin states to write with this beat: every plugin's until they are known to
        be written, then those that changed since (``None`` for a plugin that left), or
        ``None`` when none did (the rows keep them); costs the plugins that changed."""
        stale, self._stale = self._stale, set()
        registry = self.service.host.registry
        for pid in stale:
            record = registry.find(pid)
            if record is None:
                self._states.pop(pid, None)
            else:
                self._states[pid] = _state_name(record.state)
        if not self._states_written:
            return dict(self._states)
        if stale:
            return {pid: self._states.get(pid) for pid in stale}
        return None

    async def _beat(self) -> None:
        whole = not self._states_written
        plugins = self._current_states()
        info = {"transport": self.transport, "listening": self.listening,
                "package_cache": self.service.installer.packages.figures()}
        repo = self.service.repository
        beat = partial(repo.beat_node, self.id, name=self.name, url=self.url,
                       version=self.version, started_at=self.started_at,
                       applied_seq=self.applied_seq, info=info)
        try:
            written = await asyncio.to_thread(beat, plugins=plugins, whole=whole)
            if not written:  # the row was gone (forgotten): write it whole again
                await asyncio.to_thread(beat, plugins=dict(self._states), whole=True)
        except BaseException:
            self._states_written = False  # not known to be written: all of them next time
            raise
        self._states_written = True
        self._beats += 1
        if self._beats % TAKEOVER_EVERY == 0:
            await asyncio.to_thread(self._take_over)

    def _take_over(self) -> None:
        """Fail (and undo) operations whose owner died, and forget long-dead nodes."""
        repo = self.service.repository
        orphaned = [op for op in repo.list_operations(unfinished=True, limit=1000)
                    if op.owner is None or not repo.owner_alive(op.owner)]
        if orphaned:
            log.warning("taking over %d operation(s) of dead nodes: %s", len(orphaned),
                        ", ".join(f"{op.kind} {op.plugin_id or ''}".strip() for op in orphaned))
            try:
                self.service.installer.reconcile()
            except PlughostError as exc:
                log.warning("taking over operations of dead nodes failed: %s", exc)
        cutoff = datetime.now(UTC) - FORGET_AFTER
        for node_id in repo.nodes_beaten_before(cutoff):  # not every node's plugin states
            if not repo.owner_alive(node_id):
                repo.delete_node(node_id)

    def nodes(self, plugin_id: str | None = None) -> list[NodeInfo]:
        """Every node that reported, with every plugin's state or ``plugin_id``'s alone
        (blocking: run it in a thread)."""
        return list_nodes(self.service.repository, this_node=self.id,
                          heartbeat_interval=self.heartbeat_interval, plugin_id=plugin_id)
