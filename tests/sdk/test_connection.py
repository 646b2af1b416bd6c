"""The Python runner's connection on real pipes, in this process: what one read turns into."""

from __future__ import annotations

import os
from typing import Any

import pytest

from plughost.core.wire import WRITE_BATCH, FrameDecoder, M, frame_message, request
from plughost.sdk import _connection
from plughost.sdk._connection import ChildConnection


def test_answers_to_one_big_read_go_back_in_writes_of_at_most_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[int] = []
    monkeypatch.setattr(
        _connection, "_write_all", lambda fd, data: writes.append(len(FrameDecoder().feed(data)))
    )
    r, w = os.pipe()
    try:
        conn = ChildConnection(r, -1)
        conn.handler = lambda method, params: params["args"]["n"]
        n = WRITE_BATCH + 8
        args: dict[str, Any] = {"target": "t"}
        os.write(w, b"".join(
            frame_message(request(i, M.CALL, {**args, "args": {"n": i}})) for i in range(n)
        ))
        assert conn.pump()
    finally:
        os.close(r)
        os.close(w)
    # The host starts on the first answers while the runner serves the rest.
    assert sum(writes) == n
    assert max(writes) <= WRITE_BATCH
