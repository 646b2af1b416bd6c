"""Database engine factory: URL handling, SQLite pragmas, ownership, missing drivers."""

from __future__ import annotations

import socket
import sys

import pytest

from plughost.errors import ConfigurationError, DatabaseUnavailable, ExtraNotInstalled
from plughost.storage.db import Database, normalize_database_url


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mysql+pymysql"),
        ("sqlite:////tmp/x.db", "sqlite"),
    ],
)
def test_urls_are_pinned_to_the_supported_drivers(given: str, driver: str) -> None:
    assert normalize_database_url(given).drivername == driver


def test_mysql_urls_get_utf8mb4_unless_a_charset_is_given() -> None:
    assert normalize_database_url("mysql://u@h/db").query["charset"] == "utf8mb4"
    assert normalize_database_url("mysql://u@h/db?charset=latin1").query["charset"] == "latin1"


def test_unsupported_or_garbage_urls_are_refused_with_an_example() -> None:
    with pytest.raises(ConfigurationError, match="does not support"):
        normalize_database_url("oracle://u@h/db")
    with pytest.raises(ConfigurationError, match="not a database URL"):
        normalize_database_url("not a url")


def test_sqlite_uses_wal_and_foreign_keys_and_creates_its_directory(tmp_path) -> None:
    path = tmp_path / "deep" / "home" / "plughost.db"
    with Database(f"sqlite:///{path}") as db:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert db.sqlite_path == path.resolve()
        assert db.is_sqlite
    assert path.exists()


def test_close_is_idempotent_and_use_after_close_says_what_to_do(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.close()
    db.close()
    assert db.closed and "closed" in repr(db)
    with pytest.raises(DatabaseUnavailable, match="create a new Database"):
        db.session()


def test_repr_hides_the_password() -> None:
    db = Database("postgresql+psycopg://u:secret@127.0.0.1:1/db")
    try:
        assert "secret" not in repr(db)
    finally:
        db.close()


def test_missing_driver_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pymysql", None)  # import pymysql -> ImportError
    with pytest.raises(ExtraNotInstalled) as info:
        Database("mysql+pymysql://root@127.0.0.1/x")
    assert info.value.extra == "mysql"
    assert "pip install 'plughost[mysql]'" in info.value.message
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ExtraNotInstalled) as info:
        Database("postgresql://u@127.0.0.1/x")
    assert info.value.extra == "postgres"


def test_unreachable_server_is_reported_by_ping() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Database(f"postgresql+psycopg://u:pw@127.0.0.1:{port}/db?connect_timeout=2") as db:
        with pytest.raises(DatabaseUnavailable, match="cannot reach the database") as info:
            db.ping()
        assert "pw" not in info.value.message


def test_transaction_commits_or_rolls_back(database: Database) -> None:
    from sqlalchemy import func, select

    from plughost.storage.models import PluginLockRow

    with pytest.raises(ValueError), database.transaction() as s:
        s.execute(PluginLockRow.__table__.insert().values(plugin_id="x", created_at=_now()))
        raise ValueError("abort")
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(PluginLockRow)) == 0
    with database.transaction() as s:
        s.execute(PluginLockRow.__table__.insert().values(plugin_id="x", created_at=_now()))
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(PluginLockRow)) == 1


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
