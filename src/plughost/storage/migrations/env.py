"""Alembic environment for plughost, driven programmatically by plughost.storage.migrations.

The caller puts an open SQLAlchemy ``Connection`` in ``config.attributes["connection"]``; there
is no alembic.ini and no URL here. Offline (``--sql``) mode is not supported.
"""

from __future__ import annotations

from alembic import context

from plughost.storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "plughost migrations run online only, through plughost.storage.migrations.upgrade() "
        "or `plughost db upgrade`"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
