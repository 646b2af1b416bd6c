"""Per-plugin logs: capture, a bounded in-memory ring, a persistent store, query and live tail.

Every plugin logs through ``plughost.plugin.<id>``: an in-process plugin's ``ctx.logger``, a
process plugin's stderr lines and ``host.log`` calls (rate-limited by its output sink), a
WebAssembly plugin's ``host.log``. :class:`LogHub` hangs one handler on ``plughost.plugin`` and
turns each record into a :class:`LogEntry` with the plugin id, level, time and the correlation id
of the call that produced it (:mod:`plughost.core.correlation`)::

    hub = LogHub(store=repository)          # anything with append_logs/query_logs/prune_logs
    undo = hub.install()                   # capture starts
    hub.start()                            # the writer thread persists batches
    hub.recent(LogFilter(plugin_id="notify-slack", min_level="warning"))
    async for item in hub.tail(LogFilter(grep="timeout")): ...
    hub.close(); undo()

Capturing never blocks the plugin that logs: a record costs a ring append and a queue append
under a short lock. What cannot keep up is dropped and counted, never waited for: each plugin
may queue ``persist_rate`` lines a second for the store (the ring keeps everything, bounded),
the queue holds at most ``queue_size`` lines, and a slow live tail loses its oldest lines and is
told how many. :meth:`LogHub.stats` reports every such figure; so do ``GET /api/v1/logs/stats``
and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from plughost.core.correlation import correlation_id
from plughost.errors import RequestInvalid

__all__ = [
    "LEVELS",
    "PLUGIN_LOGGER",
    "LogEntry",
    "LogFilter",
    "LogHub",
    "LogStore",
    "level_number",
    "parse_since",
]

log = logging.getLogger(__name__)

#: The parent logger of every plugin's logger (``plughost.plugin.<id>``).
PLUGIN_LOGGER = "plughost.plugin"
_PREFIX = PLUGIN_LOGGER + "."
#: Level names accepted by filters, lowest first.
LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def level_number(name: str) -> int:
    """The ``logging`` number of a level name; :class:`RequestInvalid` names the valid ones."""
    try:
        return LEVELS[name.strip().lower()]
    except (KeyError, AttributeError):
        raise RequestInvalid(
            f"unknown log level {name!r}; use one of {', '.join(LEVELS)}",
            details={"level": name}) from None


def _level_name(number: int) -> str:
    if number >= logging.CRITICAL:
        return "critical"
    if number >= logging.ERROR:
        return "error"
    if number >= logging.WARNING:
        return "warning"
    if number >= logging.INFO:
        return "info"
    return "debug"


def parse_since(value: str | datetime | None, *, now: datetime | None = None) -> datetime | None:
    """``"15m"``, ``"2h"``, ``"7d"``, ``"30s"`` ago, or an ISO 8601 time (UTC if naive).

    :raises RequestInvalid: naming the accepted forms.
    """
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
    text = value.strip()
    if not text:
        return None
    unit = text[-1:].lower()
    if unit in _SINCE_UNITS and text[:-1].replace(".", "", 1).isdigit():
        seconds = float(text[:-1]) * _SINCE_UNITS[unit]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RequestInvalid(
            f"cannot read the time {value!r}; use a duration such as 30s, 15m, 2h, 7d or an "
            "ISO 8601 time such as 2026-12-03T14:00:00Z", details={"since": value}) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One captured plugin log line.

    :ivar id: the store's id once persisted, else the hub's sequence number.
    :ivar time: seconds since the epoch (UTC).
    :ivar correlation_id: the request / dispatch that was being served, when known.
    :ivar logger: the logger it came from (``plughost.plugin.<id>`` or a child of it).
    """

    id: int
    time: float
    plugin_id: str
    level: str
    message: str
    correlation_id: str | None = None
    logger: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the time in ISO 8601."""
        return {
            "id": self.id,
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds"),
            "plugin_id": self.plugin_id,
            "level": self.level,
            "message": self.message,
            "correlation_id": self.correlation_id,
            "logger": self.logger,
        }


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What a query or a tail wants: every field optional, all of them must match.

    :ivar min_level: this level or more severe.
    :ivar grep: a case-insensitive substring of the message.
    """

    plugin_id: str | None = None
    min_level: str | None = None
    since: datetime | None = None
    grep: str | None = None
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        if self.min_level is not None:
            object.__setattr__(self, "min_level", _level_name(level_number(self.min_level)))

    def matches(self, entry: LogEntry) -> bool:
        """True when ``entry`` passes every condition."""
        if self.plugin_id is not None and entry.plugin_id != self.plugin_id:
            return False
        if self.min_level is not None and LEVELS[entry.level] < LEVELS[self.min_level]:
            return False
        if self.since is not None and entry.time < self.since.timestamp():
            return False
        if self.correlation_id is not None and entry.correlation_id != self.correlation_id:
            return False
        return self.grep is None or self.grep.lower() in entry.message.lower()


class LogStore(Protocol):
    """Where captured lines are kept (the repository implements it on every database)."""

    def append_logs(self, entries: Sequence[LogEntry]) -> None: ...

    def query_logs(self, flt: LogFilter, *, limit: int = 100,
                   before_id: int | None = None, after_id: int | None = None
                   ) -> list[LogEntry]: ...

    def prune_logs(self, *, older_than: datetime, keep: int) -> int: ...


class _Tail:
    """One live tail: a bounded buffer, woken on the loop that reads it."""

    __slots__ = ("buffer", "dropped", "filter", "loop", "size", "thread", "wake", "woken")

    def __init__(self, flt: LogFilter, size: int) -> None:
        self.filter = flt
        self.size = size
        self.buffer: deque[LogEntry] = deque()
        self.dropped = 0
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.wake = asyncio.Event()
        self.woken = False

    def offer(self, entry: LogEntry) -> None:
        if not self.filter.matches(entry):
            return
        if len(self.buffer) >= self.size:
            self.buffer.popleft()
            self.dropped += 1
        self.buffer.append(entry)
        if not self.woken:
            self.woken = True
            if threading.get_ident() == self.thread:
                self.wake.set()
            else:
                with contextlib.suppress(RuntimeError):  # the reader's loop is gone
                    self.loop.call_soon_threadsafe(self.wake.set)


class _Capture(logging.Handler):
    """The handler on ``plughost.plugin``: hands every record to the hub."""

    def __init__(self, hub: LogHub) -> None:
        super().__init__(logging.DEBUG)
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.hub.capture(record)
        except Exception:  # capture must never break the plugin that logs
            self.handleError(record)


class LogHub:
    """Captures plugin logs (see the module doc).

    :param store: the persistent store; ``None`` keeps only the ring.
    :param ring_size: lines kept in memory for :meth:`recent` and new tails.
    :param queue_size: lines waiting for the store at most; more are dropped and counted.
    :param persist_rate: lines a second each plugin may queue for the store.
    :param flush_interval: seconds between the writer's batches.
    :param retention: how long the store keeps lines.
    :param max_rows: the store keeps at most this many lines (oldest go first).
    :param tail_buffer: lines a slow live tail may fall behind before it loses the oldest.
    :param store_later: queue lines for a store set later (a server captures its plugins'
        first lines before its database is open).
    """

    def __init__(
        self,
        store: LogStore | None = None,
        *,
        ring_size: int = 10_000,
        queue_size: int = 20_000,
        persist_rate: int = 1_000,
        flush_interval: float = 0.5,
        retention: timedelta = timedelta(days=7),
        max_rows: int = 1_000_000,
        prune_interval: float = 300.0,
        tail_buffer: int = 1_000,
        store_later: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ring_size < 1 or queue_size < 1 or persist_rate < 1 or max_rows < 1:
            raise ValueError("ring_size, queue_size, persist_rate and max_rows must be >= 1")
        self.store = store
        self.store_later = store_later
        self.queue_size = queue_size
        self.persist_rate = persist_rate
        self.flush_interval = flush_interval
        self.retention = retention
        self.max_rows = max_rows
        self.prune_interval = prune_interval
        self.tail_buffer = tail_buffer
        self._clock = clock
        self._ring: deque[LogEntry] = deque(maxlen=ring_size)
        self._pending: deque[LogEntry] = deque()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._tails: tuple[_Tail, ...] = ()
        self._budget: dict[str, list[float]] = {}
        self.captured = 0
        self.persisted = 0
        self.dropped_queue: dict[str, int] = {}
        #: Lines the runtimes dropped before they reached the logger (a process plugin's
        #: output limit), per plugin: read from the runtimes' own counters when set.
        self.output_drops: Callable[[], Mapping[str, int]] | None = None
        self.write_errors = 0
        self._handler = _Capture(self)
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._last_prune = 0.0
        self._ending = False

    # -- capture ---------------------------------------------------------------------------

    def install(self, logger_name: str = PLUGIN_LOGGER, *,
                level: int | str = logging.INFO) -> Callable[[], None]:
        """Capture every record of ``logger_name`` and its children at ``level`` or more
        (the logger's level is lowered to it if needed); returns the undo."""
        target = logging.getLogger(logger_name)
        number = level if isinstance(level, int) else level_number(level)
        previous = target.level
        if target.level == logging.NOTSET or target.level > number:
            target.setLevel(number)
        target.addHandler(self._handler)

        def undo() -> None:
            target.removeHandler(self._handler)
            target.setLevel(previous)

        return undo

    def capture(self, record: logging.LogRecord) -> None:
        """Take one record (what the handler calls; usable directly by adapters)."""
        name = record.name
        plugin_id = name[len(_PREFIX):] if name.startswith(_PREFIX) else name
        message = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        now = record.created
        with self._lock:
            entry = LogEntry(next(self._seq), now, plugin_id, _level_name(record.levelno),
                             message, cid, name)
            self.captured += 1
            self._ring.append(entry)
            if self.store is not None or self.store_later:
                if len(self._pending) >= self.queue_size or not self._admit(plugin_id, now):
                    self.dropped_queue[plugin_id] = self.dropped_queue.get(plugin_id, 0) + 1
                else:
                    self._pending.append(entry)
            tails = self._tails
        for tail in tails:
            tail.offer(entry)

    def _admit(self, plugin_id: str, now: float) -> bool:
        window = self._budget.get(plugin_id)
        if window is None or now - window[0] >= 1.0:
            self._budget[plugin_id] = [now, 1.0]
            return True
        if window[1] >= self.persist_rate:
            return False
        window[1] += 1
        return True

    # -- reading ---------------------------------------------------------------------------

    def recent(self, flt: LogFilter | None = None, *, limit: int = 100) -> list[LogEntry]:
        """The newest matching lines still in the ring, oldest first."""
        with self._lock:
            items = list(self._ring)
        if flt is not None:
            items = [e for e in items if flt.matches(e)]
        return items[-limit:] if limit else []

    def query(self, flt: LogFilter, *, limit: int = 100, before_id: int | None = None,
              after_id: int | None = None) -> list[LogEntry]:
        """Matching lines, newest first: from the store (flushed first) when there is one,
        else from the ring."""
        if self.store is None:
            with self._lock:
                ring = list(self._ring)
            items = [e for e in reversed(ring) if flt.matches(e)
                     and (before_id is None or e.id < before_id)
                     and (after_id is None or e.id > after_id)]
            return items[:limit]
        self.flush()
        return self.store.query_logs(flt, limit=limit, before_id=before_id, after_id=after_id)

    async def tail(self, flt: LogFilter | None = None, *, backlog: int = 0,
                   heartbeat: float = 15.0, stop: asyncio.Event | None = None
                   ) -> AsyncIterator[LogEntry | int | None]:
        """Live lines as they are captured: :class:`LogEntry` items, an ``int`` when lines were
        dropped because this reader fell behind (how many), ``None`` every ``heartbeat``
        seconds of silence. ``backlog`` first replays that many recent lines from the ring.
        Ends when ``stop`` is set or the hub closes."""
        flt = flt or LogFilter()
        sub = _Tail(flt, self.tail_buffer)
        with self._lock:
            replay = [e for e in self._ring if flt.matches(e)][-backlog:] if backlog else []
            self._tails = (*self._tails, sub)
        try:
            for entry in replay:
                yield entry
            while not self._ending and not (stop is not None and stop.is_set()):
                if not sub.buffer:
                    sub.woken = False
                    sub.wake.clear()
                    if sub.buffer:  # arrived between the check and the clear
                        sub.woken = True
                    else:
                        try:
                            await asyncio.wait_for(sub.wake.wait(), heartbeat)
                        except TimeoutError:
                            yield None
                            continue
                if sub.dropped:
                    dropped, sub.dropped = sub.dropped, 0
                    yield dropped
                while sub.buffer:
                    yield sub.buffer.popleft()
        finally:
            with self._lock:
                self._tails = tuple(t for t in self._tails if t is not sub)

    def stats(self) -> dict[str, Any]:
        """What was captured, persisted and dropped (per plugin), for the API and metrics."""
        output: Mapping[str, int] = {}
        if self.output_drops is not None:
            try:
                output = {k: v for k, v in self.output_drops().items() if v}
            except Exception:  # figures are best effort; capture goes on
                log.exception("reading the runtimes' dropped-output counters failed")
        with self._lock:
            return {
                "captured": self.captured,
                "persisted": self.persisted,
                "pending": len(self._pending),
                "ring": len(self._ring),
                "tails": len(self._tails),
                "write_errors": self.write_errors,
                "dropped": {
                    "store_queue": sum(self.dropped_queue.values()),
                    "output_limit": sum(output.values()),
                },
                "dropped_by_plugin": {
                    pid: {"store_queue": self.dropped_queue.get(pid, 0),
                          "output_limit": output.get(pid, 0)}
                    for pid in sorted(set(self.dropped_queue) | set(output))
                },
            }

    # -- persistence -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent; nothing to do without a store)."""
        if self.store is None or self._writer is not None:
            return
        self._stop.clear()
        self._writer = threading.Thread(target=self._run, name="plughost-log-writer",
                                        daemon=True)
        self._writer.start()

    def flush(self) -> int:
        """Write every queued line now; returns how many were written."""
        if self.store is None:
            return 0
        written = 0
        with self._write_lock:
            while True:
                with self._lock:
                    batch = list(itertools.islice(self._pending, 0, 5000))
                if not batch:
                    return written
                try:
                    self.store.append_logs(batch)
                except Exception:
                    with self._lock:
                        self.write_errors += 1
                        for _ in batch:  # lost lines are counted as dropped, never retried
                            e = self._pending.popleft()
                            self.dropped_queue[e.plugin_id] = (
                                self.dropped_queue.get(e.plugin_id, 0) + 1)
                    log.exception("could not store %d plugin log lines", len(batch))
                    return written
                with self._lock:
                    for _ in batch:
                        self._pending.popleft()
                    self.persisted += len(batch)
                written += len(batch)

    def prune(self) -> int:
        """Apply retention now (age and row count); returns the rows removed."""
        if self.store is None:
            return 0
        cutoff = datetime.fromtimestamp(self._clock(), UTC) - self.retention
        with self._write_lock:
            return self.store.prune_logs(older_than=cutoff, keep=self.max_rows)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self.flush_interval)
            self._kick.clear()
            try:
                self.flush()
                now = time.monotonic()
                if now - self._last_prune >= self.prune_interval:
                    self._last_prune = now
                    self.prune()
            except Exception:  # keep writing later batches
                log.exception("the plugin log writer failed")
        with contextlib.suppress(Exception):
            self.flush()

    def end_tails(self) -> None:
        """End every live tail now (server shutdown); callable from any thread."""
        self._ending = True
        for tail in self._tails:
            with contextlib.suppress(RuntimeError):  # the reader's loop is gone
                tail.loop.call_soon_threadsafe(tail.wake.set)

    def close(self) -> None:
        """End live tails; stop the writer after a last flush. Idempotent."""
        self.end_tails()
        self._stop.set()
        self._kick.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join(timeout=10)


def entries_from_rows(rows: Iterable[Any]) -> list[LogEntry]:
    """Records from store rows (``at`` datetimes) — shared by the repository."""
    return [LogEntry(r.id, r.at.timestamp(), r.plugin_id, r.level, r.message, r.correlation_id,
                     r.logger) for r in rows]
