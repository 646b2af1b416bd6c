"""Repository part: the nodes of a cluster (``plughost serve`` processes on one database)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy import exc as sa_exc

from plughost.storage._repo_base import RepositoryBase
from plughost.storage.models import ClusterNodePluginRow, ClusterNodeRow
from plughost.storage.records import StoredNode


class ClusterRecords(RepositoryBase):
    """Heartbeats of the nodes sharing this database."""

    def beat_node(self, node_id: str, *, name: str, url: str, version: str,
                  started_at: datetime, applied_seq: int, plugins: Mapping[str, str | None] | None,
                  info: Mapping[str, Any], whole: bool = True) -> bool:
        """Refresh a node's row with its figures, its heartbeat now, inserting it on the first
        beat, and write its plugin states: with ``whole``, ``plugins`` is every plugin's state
        (the rows of the others go); without, only those that changed (``None``: the plugin
        left), and the rest of the rows stay. ``plugins=None`` writes no state (none changed
        since the last beat: a beat of an idle node with 10,000 plugins neither writes nor
        reads them). A beat that is not ``whole`` does not create a missing row: it returns
        ``False``, for the caller to beat again with every state. Two beats of one node racing
        to insert its first row end as one row (the loser updates it)."""
        values: dict[str, Any] = {"name": name[:200], "url": url[:500],
                                  "version": version[:100], "heartbeat_at": self._now(),
                                  "applied_seq": applied_seq, "info": dict(info)}
        if whole:
            values["plugins"] = {}  # the rows hold them (see ClusterNodeRow.plugins)
        for attempt in (1, 2):
            try:
                with self._tx() as s:
                    found = s.execute(update(ClusterNodeRow)
                                      .where(ClusterNodeRow.id == node_id).values(**values)
                                      .execution_options(synchronize_session=False))
                    if not getattr(found, "rowcount", 0):
                        if not whole:
                            return False
                        s.add(ClusterNodeRow(id=node_id, started_at=started_at, **values))
                        s.flush()
                    if plugins is not None or whole:
                        self._write_states(s, node_id, plugins or {}, whole=whole)
                    return True
            except sa_exc.IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _write_states(s: Any, node_id: str, plugins: Mapping[str, str | None], *,
                      whole: bool) -> None:
        """Replace the node's state rows of ``plugins`` (all of its rows when ``whole``):
        deleted then inserted, the same on every database, in the beat's transaction."""
        row = ClusterNodePluginRow
        mine = row.node_id == node_id
        unsynced = {"synchronize_session": False}  # no state row is loaded in the session
        if whole:
            s.execute(delete(row).where(mine).execution_options(**unsynced))
        else:
            ids = sorted(plugins)
            for i in range(0, len(ids), 500):
                s.execute(delete(row).where(mine, row.plugin_id.in_(ids[i:i + 500]))
                          .execution_options(**unsynced))
        rows = [{"node_id": node_id, "plugin_id": pid, "state": state}
                for pid, state in sorted(plugins.items()) if state is not None]
        for i in range(0, len(rows), 1000):
            s.execute(insert(row), rows[i:i + 1000])

    def list_nodes(self, *, plugin_id: str | None = None) -> list[StoredNode]:
        """Every node that reported, by name then id, with every plugin's state on it, or
        ``plugin_id``'s alone (read by its index: the nodes' cost, not every plugin's)."""
        table = ClusterNodePluginRow.__table__
        query = select(table.c.node_id, table.c.plugin_id, table.c.state)
        if plugin_id is not None:
            query = query.where(table.c.plugin_id == plugin_id)
        with self._tx(write=False) as s:
            rows = s.scalars(select(ClusterNodeRow).order_by(ClusterNodeRow.name,
                                                             ClusterNodeRow.id)).all()
            states: dict[str, dict[str, str]] = {}
            for node_id, pid, state in s.connection().execute(query):
                states.setdefault(node_id, {})[pid] = state
            return [self._node(r, states.get(r.id, {}), plugin_id) for r in rows]

    def nodes_beaten_before(self, cutoff: datetime) -> list[str]:
        """The ids of the nodes whose last heartbeat is older than ``cutoff`` (an index range
        scan reading no plugin states: what forgetting long-dead nodes asks)."""
        with self._tx(write=False) as s:
            return list(s.scalars(select(ClusterNodeRow.id)
                                  .where(ClusterNodeRow.heartbeat_at < cutoff)
                                  .order_by(ClusterNodeRow.id)))

    def delete_node(self, node_id: str) -> bool:
        """Forget a node (it left, or it has been dead for long), and its plugin states."""
        with self._tx() as s:
            s.execute(delete(ClusterNodePluginRow)
                      .where(ClusterNodePluginRow.node_id == node_id)
                      .execution_options(synchronize_session=False))
            return bool(getattr(s.execute(delete(ClusterNodeRow)
                                          .where(ClusterNodeRow.id == node_id)),
                                "rowcount", 0))

    @staticmethod
    def _node(row: ClusterNodeRow, states: dict[str, str], plugin_id: str | None) -> StoredNode:
        # A node older than the state rows writes its states in its own row (see
        # ClusterNodeRow.plugins): those are its states then.
        legacy = row.plugins if isinstance(row.plugins, dict) else None
        if legacy:
            states = {k: str(v) for k, v in legacy.items()
                      if plugin_id is None or k == plugin_id}
        return StoredNode(id=row.id, name=row.name, url=row.url, version=row.version,
                          started_at=row.started_at, heartbeat_at=row.heartbeat_at,
                          applied_seq=int(row.applied_seq or 0), plugins=states,
                          info=dict(row.info or {}))
