"""Indexes for every filter the plugin list offers, each ending in id: keyset pages by id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_plugins_type"), table_name="plugins")
    op.drop_index(op.f("ix_plugins_state"), table_name="plugins")
    op.create_index(op.f("ix_plugins_type_id"), "plugins", ["type", "id"], unique=False)
    op.create_index(op.f("ix_plugins_state_id"), "plugins", ["state", "id"], unique=False)
    op.create_index(op.f("ix_plugins_enabled_id"), "plugins", ["enabled", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_plugins_enabled_id"), table_name="plugins")
    op.drop_index(op.f("ix_plugins_state_id"), table_name="plugins")
    op.drop_index(op.f("ix_plugins_type_id"), table_name="plugins")
    op.create_index(op.f("ix_plugins_state"), "plugins", ["state"], unique=False)
    op.create_index(op.f("ix_plugins_type"), "plugins", ["type"], unique=False)
