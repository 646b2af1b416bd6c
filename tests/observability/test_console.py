"""One logging setup: colours on a terminal, JSON elsewhere or when asked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from plughost.core.correlation import correlated
from plughost.observability.console import configure_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_pipe_gets_json_lines_with_the_correlation_id() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out, environ={})
    with correlated("req-1"):
        logging.getLogger("plughost.plugin.demo").warning("hot %s", "disk",
                                                          extra={"correlation_id": "req-1"})
    line = json.loads(out.getvalue())
    assert line["level"] == "WARNING" and line["logger"] == "plughost.plugin.demo"
    assert line["message"] == "hot disk" and line["correlation_id"] == "req-1"


def test_a_terminal_gets_coloured_readable_lines_unless_json_is_asked() -> None:
    tty = Terminal()
    configure_logging("info", stream=tty, environ={})
    logging.getLogger("plughost.server").error("listening failed")
    text = tty.getvalue()
    assert "\x1b[31m" in text and "ERROR" in text and "listening failed" in text
    assert not text.startswith("{")
    plain = Terminal()
    configure_logging("info", stream=plain, environ={"NO_COLOR": "1"})
    logging.getLogger("plughost.server").error("no colours")
    assert "\x1b[" not in plain.getvalue() and "no colours" in plain.getvalue()
    forced = Terminal()
    configure_logging("info", stream=forced, environ={"PLUGHOST_LOG_FORMAT": "json"})
    logging.getLogger("plughost.server").info("as json")
    assert json.loads(forced.getvalue())["message"] == "as json"


def test_an_unknown_format_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="auto, console, json"):
        configure_logging("info", fmt="xml", environ={})
