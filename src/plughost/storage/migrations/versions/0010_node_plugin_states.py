"""Each node's plugin states as rows (node, plugin, state) instead of one JSON object a node: a
heartbeat writes the plugins whose state changed, not every installed plugin's (400 kB a beat
beside 10,000 plugins), and where one plugin runs is read by its index. Filled from the
objects the nodes last wrote; the column stays for nodes not upgraded yet.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    op.create_table(
        "cluster_node_plugins",
        sa.Column("node_id", sa.String(length=32), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "plugin_id", name=op.f("pk_cluster_node_plugins")),
    )
    op.create_index(op.f("ix_cluster_node_plugins_plugin_id"), "cluster_node_plugins",
                    ["plugin_id"], unique=False)
    nodes = sa.table("cluster_nodes", sa.column("id", sa.String()),
                     sa.column("plugins", sa.JSON()))
    target = sa.table("cluster_node_plugins", sa.column("node_id", sa.String()),
                      sa.column("plugin_id", sa.String()), sa.column("state", sa.String()))
    conn = op.get_bind()
    rows: list[dict[str, str]] = []
    for node_id, states in conn.execute(sa.select(nodes.c.id, nodes.c.plugins)):
        rows += [{"node_id": node_id, "plugin_id": pid, "state": state}
                 for pid, state in _states(states)]
        if len(rows) >= _BATCH:
            conn.execute(target.insert(), rows)
            rows = []
    if rows:
        conn.execute(target.insert(), rows)
    conn.execute(nodes.update().values(plugins={}))


def _states(states: Any) -> list[tuple[str, str]]:
    if isinstance(states, str):
        states = json.loads(states)
    if not isinstance(states, dict):
        return []
    return sorted((pid, state) for pid, state in states.items()
                  if isinstance(pid, str) and 0 < len(pid) <= 64
                  and isinstance(state, str) and 0 < len(state) <= 32)


def downgrade() -> None:
    op.drop_index(op.f("ix_cluster_node_plugins_plugin_id"), table_name="cluster_node_plugins")
    op.drop_table("cluster_node_plugins")
