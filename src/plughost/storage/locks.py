"""Per-plugin locks that serialise operations across threads *and* processes sharing a database.

Two implementations behind one context manager, chosen by the database backend:

PostgreSQL / MySQL / MariaDB — :class:`RowLock`
    Every plugin id gets a row in ``plugin_locks`` (inserted on first use, never deleted). Taking
    the lock opens a dedicated connection, begins a transaction and runs
    ``SELECT ... FROM plugin_locks WHERE plugin_id = :id FOR UPDATE``; the row lock is held until
    the context exits (the transaction is rolled back — it changed nothing). Waiting is bounded by
    the server's lock timeout (PostgreSQL ``lock_timeout``, InnoDB
    ``innodb_lock_wait_timeout``, which counts whole seconds: timeouts round up). Because the
    lock lives on its own connection, the operation's own transactions
    (:meth:`Repository.unit_of_work`) can commit while it is held. If the process dies,
    the server drops the connection and the lock with it.

SQLite — :class:`FileLock`
    ``fcntl.flock`` on ``<lock_dir>/<plugin_id>.lock`` (the lock dir defaults to
    ``<home>/locks``). ``flock`` locks belong to the open file, so two threads of one process
    exclude each other just as two processes do; the kernel releases it when the process dies.
    A SQLite row lock would not work: SQLite locks the whole database, not rows.

Locks are not re-entrant: taking the same plugin's lock twice in one thread waits for itself
until the timeout. Hold one lock per operation, around the whole operation.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.errors import LockTimeout

if TYPE_CHECKING:
    from plughost.storage.db import Database

__all__ = ["FileLock", "RowLock", "file_lock", "lock_file_name"]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_POLL_INITIAL = 0.005
_POLL_MAX = 0.1


def lock_file_name(name: str) -> str:
    """A safe file name for lock ``name``: the name itself if it is path-safe, else a digest."""
    if _SAFE_NAME.match(name) and name not in (".", ".."):
        return f"{name}.lock"
    return f"sha256-{hashlib.sha256(name.encode()).hexdigest()}.lock"


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    :param timeout: seconds to wait; ``0`` means try once.
    :param what: what is being locked, for the timeout message.
    :raises LockTimeout: when the lock is still held by someone else after ``timeout``.
    """
    import fcntl  # POSIX only; plughost's SQLite locking needs it

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = _POLL_INITIAL
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(
                    f"{what} is locked by another operation and was not released within "
                    f"{timeout:g}s; wait for that operation to finish and retry",
                    details={"lock_file": str(path), "timeout": timeout},
                )
            # flock has no timed wait; poll with a short, growing back-off.
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class FileLock:
    """Per-plugin locks as lock files in ``lock_dir`` (SQLite databases)."""

    def __init__(self, lock_dir: Path) -> None:
        self.lock_dir = lock_dir

    @contextlib.contextmanager
    def hold(self, plugin_id: str, *, timeout: float) -> Iterator[None]:
        """Hold plugin ``plugin_id``'s lock for the ``with`` block."""
        path = self.lock_dir / lock_file_name(plugin_id)
        with file_lock(path, timeout=timeout, what=f"plugin {plugin_id!r}"):
            yield


class MemoryLock:
    """Per-plugin locks inside one process (in-memory SQLite: nothing else can see the data)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def hold(self, plugin_id: str, *, timeout: float) -> Iterator[None]:
        """Hold plugin ``plugin_id``'s lock for the ``with`` block."""
        with self._guard:
            lock = self._locks.setdefault(plugin_id, threading.Lock())
        if not lock.acquire(timeout=max(timeout, 0)):
            raise LockTimeout(
                f"plugin {plugin_id!r} is locked by another operation and was not released "
                f"within {timeout:g}s; wait for that operation to finish and retry",
                plugin_id=plugin_id,
            )
        try:
            yield
        finally:
            lock.release()


class RowLock:
    """Per-plugin locks as ``SELECT ... FOR UPDATE`` on ``plugin_locks`` rows (PostgreSQL/MySQL)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _insert_stmt(self) -> Any:
        from sqlalchemy import insert

        from plughost.storage.models import PluginLockRow

        if self.database.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(PluginLockRow).on_conflict_do_nothing()
        return insert(PluginLockRow).prefix_with("IGNORE")

    @contextlib.contextmanager
    def hold(self, plugin_id: str, *, timeout: float) -> Iterator[None]:
        """Hold plugin ``plugin_id``'s lock for the ``with`` block."""
        from sqlalchemy import exc as sa_exc
        from sqlalchemy import select

        from plughost.storage.models import PluginLockRow

        postgres = self.database.dialect == "postgresql"
        row = select(PluginLockRow.plugin_id).where(PluginLockRow.plugin_id == plugin_id)
        with self.database.engine.connect() as conn:
            # Session-level timeout: it bounds the INSERT below too (InnoDB's duplicate-key
            # check waits for a row that another holder has locked FOR UPDATE).
            if postgres:
                conn.exec_driver_sql(f"SET lock_timeout = {max(int(timeout * 1000), 1)}")
            else:
                # InnoDB counts whole seconds; round up so 0.5 s still waits a little.
                conn.exec_driver_sql(
                    f"SET SESSION innodb_lock_wait_timeout = {max(int(timeout + 0.999), 1)}"
                )
            conn.commit()
            try:
                try:
                    # A plain read does not wait for locks; insert the row only the first time.
                    if conn.execute(row).first() is None:
                        conn.execute(self._insert_stmt(), {"plugin_id": plugin_id,
                                                           "created_at": datetime.now(UTC)})
                    conn.commit()
                    conn.execute(row.with_for_update())
                except sa_exc.OperationalError as exc:
                    if _is_lock_timeout(exc):
                        raise LockTimeout(
                            f"plugin {plugin_id!r} is locked by another operation and was not "
                            f"released within {timeout:g}s; wait for that operation to finish "
                            "and retry",
                            plugin_id=plugin_id,
                            details={"timeout": timeout},
                        ) from None
                    raise
                yield
            finally:
                conn.rollback()  # ends the FOR UPDATE transaction: releases the lock
                # The connection goes back to the pool: restore the server default.
                if postgres:
                    conn.exec_driver_sql("RESET lock_timeout")
                else:
                    conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = DEFAULT")
                conn.commit()


def _is_lock_timeout(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if sqlstate == "55P03":  # lock_not_available
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] == 1205  # MySQL ER_LOCK_WAIT_TIMEOUT
