from __future__ import annotations

import asyncio
import logging

import pytest

from plughost.core.tasks import OwnerTasks


async def test_tasks_are_grouped_by_owner_and_cancelled_per_owner() -> None:
    tasks = OwnerTasks()
    a1 = tasks.spawn("a", asyncio.Event().wait(), name="a1")
    a2 = tasks.spawn("a", asyncio.Event().wait())
    b = tasks.spawn("b", asyncio.Event().wait())
    host = tasks.spawn(None, asyncio.Event().wait())
    assert set(tasks.of("a")) == {a1, a2} and tasks.of(None) == [host]
    assert len(tasks) == 4
    cancelled = tasks.cancel_owner("a")
    await asyncio.gather(*cancelled, return_exceptions=True)
    assert a1.cancelled() and a2.cancelled() and not b.done()
    assert tasks.of("a") == [] and tasks.owners() == ["", "b"]
    rest = tasks.cancel_all()
    await asyncio.gather(*rest, return_exceptions=True)
    assert len(tasks) == 0


async def test_finished_tasks_leave_and_failures_are_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    tasks = OwnerTasks()

    async def boom() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        t = tasks.spawn("p", boom(), name="exploding")
        await asyncio.gather(t, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert tasks.of("p") == []
    assert "exploding" in caplog.text and "boom" in caplog.text
