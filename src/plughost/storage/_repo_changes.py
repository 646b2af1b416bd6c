"""Repository part: the change log — every state-changing write, numbered, in its transaction.

Each repository method that changes installed state (a plugin row, its versions, config,
grants, permission requests, API tokens, trusted keys, alert rules) calls
:meth:`ChangeLog._record_change` with the session it writes through. The change is held on the
session and written when the transaction is about to commit (:meth:`ChangeLog._write_changes`,
called by ``_tx`` and ``unit_of_work``), so a change row exists exactly when the change
committed: a rolled-back operation leaves none.

**Ordering.** Sequence numbers come from the one ``change_sequence`` row, updated (and so
row-locked on PostgreSQL and MariaDB; SQLite writers are serialised already) immediately
before commit. The lock is held until commit, so numbers are gap-free and become visible in
increasing order: a reader that has seen ``n`` never later finds a committed row below ``n``.
Taking it last means its holder waits for nothing else, so it adds no deadlock.

**Catching up.** A node keeps the last sequence number it applied and reads
:meth:`ChangeLog.changes_since`. A change names *what* changed (``kind``, ``key``, ``action``),
not the new values: applying one means re-reading that entity's current state, which is
idempotent and makes replaying a change harmless. Coalesce by ``(kind, key)`` when a batch is
long. A node whose position was pruned away (:class:`~plughost.errors.ChangesPruned`) reloads
everything and continues from :meth:`ChangeLog.last_change_seq`.

Not recorded: audit events, operations, logs and alert history (append-only journals of their
own) and an API token's ``last_used_at`` (a touch, not a change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from sqlalchemy import delete, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from plughost.errors import ChangesPruned, InvalidRecord
from plughost.storage._repo_base import RepositoryBase
from plughost.storage.models import ChangeRow, ChangeSequenceRow
from plughost.storage.records import Change

__all__ = ["ChangeLog"]

log = logging.getLogger(__name__)

_PENDING = "plughost_changes"
_COMMITTING = "plughost_committing_seq"
#: The id of the one ``change_sequence`` row.
SEQ_ROW_ID: Final = 1
#: The most changes one changes_since call returns.
MAX_CHANGES_PAGE: Final = 10_000


class ChangeLog(RepositoryBase):
    """Write and read the change log (see the module doc)."""

    #: Written into each change's ``origin`` (e.g. a cluster node id); ``None`` by default.
    origin: str | None = None
    _seq_row_seen: bool = False

    def _record_change(self, s: Session, kind: str, key: str, action: str,
                       details: Mapping[str, Any] | None = None) -> None:
        """Note a change made through ``s``; it is written just before ``s`` commits."""
        entry = (kind, key, action, dict(details or {}))
        pending: list[tuple[str, str, str, dict[str, Any]]] = s.info.setdefault(_PENDING, [])
        if not pending or pending[-1] != entry:  # the same change twice in a row is one change
            pending.append(entry)

    def _write_changes(self, s: Session) -> None:
        """Number and insert the changes noted on ``s`` (call last before commit)."""
        pending = s.info.pop(_PENDING, None)
        if not pending:
            return
        s.flush()  # the changes themselves first: the sequence lock is the last one taken
        last = self._claim_seqs(s, len(pending))
        first = last - len(pending) + 1
        now = self._now()
        s.add_all(
            ChangeRow(seq=first + i, at=now, kind=kind, key=key, action=action,
                      details=details, origin=self.origin)
            for i, (kind, key, action, details) in enumerate(pending)
        )
        s.flush()
        s.info[_COMMITTING] = last

    def _committed(self, s: Session) -> None:
        """Tell the :meth:`on_commit` listeners the sequence number just committed."""
        last = s.info.pop(_COMMITTING, None)
        if last is None:
            return
        for listener in list(self._commit_listeners):
            try:
                listener(int(last))
            except Exception:
                log.exception("a change-log commit listener failed")

    @property
    def _commit_listeners(self) -> list[Callable[[int], None]]:
        listeners: list[Callable[[int], None]] | None = self.__dict__.get("_on_commit")
        if listeners is None:
            listeners = self.__dict__.setdefault("_on_commit", [])
        return listeners

    def on_commit(self, listener: Callable[[int], None], *, remove: bool = False) -> None:
        """Call ``listener(seq)`` (in the committing thread) each time a transaction of this
        repository commits changes, with the last sequence number it wrote — how a cluster
        node learns it should announce a change. ``remove=True`` takes it off again."""
        if remove:
            if listener in self._commit_listeners:
                self._commit_listeners.remove(listener)
        else:
            self._commit_listeners.append(listener)

    def _claim_seqs(self, s: Session, count: int) -> int:
        """Advance the sequence by ``count`` under its row lock; returns the new last number."""
        # Make sure the row exists before locking it (once per repository, on servers):
        # creating it after a failed UPDATE would wait on that UPDATE's own gap lock on
        # MariaDB, while a plain read takes no lock.
        if not self._seq_row_seen and not self.database.is_sqlite and s.scalar(
            select(ChangeSequenceRow.id).where(ChangeSequenceRow.id == SEQ_ROW_ID)
        ) is None:
            try:  # in a transaction of its own: a writer that loses the race goes on
                with self.database.transaction() as own:
                    own.add(ChangeSequenceRow(id=SEQ_ROW_ID, last_seq=self._log_end(own),
                                              pruned_through=0))
            except sa_exc.IntegrityError:
                pass  # another writer created it
        bump = (update(ChangeSequenceRow).where(ChangeSequenceRow.id == SEQ_ROW_ID)
                .values(last_seq=ChangeSequenceRow.last_seq + count)
                .execution_options(synchronize_session=False))
        if s.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
            # The row is missing (a database whose rows were all deleted): recreate it past
            # the log in this transaction (on SQLite writers are serialised, so no one races).
            s.add(ChangeSequenceRow(id=SEQ_ROW_ID, last_seq=self._log_end(s) + count,
                                    pruned_through=0))
            s.flush()
        self._seq_row_seen = True
        return int(s.scalar(select(ChangeSequenceRow.last_seq)
                            .where(ChangeSequenceRow.id == SEQ_ROW_ID)) or 0)

    @staticmethod
    def _log_end(s: Session) -> int:
        return int(s.scalar(select(func.coalesce(func.max(ChangeRow.seq), 0))) or 0)

    # -- reading ---------------------------------------------------------------------------

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Changes with a sequence number above ``seq``, oldest first, at most ``limit``
        (1..10,000). Continue from the last one's ``seq``; an empty list means caught up.

        :raises ChangesPruned: when changes after ``seq`` were pruned: reload everything and
            continue from :meth:`last_change_seq`.
        :raises InvalidRecord: for a negative ``seq`` or a ``limit`` out of range.
        """
        if seq < 0 or not 1 <= limit <= MAX_CHANGES_PAGE:
            raise InvalidRecord(
                f"changes_since needs seq >= 0 and 1 <= limit <= {MAX_CHANGES_PAGE}, got "
                f"seq={seq}, limit={limit}"
            )
        with self._tx(write=False) as s:
            pruned = s.scalar(select(ChangeSequenceRow.pruned_through)
                              .where(ChangeSequenceRow.id == SEQ_ROW_ID)) or 0
            if seq < pruned:
                raise ChangesPruned(
                    f"the change log was pruned through {pruned}, after {seq}: reload the whole "
                    "state, then continue from the last change sequence number",
                    details={"since": seq, "pruned_through": int(pruned)},
                )
            rows = s.scalars(select(ChangeRow).where(ChangeRow.seq > seq)
                             .order_by(ChangeRow.seq).limit(limit))
            return [Change(seq=r.seq, at=r.at, kind=r.kind, key=r.key, action=r.action,
                           details=dict(r.details or {}), origin=r.origin) for r in rows]

    def last_change_seq(self) -> int:
        """The sequence number of the newest committed change (0 before the first)."""
        with self._tx(write=False) as s:
            last = s.scalar(select(ChangeSequenceRow.last_seq)
                            .where(ChangeSequenceRow.id == SEQ_ROW_ID))
            if last is None:
                last = s.scalar(select(func.max(ChangeRow.seq)))
            return int(last or 0)

    def prune_changes(self, through: int) -> int:
        """Delete changes numbered ``through`` and below (readers behind it get
        :class:`ChangesPruned`). Returns how many rows went."""
        with self._tx() as s:
            last = self._claim_seqs(s, 0)
            through = min(through, last)
            s.execute(update(ChangeSequenceRow).where(ChangeSequenceRow.id == SEQ_ROW_ID)
                      .where(ChangeSequenceRow.pruned_through < through)
                      .values(pruned_through=through)
                      .execution_options(synchronize_session=False))
            result = s.execute(delete(ChangeRow).where(ChangeRow.seq <= through))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
