"""Migrations produce exactly the models' schema, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from plughost.errors import MigrationError
from plughost.storage import migrations
from plughost.storage.db import Database
from plughost.storage.models import Base


def schema_diff(db: Database) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(ctx, Base.metadata)


def test_migrations_produce_exactly_the_models_schema(empty_database_url: str) -> None:
    with Database(empty_database_url) as db:
        assert migrations.current(db) is None
        assert migrations.upgrade(db) == migrations.head()
        assert schema_diff(db) == []


def test_upgrade_is_idempotent_and_reports_the_revision(empty_database_url: str) -> None:
    assert migrations.upgrade(empty_database_url) == migrations.head()
    assert migrations.upgrade(empty_database_url) == migrations.head()
    assert migrations.current(empty_database_url) == migrations.head()


def test_database_migrated_by_a_newer_plughost_is_refused(empty_database_url: str) -> None:
    with Database(empty_database_url) as db:
        migrations.upgrade(db)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'zz99_future'")
        with pytest.raises(MigrationError, match="newer plughost") as info:
            migrations.upgrade(db)
        assert info.value.code == "storage.migration"
        assert migrations.current(db) == "zz99_future"


def test_unknown_target_revision_names_the_known_ones(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(MigrationError, match="Known revisions: 0001"):
        migrations.upgrade(url, "nope")


def test_database_migrate_method_and_alembic_config_need_no_ini_file(tmp_path) -> None:
    cfg = migrations.alembic_config()
    assert cfg.config_file_name is None
    assert (migrations.MIGRATIONS_DIR / "env.py").is_file()
    with Database(f"sqlite:///{tmp_path / 'y.db'}") as db:
        db.migrate()
        assert migrations.current(db) == migrations.head()
