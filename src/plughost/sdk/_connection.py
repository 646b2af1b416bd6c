"""The Python runner's end of a session: request ids, re-entrant pumping, async handlers.

The wire itself (framing, envelopes, codes) is :mod:`plughost.core.wire`, shared with the host's
end (:mod:`plughost.runtimes.process.connection`). Used by :mod:`plughost.sdk.child`. Lean on
purpose (no asyncio unless an ``async def`` handler needs it): see that module for why.
"""

from __future__ import annotations

import os
import sys
import threading
from time import perf_counter

from plughost.core.wire import (
    DEFAULT_MAX_FRAME,
    EXIT_MEMORY,
    READ_SIZE,
    WRITE_BATCH,
    FrameDecoder,
    M,
    WireCode,
    decode_message,
    decode_messages,
    encode_frame,
    error_response,
    exception_response,
    frame_message,
    notification,
    request,
    response,
)

TYPE_CHECKING = False  # not typing's: importing typing would cost every plugin start
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ChildConnection", "HostError", "in_helper_loop"]


class HostError(Exception):
    """A ``host.*`` request was refused or failed; ``code`` is the plughost error code."""

    def __init__(self, message: str, code: str, wire_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.wire_code = wire_code


class _Slot:
    """A pending host request: filled by the main thread, waited on by anyone."""

    __slots__ = ("done", "error", "event", "result", "waker")

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self.error: dict[str, Any] | None = None
        self.event: threading.Event | None = None
        self.waker: Any = None  # (loop, future) for async waiters


_PLAIN = frozenset((dict, list, tuple, str, int, float, bool, type(None)))
"""Result types that are never awaitable: no attribute lookup (a failing ``hasattr`` raises and
catches an exception inside) for what handlers return most."""


def _write_all(fd: int, data: bytes) -> None:
    n = os.write(fd, data)
    if n < len(data):  # a full pipe took part of it: write the rest as it drains
        view = memoryview(data)[n:]
        while view:
            view = view[os.write(fd, view):]


class ChildConnection:
    """The child's end of the session: framing, request ids, re-entrant pumping."""

    def __init__(self, rfd: int = 0, wfd: int = 1, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.decoder = FrameDecoder(max_frame)
        self._out: list[bytes] = []
        self._wlock = threading.Lock()
        self._pending: dict[int, _Slot] = {}
        self._next_id = 0
        self._main = threading.get_ident()
        self._cancelled: set[Any] = set()
        self._fast: dict[Any, bool] = {}
        self._backlog: list[bytes] = []
        self._tasks: dict[Any, Any] = {}  # request id -> concurrent future (async handlers)
        self.closed = False
        self.handler: Any = None  # callable(method, params) -> result; set by the runner

    # -- output --------------------------------------------------------------------------------
    def send(self, msg: dict[str, Any]) -> None:
        """Queue one message; written at the next :meth:`flush` (or now, off the main thread)."""
        frame = frame_message(msg)
        if threading.get_ident() == self._main:
            self._out.append(frame)
        else:
            with self._wlock:
                _write_all(self.wfd, frame)

    def send_body(self, body: bytes) -> None:
        """Queue an already-encoded message body (main thread)."""
        self._out.append(encode_frame(body))

    def flush(self) -> None:
        """Write every queued frame in one system call."""
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            with self._wlock:
                _write_all(self.wfd, data)

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification and flush it."""
        self.send(notification(method, params))
        if threading.get_ident() == self._main:
            self.flush()

    # -- host requests -------------------------------------------------------------------------
    def _start_request(self, method: str, params: Any) -> tuple[int, _Slot]:
        with self._wlock:
            self._next_id += 1
            rid = self._next_id
        slot = _Slot()
        self._pending[rid] = slot
        self.send(request(rid, method, params))
        return rid, slot

    def request(self, method: str, params: Any = None) -> Any:
        """Call the host and wait for the answer; raises :class:`HostError` on refusal."""
        _, slot = self._start_request(method, params)
        if threading.get_ident() == self._main:
            self.flush()
            while not slot.done:
                if not self.pump():
                    raise HostError("the host closed the connection", "plugin.unavailable", 0)
        else:
            slot.event = threading.Event()
            if not slot.done:
                slot.event.wait()
        return self._outcome(slot)

    async def arequest(self, method: str, params: Any = None) -> Any:
        """Call the host from a coroutine running on the helper loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        _, slot = self._start_request(method, params)
        slot.waker = (loop, fut)
        if slot.done:
            return self._outcome(slot)
        await fut
        return self._outcome(slot)

    @staticmethod
    def _outcome(slot: _Slot) -> Any:
        if slot.error is not None:
            err = slot.error
            raw = err.get("data")
            data: dict[str, Any] = raw if isinstance(raw, dict) else {}
            raise HostError(
                str(err.get("message")), str(data.get("code") or "host.error"), err.get("code", 0)
            )
        return slot.result

    # -- input ---------------------------------------------------------------------------------
    def wait_assign(self) -> dict[str, Any]:
        """A warm spare's first message must be ``$/assign``; return its params."""
        while True:
            data = os.read(self.rfd, READ_SIZE)
            if not data:
                raise EOFError("the host closed the connection before assigning a plugin")
            bodies = self.decoder.feed(data)
            if bodies:
                msg = decode_message(bodies[0])
                if msg.get("method") != M.ASSIGN or type(msg.get("params")) is not dict:
                    raise ValueError(f"expected {M.ASSIGN!r} first, got {msg.get('method')!r}")
                self._backlog = bodies[1:]
                return dict(msg["params"])

    def drain_backlog(self) -> None:
        """Handle messages that arrived together with the assignment."""
        backlog, self._backlog = self._backlog, []
        for body in backlog:
            self._handle(decode_message(body))
        self.flush()

    def pump(self) -> bool:
        """Read once and handle every complete message; ``False`` on end of input."""
        try:
            data = os.read(self.rfd, READ_SIZE)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            return True
        if not data:
            self.closed = True
            return False
        for msg in decode_messages(self.decoder.feed(data)):
            self._handle(msg)
        self.flush()
        return not self.closed

    def _handle(self, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        if method is None:  # a response to one of our requests
            slot = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
            if slot is None:
                return
            slot.result = msg.get("result")
            slot.error = msg.get("error")
            slot.done = True
            if slot.event is not None:
                slot.event.set()
            if slot.waker is not None:
                loop, fut = slot.waker
                loop.call_soon_threadsafe(_resolve, fut)
            return
        rid = msg.get("id")
        if method == M.CANCEL:
            target = (msg.get("params") or {}).get("id")
            task = self._tasks.get(target)
            if task is not None:
                task.cancel()
            elif len(self._cancelled) < 4096:  # ids of requests already answered pile up here
                self._cancelled.add(target)
            return
        if method == M.EXIT:
            self.closed = True
            return
        if self._cancelled and rid is not None and rid in self._cancelled:
            self._cancelled.discard(rid)
            self.send(error_response(rid, WireCode.REQUEST_CANCELLED, "request cancelled"))
            return
        params = msg.get("params") or {}
        # Responses of one read go out in one write, but never wait behind a handler that may
        # be slow: unless this handler was fast last time, flush what is queued before running
        # it. A handler is known by its target (plugin.call, plugin.event), else by its method.
        target = params.get("target") if type(params) is dict else None
        key = target if type(target) is str else method
        fast = self._fast.get(key, False)
        if self._out and not fast:
            self.flush()
        started = perf_counter()
        try:
            result = self.handler(method, params)
        except MemoryError:
            _die_oom()
        except _Reply as reply:
            if rid is not None:
                self.send(reply.answer(rid))
            return
        except BaseException as exc:  # every failure is answered, never fatal to the runner
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                raise
            if rid is not None:
                self.send(exception_response(rid, exc))
            else:
                _log_exception(method, exc)
            return
        finally:
            if (perf_counter() - started < 0.0002) is not fast:
                self._fast[key] = not fast
        if type(result) not in _PLAIN and hasattr(result, "__await__"):
            self._run_async(rid, method, result)
        elif rid is not None:
            # This runs on the thread that pumps (see send): queue the answer for the flush,
            # or write a full batch now so that the host starts on it while the rest is served.
            out = self._out
            out.append(frame_message(response(rid, result)))
            if len(out) >= WRITE_BATCH:
                self.flush()

    # -- async handlers ------------------------------------------------------------------------
    def _run_async(self, rid: Any, method: str, coro: Any) -> None:
        loop = _helper_loop()
        import asyncio

        fut = asyncio.run_coroutine_threadsafe(_await(coro), loop)
        if rid is None:
            return
        self._tasks[rid] = fut

        def done(f: Any) -> None:
            self._tasks.pop(rid, None)
            if f.cancelled():
                self.send(error_response(rid, WireCode.REQUEST_CANCELLED, "request cancelled"))
                return
            exc = f.exception()
            if exc is None:
                self.send(response(rid, f.result()))
            elif isinstance(exc, _Reply):
                self.send(exc.answer(rid))
            else:
                self.send(exception_response(rid, exc))

        fut.add_done_callback(done)


def _resolve(fut: Any) -> None:
    if not fut.done():
        fut.set_result(None)


async def _await(awaitable: Any) -> Any:
    return await awaitable


_LOOP: Any = None
_LOOP_THREAD: int | None = None


def _helper_loop() -> Any:
    """The asyncio loop for ``async def`` handlers, started on first use only."""
    global _LOOP, _LOOP_THREAD
    if _LOOP is None:
        import asyncio

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="plughost-async", daemon=True)
        thread.start()
        _LOOP, _LOOP_THREAD = loop, thread.ident
    return _LOOP


class _Reply(Exception):
    """Raised by the runner to answer with a specific JSON-RPC error."""

    def __init__(self, code: int, message: str, data_code: str) -> None:
        super().__init__(message)
        self.code, self.message, self.data_code = code, message, data_code

    def answer(self, rid: Any) -> dict[str, Any]:
        return error_response(rid, self.code, self.message, self.data_code)


def _log_exception(where: str, exc: BaseException) -> None:
    import traceback

    sys.stderr.write(f"plughost child: {where} failed:\n")
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()


def _die_oom() -> None:
    # The memory limit (RLIMIT_AS) was hit: answering may itself need memory, so say so on
    # stderr with a preallocated message and leave with a code the host reports as such.
    os.write(2, b"plughost child: MemoryError: memory limit reached\n")
    os._exit(EXIT_MEMORY)


# --- the context a plugin sees out of process ----------------------------------------------------


def in_helper_loop() -> bool:
    """Whether the caller runs on the helper event loop (inside an ``async def`` handler)."""
    return _LOOP_THREAD is not None and threading.get_ident() == _LOOP_THREAD
