"""The host's end of the fork server (``ProcessOptions(fork_server=True)``).

Python plugin processes are forked from one pre-imported parent (:mod:`plughost.sdk._zygote`)
instead of each starting an interpreter: the modules every runner imports are loaded once and
their pages are shared copy-on-write. A forked child is then what a warm spare is — the runtime
moves it into the plugin's cgroup and sends ``$/assign`` (environment, limits, Landlock,
seccomp), all before any plugin code runs — so confinement is the same as a cold start's.

The fork server is the host's own code and runs no plugin code; it is reachable only through
the socket pair created here. Its children die with it (``PR_SET_PDEATHSIG``): were it to end,
they would be processes nobody could reap or signal safely, so instead they end, are reported
as crashed with the reason, and restart — from a new fork server, or cold while none is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from plughost.core.wire import ENV_ZYGOTE, dumps, loads
from plughost.errors import PluginLoadError
from plughost.runtimes.process.launch import ProcessOptions, child_env, make_preexec
from plughost.runtimes.process.output import OutputSink

if TYPE_CHECKING:
    from plughost.runtimes.process.connection import Session

__all__ = ["ForkServer"]

logger = logging.getLogger(__name__)

_LAUNCHER = "from plughost.sdk._zygote import main; raise SystemExit(main())"


class _Exit(asyncio.SubprocessProtocol):
    def __init__(self, server: ForkServer) -> None:
        self.server = server

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.server._sink.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.server._sink.close()

    def process_exited(self) -> None:
        if not self.server._exited.done():
            self.server._exited.set_result(None)
        self.server._gone("its process exited")


class ForkServer:
    """One fork server process and the plugin sessions forked from it."""

    def __init__(self, options: ProcessOptions, on_end: Callable[[ForkServer], None]) -> None:
        self.options = options
        self.on_end = on_end
        self.pid: int | None = None
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._sink = OutputSink(logging.getLogger("plughost.runtimes.process.forkserver"))
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._forks: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)
        self.sessions: dict[int, Session] = {}  # forked pid -> its session
        self._early: dict[int, int] = {}  # exit statuses of children not adopted yet
        self.ended = False
        self._closing = False

    @property
    def ready(self) -> bool:
        """True while the server takes fork requests."""
        return self._ready.done() and not self._ready.exception() and not self.ended

    async def start(self) -> None:
        """Start the server and wait until it has finished its imports (or raise)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = child_env(self.options, "", "", True)
        env[ENV_ZYGOTE] = str(theirs.fileno())
        try:
            self._transport, _ = await self._loop.subprocess_exec(
                lambda: _Exit(self),
                self.options.python, *self.options.python_flags, "-c", _LAUNCHER,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                cwd="/",  # its imports never resolve in whatever directory the host runs in
                env=env,
                pass_fds=(theirs.fileno(),),
                preexec_fn=make_preexec({}, isolate_network=False),  # dies with the host
                start_new_session=True,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.pid = self._transport.get_pid()
        ours.setblocking(False)
        self._sock = ours
        self._loop.add_reader(ours.fileno(), self._readable)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.options.handshake_timeout)
        except BaseException:
            await self.aclose()
            raise

    async def fork(self, *, isolate_network: bool) -> tuple[int, int, int, int]:
        """A new child: ``(pid, its stdin's write end, its stdout's and stderr's read ends)``."""
        if not self.ready or self._sock is None:
            raise PluginLoadError("the fork server is not running")
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1]]
        ours = [pipes[0][1], pipes[1][0], pipes[2][0]]
        req = next(self._ids)
        fut: asyncio.Future[int] = self._loop.create_future()
        self._forks[req] = fut
        msg = {"op": "fork", "req": req, "isolate_network": isolate_network}
        try:
            socket.send_fds(self._sock, [dumps(msg)], theirs)
        except OSError as exc:
            self._forks.pop(req, None)
            for fd in ours:
                os.close(fd)
            raise PluginLoadError(f"the fork server did not take the request: {exc}") from None
        finally:
            for fd in theirs:  # the server holds its copies now (or never will)
                os.close(fd)
        try:
            pid = await asyncio.wait_for(fut, self.options.handshake_timeout)
        except BaseException:
            self._forks.pop(req, None)
            for fd in ours:
                os.close(fd)
            raise
        return pid, ours[0], ours[1], ours[2]

    def adopt(self, pid: int, session: Session) -> None:
        """``session`` speaks to child ``pid``: report its exit to it (at once if it is over)."""
        status = self._early.pop(pid, None)
        if status is not None:
            session.peer_exited(status)
        elif self.ended:
            session.lost("the fork server it was started from ended")
        else:
            self.sessions[pid] = session

    def signaller(self, pid: int) -> Callable[[int], None]:
        """How a forked session signals its process (group): through the server, which knows
        whether ``pid`` is still its unreaped child."""

        def send(sig: int) -> None:
            if self._sock is not None and not self.ended:
                with contextlib.suppress(OSError):
                    self._sock.send(dumps({"op": "kill", "pid": pid, "sig": int(sig)}))

        return send

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                self._gone(f"its socket failed: {exc}")
                return
            if not data:
                self._gone("it closed its socket")
                return
            msg = loads(data)
            op = msg.get("op")
            if op == "exited":
                session = self.sessions.pop(msg["pid"], None)
                if session is not None:
                    session.peer_exited(int(msg["status"]))
                else:  # forked, not adopted yet (its session is being set up)
                    self._early[int(msg["pid"])] = int(msg["status"])
            elif op == "forked":
                fut = self._forks.pop(msg["req"], None)
                if fut is not None and not fut.done():
                    fut.set_result(int(msg["pid"]))
                elif fut is None:  # asked for and given up on: end it
                    self.signaller(int(msg["pid"]))(signal.SIGKILL)
            elif op == "error":
                fut = self._forks.pop(msg["req"], None)
                if fut is not None and not fut.done():
                    fut.set_exception(PluginLoadError(f"fork server: {msg.get('message')}"))
            elif op == "ready" and not self._ready.done():
                self._ready.set_result(None)

    def _gone(self, how: str) -> None:
        if self.ended:
            return
        self.ended = True
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        rc = self._transport.get_returncode() if self._transport is not None else None
        error = PluginLoadError(f"the fork server ended ({how}, exit status {rc})")
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()
        for fut in self._forks.values():
            if not fut.done():
                fut.set_exception(error)
        self._forks.clear()
        sessions, self.sessions = list(self.sessions.values()), {}
        if not self._closing:
            tail = [line for line in self._sink.tail if line.strip()][-5:]
            logger.warning(
                "the fork server for Python plugins (pid %s) ended: %s, exit status %s; its %d "
                "plugin process(es) ended with it and restart%s", self.pid, how, rc,
                len(sessions), ("; its stderr ends with: " + " | ".join(tail)) if tail else "",
            )
        for session in sessions:
            session.lost(f"the fork server it was started from ended ({how})")
        self.on_end(self)

    async def aclose(self) -> None:
        """End the server (its children with it: close the plugins first)."""
        self._closing = True
        if self._sock is not None and not self.ended:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()  # it reads end of input and exits
            self._sock = None
        transport = self._transport
        if transport is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), self.options.stop_grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(transport.get_pid(), signal.SIGKILL)
            await asyncio.shield(self._exited)
        transport.close()
        self._gone("closed by the runtime")
