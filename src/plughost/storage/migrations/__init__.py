"""Schema migrations (Alembic), shipped inside the package and run without an ``alembic.ini``.

:func:`upgrade` builds the Alembic ``Config`` in code, pointing ``script_location`` at this
directory, and hands Alembic an open connection. Opening storage applies pending migrations
automatically (``HostSettings.auto_migrate``); operators can also run ``plughost db upgrade``.

Concurrent upgrades (several hosts starting at once against one database) are serialised: a
PostgreSQL advisory lock, a MySQL ``GET_LOCK``, or a file lock beside a SQLite database file.

Writing a new migration: change :mod:`plughost.storage.models`, then from the repository root::

    python -m plughost.storage.migrations revision -m "what changed"

which autogenerates ``versions/NNNN_*.py`` against a scratch SQLite database upgraded to head;
review it, and keep ``tests/storage/test_migrations.py`` green on all three backends.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.errors import ExtraNotInstalled, MigrationError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection, Engine

    from plughost.storage.db import Database

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current", "head", "upgrade"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent
_PG_LOCK_KEY = 0x706C7567686F7374 & 0x7FFFFFFFFFFFFFFF  # "plughost"
_MYSQL_LOCK_NAME = "plughost.migrations"
_LOCK_TIMEOUT = 300


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for plughost's migrations, built in code (no ini file)."""
    try:
        from alembic.config import Config
    except ImportError as exc:
        raise ExtraNotInstalled("Database migrations", "db", "alembic") from exc
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextlib.contextmanager
def _engine_for(target: Database | Engine | str) -> Iterator[Engine]:
    from plughost.storage.db import Database

    if isinstance(target, str):
        with Database(target) as db:
            yield db.engine
    elif isinstance(target, Database):
        yield target.engine
    else:
        yield target


@contextlib.contextmanager
def _migration_lock(engine: Engine, conn: Connection) -> Iterator[None]:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
    elif dialect in ("mysql", "mariadb"):
        got = conn.exec_driver_sql(
            f"SELECT GET_LOCK('{_MYSQL_LOCK_NAME}', {_LOCK_TIMEOUT})"
        ).scalar()
        if got != 1:
            raise MigrationError(
                f"another process has been migrating this database for {_LOCK_TIMEOUT}s; "
                "check for a stuck `plughost db upgrade` and retry"
            )
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{_MYSQL_LOCK_NAME}')")
    else:
        db_file = engine.url.database
        if db_file and db_file != ":memory:" and not db_file.startswith("file:"):
            from plughost.storage.locks import file_lock

            path = Path(db_file).expanduser()
            with file_lock(
                path.with_name(path.name + ".migrate.lock"),
                timeout=_LOCK_TIMEOUT,
                what="the database schema",
            ):
                yield
        else:
            yield


def _script_revisions() -> tuple[Any, set[str]]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return script, {rev.revision for rev in script.walk_revisions()}


def head() -> str:
    """The newest migration revision this plughost ships."""
    script, _ = _script_revisions()
    rev = script.get_current_head()
    assert rev is not None, "plughost ships at least one migration"
    return str(rev)


_REVISION_LINE = re.compile(
    r"""^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:"([^"\n]*)"|'([^'\n]*)'|(None))\s*$""",
    re.MULTILINE)


def _shipped_head() -> str | None:
    """The newest revision, read from the ``revision`` / ``down_revision`` lines of the
    revision files without loading Alembic (which costs more than a CLI command); ``None``
    when they are not one plain chain (a merge, a branch), where only Alembic can tell."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = {m[1]: m[2] or m[3] or None for m in _REVISION_LINE.finditer(path.read_text())}
        if "revision" not in found:
            continue  # not a revision file (the package's __init__)
        if "down_revision" not in found or not found["revision"]:
            return None  # a form this reader does not know: ask Alembic
        revisions.add(str(found["revision"]))
        if found["down_revision"]:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _at_head(engine: Engine) -> str | None:
    """The head revision when the database is known to be at it (one query, no Alembic),
    else ``None``: older, newer, empty or not plain, which :func:`upgrade` sorts out."""
    from sqlalchemy import exc as sa_exc

    shipped = _shipped_head()
    if shipped is None:
        return None
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except sa_exc.SQLAlchemyError:
        return None  # no version table yet (an empty database), or unreadable: the long way
    return shipped if [r[0] for r in rows] == [shipped] else None


def _current_on(conn: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def current(target: Database | Engine | str) -> str | None:
    """The revision the database is at, or ``None`` for an empty (never migrated) database."""
    from sqlalchemy import exc as sa_exc

    with _engine_for(target) as engine:
        try:
            with engine.connect() as conn:
                return _current_on(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise MigrationError(
                f"cannot read the schema revision of "
                f"{engine.url.render_as_string(hide_password=True)}: {exc}"
            ) from exc


def upgrade(target: Database | Engine | str, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision`` (default: the newest); returns the revision reached.

    Idempotent: a database already at ``revision`` is left alone; one already at the newest
    revision costs one query (Alembic is not even imported), as every open of storage asks.

    :raises MigrationError: when the database is at a revision this plughost does not know
        (it was migrated by a newer plughost), when ``revision`` is unknown, or when a
        migration fails (the failed migration's transaction is rolled back where the backend
        has transactional DDL: PostgreSQL and SQLite).
    """
    if revision == "head":
        with _engine_for(target) as engine:
            reached = _at_head(engine)
        if reached is not None:
            return reached

    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy import exc as sa_exc

    from plughost.storage.db import _WRITE_OPTION

    _script, known = _script_revisions()
    with _engine_for(target) as engine:
        where = engine.url.render_as_string(hide_password=True)
        write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        try:
            with write_engine.connect() as lock_conn, _migration_lock(engine, lock_conn):
                with write_engine.begin() as conn:
                    found = _current_on(conn)
                    if found is not None and found not in known:
                        raise MigrationError(
                            f"the database {where} is at schema revision {found!r}, which this "
                            "plughost does not know: it was upgraded by a newer plughost. "
                            "Upgrade plughost, or point it at another database."
                        )
                    command.upgrade(alembic_config(conn), revision)
                with engine.connect() as conn:
                    reached = _current_on(conn)
        except CommandError as exc:
            raise MigrationError(
                f"cannot migrate {where} to {revision!r}: {exc}. Known revisions: "
                + ", ".join(sorted(known))
            ) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise MigrationError(f"migrating {where} failed: {exc}") from exc
    if found != reached:
        log.info("migrated %s from %s to %s", where, found or "<empty>", reached)
    return reached


def _main(argv: list[str] | None = None) -> None:  # pragma: no cover - developer tool
    """``python -m plughost.storage.migrations revision -m MSG``: autogenerate a migration."""
    import argparse
    import tempfile

    from alembic import command

    parser = argparse.ArgumentParser(prog="python -m plughost.storage.migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="autogenerate a new migration from the models")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--rev-id", default=None)
    args = parser.parse_args(argv)
    from plughost.storage.db import Database

    with tempfile.TemporaryDirectory() as tmp, Database(f"sqlite:///{tmp}/scratch.db") as db:
        upgrade(db)
        with db.engine.begin() as conn:
            command.revision(
                alembic_config(conn), message=args.message, autogenerate=True, rev_id=args.rev_id
            )
