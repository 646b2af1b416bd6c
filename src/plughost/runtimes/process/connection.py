"""The host's end of one plugin process: spawn, handshake, JSON-RPC in both directions, ending.

A :class:`Session` owns exactly one child process. It is built on asyncio's low-level subprocess
protocol (no StreamReader layers), batches outgoing frames into one pipe write per loop turn, and
resolves responses straight from ``pipe_data_received``. It knows nothing about plugins beyond
the protocol: the runtime gives it a request handler and learns, through :attr:`Session.ended`,
why the session ended (exit code, signal, limit, protocol error, our own kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plughost.core.wire import (
    DEFAULT_MAX_FRAME,
    EXIT_MEMORY,
    EXIT_PROTOCOL,
    READ_SIZE,
    WRITE_BATCH,
    FrameDecoder,
    M,
    WireCode,
    check_hello,
    crashed,
    decode_messages,
    enable_fast_json,
    error_from_wire,
    error_response,
    exception_response,
    frame_message,
    notification,
    request,
    response,
)
from plughost.errors import PlughostError, PluginError, PluginTimeout, ProtocolError
from plughost.runtimes.process.output import OutputSink

__all__ = ["EndInfo", "RequestHandler", "Session", "describe_exit"]

logger = logging.getLogger(__name__)

RequestHandler = Callable[[str, dict[str, Any]], Any]
"""``(method, params) -> result`` (or an awaitable of it) for requests the plugin sends."""


@dataclass(frozen=True, slots=True)
class EndInfo:
    """Why a session ended."""

    reason: str
    returncode: int | None
    expected: bool
    """True when the host asked for it (stop/close), False for a crash."""
    error: PlughostError | None = None


def _fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def describe_exit(returncode: int | None, limits: Mapping[str, Any]) -> str:
    """A human reason for an exit status, naming the manifest limit when one was hit."""
    if returncode is None:
        return "closed its output without exiting"
    cpu, memory = limits.get("cpu"), limits.get("memory")
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if sig == signal.SIGXCPU and cpu is not None:
            return f"cpu limit {cpu:g}s exceeded (killed by SIGXCPU)"
        if sig == signal.SIGKILL and cpu is not None:
            return f"killed by SIGKILL (the cpu limit {cpu:g}s hard cap, or the system)"
        if memory is not None and sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL):
            return f"killed by {name} (likely the memory limit {_fmt_bytes(memory)})"
        return f"killed by {name}"
    if returncode == EXIT_MEMORY:
        limit = f" {_fmt_bytes(memory)}" if memory is not None else ""
        return f"memory limit{limit} exceeded (MemoryError)"
    if returncode == EXIT_PROTOCOL:
        return "ended the session after a protocol error (see its log)"
    if returncode == 0:
        return "exited unexpectedly with code 0"
    return f"exited with code {returncode}"


def _small_reads(transport: Any) -> None:
    """Read :data:`~plughost.core.wire.READ_SIZE` bytes at a time from a pipe transport.

    asyncio's Unix pipe transport asks for 256 KiB per read (its ``max_size``), an allocation
    that costs more than the rest of a round trip; other loops (uvloop) have no such attribute
    and read in 64 KiB already."""
    if transport is not None and isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = READ_SIZE


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, session: Session) -> None:
        self.s = session

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.s._on_stdout(data)
        else:
            self.s._sink.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.s._on_eof()
        elif fd == 2:
            self.s._sink.close()

    def process_exited(self) -> None:
        self.s._on_exit()


class _DirectReads(asyncio.Protocol):
    """A child's stdout, straight into its session.

    asyncio's subprocess transport hands every read of a child's pipe to its protocol through
    ``call_soon``: one more event-loop turn for every answer. This protocol takes the place of
    the transport's own on the stdout pipe and calls the session in the very turn the data is
    read; the end of the pipe still goes through the transport's protocol (``inner``), which
    keeps the transport's bookkeeping of closed pipes and its order (data, then end of input).
    """

    def __init__(self, session: Session, inner: Any) -> None:
        self.s = session
        self.inner = inner

    def data_received(self, data: bytes) -> None:
        self.s._on_stdout(data)

    def eof_received(self) -> bool | None:
        eof = getattr(self.inner, "eof_received", None)
        return eof() if eof is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)


def _read_directly(session: Session, pipe: Any) -> None:
    """Give a subprocess's stdout pipe transport a :class:`_DirectReads` protocol (loops whose
    pipe transports cannot change protocol keep the transport's, one turn later)."""
    if pipe is None or not hasattr(pipe, "set_protocol") or not hasattr(pipe, "get_protocol"):
        return
    with contextlib.suppress(NotImplementedError, AttributeError):
        pipe.set_protocol(_DirectReads(session, pipe.get_protocol()))


class _PipeReader(asyncio.Protocol):
    """The host's read end when the peer is not a process (:meth:`Session.connect_pipes`)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def data_received(self, data: bytes) -> None:
        self.s._on_stdout(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.s._on_eof()


class _ErrReader(asyncio.Protocol):
    """A pipe peer's stderr, into the session's output sink."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def data_received(self, data: bytes) -> None:
        self.s._sink.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.s._sink.close()


class Session:
    """One child process speaking the plugin protocol.

    Create with :meth:`spawn`; the returned session has completed the handshake.
    """

    def __init__(
        self,
        plugin_id: str,
        *,
        handler: RequestHandler,
        sink: OutputSink,
        limits: Mapping[str, Any],
        max_frame: int = DEFAULT_MAX_FRAME,
        cancel_grace: float = 1.0,
        term_grace: float = 2.0,
    ) -> None:
        enable_fast_json()
        self.plugin_id = plugin_id
        self.handler = handler
        self.limits = dict(limits)
        self.cancel_grace = cancel_grace
        self.term_grace = term_grace
        self._sink = sink
        self._decoder = FrameDecoder(max_frame)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.SubprocessTransport | None = None
        self._stdin: Any = None
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False
        self._next_id = 0
        # request id -> (future, method, deadline on the loop's clock, timeout) of each call
        self._pending: dict[
            int, tuple[asyncio.Future[Any], str, float | None, float | None]
        ] = {}
        self._deadline: asyncio.TimerHandle | None = None  # the one timer of all deadlines
        self._deadline_at = 0.0
        self._late: dict[int, asyncio.TimerHandle] = {}  # timed-out ids awaiting an answer
        self._serving: dict[Any, asyncio.Task[Any]] = {}
        self._hello: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self.spare_ready: asyncio.Future[None] = self._loop.create_future()
        self.ended: asyncio.Future[EndInfo] = self._loop.create_future()
        self._token = ""
        self._eof = False
        self._exited = False
        self._exit_event = asyncio.Event()
        self._closing = False  # an expected end (stop/close) is in progress
        self._kill_reason: str | None = None
        self._kill_error: PlughostError | None = None
        self._killer: asyncio.Task[EndInfo] | None = None  # the kill of a hung child
        self._finalizer: asyncio.Task[None] | None = None
        self._peer_returncode: int | None = None  # a pipe peer's exit status (no process)
        self._pipe_reader: asyncio.BaseTransport | None = None
        self._err_reader: asyncio.BaseTransport | None = None
        self._signaller: Callable[[int], None] | None = None  # a pipe peer's way to signal
        self.pid: int | None = None
        self.origin = "cold"  # how the process started: cold, spare (warm), forked (fork server)
        self.calls = 0
        self.hello: dict[str, Any] = {}

    # -- life ----------------------------------------------------------------------------------
    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        token: str,
        preexec_fn: Callable[[], None] | None,
        handshake_timeout: float,
    ) -> None:
        """Start the process and complete the handshake, or raise (the process is reaped)."""
        await self.start_process(argv, cwd=cwd, env=env, token=token, preexec_fn=preexec_fn)
        await self.handshake(handshake_timeout)

    async def start_process(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        token: str,
        preexec_fn: Callable[[], None] | None,
    ) -> None:
        """Start the process (no handshake yet: a warm spare waits for :meth:`assign`)."""
        self._token = token
        transport, _ = await self._loop.subprocess_exec(
            lambda: _Protocol(self),
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            preexec_fn=preexec_fn,
            start_new_session=True,
        )
        self._transport = transport
        self._stdin = transport.get_pipe_transport(0)
        self.pid = transport.get_pid()
        for fd in (1, 2):
            _small_reads(transport.get_pipe_transport(fd))
        _read_directly(self, transport.get_pipe_transport(1))

    async def connect_pipes(
        self,
        read_fd: int,
        write_fd: int,
        *,
        token: str,
        stderr_fd: int | None = None,
        pid: int | None = None,
        signaller: Callable[[int], None] | None = None,
    ) -> None:
        """Speak to a peer over two pipe ends instead of a child process (no handshake yet).

        The in-memory host/child pair (:func:`plughost.sdk.testing.wire_pair`) runs the Python
        runner in a thread on the other ends; a process forked by the fork server
        (:mod:`plughost.runtimes.process.zygote`) is another process's child, so it comes with
        its ``pid``, its stderr and the ``signaller`` that reaches it. Either reports its end
        with :meth:`peer_exited`. Ending a peer without a ``signaller`` closes its input instead
        of signalling a process.
        """
        self._token = token
        reader = os.fdopen(read_fd, "rb", buffering=0)
        writer = os.fdopen(write_fd, "wb", buffering=0)
        self._pipe_reader, _ = await self._loop.connect_read_pipe(lambda: _PipeReader(self), reader)
        _small_reads(self._pipe_reader)
        self._stdin, _ = await self._loop.connect_write_pipe(asyncio.Protocol, writer)
        if stderr_fd is not None:
            errors = os.fdopen(stderr_fd, "rb", buffering=0)
            self._err_reader, _ = await self._loop.connect_read_pipe(
                lambda: _ErrReader(self), errors
            )
        self.pid = pid
        self._signaller = signaller

    def lost(self, reason: str) -> None:
        """The process is gone and its exit status will never be known (a pipe peer's
        supervisor ended): end the session with ``reason``, as a crash."""
        self._end(reason)
        self._on_exit()

    def peer_exited(self, returncode: int) -> None:
        """A pipe peer (see :meth:`connect_pipes`) has ended with ``returncode``."""
        self._peer_returncode = returncode
        self._on_exit()

    def assign(
        self,
        plugin_id: str,
        *,
        handler: RequestHandler,
        sink: OutputSink,
        limits: Mapping[str, Any],
        params: Mapping[str, Any],
    ) -> None:
        """Give a warm spare its plugin: rebind this session and send ``$/assign``."""
        self.plugin_id = plugin_id
        self.handler = handler
        self._sink = sink
        self.limits = dict(limits)
        self.notify(M.ASSIGN, dict(params))

    async def handshake(self, handshake_timeout: float) -> None:
        """Wait for ``$/hello``; on failure end the process and raise."""
        try:
            await asyncio.wait(
                (self._hello, self.ended),
                timeout=handshake_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._hello.done() and self._hello.exception() is None:
                return
            if self.ended.done():
                info = self.ended.result()
                raise info.error or PluginError(
                    f"plugin process {info.reason} before completing the handshake"
                    + self._tail_text(),
                    code="plugin.load",
                    plugin_id=self.plugin_id,
                )
            if self._hello.done():
                raise self._hello.exception()  # type: ignore[misc]
            raise PluginError(
                f"plugin did not complete the handshake within {handshake_timeout:g}s; "
                f"it must send {M.HELLO!r} first (docs/protocol.md){self._tail_text()}",
                code="plugin.load",
                plugin_id=self.plugin_id,
            )
        except BaseException:
            await self.kill("handshake failed")
            raise

    def _tail_text(self) -> str:
        lines = [line for line in self._sink.tail if line.strip()]
        return ("; its stderr ends with:\n  " + "\n  ".join(lines[-8:])) if lines else ""

    @property
    def token(self) -> str:
        """The handshake token this session expects the child to echo."""
        return self._token

    @property
    def alive(self) -> bool:
        """True until the session has ended."""
        return not self.ended.done()

    @property
    def accepting(self) -> bool:
        """True while the session takes new requests: not ended, and not being ended (a kill
        or shutdown decided, or the child's output or process already gone).

        Every way a session ends turns this off synchronously, in the very callback where the
        end is decided or noticed (:meth:`_end`, :meth:`shutdown`, :meth:`_on_eof`,
        :meth:`_on_exit`), before anything awaits: a caller that checks it and then sends in
        the same step never reaches a dying process."""
        return not (
            self.ended.done()
            or self._kill_reason is not None
            or self._closing
            or self._eof
            or self._exited
        )

    def _end(
        self, reason: str, *, expected: bool = False, error: PlughostError | None = None
    ) -> None:
        """Decide that this session ends (the first reason given is the one reported).

        Synchronous on purpose: from here on :attr:`accepting` is False, so new requests go
        to whoever waits for the restart instead of to the process being ended."""
        if self._kill_reason is None and not self.ended.done():
            self._kill_reason = reason
            self._kill_error = error
            self._closing = self._closing or expected

    def _refusal(self) -> PlughostError:
        """The error for a request to a session that is ended or being ended."""
        if self.ended.done():
            info = self.ended.result()
            return info.error or crashed(self.plugin_id, info.reason)
        if self._kill_error is not None:
            return self._kill_error
        reason = self._kill_reason or (
            "is shutting down" if self._closing else "ended (its process or output is gone)"
        )
        return crashed(self.plugin_id, reason)

    async def shutdown(self, grace: float) -> EndInfo:
        """Ask the child to exit (``$/exit``, close stdin); escalate to SIGTERM, SIGKILL."""
        if self.ended.done():
            return self.ended.result()
        self._closing = True
        with contextlib.suppress(Exception):
            self.notify(M.EXIT)
            self._flush()
            self._stdin.close()
        try:
            return await asyncio.wait_for(asyncio.shield(self.ended), grace)
        except TimeoutError:
            return await self.kill("did not exit within the shutdown grace period", expected=True)

    async def kill(
        self, reason: str, *, expected: bool = False, error: PlughostError | None = None
    ) -> EndInfo:
        """End the session now: SIGTERM, then SIGKILL after ``term_grace``."""
        if not self.ended.done():
            self._end(reason, expected=expected, error=error)
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.ended), self.term_grace)
            except TimeoutError:
                self._signal(signal.SIGKILL)
                await asyncio.shield(self.ended)
        return self.ended.result()

    def _signal(self, sig: int) -> None:
        if self._exited:
            return
        if self._signaller is not None:
            self._signaller(sig)
            return
        if self.pid is None:  # a pipe peer: closing its input is how it is told to end
            if self._stdin is not None:
                self._stdin.close()
            return
        # The child leads its own process group: take its children down with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    # -- outgoing ------------------------------------------------------------------------------
    def _send(self, msg: dict[str, Any], idle: bool = False) -> None:
        # Under load, frames of one loop turn are joined and written in one system call at the
        # end of the turn (fewer wake-ups on both sides), or every WRITE_BATCH frames when the
        # turn makes more (the child starts on those while the rest are made). A request sent
        # while nothing else is in flight (``idle``) is written at once instead: latency is all
        # that matters then.
        frame = frame_message(msg)
        if idle and not self._flush_scheduled:
            if self._stdin is not None and not self._stdin.is_closing():
                self._stdin.write(frame)
            return
        wbuf = self._wbuf
        wbuf.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        elif len(wbuf) >= WRITE_BATCH:
            self._write_queued()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._wbuf:
            self._write_queued()

    def _write_queued(self) -> None:
        data = b"".join(self._wbuf) if len(self._wbuf) > 1 else self._wbuf[0]
        self._wbuf.clear()
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(data)

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no answer expected)."""
        self._send(notification(method, params))

    async def request(self, method: str, params: Any, timeout: float | None) -> Any:
        """Send a request and await its result; errors come back as plughost errors.

        A session that is ended or being ended (see :attr:`accepting`) refuses at once: the
        request would only reach a process that is going away."""
        if not self.accepting:
            raise self._refusal()
        return await self.start_request(method, params, timeout)

    def start_request(
        self, method: str, params: Any, timeout: float | None
    ) -> asyncio.Future[Any]:
        """Send a request now; the future of its result. The caller has checked
        :attr:`accepting` in the same step (:meth:`request` does both)."""
        self._next_id += 1
        rid = self._next_id
        fut = self._loop.create_future()
        if timeout is None:
            self._pending[rid] = (fut, method, None, None)
        else:
            deadline = self._loop.time() + timeout
            self._pending[rid] = (fut, method, deadline, timeout)
            if self._deadline is None or deadline < self._deadline_at:
                self._arm(deadline)
        self.calls += 1
        self._send(request(rid, method, params), len(self._pending) == 1)
        return fut

    # One timer per session, not one per call: it fires at the earliest deadline it knows of,
    # expires what is due and re-arms for the earliest deadline still pending. A call answered
    # in time costs a comparison; the timer fires about once per timeout period while busy.
    def _arm(self, when: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline_at = when
        self._deadline = self._loop.call_at(when, self._expire_due)

    def _expire_due(self) -> None:
        self._deadline = None
        now = self._loop.time()
        due = [rid for rid, entry in self._pending.items()
               if entry[2] is not None and entry[2] <= now]
        for rid in due:
            self._expire(rid)
        nxt = min((e[2] for e in self._pending.values() if e[2] is not None), default=None)
        if nxt is not None:
            self._arm(nxt)

    def _expire(self, rid: int) -> None:
        entry = self._pending.pop(rid, None)
        if entry is None:
            return
        fut, method, _, timeout = entry
        if fut.done():  # the caller gave up (cancelled) before the deadline: nothing to do
            return
        assert timeout is not None
        fut.set_exception(
            PluginTimeout(
                f"{method} did not answer within {timeout:g}s; the request was cancelled",
                plugin_id=self.plugin_id,
                details={"method": method, "timeout": timeout},
            )
        )
        with contextlib.suppress(Exception):
            self.notify(M.CANCEL, {"id": rid})
        # A child that cannot even answer a cancelled request within the grace is hung.
        target = f"{method} (request {rid})"
        self._late[rid] = self._loop.call_later(self.cancel_grace, self._hung, rid, target, timeout)

    def _hung(self, rid: int, target: str, timeout: float) -> None:
        self._late.pop(rid, None)
        reason = (
            f"did not answer {target} within its {timeout:g}s deadline plus "
            f"{self.cancel_grace:g}s grace; terminated"
        )
        # Stop taking requests now, not when the kill task first runs: a call made in between
        # would be sent to the dying process and fail instead of waiting for the restart.
        self._end(reason)
        logger.warning("plugin %s %s", self.plugin_id, reason)
        if self._killer is None:
            self._killer = self._loop.create_task(self.kill(reason))

    # -- incoming ------------------------------------------------------------------------------
    def _on_stdout(self, data: bytes) -> None:
        # Every complete frame of the read is handled in this one pass: answers resolve their
        # futures here (the callers resume together in the next loop turn).
        answered = 0
        try:
            pending = self._pending
            for msg in decode_messages(self._decoder.feed(data)):
                if "method" in msg:
                    self._on_message(msg)
                    continue
                entry = pending.pop(msg.get("id"), None)
                if entry is None or entry[0].done():
                    self._on_stray(msg, entry)
                    continue
                answered += 1
                if "error" in msg:
                    entry[0].set_exception(
                        error_from_wire(msg["error"], plugin_id=self.plugin_id, method=entry[1])
                    )
                else:
                    entry[0].set_result(msg.get("result"))
        except ProtocolError as exc:
            exc.plugin_id = exc.plugin_id or self.plugin_id
            self._protocol_violation(exc)
            return
        if answered > 1 and not self._flush_scheduled:
            # Callers resumed together send together: the requests they make in the next
            # turn go out in one write at its end, not the first alone and the rest after.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _protocol_violation(self, exc: ProtocolError) -> None:
        self._end(f"protocol error: {exc.message}", error=exc)
        self._signal(signal.SIGKILL)  # it broke the stream; nothing it says can be trusted now

    def _on_stray(self, msg: dict[str, Any], entry: Any) -> None:
        """An answer nobody waits for: to a request that timed out (or was never made), or
        whose caller gave up (cancelled)."""
        if entry is None:
            late = self._late.pop(msg.get("id"), None)  # type: ignore[arg-type]
            if late is not None:
                late.cancel()  # it answered after all (probably "cancelled"): not hung

    def _on_message(self, msg: dict[str, Any]) -> None:
        method = msg["method"]
        if not self._hello.done():
            if method == M.SPARE and not self.spare_ready.done():
                self.spare_ready.set_result(None)
                return
            if method != M.HELLO:
                raise ProtocolError(
                    f"the plugin's first message must be {M.HELLO!r}, got {str(method)[:60]!r}",
                    code="protocol.handshake",
                )
            hello = check_hello(msg, plugin_id=self.plugin_id, token=self._token)
            self.hello = hello
            if isinstance(hello.get("error"), dict):
                err = hello["error"]
                self._hello.set_exception(
                    PluginError(
                        f"{err.get('message', 'the plugin could not load')}\n"
                        f"{err.get('traceback', '')}".rstrip(),
                        code="plugin.load",
                        plugin_id=self.plugin_id,
                    )
                )
            else:
                self._hello.set_result(hello)
            return
        rid = msg.get("id")
        if method == M.CANCEL:
            task = self._serving.get((msg.get("params") or {}).get("id"))
            if task is not None:
                task.cancel()
            return
        params: Any = msg.get("params")
        if params is None:
            params = {}
        if type(params) is not dict:
            if rid is not None:
                self._reply_error(rid, WireCode.INVALID_PARAMS, "params must be an object")
            return
        try:
            result = self.handler(method, params)
        except BaseException as exc:
            self._reply_exc(rid, exc)
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            task = self._loop.create_task(result)  # type: ignore[arg-type]
            if rid is not None:
                self._serving[rid] = task
            task.add_done_callback(functools.partial(self._served, rid))
        elif rid is not None:
            self._send(response(rid, result))

    def _served(self, rid: Any, task: asyncio.Task[Any]) -> None:
        if rid is None:
            if not task.cancelled() and task.exception() is not None:
                logger.warning(
                    "plugin %s notification handler failed: %s", self.plugin_id, task.exception()
                )
            return
        self._serving.pop(rid, None)
        if task.cancelled():
            self._reply_error(rid, WireCode.REQUEST_CANCELLED, "request cancelled")
        elif task.exception() is not None:
            self._reply_exc(rid, task.exception())  # type: ignore[arg-type]
        else:
            self._send(response(rid, task.result()))

    def _reply_exc(self, rid: Any, exc: BaseException) -> None:
        if rid is None:
            logger.warning("plugin %s notification failed: %s", self.plugin_id, exc)
            return
        if isinstance(exc, _InvalidParams):
            self._reply_error(rid, WireCode.INVALID_PARAMS, str(exc))
        elif isinstance(exc, _MethodNotFound):
            self._reply_error(rid, WireCode.METHOD_NOT_FOUND, str(exc))
        else:
            self._send(exception_response(rid, exc))

    def _reply_error(self, rid: Any, code: int, message: str) -> None:
        self._send(error_response(rid, code, message))

    # -- ending --------------------------------------------------------------------------------
    def _on_eof(self) -> None:
        self._eof = True
        self._start_finalizer()

    def _on_exit(self) -> None:
        self._exited = True
        self._exit_event.set()
        self._start_finalizer()

    def _start_finalizer(self) -> None:
        if self._finalizer is None and not self.ended.done():
            self._finalizer = self._loop.create_task(self._finalize())

    async def _finalize(self) -> None:
        # EOF and exit arrive in either order; give the other up to 0.5 s so the reason can
        # name the exit status, then kill what is left (a child that closed stdout is done).
        try:
            await asyncio.wait_for(self._exit_event.wait(), 0.5)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_event.wait(), 2.0)
        rc = self._transport.get_returncode() if self._transport else self._peer_returncode
        reason = self._kill_reason or describe_exit(rc, self.limits)
        error = self._kill_error or crashed(
            self.plugin_id, reason, returncode=rc, stderr_tail=list(self._sink.tail)[-8:]
        )
        for entry in self._pending.values():
            if not entry[0].done():
                entry[0].set_exception(error)
        self._pending.clear()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        for handle in self._late.values():
            handle.cancel()
        self._late.clear()
        for task in self._serving.values():
            task.cancel()
        if not self._hello.done():
            self._hello.set_exception(error)
            self._hello.exception()  # mark retrieved
        if self._transport is not None:
            self._transport.close()
        else:
            for pipe in (self._stdin, self._pipe_reader, self._err_reader):
                if pipe is not None:
                    pipe.close()
        self.ended.set_result(EndInfo(reason, rc, self._closing, self._kill_error))


class _InvalidParams(ValueError):
    pass


class _MethodNotFound(LookupError):
    pass


def invalid_params(message: str) -> Exception:
    """Raise this from a request handler to answer ``invalid params``."""
    return _InvalidParams(message)


def method_not_found(message: str) -> Exception:
    """Raise this from a request handler to answer ``method not found``."""
    return _MethodNotFound(message)
