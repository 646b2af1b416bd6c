"""One epoch ticker thread per runtime: the wall clock that epoch deadlines are measured in.

Wasm code compiled with epoch interruption checks the engine's epoch counter at function entries
and loop back-edges; a store whose deadline has passed traps with ``INTERRUPT``. Something has to
advance the counter: this thread calls ``Engine.increment_epoch()`` every ``interval`` seconds.
The wasm call releases the GIL, so the ticker runs even while the caller's thread is stuck in a
runaway loop. Started lazily by the first instance that needs it, stopped by ``stop()``.
"""

from __future__ import annotations

import math
import threading

import wasmtime

__all__ = ["EpochTicker"]


class EpochTicker:
    """Advance ``engine``'s epoch every ``interval`` seconds on a daemon thread."""

    def __init__(self, engine: wasmtime.Engine, interval: float = 0.005) -> None:
        if interval <= 0:
            raise ValueError(f"epoch interval must be positive, got {interval!r}")
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def ticks_for(self, seconds: float) -> int:
        """The deadline, in ticks after now, that guarantees at least ``seconds`` of run time.

        One extra tick because the current tick may end right after the deadline is set.
        """
        return max(1, math.ceil(seconds / self.interval)) + 1

    def ensure_started(self) -> None:
        """Start the thread if it is not running (idempotent, thread-safe)."""
        with self._lock:
            if self.running:
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="plughost-wasm-epoch", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it to exit (idempotent)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        wait, increment = self._stop.wait, self.engine.increment_epoch
        while not wait(self.interval):
            increment()
