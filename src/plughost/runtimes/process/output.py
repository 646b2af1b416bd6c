"""A plugin's stderr, captured line by line into its logger, rate-limited.

A plugin that floods its output must not flood the host's logs or CPU: within each one-second
window at most ``lines_per_second`` lines (and ``bytes_per_second`` bytes, when set) are logged;
the rest are counted and summarised as ``"N lines (M bytes) dropped by the output limit"`` when
the next window opens. Over-long lines are cut at ``max_line`` bytes.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

__all__ = ["OutputSink"]


class OutputSink:
    """Split a byte stream into lines and log them under a per-second budget."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        lines_per_second: int = 100,
        bytes_per_second: int | None = None,
        max_line: int = 8192,
        tail: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.lines_per_second = lines_per_second
        self.bytes_per_second = bytes_per_second
        self.max_line = max_line
        self._clock = clock
        self._partial = bytearray()
        self._window = -1.0
        self._lines = 0
        self._bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self._pending_lines = 0
        self._pending_bytes = 0
        self.tail: deque[str] = deque(maxlen=tail)
        """The last lines seen (logged or not): attached to crash reports."""
        self.correlation: str | None = None
        """The correlation id of the call in flight, attached to the lines logged meanwhile."""

    def feed(self, data: bytes) -> None:
        """Consume a chunk of stderr."""
        buf = self._partial
        buf += data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            self._line(bytes(buf[start:nl]))
            start = nl + 1
        if start:
            del buf[:start]
        if len(buf) > self.max_line:  # a "line" with no end: emit it in pieces
            self._line(bytes(buf[: self.max_line]))
            del buf[: self.max_line]

    def close(self) -> None:
        """End of stream: emit the unterminated last line and any drop summary."""
        if self._partial:
            self._line(bytes(self._partial))
            self._partial.clear()
        self._summarise()

    def log(self, level: int, text: str) -> None:
        """Log a message that arrived another way (``host.log``) under the same budget."""
        if self._admit(len(text)):
            self.logger.log(level, "%s", text, extra={"correlation_id": self.correlation})

    def _line(self, raw: bytes) -> None:
        if len(raw) > self.max_line:
            raw = raw[: self.max_line] + b"... [line cut]"
        text = raw.rstrip(b"\r").decode("utf-8", "replace")
        self.tail.append(text)
        if self._admit(len(raw)):
            self.logger.info("%s", text, extra={"correlation_id": self.correlation})

    def _admit(self, size: int) -> bool:
        now = self._clock()
        if now - self._window >= 1.0:
            self._summarise()
            self._window = now
            self._lines = self._bytes = 0
        if self._lines >= self.lines_per_second or (
            self.bytes_per_second is not None and self._bytes + size > self.bytes_per_second
        ):
            self._pending_lines += 1
            self._pending_bytes += size
            self.dropped_lines += 1
            self.dropped_bytes += size
            return False
        self._lines += 1
        self._bytes += size
        return True

    def _summarise(self) -> None:
        if self._pending_lines:
            self.logger.warning(
                "%d lines (%d bytes) dropped by the output limit (%d lines/s)",
                self._pending_lines,
                self._pending_bytes,
                self.lines_per_second,
            )
            self._pending_lines = self._pending_bytes = 0
