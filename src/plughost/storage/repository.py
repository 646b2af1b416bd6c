"""The data-access layer services use: plain records in, plain records out.

Every method runs in its own transaction, unless called inside :meth:`Repository.unit_of_work`,
in which case all calls share that one transaction — committed when the block ends normally,
rolled back (leaving nothing) when it raises::

    with repo.lock_plugin("notify-slack"):          # serialise operations on this plugin id
        with repo.unit_of_work():                   # one transaction
            repo.add_plugin(StoredPlugin.from_manifest(manifest, checksum=..., object_key=...))
            repo.add_version(StoredVersion(...))
            repo.set_config("notify-slack", defaults, changed_by="install")

The unit of work is bound to the calling thread / asyncio task (a ``ContextVar``); nested
``unit_of_work()`` blocks join the outer transaction. Audit events written inside a unit of work
roll back with it: record the audit of a *failed* operation after the block.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar, cast

from sqlalchemy import (
    Connection,
    Select,
    String,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from plughost.core.lifecycle import State
from plughost.errors import (
    ConcurrentModification,
    InvalidRecord,
    OperationRefused,
    RecordExists,
)
from plughost.storage._repo_access import AccessRecords, hash_token
from plughost.storage._repo_activity import ActivityRecords
from plughost.storage._repo_base import read_records, record_columns, to_record, utcnow
from plughost.storage._repo_changes import SEQ_ROW_ID
from plughost.storage._repo_cluster import ClusterRecords
from plughost.storage._repo_market import MarketRecords
from plughost.storage._repo_observability import ObservabilityRecords
from plughost.storage.db import Database
from plughost.storage.locks import FileLock, MemoryLock, OwnerLease, RowLock
from plughost.storage.models import (
    ID_LEN,
    ChangeSequenceRow,
    ConfigHistoryRow,
    PluginConfigRow,
    PluginRequirementRow,
    PluginRow,
    PluginVersionRow,
)
from plughost.storage.records import (
    FACETS,
    ConfigChange,
    StoredConfig,
    StoredPlugin,
    StoredVersion,
    check_state,
)

__all__ = ["SUMMARY_FIELDS", "PluginCounts", "Repository", "SummaryPage", "hash_token",
           "requirements_of"]

T = TypeVar("T")

_MEMORY_LOCKS: weakref.WeakKeyDictionary[Database, MemoryLock] = weakref.WeakKeyDictionary()
_PLUGIN_FIELDS = {f.name for f in fields(StoredPlugin)}
_UPDATABLE = _PLUGIN_FIELDS - {"id", "installed_at", "updated_at"}
_PLAIN_COLUMNS = tuple(c for c in PluginRow.__table__.c
                       if c.name not in ("manifest", "config_schema", "default_config"))
"""Every plugin column but the JSON ones (what :meth:`Repository.installed_with_versions`
reads of a plugin)."""
def requirements_of(manifest: Mapping[str, Any] | None) -> list[str]:
    """The ids a stored manifest requires — its ``dependencies``, not the optional ones — as
    ``plugin_requirements`` records them for :meth:`Repository.plugins_requiring`."""
    deps = manifest.get("dependencies") if isinstance(manifest, Mapping) else None
    if not isinstance(deps, Mapping):
        return []
    return sorted({d for d in deps if isinstance(d, str) and 0 < len(d) <= ID_LEN})


SUMMARY_FIELDS: Final = (
    "id", "name", "version", "description", "author", "type", "runtime", "state", "enabled",
    "source", "source_uri", "checksum", "failure_reason", "failure_phase", "installed_at",
    "updated_at", "signed")
"""The fields of a row of :meth:`Repository.summary_page`, in order: the plugin columns a
plugin resource shows, and ``signed`` (as :meth:`Repository.signed_plugins` says it; ``None``
without a version row)."""


class SummaryPage(NamedTuple):
    """What :meth:`Repository.summary_page` returns."""

    rows: list[tuple[Any, ...]]
    """One tuple of :data:`SUMMARY_FIELDS` per plugin, by id."""
    more: bool
    """Whether more plugins match after the last row."""
    total: int
    """How many plugins match the filters in all."""


class PluginCounts(NamedTuple):
    """What :meth:`Repository.plugin_counts` returns."""

    total: int
    """How many plugins match every filter."""
    by: dict[str, dict[str, int]]
    """For each of :data:`FACETS`, how many plugins have each value among those matching
    every other filter."""




_LAST_SEQ = select(ChangeSequenceRow.last_seq).where(ChangeSequenceRow.id == SEQ_ROW_ID)
# The hot reads of one plugin's records (see read_records).
_PLUGIN_BY_ID = record_columns(StoredPlugin, PluginRow).where(PluginRow.id == bindparam("id"))
_CONFIG_OF = record_columns(StoredConfig, PluginConfigRow).where(
    PluginConfigRow.plugin_id == bindparam("plugin_id"))
_VERSIONS_OF = (record_columns(StoredVersion, PluginVersionRow)
                .where(PluginVersionRow.plugin_id == bindparam("plugin_id"))
                .order_by(PluginVersionRow.installed_at.desc(), PluginVersionRow.id.desc()))
_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}
"""Statements of :meth:`Repository.summary_page` by shape (see ``_summary_statement``)."""


def _keep_statement(key: tuple[Any, ...], stmt: Select[Any]) -> None:
    if len(_STATEMENTS) >= 256:  # many distinct filters (e.g. searches): start over
        _STATEMENTS.clear()
    _STATEMENTS[key] = stmt


def _plugin_change(changes: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The change-log action and details of an update of these plugin columns."""
    names = set(changes)
    if names == {"enabled"}:
        return ("enable" if changes["enabled"] else "disable"), {}
    if "state" in names and names <= {"state", "failure_reason", "failure_phase"}:
        return "state", {"state": changes["state"]}
    return "update", {"fields": sorted(names)}


class Repository(AccessRecords, ActivityRecords, ObservabilityRecords, ClusterRecords,
                 MarketRecords):
    """Data access for plugins, versions, config, grants, audit, tokens, operations and keys.

    :param database: the :class:`~plughost.storage.db.Database` to use (not closed by this).
    :param lock_dir: where SQLite plugin lock files go; default ``locks/`` beside the database
        file (``<home>/locks`` with the default settings).
    :param clock: returns "now" as an aware UTC datetime (tests inject a fixed clock).
    """

    def __init__(
        self,
        database: Database,
        *,
        lock_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.database = database
        self._now = clock or utcnow
        self._current: ContextVar[Session | None] = ContextVar(
            f"plughost_uow_{id(self)}", default=None
        )
        self._locks: FileLock | MemoryLock | RowLock
        if not database.is_sqlite:
            self._locks = RowLock(database)
        elif database.sqlite_path is not None:
            self._locks = FileLock(lock_dir or database.sqlite_path.parent / "locks")
        else:
            self._locks = _MEMORY_LOCKS.setdefault(database, MemoryLock())
        self._owner: OwnerLease | None = None
        self._owner_guard = threading.Lock()
        #: filters -> (change sequence number, count): see summary_page
        self._counts: dict[tuple[Any, ...], tuple[int, Any]] = {}

    # -- transactions and locks ------------------------------------------------------------

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[Repository]:
        """Run every repository call in the block in ONE transaction (see the module doc)."""
        if self._current.get() is not None:
            yield self  # join the outer unit of work
            return
        with self.database.transaction(write=True) as session:
            token = self._current.set(session)
            try:
                yield self
                self._write_changes(session)
            finally:
                self._current.reset(token)
        self._committed(session)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Repository]:
        """Run the reads in the block in ONE read transaction (one consistent view, one
        connection checkout); joins an enclosing unit of work. Not for writes."""
        if self._current.get() is not None:
            yield self
            return
        with self.database.transaction(write=False) as session:
            token = self._current.set(session)
            try:
                yield self
                self._write_changes(session)
            finally:
                self._current.reset(token)

    @property
    def in_unit_of_work(self) -> bool:
        """True inside :meth:`unit_of_work` (in this thread / task)."""
        return self._current.get() is not None

    def lock_plugin(
        self, plugin_id: str, *, timeout: float = 30.0
    ) -> contextlib.AbstractContextManager[None]:
        """Serialise operations on ``plugin_id`` across threads and processes (module
        :mod:`plughost.storage.locks` explains how). Not re-entrant.

        :raises LockTimeout: when another holder keeps the lock longer than ``timeout`` seconds.
        """
        return self._locks.hold(plugin_id, timeout=timeout)

    # -- the owner lease (see plughost.storage.locks) ----------------------------------------

    @property
    def owner_id(self) -> str:
        """This repository's owner id, its lease claimed on first use and held until
        :meth:`close`. Operations it creates and staging directories record it, so other
        processes leave them alone while this one lives."""
        with self._owner_guard:
            if self._owner is None or self._owner.closed:
                self._owner = self._locks.claim_owner()
                # A safety net only: Storage.close() (or close()) releases it explicitly.
                weakref.finalize(self, self._owner.close)
            return self._owner.id

    def owner_alive(self, owner_id: str) -> bool:
        """Whether the owner ``owner_id`` (any process on this storage, this one included)
        still holds its lease. A non-blocking probe; an unknown id is dead."""
        return self._locks.owner_alive(owner_id)

    def prune_owners(self) -> list[str]:
        """Forget the lease records of dead owners (lock files); returns their ids."""
        return self._locks.prune_owners()

    def close(self) -> None:
        """Release this repository's owner lease (idempotent). The database stays open."""
        with self._owner_guard:
            owner, self._owner = self._owner, None
        if owner is not None:
            owner.close()

    # -- plugins ---------------------------------------------------------------------------

    def add_plugin(self, plugin: StoredPlugin) -> StoredPlugin:
        """Insert a new plugin row.

        :raises RecordExists: when a plugin with that id is already installed.
        """
        now = self._now()
        values = {n: getattr(plugin, n) for n in _PLUGIN_FIELDS}
        values["state"] = check_state(plugin.state)
        values["installed_at"] = plugin.installed_at or now
        values["updated_at"] = plugin.updated_at or values["installed_at"]
        for key in ("manifest", "config_schema", "default_config"):
            if values[key] is not None:
                values[key] = dict(values[key])
        with self._tx() as s:
            if s.get(PluginRow, plugin.id) is not None:
                raise RecordExists(
                    f"plugin {plugin.id!r} is already installed; use update to change its "
                    "version or uninstall it first",
                    plugin_id=plugin.id,
                )
            row = PluginRow(**values)
            s.add(row)
            self._flush(s, f"plugin {plugin.id!r} is already installed", plugin.id)
            self._set_requirements(s, plugin.id, row.manifest, new=True)
            self._record_change(s, "plugin", plugin.id, "install",
                                {"version": row.version, "state": row.state})
            return to_record(StoredPlugin, row)

    @staticmethod
    def _set_requirements(s: Session, plugin_id: str, manifest: Mapping[str, Any] | None, *,
                          new: bool = False) -> None:
        """Record what the plugin's current manifest requires (after its row is flushed)."""
        if not new:
            s.execute(delete(PluginRequirementRow)
                      .where(PluginRequirementRow.plugin_id == plugin_id)
                      .execution_options(synchronize_session=False))
        wanted = requirements_of(manifest)
        if wanted:
            s.execute(insert(PluginRequirementRow),
                      [{"plugin_id": plugin_id, "requires": dep} for dep in wanted])

    def get_plugin(self, plugin_id: str) -> StoredPlugin | None:
        """The plugin's record, or ``None`` when it is not installed."""
        with self._tx(write=False) as s:
            found = read_records(s, StoredPlugin, _PLUGIN_BY_ID, {"id": plugin_id})
            return found[0] if found else None

    def require_plugin(self, plugin_id: str) -> StoredPlugin:
        """The plugin's record. :raises PluginNotFound: when it is not installed."""
        found = self.get_plugin(plugin_id)
        if found is None:
            raise self._not_found(plugin_id)
        return found

    def _plugin_filter(
        self,
        stmt: Select[Any],
        type: str | None,
        state: str | None,
        enabled: bool | None,
        q: str | None,
        status: int | None = None,
        runtime: str | None = None,
        source: str | None = None,
    ) -> Select[Any]:
        if status is not None:  # Arcade's status: 2 failed, else 1 enabled / 0 disabled
            failed = PluginRow.state == State.FAILED.value
            stmt = stmt.where(failed if status == 2 else
                              (PluginRow.enabled == (status == 1)) & ~failed)
        if type is not None:
            stmt = stmt.where(PluginRow.type == type)
        if state is not None:
            stmt = stmt.where(PluginRow.state == check_state(state))
        if enabled is not None:
            stmt = stmt.where(PluginRow.enabled == enabled)
        if runtime is not None:
            stmt = stmt.where(PluginRow.runtime == runtime)
        if source is not None:
            stmt = stmt.where(PluginRow.source == source)
        if q:
            needle = q.lower()
            stmt = stmt.where(
                or_(
                    func.lower(PluginRow.id).contains(needle, autoescape=True),
                    func.lower(PluginRow.name).contains(needle, autoescape=True),
                    func.lower(PluginRow.description).contains(needle, autoescape=True),
                )
            )
        return stmt

    def list_plugins(
        self,
        *,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        runtime: str | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredPlugin]:
        """Installed plugins ordered by id, filtered by type, state, enabled flag, runtime,
        source and a case-insensitive text ``q`` matched against id, name and description."""
        if limit < 0 or offset < 0:
            raise InvalidRecord(f"limit and offset must be >= 0, got {limit} and {offset}")
        stmt = self._plugin_filter(select(PluginRow), type, state, enabled, q,
                                   runtime=runtime, source=source)
        stmt = stmt.order_by(PluginRow.id).limit(limit).offset(offset)
        with self._tx(write=False) as s:
            return [to_record(StoredPlugin, r) for r in s.scalars(stmt)]

    def page_plugins(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        status: int | None = None,
    ) -> tuple[list[StoredPlugin], str | None]:
        """One keyset page of :meth:`list_plugins`: the plugins ordered by id whose id comes
        after ``after``, and the id to pass as ``after`` for the next page (``None`` on the last
        page). Unlike offsets, a page never repeats or skips a plugin that existed when paging
        started, whatever is installed or removed meanwhile; each page is one index range scan.
        ``status`` is Arcade's: 2 failed, 1 enabled, 0 disabled (not failed).
        """
        # Plain column rows, not ORM objects: a page is built several times faster.
        stmt = self._keyset(select(*PluginRow.__table__.c), after, limit, type, state,
                            enabled, q, status)
        with self._tx(write=False) as s:
            # Core, not the ORM's result machinery (plain columns need none of it); the keys
            # once, not a row's _mapping (which builds them again for every row).
            result = s.connection().execute(stmt)
            names = tuple(result.keys())
            rows = [StoredPlugin(**dict(zip(names, r, strict=True))) for r in result]
        page = rows[:limit]
        return page, (page[-1].id if len(rows) > limit else None)

    def summary_page(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        status: int | None = None,
        runtime: str | None = None,
        source: str | None = None,
        stored_times: bool = False,
    ) -> SummaryPage:
        """The first ``limit`` plugins after ``after`` (by id) matching the filters, as plain
        tuples of :data:`SUMMARY_FIELDS`, whether more follow, and how many match in all: one
        read transaction on a plain connection (no ORM session), what a list page needs.

        ``stored_times``: on SQLite, ``installed_at`` and ``updated_at`` come as the text
        SQLite keeps (naive UTC, ``2026-01-02 03:04:05.678901``), not as datetimes, for a
        caller that only formats them (:func:`plughost.services.resources.iso` reads that
        text without making a datetime: two times per row are most of what building a list
        page costs). Other databases give datetimes either way.

        The page is one index range scan (in queries of at most 10,000 rows). The total is
        counted once per filter and committed change: it is kept with the change sequence
        number it was counted at (read in the same transaction) and counted again as soon as
        anything changed, so it is always exact (see :mod:`plughost.storage._repo_changes`:
        every write of a plugin row is a numbered change)."""
        if limit < 1:
            raise InvalidRecord(f"limit must be >= 1, got {limit}")
        filters = (type, state, enabled, q, status, runtime, source)
        rows: list[tuple[Any, ...]] = []
        last = after
        text = stored_times and self.database.dialect == "sqlite"
        with self._connection() as conn:
            while True:
                want = min(10_000, limit - len(rows))
                found = conn.execute(self._summary_statement(last is not None, want, filters,
                                                             text),
                                     {"after": last}).fetchall()
                more = len(found) > want
                # (..., version row id, signer) -> (..., signed): None without a version row
                rows.extend((*r[:-2], None if r[-2] is None else r[-1] is not None)
                            for r in found[:want])
                last = rows[-1][0] if rows else None
                if not more or len(rows) >= limit:
                    break
            total = self._count(conn, filters)
        return SummaryPage(rows, more, total)

    def _summary_statement(self, after: bool, limit: int, filters: tuple[Any, ...],
                           text: bool = False) -> Select[Any]:
        """The page query of :meth:`summary_page` (``after`` a bound parameter; ``text``: the
        times as stored, not as datetimes), built once per shape: building and keying a
        select costs more than running it."""
        key = ("page", after, limit, filters, text)
        stmt = _STATEMENTS.get(key)
        if stmt is None:
            version = PluginVersionRow
            table = PluginRow.__table__.c
            columns = (*(type_coerce(table[n], String()).label(n)
                         if text and n in ("installed_at", "updated_at") else table[n]
                         for n in SUMMARY_FIELDS[:-1]),
                       version.id, version.signed_by)
            stmt = self._keyset(select(*columns), bindparam("after") if after else None,
                                limit, *filters)
            stmt = stmt.outerjoin(version, (version.plugin_id == PluginRow.id)
                                  & (version.version == PluginRow.version))
            _keep_statement(key, stmt)
        return stmt

    def _count(self, conn: Connection, filters: tuple[Any, ...]) -> int:
        """:meth:`count_plugins` through ``conn``, counted once per committed change (see
        :meth:`_kept`)."""
        def count() -> int:
            key = ("count", filters)
            stmt = _STATEMENTS.get(key)
            if stmt is None:
                stmt = self._plugin_filter(select(func.count(PluginRow.id)), *filters)
                _keep_statement(key, stmt)
            return int(conn.execute(stmt).scalar() or 0)

        return self._kept(conn, ("count", filters), count)

    def _kept(self, conn: Connection, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``'s answer, computed once per committed change: the change sequence
        number is read first; an answer kept at that number is reused, else it is computed and
        kept only if no change committed meanwhile (read again after computing)."""
        # In a unit of work, its own writes are not numbered until it commits: compute.
        seq = None if self.in_unit_of_work else conn.execute(_LAST_SEQ).scalar()
        kept = self._counts.get(key)
        if seq is not None and kept is not None and kept[0] == seq:
            return cast(T, kept[1])
        answer = compute()
        if seq is not None and conn.execute(_LAST_SEQ).scalar() == seq:
            if len(self._counts) >= 256:  # many distinct filters (e.g. searches): start over
                self._counts.clear()
            self._counts[key] = (seq, answer)
        return answer

    def plugin_counts(self, *, type: str | None = None, state: str | None = None,
                      enabled: bool | None = None, q: str | None = None,
                      status: int | None = None, runtime: str | None = None,
                      source: str | None = None) -> PluginCounts:
        """How many plugins match the filters, and for each of :data:`FACETS` how many have
        each value among the plugins matching every *other* filter (what a list's filter
        menus show beside each choice; values no plugin has are left out). One read
        transaction of grouped counts on indexed columns, kept until the next committed
        change (as the list's total)."""
        filters: dict[str, Any] = {"type": type, "state": state, "enabled": enabled, "q": q,
                                   "status": status, "runtime": runtime, "source": source}

        def count(conn: Connection) -> PluginCounts:
            # One grouped count of the plugins matching every filter answers the total and
            # each facet whose own filter is not set (one scan, whatever the filters); a
            # facet whose filter is set is counted without it.
            columns = [PluginRow.__table__.c[facet] for facet in FACETS]
            groups = conn.execute(self._plugin_filter(
                select(*columns, func.count(PluginRow.id)), **filters).group_by(*columns)).all()
            by: dict[str, dict[str, int]] = {}
            for i, (facet, column) in enumerate(zip(FACETS, columns, strict=True)):
                tally: dict[str, int] = {}
                if filters[facet] is None:
                    for group in groups:
                        tally[str(group[i])] = tally.get(str(group[i]), 0) + int(group[-1])
                else:
                    stmt = self._plugin_filter(select(column, func.count(PluginRow.id)),
                                               **{**filters, facet: None}).group_by(column)
                    tally = {str(value): int(n) for value, n in conn.execute(stmt)}
                by[facet] = tally
            return PluginCounts(sum(int(group[-1]) for group in groups), by)

        with self._connection() as conn:
            return self._kept(conn, ("facets", *filters.values()), lambda: count(conn))

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A plain connection in one read transaction (the caller's, inside a unit of work)."""
        session = self._current.get()
        if session is not None:
            yield session.connection()
            return
        with self.database.engine.connect() as conn, conn.begin():
            yield conn

    def _keyset(self, stmt: Select[Any], after: Any, limit: int, type: str | None,
                state: str | None, enabled: bool | None, q: str | None,
                status: int | None, runtime: str | None = None,
                source: str | None = None) -> Select[Any]:
        """``stmt`` filtered, after ``after`` by id, ordered by id, one more than ``limit``."""
        if not 1 <= limit <= 10_000:
            raise InvalidRecord(f"limit must be between 1 and 10000, got {limit}")
        stmt = self._plugin_filter(stmt, type, state, enabled, q, status, runtime, source)
        if after is not None:
            stmt = stmt.where(PluginRow.id > after)
        return stmt.order_by(PluginRow.id).limit(limit + 1)

    def iter_plugins(self, *, batch: int = 1000) -> Iterator[StoredPlugin]:
        """Every installed plugin by id, read ``batch`` at a time by keyset (each batch one
        index range scan, so reading them all costs O(installed), not O(installed²))."""
        after: str | None = None
        while True:
            found, after = self.page_plugins(after=after, limit=batch)
            yield from found
            if after is None:
                return

    def plugins_requiring(self, plugin_id: str, *,
                          enabled: bool | None = None) -> list[StoredPlugin]:
        """Installed plugins whose current manifest requires ``plugin_id`` (not optionally),
        by id: one index range scan of ``plugin_requirements`` (kept in step with the
        manifests), so it costs the plugins found, not the plugins installed."""
        # IN (subquery), not a join: planners without statistics (SQLite) would otherwise
        # walk the enabled index over every plugin and probe the requirements of each.
        requiring = (select(PluginRequirementRow.plugin_id)
                     .where(PluginRequirementRow.requires == plugin_id))
        stmt = select(*PluginRow.__table__.c).where(PluginRow.id.in_(requiring))
        if enabled is not None:
            stmt = stmt.where(PluginRow.enabled == enabled)
        with self._tx(write=False) as s:
            return [StoredPlugin(**r._mapping) for r in s.execute(stmt.order_by(PluginRow.id))]

    def get_plugins(self, ids: Iterable[str]) -> dict[str, StoredPlugin]:
        """The rows of these plugins, by id (absent ones left out), 500 ids a query."""
        wanted = sorted(set(ids))
        out: dict[str, StoredPlugin] = {}
        with self._tx(write=False) as s:
            for start in range(0, len(wanted), 500):
                stmt = (select(*PluginRow.__table__.c)
                        .where(PluginRow.id.in_(wanted[start:start + 500])))
                out.update((r.id, StoredPlugin(**r._mapping)) for r in s.execute(stmt))
        return out

    def plugin_ids(self) -> list[str]:
        """The id of every installed plugin, sorted (one index scan, no rows built)."""
        with self._tx(write=False) as s:  # Core: no ORM result machinery for one column
            stmt = select(PluginRow.__table__.c.id).order_by(PluginRow.id)
            return [str(pid) for pid, in s.connection().execute(stmt)]

    def current_versions(self) -> dict[str, StoredVersion]:
        """The current version record of every installed plugin, by plugin id (one query)."""
        stmt = (select(*PluginVersionRow.__table__.c)
                .join(PluginRow, (PluginRow.id == PluginVersionRow.plugin_id)
                      & (PluginRow.version == PluginVersionRow.version)))
        with self._tx(write=False) as s:
            return {r.plugin_id: StoredVersion(**r._mapping) for r in s.execute(stmt)}

    def installed_with_versions(self, ids: Iterable[str] | None = None,
                                ) -> list[tuple[StoredPlugin, StoredVersion | None]]:
        """Every installed plugin (or those of ``ids`` that are installed) by id with its
        current version, in one query (500 ids a query): what a host start registers. Each
        plugin is read with every column but the JSON ones (``manifest`` comes back ``{}``,
        the schema and defaults ``None``; :meth:`get_plugin` has them); its
        version (``None`` without a row) carries what a start needs of it — ``plugin_id``,
        ``version``, ``checksum``, ``object_key``, ``manifest`` and ``id`` — the other fields
        left at their defaults. Decoding every plugin's JSON columns and building full rows
        through the ORM were most of reading 10,000 plugins."""
        version = PluginVersionRow
        extra = (version.id.label("v_id"), version.checksum.label("v_checksum"),
                 version.object_key.label("v_object_key"), version.manifest.label("v_manifest"))
        stmt = (select(*_PLAIN_COLUMNS, *extra)
                .outerjoin(version, (version.plugin_id == PluginRow.id)
                           & (version.version == PluginRow.version))
                .order_by(PluginRow.id))
        wanted = sorted(set(ids)) if ids is not None else None
        chunks = ([stmt] if wanted is None else
                  [stmt.where(PluginRow.id.in_(wanted[i:i + 500]))
                   for i in range(0, len(wanted), 500)])
        out: list[tuple[StoredPlugin, StoredVersion | None]] = []
        with self._tx(write=False) as s:
            for chunk in chunks:
                # Core, not the ORM's result machinery; the keys once, not a row's _mapping.
                result = s.connection().execute(chunk)
                names = tuple(result.keys())[:len(_PLAIN_COLUMNS)]
                count = len(names)
                for row in result:
                    plugin = StoredPlugin(manifest={},
                                          **dict(zip(names, row[:count], strict=True)))
                    vid, checksum, object_key, manifest = row[count:]
                    out.append((plugin, None if vid is None else StoredVersion(
                        plugin_id=plugin.id, version=plugin.version, checksum=checksum,
                        object_key=object_key, manifest=manifest, id=vid)))
        return out

    def config_values(self) -> dict[str, Mapping[str, Any]]:
        """Every stored configuration's values, by plugin id (one query; :meth:`all_configs`
        has their revisions too)."""
        table = PluginConfigRow.__table__
        with self._tx(write=False) as s:
            return {str(pid): config for pid, config in
                    s.connection().execute(select(table.c.plugin_id, table.c.config))}

    def all_configs(self) -> dict[str, StoredConfig]:
        """Every stored configuration, by plugin id (one query)."""
        with self._tx(write=False) as s:
            return {r.plugin_id: StoredConfig(**r._mapping)
                    for r in s.execute(select(*PluginConfigRow.__table__.c))}

    def version_files(self) -> list[tuple[str, str, str, str]]:
        """``(plugin_id, version, checksum, object_key)`` of every kept version, by plugin id:
        what start-up reconciliation compares with the files (one query, no manifests)."""
        stmt = (select(PluginVersionRow.plugin_id, PluginVersionRow.version,
                       PluginVersionRow.checksum, PluginVersionRow.object_key)
                .order_by(PluginVersionRow.plugin_id, PluginVersionRow.id))
        with self._tx(write=False) as s:  # Core, as plugin_ids
            return [(str(a), str(b), str(c), str(d))
                    for a, b, c, d in s.connection().execute(stmt)]

    def plugin_states(self, ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """``id -> (state, failure_reason)`` of these installed plugins (absent ones left
        out), in queries of at most 500 ids."""
        wanted = list(ids)
        out: dict[str, tuple[str, str | None]] = {}
        with self._tx(write=False) as s:
            if len(wanted) > 2000:  # most of them (a start): one scan, not a query per 500
                keep = set(wanted)
                stmt = select(PluginRow.id, PluginRow.state, PluginRow.failure_reason)
                return {pid: (state, reason) for pid, state, reason
                        in s.connection().execute(stmt) if pid in keep}
            for start in range(0, len(wanted), 500):
                stmt = (select(PluginRow.id, PluginRow.state, PluginRow.failure_reason)
                        .where(PluginRow.id.in_(wanted[start:start + 500])))
                out.update({pid: (state, reason) for pid, state, reason in s.execute(stmt)})
        return out

    def count_plugins(
        self,
        *,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        status: int | None = None,
        runtime: str | None = None,
        source: str | None = None,
    ) -> int:
        """How many plugins :meth:`list_plugins` would return without limit/offset."""
        stmt = self._plugin_filter(select(func.count(PluginRow.id)), type, state, enabled, q,
                                   status, runtime, source)
        with self._tx(write=False) as s:
            return int(s.scalar(stmt) or 0)

    def signed_plugins(self, ids: Iterable[str]) -> dict[str, bool]:
        """Whether the current version of each of these plugins was installed with a signature
        by a trusted key (``signed_by`` recorded), by id; ids not installed are left out. One
        query per 500 ids."""
        wanted = list(ids)
        out: dict[str, bool] = {}
        with self._tx(write=False) as s:
            for start in range(0, len(wanted), 500):
                stmt = (select(PluginVersionRow.plugin_id, PluginVersionRow.signed_by)
                        .join(PluginRow, (PluginRow.id == PluginVersionRow.plugin_id)
                              & (PluginRow.version == PluginVersionRow.version))
                        .where(PluginRow.id.in_(wanted[start:start + 500])))
                out.update({pid: key is not None for pid, key in s.execute(stmt)})
        return out

    def update_plugin(self, plugin_id: str, **changes: Any) -> StoredPlugin:
        """Change columns of an installed plugin; ``updated_at`` is set to now.

        :raises PluginNotFound: when it is not installed.
        :raises InvalidRecord: for unknown column names or an unknown state.
        """
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown:
            raise InvalidRecord(
                f"cannot update {', '.join(unknown)}; updatable fields: "
                + ", ".join(sorted(_UPDATABLE))
            )
        if "state" in changes:
            changes["state"] = check_state(changes["state"])
        with self._tx() as s:
            row = self._plugin_row(s, plugin_id)
            for key, value in changes.items():
                setattr(row, key, dict(value) if isinstance(value, Mapping) else value)
            row.updated_at = self._now()
            s.flush()
            if "manifest" in changes:
                self._set_requirements(s, plugin_id, row.manifest)
            self._record_change(s, "plugin", plugin_id, *_plugin_change(changes))
            return to_record(StoredPlugin, row)

    def set_state(
        self,
        plugin_id: str,
        state: str,
        *,
        failure_reason: str | None = None,
        failure_phase: str | None = None,
    ) -> StoredPlugin:
        """Record the plugin's lifecycle state; the failure reason/phase are kept only for
        ``failed`` and ``needs-config`` (what to set) and cleared otherwise. Transition rules
        are the host's job, not checked here."""
        state = check_state(state)
        failed = state in (State.FAILED.value, State.NEEDS_CONFIG.value)
        return self.update_plugin(
            plugin_id,
            state=state,
            failure_reason=failure_reason if failed else None,
            failure_phase=failure_phase if failed else None,
        )

    def set_enabled(self, plugin_id: str, enabled: bool) -> StoredPlugin:
        """Persist the enabled flag (a disabled plugin is not loaded at start)."""
        return self.update_plugin(plugin_id, enabled=enabled)

    def set_current_version(self, plugin_id: str, version: str) -> StoredPlugin:
        """Make a kept version the plugin's current one (after update or for rollback):
        copies its manifest-derived columns, checksum, object key and source."""
        with self._tx() as s:
            row = self._plugin_row(s, plugin_id)
            ver = self._version_row(s, plugin_id, version)
            fresh = StoredPlugin.from_manifest(
                ver.manifest,
                checksum=ver.checksum,
                object_key=ver.object_key,
                source=ver.source,
                source_uri=ver.source_uri,
            )
            for name in ("name", "description", "author", "type", "runtime", "entry_point",
                         "config_schema", "default_config", "icon", "repository",
                         "documentation", "checksum", "source", "source_uri", "object_key",
                         "manifest"):
                setattr(row, name, getattr(fresh, name))
            row.version = ver.version
            row.updated_at = self._now()
            s.flush()
            self._set_requirements(s, plugin_id, row.manifest)
            self._record_change(s, "plugin", plugin_id, "update", {"version": ver.version})
            return to_record(StoredPlugin, row)

    def delete_plugin(self, plugin_id: str) -> bool:
        """Delete the plugin and, by cascade, its versions, config, history, grants and
        permission requests. Audit events and operations stay. Returns False if absent."""
        with self._tx() as s:
            row = s.get(PluginRow, plugin_id)
            if row is None:
                return False
            s.delete(row)
            s.flush()
            self._record_change(s, "plugin", plugin_id, "uninstall")
            return True

    # -- versions --------------------------------------------------------------------------

    def add_version(self, version: StoredVersion) -> StoredVersion:
        """Record a kept version of an installed plugin.

        :raises PluginNotFound: when the plugin row does not exist (add it first).
        :raises RecordExists: when that version is already recorded.
        """
        with self._tx() as s:
            self._plugin_row(s, version.plugin_id)
            if self._find_version(s, version.plugin_id, version.version) is not None:
                raise RecordExists(
                    f"version {version.version} of {version.plugin_id!r} is already installed",
                    plugin_id=version.plugin_id,
                )
            values = {f.name: getattr(version, f.name) for f in fields(StoredVersion)}
            values.pop("id")
            values["manifest"] = dict(version.manifest)
            values["installed_at"] = version.installed_at or self._now()
            row = PluginVersionRow(**values)
            s.add(row)
            self._flush(
                s, f"version {version.version} of {version.plugin_id!r} is already installed",
                version.plugin_id,
            )
            self._record_change(s, "version", version.plugin_id, "add",
                                {"version": version.version})
            return to_record(StoredVersion, row)

    def replace_version(self, version: StoredVersion) -> tuple[StoredVersion, StoredVersion]:
        """Put another package in place of a kept version (a forced reinstall of the same
        version): its blob, files, manifest and provenance; returns ``(old, new)``.

        :raises RecordNotFound: when that version is not kept.
        """
        with self._tx() as s:
            row = self._version_row(s, version.plugin_id, version.version)
            old = to_record(StoredVersion, row)
            for f in fields(StoredVersion):
                if f.name in ("id", "plugin_id", "version", "installed_at"):
                    continue
                value = getattr(version, f.name)
                setattr(row, f.name, dict(value) if isinstance(value, Mapping) else value)
            row.installed_at = version.installed_at or self._now()
            s.flush()
            self._record_change(s, "version", version.plugin_id, "replace",
                                {"version": version.version})
            return old, to_record(StoredVersion, row)

    def get_version(self, plugin_id: str, version: str) -> StoredVersion | None:
        """One kept version, or ``None``."""
        with self._tx(write=False) as s:
            row = self._find_version(s, plugin_id, version)
            return None if row is None else to_record(StoredVersion, row)

    def list_versions(self, plugin_id: str) -> list[StoredVersion]:
        """Kept versions of a plugin, most recently installed first."""
        with self._tx(write=False) as s:
            return read_records(s, StoredVersion, _VERSIONS_OF, {"plugin_id": plugin_id})

    def set_version_cache_path(
        self, plugin_id: str, version: str, cache_path: str | None
    ) -> StoredVersion:
        """Record where a version is unpacked (or ``None`` once the cache is gone)."""
        with self._tx() as s:
            row = self._version_row(s, plugin_id, version)
            row.cache_path = cache_path
            s.flush()
            self._record_change(s, "version", plugin_id, "cache", {"version": version})
            return to_record(StoredVersion, row)

    def delete_version(self, plugin_id: str, version: str) -> bool:
        """Forget one kept version (not the current one). Returns False if it was not there.

        :raises OperationRefused: for the plugin's current version.
        """
        with self._tx() as s:
            plugin = s.get(PluginRow, plugin_id)
            if plugin is not None and plugin.version == version:
                raise OperationRefused(
                    f"{version} is the current version of {plugin_id!r}; roll back or update "
                    "to another version first",
                    plugin_id=plugin_id,
                )
            row = self._find_version(s, plugin_id, version)
            if row is None:
                return False
            s.delete(row)
            s.flush()
            self._record_change(s, "version", plugin_id, "delete", {"version": version})
            return True

    def prune_versions(
        self, plugin_id: str, keep: int = 3, *, protect: Iterable[str] = ()
    ) -> list[StoredVersion]:
        """Forget all but the ``keep`` most recently installed versions and return the removed
        ones (the caller deletes their blobs and cache directories). The current version and
        those in ``protect`` are always kept and count towards ``keep``."""
        if keep < 1:
            raise InvalidRecord(f"keep must be at least 1 (the current version), got {keep}")
        with self._tx() as s:
            plugin = self._plugin_row(s, plugin_id)
            rows = list(
                s.scalars(
                    select(PluginVersionRow)
                    .where(PluginVersionRow.plugin_id == plugin_id)
                    .order_by(PluginVersionRow.installed_at.desc(), PluginVersionRow.id.desc())
                )
            )
            kept = {plugin.version, *protect}
            for row in rows:
                if len(kept) >= keep:
                    break
                kept.add(row.version)
            removed = [row for row in rows if row.version not in kept]
            records = [to_record(StoredVersion, r) for r in removed]
            for row in removed:
                s.delete(row)
            s.flush()
            for record in records:
                self._record_change(s, "version", plugin_id, "delete",
                                    {"version": record.version})
            return records

    # -- configuration ---------------------------------------------------------------------

    def get_config(self, plugin_id: str) -> StoredConfig | None:
        """The plugin's current configuration, or ``None`` if none was ever set."""
        with self._tx(write=False) as s:
            found = read_records(s, StoredConfig, _CONFIG_OF, {"plugin_id": plugin_id})
            return found[0] if found else None

    def set_config(
        self,
        plugin_id: str,
        config: Mapping[str, Any],
        *,
        changed_by: str = "",
        expected_revision: int | None = None,
    ) -> StoredConfig:
        """Replace the configuration (revision + 1) and append it to the history.

        :param expected_revision: the revision the caller read (0 = none yet); when given and
            different from the stored one, nothing changes and ConcurrentModification is raised.
        :raises PluginNotFound: when the plugin is not installed.
        """
        now = self._now()
        with self._tx() as s:
            self._plugin_row(s, plugin_id)
            row = s.get(PluginConfigRow, plugin_id, with_for_update=True)
            current = 0 if row is None else row.revision
            if expected_revision is not None and expected_revision != current:
                raise ConcurrentModification(
                    f"the configuration of {plugin_id!r} is at revision {current}, not "
                    f"{expected_revision}: someone changed it meanwhile; reload and retry",
                    plugin_id=plugin_id,
                    details={"current_revision": current, "expected_revision": expected_revision},
                )
            data = dict(config)
            if row is None:
                row = PluginConfigRow(plugin_id=plugin_id, config=data, revision=1,
                                      updated_by=changed_by, updated_at=now)
                s.add(row)
            else:
                row.config = data
                row.revision = current + 1
                row.updated_by = changed_by
                row.updated_at = now
            s.add(ConfigHistoryRow(plugin_id=plugin_id, revision=row.revision, config=data,
                                   changed_by=changed_by, changed_at=now))
            s.flush()
            self._record_change(s, "config", plugin_id, "set", {"revision": row.revision})
            return to_record(StoredConfig, row)

    def config_history(self, plugin_id: str, *, limit: int = 50) -> list[ConfigChange]:
        """Past configurations, newest first."""
        stmt = (
            select(ConfigHistoryRow)
            .where(ConfigHistoryRow.plugin_id == plugin_id)
            .order_by(ConfigHistoryRow.revision.desc())
            .limit(limit)
        )
        with self._tx(write=False) as s:
            return [to_record(ConfigChange, r) for r in s.scalars(stmt)]
