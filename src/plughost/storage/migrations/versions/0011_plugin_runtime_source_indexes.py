"""Indexes for the plugin list's runtime and source filters, each ending in id (as 0007's).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 11:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_plugins_runtime_id"), "plugins", ["runtime", "id"], unique=False)
    op.create_index(op.f("ix_plugins_source_id"), "plugins", ["source", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_plugins_source_id"), table_name="plugins")
    op.drop_index(op.f("ix_plugins_runtime_id"), table_name="plugins")
