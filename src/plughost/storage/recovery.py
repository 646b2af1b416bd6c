"""Finding and closing operations whose process died (the storage half of crash safety).

An operation is recorded with :meth:`Repository.create_operation`, which stamps it with the
creating process's *owner id* (see :mod:`plughost.storage.locks`); it journals its side effects
in ``details`` (see docs/storage.md). If the process dies — ``kill -9``, a power cut — the
operation stays ``pending``/``running``, and the owner's lease is released by the kernel or the
database server. :func:`recover_operations` finds exactly those operations: unfinished *and*
owned by an owner whose lease is free, so an operation still running in another process (or in
this one) is never touched. Operations recorded before owners were (no ``owner``) count as dead
when their plugin's lock is free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from plughost.errors import LockTimeout, OperationRefused, PlughostError
from plughost.storage.records import Operation
from plughost.storage.repository import Repository

__all__ = ["INTERRUPTED", "RECOVERY_OUTCOMES", "recover_operations"]

log = logging.getLogger(__name__)

#: What a recovery handler may report: the operation's final status.
RECOVERY_OUTCOMES = ("failed", "succeeded", "cancelled")
#: The error code of an operation whose process died before it finished.
INTERRUPTED = "operation.interrupted"


def _owner_gone(repo: Repository, op: Operation) -> bool:
    return op.owner is None or not repo.owner_alive(op.owner)


def recover_operations(
    repo: Repository,
    handler: Callable[[Operation], str],
    *,
    kinds: tuple[str, ...] | None = None,
) -> list[Operation]:
    """Call ``handler(op)`` for each unfinished operation whose owner is gone; return them
    with their final status.

    ``handler`` repairs the stores using ``op.details`` and returns ``"failed"`` (rolled back),
    ``"succeeded"`` (rolled forward) or ``"cancelled"``; it runs while the operation's plugin
    lock is held (operations about no plugin need none). A ``failed`` operation gets the error
    ``operation.interrupted`` naming what happened, unless it already has an error. If the
    handler raises, the operation is marked ``failed`` with that error, and the remaining
    operations are still processed. Operations whose owner lives are skipped, and so are those
    whose plugin is locked by an operation running now (they are recovered at a later start).
    """
    finished: list[Operation] = []
    for op in reversed(repo.list_operations(unfinished=True, limit=10_000)):  # oldest first
        if kinds is not None and op.kind not in kinds:
            continue
        if not _owner_gone(repo, op):
            continue
        # An operation recorded before owners were (owner None) about no plugin cannot be
        # proved alive, and nothing running today records operations without an owner.
        try:
            if op.plugin_id is not None:
                with repo.lock_plugin(op.plugin_id, timeout=0):
                    done = _recover_one(repo, op, handler)
            else:
                done = _recover_one(repo, op, handler)
        except LockTimeout:
            log.debug("operation %s on %s waits: its plugin is locked by a running operation",
                      op.id, op.plugin_id)
            continue
        if done is not None:
            finished.append(done)
    return finished


def _recover_one(repo: Repository, op: Operation,
                 handler: Callable[[Operation], str]) -> Operation | None:
    current = repo.get_operation(op.id)
    if current is None or current.done:  # finished meanwhile (by its owner or another reaper)
        return None
    who = f"owner {op.owner}" if op.owner else "a plughost that did not record its owner"
    reason = (f"the process running this {op.kind} ({who}) stopped before it finished — "
              "killed, crashed or powered off. Start-up reconciliation brought storage back in "
              "step: the plugin is as it was before the operation or as it would be after it; "
              "check with `plughost list` and run the operation again if needed.")
    try:
        try:
            outcome = handler(current)
            if outcome not in RECOVERY_OUTCOMES:
                raise ValueError(f"recovery handler returned {outcome!r}; expected one of "
                                 + ", ".join(RECOVERY_OUTCOMES))
        except Exception as exc:
            log.exception("recovering operation %s (%s %s) failed", op.id, op.kind,
                          op.plugin_id)
            error: dict[str, Any] = (
                exc.to_dict() if isinstance(exc, PlughostError)
                else {"code": "recovery.failed", "message": str(exc)})
            return repo.update_operation(op.id, status="failed", error=error,
                                         message="recovery after a crash failed; see error")
        interrupted = None
        if outcome == "failed" and not current.error:
            interrupted = {"code": INTERRUPTED, "message": reason,
                           "details": {"owner": op.owner, "last_message": current.message}}
        final = repo.update_operation(op.id, status=outcome, error=interrupted,
                                      message=f"recovered after a crash: {outcome}"
                                      + (f" — {reason}" if outcome == "failed" else ""))
    except OperationRefused:
        return None  # another process recovered it first
    log.warning("operation %s (%s%s) was interrupted by the death of its process; marked %s",
                op.id, op.kind, f" {op.plugin_id}" if op.plugin_id else "", final.status)
    return final
