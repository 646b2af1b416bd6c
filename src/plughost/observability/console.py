"""One logging setup for the CLI, the server and plugin development: readable or JSON.

:func:`configure_logging` puts one handler on the root logger. On a terminal it prints a human
line with colours (time, level, logger, message, then ``key=value`` context such as the
plugin's correlation id); anywhere else — a pipe, a file, a log shipper — one JSON object per
line. ``fmt="json"`` or ``fmt="console"`` (or ``$PLUGHOST_LOG_FORMAT``) overrides the choice::

    configure_logging("info")                       # auto: colours on a tty, JSON otherwise
    configure_logging("debug", fmt="json")          # always JSON
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["FORMATS", "ConsoleFormatter", "JsonFormatter", "configure_logging"]

#: Accepted values of ``fmt`` / ``$PLUGHOST_LOG_FORMAT``.
FORMATS = ("auto", "console", "json")
#: Records from this logger are already JSON (the access log) and pass through unchanged.
ACCESS_LOGGER = "plughost.access"
_CONTEXT = ("correlation_id", "plugin_id", "request_id")
_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[36m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ context, exception)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == ACCESS_LOGGER:
            return message
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """``14:03:07.412 WARNING plughost.plugin.demo  message  correlation_id=…`` with colours."""

    def __init__(self, *, colour: bool = True) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        level = f"{record.levelname:<8}"
        name = record.name
        if self.colour:
            level = f"{_COLOURS.get(record.levelno, '')}{level}{_RESET}"
            name = f"\x1b[2m{name}{_RESET}"
        text = f"{when} {level} {name}  {record.getMessage()}"
        context = [f"{k}={getattr(record, k)}" for k in _CONTEXT
                   if getattr(record, k, None) is not None]
        if context:
            extra = "  " + " ".join(context)
            text += f"\x1b[2m{extra}{_RESET}" if self.colour else extra
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _wants_json(fmt: str, stream: IO[str]) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(level: str | int = "info", *, fmt: str | None = None,
                      stream: IO[str] | None = None,
                      environ: dict[str, str] | None = None) -> logging.Handler:
    """Install the one root handler (replacing any) and return it.

    :param level: the root level (``debug``, ``info``, ``warning``, ``error``).
    :param fmt: ``auto`` (default; ``$PLUGHOST_LOG_FORMAT`` when set), ``console`` or ``json``.
    :param stream: default ``sys.stderr``.
    :raises ValueError: for an unknown ``fmt``, naming the accepted ones.
    """
    env = os.environ if environ is None else environ
    fmt = (fmt or env.get("PLUGHOST_LOG_FORMAT") or "auto").strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(FORMATS)}")
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if _wants_json(fmt, stream):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ConsoleFormatter(colour="NO_COLOR" not in env))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
