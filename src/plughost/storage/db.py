"""Database engine and sessions: one :class:`Database` owns one SQLAlchemy engine.

Supported URLs:

``sqlite:///path/to/plughost.db`` (default, under the plughost home)
    WAL journal (readers never block the writer), foreign keys on, ``synchronous=NORMAL``, a 30 s
    busy timeout. Write transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the
    database lock instead of both reading and then failing to upgrade ("database is locked").
    ``sqlite://`` (in memory) uses one shared connection, for tests and throwaway hosts.
``postgresql+psycopg://user:pw@host:5432/db`` (extra ``postgres``)
``mysql+pymysql://user:pw@host:3306/db`` (extra ``mysql``; MySQL 8 or MariaDB 10.5+)
    A pool of 5 (+10 overflow) connections, checked with a ping before use and recycled every
    30 minutes (MySQL closes idle connections after ``wait_timeout``). ``postgres://``,
    ``postgresql://``, ``mysql://`` and ``mariadb://`` are rewritten to those drivers, and MySQL
    URLs get ``charset=utf8mb4`` unless they name a charset. Connecting gives up after 10 s.

**Outages.** When the server cannot be reached — a refused or failed connection, or one that
drops mid-statement — every database call raises
:class:`~plughost.errors.DatabaseUnavailable` (``storage.database_unavailable``; the HTTP API
answers 503 with ``Retry-After``) instead of the driver's own error. Nothing has to be
reopened afterwards: broken connections are discarded, the pool checks each connection before
use, and the first call after the server returns simply works.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.errors import ConfigurationError, DatabaseUnavailable, ExtraNotInstalled

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "create_engine_from_url", "normalize_database_url"]

log = logging.getLogger(__name__)

#: Which extra provides the driver each dialect needs.
_DRIVER_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres", "pymysql": "mysql"}
_WRITE_OPTION = "plughost_write"


def _import_sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as exc:
        raise ExtraNotInstalled("The plughost database", "db", "sqlalchemy") from exc
    return sqlalchemy


def normalize_database_url(url: str) -> URL:
    """Parse ``url`` and pin the drivers plughost supports (psycopg 3, PyMySQL).

    :raises ConfigurationError: when the URL cannot be parsed or names an unsupported backend.
    """
    sa = _import_sqlalchemy()
    from sqlalchemy.engine import make_url

    text = url.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://"):]
    try:
        parsed = make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(
            f"database_url {url!r} is not a database URL ({exc}); use e.g. "
            "sqlite:////var/lib/plughost/plughost.db or postgresql+psycopg://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    # Compare the spelled-out driver name: the implied default driver differs between
    # SQLAlchemy versions (psycopg2 in 2.0), so pin it explicitly.
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    elif backend != "sqlite":
        raise ConfigurationError(
            f"database_url uses {backend!r}, which plughost does not support; use sqlite, "
            "postgresql+psycopg or mysql+pymysql"
        )
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself: pysqlite's implicit transactions
    # would start DEFERRED ones behind our back (and hold them across PRAGMAs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _on_error(context: Any) -> None:
    """``handle_error`` hook: a lost or refused connection becomes DatabaseUnavailable.

    Connection-level failures are the ones the dialect calls a disconnect, and any failure
    while connecting (``context.connection`` is ``None`` then). The pool's own pre-ping is
    left alone: it handles a dead connection by reconnecting, and reports through here only
    if reconnecting fails too.
    """
    if context.is_pre_ping:
        return
    if not (context.is_disconnect or context.connection is None):
        return
    error = context.original_exception
    engine = context.engine
    where = engine.url.render_as_string(hide_password=True) if engine is not None else "?"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    raise DatabaseUnavailable(
        f"cannot reach the database {where} ({type(error).__name__}: {first_line}); "
        "nothing was changed. Retry when it is back; check that the server runs and accepts "
        "connections.",
        details={"database": where, "error": type(error).__name__},
    ) from context.sqlalchemy_exception or error


def _sqlite_on_begin(conn: Any) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_engine_from_url(url: str, *, echo: bool = False) -> Engine:
    """Create an engine with plughost's settings for the URL's backend (see the module doc).

    :raises ExtraNotInstalled: when SQLAlchemy or the backend's driver is missing.
    :raises ConfigurationError: for an unparsable or unsupported URL.
    """
    sa = _import_sqlalchemy()
    parsed = normalize_database_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs.update(pool_size=5, max_overflow=10, pool_pre_ping=True, pool_recycle=1800,
                      pool_timeout=30)
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:  # the URL's own setting wins
            connect_args["connect_timeout"] = 10
        if backend == "postgresql" and "keepalives" not in parsed.query:
            # The lease of a lock held on a connection (plugin locks, owner leases): a node
            # that vanishes without closing its sockets is declared dead after ~25 s.
            connect_args.update(keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                keepalives_count=3)
        if connect_args:
            kwargs["connect_args"] = connect_args
    try:
        engine: Engine = sa.create_engine(parsed, **kwargs)
    except ImportError as exc:
        module = (getattr(exc, "name", None) or str(exc)).split(".")[0]
        extra = _DRIVER_EXTRAS.get(module, "db")
        raise ExtraNotInstalled(f"The {backend} database backend", extra, module) from exc
    sa.event.listen(engine, "handle_error", _on_error)
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


class Database:
    """Owns one engine and hands out sessions; close it once (idempotent), or use ``with``.

    :param url: a database URL (see the module doc); ``None`` means the default settings' URL.
    :param echo: log every SQL statement (debugging).
    """

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        if url is None:
            from plughost.settings import HostSettings

            url = HostSettings.from_env().database_url
        from sqlalchemy.orm import sessionmaker

        self._engine: Engine | None = create_engine_from_url(url, echo=echo)
        self.url: URL = self._engine.url
        self.dialect: str = self._engine.dialect.name
        self._write_engine = self._engine.execution_options(**{_WRITE_OPTION: True})
        self._sessions: sessionmaker[Session] = sessionmaker(
            bind=self._engine, expire_on_commit=False, autoflush=True
        )
        self._write_sessions: sessionmaker[Session] = sessionmaker(
            bind=self._write_engine, expire_on_commit=False, autoflush=True
        )
        self._close_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._engine is None else "open"
        return f"<Database {self.url.render_as_string(hide_password=True)} {state}>"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine. Raises after :meth:`close`."""
        if self._engine is None:
            raise DatabaseUnavailable(
                "this Database has been closed; create a new Database to reconnect"
            )
        return self._engine

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._engine is None

    @property
    def is_sqlite(self) -> bool:
        """True for SQLite (file or memory) databases."""
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite database, else ``None``."""
        db = self.url.database
        if self.is_sqlite and db and db != ":memory:" and not db.startswith("file:"):
            return Path(db).expanduser().resolve()
        return None

    def session(self, *, write: bool = False) -> Session:
        """A new session (caller closes it). ``write=True`` takes SQLite's write lock at BEGIN."""
        self.engine  # noqa: B018 - raises after close
        return (self._write_sessions if write else self._sessions)()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        with self.session(write=write) as session, session.begin():
            yield session

    def ping(self) -> None:
        """Check the database answers.

        :raises DatabaseUnavailable: naming the URL (password hidden) and the driver's error.
        """
        sa = _import_sqlalchemy()
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.SQLAlchemyError as exc:
            raise DatabaseUnavailable(
                f"cannot reach the database {self.url.render_as_string(hide_password=True)}: "
                f"{exc.__class__.__name__}: {getattr(exc, 'orig', exc)}. Check the URL, that the "
                "server runs and that the user may connect."
            ) from exc

    def migrate(self, revision: str = "head") -> None:
        """Apply schema migrations up to ``revision`` (see :mod:`plughost.storage.migrations`)."""
        from plughost.storage.migrations import upgrade

        upgrade(self, revision)

    def close(self) -> None:
        """Dispose of the engine's connections. Safe to call more than once."""
        with self._close_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
