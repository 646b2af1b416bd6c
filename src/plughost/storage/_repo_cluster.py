"""Repository part: the nodes of a cluster (``plughost serve`` processes on one database)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy import exc as sa_exc

from plughost.storage._repo_base import RepositoryBase
from plughost.storage.models import ClusterNodeRow
from plughost.storage.records import StoredNode


class ClusterRecords(RepositoryBase):
    """Heartbeats of the nodes sharing this database."""

    def beat_node(self, node_id: str, *, name: str, url: str, version: str,
                  started_at: datetime, applied_seq: int, plugins: Mapping[str, str] | None,
                  info: Mapping[str, Any]) -> bool:
        """Refresh a node's row with its figures, its heartbeat now, inserting it on the first
        beat. ``plugins=None`` keeps the plugin states the row holds (none changed since the
        last beat: a beat of an idle node with 10,000 plugins neither writes nor reads them);
        then a missing row is not created and ``False`` is returned, for the caller to beat
        again with them. Two beats of one node racing to insert its first row end as one row
        (the loser updates it)."""
        values: dict[str, Any] = {"name": name[:200], "url": url[:500],
                                  "version": version[:100], "heartbeat_at": self._now(),
                                  "applied_seq": applied_seq, "info": dict(info)}
        if plugins is not None:
            values["plugins"] = dict(plugins)
        for attempt in (1, 2):
            try:
                with self._tx() as s:
                    found = s.execute(update(ClusterNodeRow)
                                      .where(ClusterNodeRow.id == node_id).values(**values)
                                      .execution_options(synchronize_session=False))
                    if getattr(found, "rowcount", 0):
                        return True
                    if plugins is None:
                        return False
                    s.add(ClusterNodeRow(id=node_id, started_at=started_at, **values))
                    s.flush()
                    return True
            except sa_exc.IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def list_nodes(self) -> list[StoredNode]:
        """Every node that reported, by name then id."""
        with self._tx(write=False) as s:
            rows = s.scalars(select(ClusterNodeRow).order_by(ClusterNodeRow.name,
                                                             ClusterNodeRow.id)).all()
            return [self._node(r) for r in rows]

    def nodes_beaten_before(self, cutoff: datetime) -> list[str]:
        """The ids of the nodes whose last heartbeat is older than ``cutoff`` (an index range
        scan reading no plugin states: what forgetting long-dead nodes asks)."""
        with self._tx(write=False) as s:
            return list(s.scalars(select(ClusterNodeRow.id)
                                  .where(ClusterNodeRow.heartbeat_at < cutoff)
                                  .order_by(ClusterNodeRow.id)))

    def delete_node(self, node_id: str) -> bool:
        """Forget a node (it left, or it has been dead for long)."""
        with self._tx() as s:
            return bool(getattr(s.execute(delete(ClusterNodeRow)
                                          .where(ClusterNodeRow.id == node_id)),
                                "rowcount", 0))

    @staticmethod
    def _node(row: ClusterNodeRow) -> StoredNode:
        return StoredNode(id=row.id, name=row.name, url=row.url, version=row.version,
                          started_at=row.started_at, heartbeat_at=row.heartbeat_at,
                          applied_seq=int(row.applied_seq or 0), plugins=dict(row.plugins or {}),
                          info=dict(row.info or {}))
