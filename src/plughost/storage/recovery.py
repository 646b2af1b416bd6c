"""Finding and closing operations whose process died (the storage half of crash safety).

An operation that changes several stores takes its plugin's lock, records itself with
:meth:`Repository.create_operation` and journals its side effects in ``details`` (see
docs/storage.md). If the process dies, the operation stays ``pending``/``running`` and its lock
is released by the kernel or the database server. :func:`recover_operations` finds exactly those
operations — unfinished *and* with a free lock, so an operation still running in another
process is never touched — and lets the caller undo or complete each one while holding the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from plughost.errors import LockTimeout, PlughostError
from plughost.storage.records import Operation
from plughost.storage.repository import Repository

__all__ = ["RECOVERY_OUTCOMES", "recover_operations"]

log = logging.getLogger(__name__)

#: What a recovery handler may report: the operation's final status.
RECOVERY_OUTCOMES = ("failed", "succeeded", "cancelled")


def recover_operations(
    repo: Repository,
    handler: Callable[[Operation], str],
    *,
    kinds: tuple[str, ...] | None = None,
) -> list[Operation]:
    """Call ``handler(op)`` for each unfinished operation whose owner is gone; return them
    with their final status.

    ``handler`` runs while the plugin's lock is held; it repairs the stores using
    ``op.details`` and returns ``"failed"`` (rolled back), ``"succeeded"`` (rolled forward) or
    ``"cancelled"``. If it raises, the operation is marked ``failed`` with the error, and the
    remaining operations are still processed. Operations without a plugin id are skipped (no
    lock proves their owner dead); so are those whose lock is held (still running elsewhere).
    """
    finished: list[Operation] = []
    for op in reversed(repo.list_operations(unfinished=True, limit=10_000)):  # oldest first
        if op.plugin_id is None or (kinds is not None and op.kind not in kinds):
            continue
        try:
            with repo.lock_plugin(op.plugin_id, timeout=0):
                current = repo.get_operation(op.id)
                if current is None or current.done:  # finished while we waited
                    continue
                try:
                    outcome = handler(current)
                    if outcome not in RECOVERY_OUTCOMES:
                        raise ValueError(
                            f"recovery handler returned {outcome!r}; expected one of "
                            + ", ".join(RECOVERY_OUTCOMES)
                        )
                    final = repo.update_operation(
                        op.id, status=outcome, message=f"recovered after a crash: {outcome}"
                    )
                except Exception as exc:
                    error = (exc.to_dict() if isinstance(exc, PlughostError)
                             else {"code": "recovery.failed", "message": str(exc)})
                    log.exception("recovering operation %s (%s %s) failed", op.id, op.kind,
                                  op.plugin_id)
                    final = repo.update_operation(
                        op.id, status="failed", error=error,
                        message="recovery after a crash failed; see error",
                    )
                finished.append(final)
        except LockTimeout:
            log.debug("operation %s on %s is still running elsewhere", op.id, op.plugin_id)
    return finished
