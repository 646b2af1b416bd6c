"""Which installed plugin requires which, indexed by the requirement: an install or update
finds the plugins that require its id by one index range scan instead of reading every stored
manifest. Filled from the current manifests of the plugins already installed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 13:00:00.000000
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    op.create_table(
        "plugin_requirements",
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("requires", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["plugin_id"], ["plugins.id"],
                                name=op.f("fk_plugin_requirements_plugin_id_plugins"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("plugin_id", "requires", name=op.f("pk_plugin_requirements")),
    )
    op.create_index(op.f("ix_plugin_requirements_requires_plugin_id"), "plugin_requirements",
                    ["requires", "plugin_id"], unique=False)
    plugins = sa.table("plugins", sa.column("id", sa.String()), sa.column("manifest", sa.JSON()))
    target = sa.table("plugin_requirements", sa.column("plugin_id", sa.String()),
                      sa.column("requires", sa.String()))
    conn = op.get_bind()
    rows: list[dict[str, str]] = []
    for pid, manifest in conn.execute(sa.select(plugins.c.id, plugins.c.manifest)):
        rows += [{"plugin_id": pid, "requires": dep} for dep in _requirements(manifest)]
        if len(rows) >= _BATCH:
            conn.execute(target.insert(), rows)
            rows = []
    if rows:
        conn.execute(target.insert(), rows)


def _requirements(manifest: Any) -> list[str]:
    # The repository's rule (plughost.storage.repository.requirements_of), frozen here.
    if isinstance(manifest, str):
        manifest = json.loads(manifest)
    deps = manifest.get("dependencies") if isinstance(manifest, dict) else None
    if not isinstance(deps, dict):
        return []
    return sorted({d for d in deps if isinstance(d, str) and 0 < len(d) <= 64})


def downgrade() -> None:
    op.drop_index(op.f("ix_plugin_requirements_requires_plugin_id"),
                  table_name="plugin_requirements")
    op.drop_table("plugin_requirements")
