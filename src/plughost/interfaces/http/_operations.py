"""Long operations run in the background (``?async=true``): recorded, observable, awaited.

An operation is a row in the repository's operations table (id, kind, status, progress,
message, error). :class:`OperationRunner` starts the work as an asyncio task, reports the
service's progress callbacks (called from worker threads) to the row and to the event stream,
and records the result or the error. At shutdown :meth:`OperationRunner.drain` waits, bounded,
for operations still running, so an accepted install is finished rather than cut in half.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from plughost.errors import PlughostError
from plughost.interfaces.http._events import EventBroker
from plughost.services.resources import iso

__all__ = ["OperationRunner", "Progress", "operation_dict"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, "int | None"], None]
#: Where each stage of an install/update sits on the 0..1 progress bar.
_STAGES: dict[str, tuple[float, float]] = {
    "download": (0.0, 0.5),
    "verify": (0.5, 0.6),
    "extract": (0.6, 0.8),
    "store": (0.8, 0.95),
}


def operation_dict(op: Any) -> dict[str, Any]:
    """The JSON shape of an operation record."""
    details = dict(op.details or {})
    return {
        "id": op.id, "kind": op.kind, "plugin_id": op.plugin_id, "status": op.status,
        "progress": round(op.progress, 4), "message": op.message,
        "error": dict(op.error) if op.error else None, "actor": op.actor,
        "result": details.get("result"),
        # ISO 8601 UTC like every time the API and the CLI print
        "created_at": iso(op.created_at), "updated_at": iso(op.updated_at),
        "started_at": iso(op.started_at), "finished_at": iso(op.finished_at),
    }


class OperationRunner:
    """Runs background operations for the API (see the module doc)."""

    def __init__(self, repository: Any, broker: EventBroker,
                 on_finished: Callable[[], None] | None = None) -> None:
        self.repository = repository
        self.broker = broker
        self._on_finished = on_finished
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """How many operations are still running."""
        return len(self._tasks)

    async def start(
        self,
        kind: str,
        work: Callable[[Progress], Awaitable[Any]],
        *,
        plugin_id: str | None = None,
        actor: str = "",
        message: str = "",
    ) -> dict[str, Any]:
        """Record a pending operation and run ``work(progress)`` in the background.

        ``work`` returns an object with ``to_dict()`` (or a dict): stored as the result.
        Returns the operation as :func:`operation_dict` shapes it.
        """
        op = await asyncio.to_thread(
            self.repository.create_operation, kind, plugin_id=plugin_id, actor=actor,
            message=message)
        self._publish(op)
        task = asyncio.create_task(self._run(op.id, work), name=f"plughost-op-{op.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return operation_dict(op)

    async def _run(self, op_id: str, work: Callable[[Progress], Awaitable[Any]]) -> None:
        repo = self.repository
        last: dict[str, Any] = {"stage": "", "progress": 0.0}
        lock = threading.Lock()

        def progress(stage: str, done: int, total: int | None) -> None:
            low, high = _STAGES.get(stage, (0.0, 0.95))
            fraction = low + (high - low) * (min(done / total, 1.0) if total else 0.0)
            with lock:  # write only on a new stage or a visible step, not every chunk
                if stage == last["stage"] and fraction - last["progress"] < 0.05:
                    return
                last["stage"], last["progress"] = stage, fraction
            try:
                op = repo.update_operation(
                    op_id, progress=round(fraction, 4),
                    message=f"{stage}: {done} of {total} bytes" if total else f"{stage}: {done}")
            except PlughostError:
                log.warning("could not record the progress of operation %s", op_id, exc_info=True)
                return
            self._publish(op)

        try:
            op = await asyncio.to_thread(repo.update_operation, op_id, status="running")
            self._publish(op)
            result = await work(progress)
            data = result.to_dict() if hasattr(result, "to_dict") else result
            op = await asyncio.to_thread(
                repo.update_operation, op_id, status="succeeded", message="done",
                details={"result": data})
        except PlughostError as exc:
            op = await asyncio.to_thread(
                repo.update_operation, op_id, status="failed", message=exc.message,
                error=exc.to_dict())
        except asyncio.CancelledError:
            await asyncio.to_thread(
                repo.update_operation, op_id, status="cancelled",
                message="the server stopped before the operation finished")
            raise
        except Exception as exc:
            log.exception("operation %s failed unexpectedly", op_id)
            op = await asyncio.to_thread(
                repo.update_operation, op_id, status="failed",
                message=f"unexpected {type(exc).__name__}; see the server log",
                error={"code": "server.error", "message": str(exc)})
        if self._on_finished is not None:
            self._on_finished()
        self._publish(op)

    def _publish(self, op: Any) -> None:
        self.broker.publish("operation", operation_dict(op))

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for running operations; cancel what is left."""
        if not self._tasks:
            return
        tasks = set(self._tasks)
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
