"""One epoch ticker thread per runtime: the engine's epoch is a reading of the monotonic clock.

Wasm code compiled with epoch interruption checks the engine's epoch counter at function entries
and loop back-edges; a store whose deadline has passed traps with ``INTERRUPT``. Something has to
advance the counter: this thread. Epoch ``n`` means "``origin + n * interval`` has passed": on
every wake-up the thread advances the epoch to ``floor((now - origin) / interval)``, however late
it woke, so late wake-ups (a busy machine, a contended GIL) never add up. A call's deadline is a
monotonic time turned into the first epoch at or after it (:meth:`EpochTicker.ticks_until`), so
it traps within one interval plus one wake-up latency of that time, and never before it.

The wasm call releases the GIL, so the ticker runs even while the caller's thread is stuck in a
runaway loop. Started lazily by the first instance that needs it, stopped by ``stop()``.
"""

from __future__ import annotations

import math
import threading
import time

import wasmtime

from . import _ffi

__all__ = ["EpochTicker"]


class EpochTicker:
    """Keep ``engine``'s epoch at ``floor((monotonic() - origin) / interval)`` on a daemon thread.

    Nothing else may increment the engine's epoch: :attr:`epoch` is the engine's value.
    """

    def __init__(self, engine: wasmtime.Engine, interval: float = 0.005) -> None:
        if interval <= 0:
            raise ValueError(f"epoch interval must be positive, got {interval!r}")
        self.engine = engine
        self.interval = interval
        self.epoch = 0
        """Increments made so far (the engine's current epoch)."""
        self.origin = time.monotonic()
        """The monotonic time of epoch 0."""
        self._engine_addr = _ffi.engine_address(engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def ticks_until(self, deadline: float) -> int:
        """The epoch deadline (in ticks after the current epoch) for monotonic time ``deadline``.

        The first epoch whose time is at or after ``deadline``: a store given it traps in the
        first wake-up of the ticker after ``deadline``, never before.
        """
        # (1e-9: a deadline exactly on a tick is that tick, whatever the float rounding)
        return max(1, math.ceil((deadline - self.origin) / self.interval - 1e-9) - self.epoch)

    def ensure_started(self) -> None:
        """Start the thread if it is not running (idempotent, thread-safe)."""
        with self._lock:
            if self.running:
                return
            self._stop.clear()
            # the epoch kept counting in the engine while stopped: re-anchor the clock on it
            self.origin = time.monotonic() - self.epoch * self.interval
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
        wait, now = self._stop.wait, time.monotonic
        # a call that holds the GIL (no release/re-acquire per tick): the increment is an
        # atomic add, and a thread that waits for the GIL again after each one falls behind
        increment, engine = _ffi.increment_epoch, self._engine_addr
        interval = self.interval
        while True:
            origin = self.origin
            due = int((now() - origin) / interval)
            while self.epoch < due:
                increment(engine)
                self.epoch += 1
            if wait(max(0.0, origin + (self.epoch + 1) * interval - now())):
                return
