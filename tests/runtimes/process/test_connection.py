"""The host's end of a session, driven in memory: what goes out per write, what one read does."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from plughost.core.wire import (
    WRITE_BATCH,
    FrameDecoder,
    M,
    decode_message,
    frame_message,
    response,
)
from plughost.runtimes.process.connection import Session
from plughost.runtimes.process.output import OutputSink


class _Recorder:
    """Stands in for the child's stdin: every write, as the frames it held."""

    def __init__(self) -> None:
        self.writes: list[list[dict[str, Any]]] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.writes.append([decode_message(b) for b in FrameDecoder().feed(data)])


def _session() -> tuple[Session, _Recorder]:
    session = Session(
        "p", handler=lambda m, p: None, sink=OutputSink(logging.getLogger("t")), limits={}
    )
    stdin = _Recorder()
    session._stdin = stdin
    return session, stdin


async def test_callers_answered_by_one_read_send_their_next_requests_in_one_write() -> None:
    session, stdin = _session()
    answered: list[Any] = []

    async def caller(n: int) -> None:
        answered.append(await session.request(M.CALL, {"target": "t", "args": {"n": n}}, 5))
        await session.request(M.CALL, {"target": "t", "args": {"n": n + 10}}, 5)

    callers = [asyncio.ensure_future(caller(n)) for n in range(3)]
    for _ in range(3):
        await asyncio.sleep(0)
    first = [m["id"] for batch in stdin.writes for m in batch]
    assert len(first) == 3
    stdin.writes.clear()
    # One read holds all three answers: the callers resume together, and the requests they
    # make next go out in one write, not the first alone (nothing was in flight) and the rest.
    session._on_stdout(b"".join(frame_message(response(rid, rid)) for rid in first))
    for _ in range(3):
        await asyncio.sleep(0)
    assert sorted(answered) == first
    assert [[m["params"]["args"]["n"] for m in batch] for batch in stdin.writes] == [[10, 11, 12]]
    session._on_stdout(
        b"".join(frame_message(response(m["id"], None)) for m in stdin.writes[0])
    )
    await asyncio.gather(*callers)
    assert not session._pending


async def test_more_requests_in_one_turn_than_a_batch_go_out_in_writes_of_a_batch() -> None:
    session, stdin = _session()
    n = WRITE_BATCH + 5
    calls = [asyncio.ensure_future(session.request(M.HEALTH, {}, 5)) for _ in range(n)]
    for _ in range(2):  # the callers' turn, then the end-of-turn flush
        await asyncio.sleep(0)
    sizes = [len(batch) for batch in stdin.writes]
    assert sum(sizes) == n
    assert max(sizes) <= WRITE_BATCH  # the child starts on a batch while the rest are made
    session._on_stdout(
        b"".join(frame_message(response(m["id"], None)) for b in stdin.writes for m in b)
    )
    await asyncio.gather(*calls)


async def test_a_lone_request_is_written_at_once() -> None:
    session, stdin = _session()
    call = asyncio.ensure_future(session.request(M.HEALTH, {}, 5))
    await asyncio.sleep(0)
    assert [[m["method"] for m in batch] for batch in stdin.writes] == [[M.HEALTH]]
    session._on_stdout(frame_message(response(stdin.writes[0][0]["id"], {"ok": True})))
    assert await call == {"ok": True}
