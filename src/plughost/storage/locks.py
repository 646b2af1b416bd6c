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

Owner leases
    Every process that opens storage holds an *owner lease* for as long as storage is open:
    a random owner id whose lock nobody else can take while the process lives, and that the
    kernel (a file lock) or the database server (a session advisory lock: PostgreSQL
    ``pg_advisory_lock``, MySQL ``GET_LOCK``) releases the moment the process dies — ``kill
    -9`` included. Operations rows and staging directories record their owner id, and
    start-up reconciliation of *another* process touches them only when a non-blocking probe
    (:meth:`owner_alive`) finds the owner's lock free. So ``plughost list`` next to a running
    server never deletes the server's staged upload or fails its running operation, and after
    a crash nothing stays ``running`` forever.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.errors import LockTimeout

if TYPE_CHECKING:
    from plughost.storage.db import Database

__all__ = ["FileLock", "OwnerLease", "RowLock", "file_lock", "lock_file_name", "new_owner_id"]

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_POLL_INITIAL = 0.005
_POLL_MAX = 0.1


_OWNER_ID = re.compile(r"^[0-9a-f]{16}$")
_HEARTBEAT = 60.0
_HEARTBEAT_RETRY = 5.0


def new_owner_id() -> str:
    """A fresh owner id: 16 hex digits (63 random bits, so it is also a PostgreSQL bigint)."""
    return f"{secrets.randbits(63):016x}"


def is_owner_id(text: str) -> bool:
    """Whether ``text`` has the shape of an owner id (16 lowercase hex digits)."""
    return bool(_OWNER_ID.match(text))


class OwnerLease:
    """Proof that an owner (one open storage of one process) is alive, held until closed.

    Close it when the storage closes; if the process dies instead, the kernel or the database
    server releases it. Idempotent ``close()``; a context manager.
    """

    def __init__(self, owner_id: str, release: Callable[[], None]) -> None:
        self.id = owner_id
        self._release: Callable[[], None] | None = release
        self._guard = threading.Lock()

    @property
    def closed(self) -> bool:
        """True once released."""
        return self._release is None

    def close(self) -> None:
        """Release the lease. Idempotent."""
        with self._guard:
            release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> OwnerLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OwnerLease({self.id!r}{', closed' if self.closed else ''})"


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


    # -- owner leases: <lock_dir>/owners/<owner>.lock, flocked for the owner's lifetime -----

    @property
    def owners_dir(self) -> Path:
        """Where owner lock files live."""
        return self.lock_dir / "owners"

    def claim_owner(self) -> OwnerLease:
        """A new owner id, its lock file held (exclusive ``flock``) until the lease closes."""
        import fcntl

        self.owners_dir.mkdir(parents=True, exist_ok=True)
        owner = new_owner_id()
        path = self.owners_dir / f"{owner}.lock"
        # Locked under a temporary name and then renamed into place: a pruner never sees the
        # file unlocked, so it cannot delete it between creation and flock.
        tmp = self.owners_dir / f".{owner}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"pid {os.getpid()} since {datetime.now(UTC).isoformat()}\n".encode())
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

        def release() -> None:
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: nobody can mistake it for a dead owner's
            os.close(fd)

        return OwnerLease(owner, release)

    def owner_alive(self, owner_id: str) -> bool:
        """Whether ``owner_id``'s lease is held (non-blocking probe; a missing file: dead)."""
        import fcntl

        if not is_owner_id(owner_id):
            return False
        try:
            fd = os.open(self.owners_dir / f"{owner_id}.lock",
                         os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return False
        try:
            # A shared probe: several reconcilers probing at once all see a dead owner as dead.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return True
            raise
        finally:
            os.close(fd)  # closing also drops the probe's lock
        return False

    def prune_owners(self) -> list[str]:
        """Delete the lock files of dead owners; return their ids."""
        import fcntl

        removed: list[str] = []
        if not self.owners_dir.is_dir():
            return removed
        for path in self.owners_dir.glob("*.lock"):
            try:
                fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # alive, or being probed right now
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.stem)
            os.close(fd)
        return removed


class MemoryLock:
    """Per-plugin locks inside one process (in-memory SQLite: nothing else can see the data)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._owners: set[str] = set()

    def claim_owner(self) -> OwnerLease:
        """A new owner id, alive until the lease closes (only this process sees the data)."""
        owner = new_owner_id()
        with self._guard:
            self._owners.add(owner)

        def release() -> None:
            with self._guard:
                self._owners.discard(owner)

        return OwnerLease(owner, release)

    def owner_alive(self, owner_id: str) -> bool:
        """Whether ``owner_id``'s lease is held."""
        with self._guard:
            return owner_id in self._owners

    def prune_owners(self) -> list[str]:
        """Nothing to prune: leases of an in-memory database live in memory."""
        return []

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


    # -- owner leases: a session advisory lock on a dedicated connection ---------------------

    def _owner_sql(self, owner_id: str) -> tuple[str, str, dict[str, Any]]:
        """(take, probe, params): SQL taking the owner's lock without waiting, and SQL that is
        true when the lock is free (without keeping anything)."""
        if self.database.dialect == "postgresql":
            key = int(owner_id, 16) & 0x7FFF_FFFF_FFFF_FFFF
            return ("SELECT pg_try_advisory_lock(:k)", "SELECT pg_try_advisory_lock_shared(:k)",
                    {"k": key})
        name = f"plughost.owner.{owner_id}"
        return "SELECT GET_LOCK(:k, 0)", "SELECT IS_FREE_LOCK(:k)", {"k": name}

    def claim_owner(self) -> OwnerLease:
        """A new owner id whose advisory lock a dedicated connection holds until the lease
        closes. A heartbeat keeps the connection from idling out (MySQL ``wait_timeout``) and,
        if the database drops it (an outage, a server restart), takes the lock again on a new
        connection as soon as the database answers."""
        while True:
            owner = new_owner_id()
            conn = self._take_owner_lock(owner)
            if conn is not None:
                break  # else: 63 random bits collided with a live owner; draw again
        stop = threading.Event()
        guard = threading.Lock()
        held: dict[str, Any] = {"conn": conn}

        def beat() -> None:
            interval = _HEARTBEAT
            while not stop.wait(interval):
                with guard:
                    if stop.is_set():
                        return
                    try:
                        if held["conn"] is None:
                            # None: a prober holds it shared for an instant; try again soon.
                            held["conn"] = self._take_owner_lock(owner)
                            if held["conn"] is None:
                                interval = _HEARTBEAT_RETRY
                                continue
                            log.warning("owner lease %s: lock taken again after the database "
                                        "came back", owner)
                        held["conn"].exec_driver_sql("SELECT 1")
                        held["conn"].commit()
                        interval = _HEARTBEAT
                    except Exception:  # pragma: no cover - a database outage
                        log.warning("owner lease %s lost its database connection; until it "
                                    "is back, other processes may reconcile its operations",
                                    owner, exc_info=True)
                        _drop(held["conn"])
                        held["conn"] = None
                        interval = _HEARTBEAT_RETRY

        thread = threading.Thread(target=beat, name=f"plughost-owner-{owner}", daemon=True)
        thread.start()

        def release() -> None:
            stop.set()
            with guard:
                conn, held["conn"] = held["conn"], None
                if conn is not None:
                    self._unlock_owner(conn, owner)
                _drop(conn)
            thread.join(5)

        return OwnerLease(owner, release)

    def _unlock_owner(self, conn: Any, owner: str) -> None:
        """Release ``owner``'s lock on ``conn`` before the connection is dropped: the server
        ends a dropped session (and its locks) only once it notices the closed socket, so a
        lease that is closed must not look alive to the next ``owner_alive``. A connection
        that is already dead holds nothing: the error is ignored."""
        from sqlalchemy import text

        params = self._owner_sql(owner)[2]
        unlock = ("SELECT pg_advisory_unlock(:k)" if self.database.dialect == "postgresql"
                  else "SELECT RELEASE_LOCK(:k)")
        with contextlib.suppress(Exception):
            conn.execute(text(unlock), params)
            conn.commit()

    def _take_owner_lock(self, owner: str) -> Any:
        """A dedicated connection holding ``owner``'s advisory lock, or ``None`` when another
        session holds it."""
        from sqlalchemy import text

        take, _probe, params = self._owner_sql(owner)
        conn = self.database.engine.connect()
        try:
            got = conn.execute(text(take), params).scalar()
            conn.commit()
        except BaseException:
            _drop(conn)
            raise
        if not got:
            _drop(conn)
            return None
        return conn

    def owner_alive(self, owner_id: str) -> bool:
        """Whether ``owner_id``'s advisory lock is held by some session (non-blocking)."""
        from sqlalchemy import text

        if not is_owner_id(owner_id):
            return False
        _take, probe, params = self._owner_sql(owner_id)
        with self.database.engine.connect() as conn:
            free = conn.execute(text(probe), params).scalar()
            if free and self.database.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock_shared(:k)"), params)
            conn.commit()
        return not free

    def prune_owners(self) -> list[str]:
        """Nothing to prune: the database server drops a dead session's advisory locks."""
        return []


def _drop(conn: Any) -> None:
    """Close a connection for good: invalidated rather than returned to the pool, so its
    database session ends and the session's advisory locks with it."""
    if conn is None:
        return
    with contextlib.suppress(Exception):
        conn.invalidate()
    with contextlib.suppress(Exception):
        conn.close()


def _is_lock_timeout(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if sqlstate == "55P03":  # lock_not_available
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] == 1205  # MySQL ER_LOCK_WAIT_TIMEOUT
