from __future__ import annotations

import logging

import pytest

from plughost.runtimes.process.output import OutputSink


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sink_and_records(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="plughost.plugin.flood")
    clock = Clock()
    sink = OutputSink(
        logging.getLogger("plughost.plugin.flood"), lines_per_second=100, clock=clock, max_line=50
    )
    return sink, clock, caplog


def test_lines_beyond_the_budget_are_dropped_and_summarised(sink_and_records) -> None:
    sink, clock, caplog = sink_and_records
    sink.feed(b"".join(b"line %d\n" % i for i in range(250)))
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"line {i}" for i in range(100)]
    clock.now = 1.5
    sink.feed(b"next window\n")
    messages = [r.getMessage() for r in caplog.records[100:]]
    assert messages[0].startswith("150 lines (")
    assert "dropped by the output limit (100 lines/s)" in messages[0]
    assert messages[1] == "next window"
    assert sink.dropped_lines == 150


def test_partial_lines_are_joined_and_long_lines_cut(sink_and_records) -> None:
    sink, _clock, caplog = sink_and_records
    sink.feed(b"hel")
    sink.feed(b"lo\n" + b"x" * 120)
    sink.close()
    logged = [r.getMessage() for r in caplog.records]
    assert logged[0] == "hello"
    assert logged[1] == "x" * 50
    assert all(len(m) <= 64 for m in logged[1:])
    assert sink.tail[0] == "hello"


def test_byte_budget_applies_when_set(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plughost.plugin.bytes")
    sink = OutputSink(
        logging.getLogger("plughost.plugin.bytes"),
        lines_per_second=1000,
        bytes_per_second=20,
        clock=Clock(),
    )
    sink.feed(b"0123456789\n0123456789\n0123456789\n")
    assert len(caplog.records) == 2
