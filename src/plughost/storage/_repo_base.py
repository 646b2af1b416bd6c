"""Shared plumbing of the repository: the transaction helper, row lookups, record conversion.

Split from :mod:`plughost.storage.repository` so each group of tables has its own module;
only :class:`~plughost.storage.repository.Repository` is public.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from plughost.errors import PluginNotFound, RecordExists, RecordNotFound
from plughost.storage.db import Database
from plughost.storage.models import PluginRow, PluginVersionRow

R = TypeVar("R")


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def to_record(cls: type[R], row: Any, **extra: Any) -> R:
    """Copy the ORM row's attributes named like ``cls``'s fields into a new record."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = {n: getattr(row, n) for n in names if n not in extra and hasattr(row, n)}
    return cls(**values, **extra)


def record_columns(cls: type[Any], model: type[Any]) -> Select[Any]:
    """A select of ``model``'s columns named like ``cls``'s fields (what :func:`to_record`
    copies), for :func:`read_records`."""
    table = model.__table__
    return select(*(table.c[f.name] for f in fields(cls) if f.name in table.c))


def read_records(s: Session, cls: type[R], stmt: Select[Any],
                 params: Mapping[str, Any]) -> list[R]:
    """``stmt`` (a :func:`record_columns` select) as records of ``cls``, run on the session's
    connection without the ORM: loading objects into the session and copying them out costs
    several times the query on a small read (a plugin's detail makes four). Changes pending
    in the session are flushed first, as an ORM query would."""
    if s.new or s.dirty or s.deleted:
        s.flush()
    return [cls(**row._mapping) for row in s.connection().execute(stmt, params)]


class RepositoryBase:
    """Attributes and helpers every part of the repository uses."""

    database: Database
    _now: Callable[[], datetime]
    _current: ContextVar[Session | None]

    @property
    def owner_id(self) -> str:
        """The owner id of this repository's process (see :class:`Repository`)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Session]:
        # Join the caller's unit of work if there is one, else run in a transaction of our own.
        session = self._current.get()
        if session is not None:
            yield session
            return
        with self.database.transaction(write=write) as session:
            yield session
            self._write_changes(session)
        self._committed(session)

    def _write_changes(self, s: Session) -> None:
        """Called last before a transaction of the repository commits (the change log's
        hook, see :mod:`plughost.storage._repo_changes`)."""

    def _committed(self, s: Session) -> None:
        """Called once a transaction of the repository committed (the change log's hook:
        tells :meth:`ChangeLog.on_commit` listeners)."""

    @staticmethod
    def _not_found(plugin_id: str) -> PluginNotFound:
        return PluginNotFound(
            f"plugin {plugin_id!r} is not installed; `plughost list` shows installed plugins",
            plugin_id=plugin_id,
        )

    def _plugin_row(self, s: Session, plugin_id: str) -> PluginRow:
        row = s.get(PluginRow, plugin_id)
        if row is None:
            raise self._not_found(plugin_id)
        return row

    @staticmethod
    def _find_version(s: Session, plugin_id: str, version: str) -> PluginVersionRow | None:
        return s.scalars(
            select(PluginVersionRow).where(PluginVersionRow.plugin_id == plugin_id,
                                           PluginVersionRow.version == version)
        ).first()

    def _version_row(self, s: Session, plugin_id: str, version: str) -> PluginVersionRow:
        row = self._find_version(s, plugin_id, version)
        if row is None:
            raise RecordNotFound(
                f"version {version} of {plugin_id!r} is not kept; `plughost versions "
                f"{plugin_id}` lists the kept ones",
                plugin_id=plugin_id,
            )
        return row

    @staticmethod
    def _flush(s: Session, exists_message: str, plugin_id: str | None) -> None:
        # The pre-checks above see committed rows; a concurrent writer can still win the race
        # between check and insert, which the unique constraint reports here.
        try:
            s.flush()
        except sa_exc.IntegrityError as exc:
            raise RecordExists(exists_message, plugin_id=plugin_id) from exc
