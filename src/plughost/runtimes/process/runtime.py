"""The ``process`` runtime: plugins in their own OS process, supervised.

A manifest with ``runtime = "process"`` names either a command line (``entry = "node main.js"``,
run with the plugin folder as working directory, never through a shell) or, for a Python
:class:`plughost.sdk.Plugin`, ``entry = "module:Class"`` — then the host runs
the runner :mod:`plughost.sdk.child` with ``module:Class`` and the plugin runs unchanged, out
of process.

Host services reach the plugin through ``handlers`` (``{"host.emit": fn, ...}``, each
``fn(plugin_id, params)`` returning a value or an awaitable), injected by the host so this module
imports no service. Every ``host.*`` request first passes the permission check the host gives
(``check_for(plugin_id)(kind, target)`` raising :class:`~plughost.errors.PermissionDenied`);
without one, everything that needs a grant is denied.

Children die with the host: on Linux each child asks the kernel for ``SIGKILL`` when its parent
goes (``PR_SET_PDEATHSIG``, set between fork and exec) and the Python runner also watches its
stdin. The kernel ties that signal to the *thread* that started the child, so run the host's
event loop in a thread that lives as long as the plugins (``SyncPluginHost`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core._manifest_checks import entry_problem
from plughost.core.contract import Capability
from plughost.core.correlation import correlation_id, trace_context, trace_fields
from plughost.core.wire import ENV_SPARE, M, crashed
from plughost.errors import (
    ChannelClosed,
    PlughostError,
    PluginActivationError,
    PluginError,
    PluginLoadError,
    PluginUnavailable,
)
from plughost.observability.health import RestartPolicy, Supervisor, SupervisorEvent
from plughost.runtimes.base import Export, Health
from plughost.runtimes.process.bridge import (
    HostCalls,
    HostHandler,
    PermissionCheck,
    check_from_context,
    deny_all,
    serve,
)
from plughost.runtimes.process.confine import Jail, plan_launch
from plughost.runtimes.process.connection import EndInfo, Session
from plughost.runtimes.process.launch import (
    ProcessOptions,
    build_argv,
    child_env,
    declares_network,
    limits_of,
    make_preexec,
    network_isolated,
)
from plughost.runtimes.process.output import OutputSink
from plughost.runtimes.process.zygote import ForkServer

if TYPE_CHECKING:
    from plughost.core.bus import Event
    from plughost.core.channels import Channel
    from plughost.core.context import PluginContext
    from plughost.core.manifest import Manifest

__all__ = [
    "HostHandler",
    "PermissionCheck",
    "ProcessInstance",
    "ProcessOptions",
    "ProcessRuntime",
    "SupervisorEvent",
    "check_from_context",
    "create_runtime",
    "deny_all",
]

logger = logging.getLogger(__name__)


def _refuse_before_assign(method: str, params: dict[str, Any]) -> Any:
    raise PluginUnavailable("this runner has not been given a plugin yet")


class ProcessRuntime:
    """Loads ``runtime = "process"`` plugins. One per host; instances are independent."""

    name = "process"
    enforces: frozenset[str] = frozenset(
        {"timeout", "memory", "cpu", "open_files", "output", "processes"}
    )
    capabilities: frozenset[Capability] = frozenset(Capability)  # docs/protocol.md, all of it

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        return entry_problem(self.name, entry, str(root) if root is not None else None)

    def __init__(
        self,
        *,
        handlers: Mapping[str, HostHandler] | None = None,
        check_for: Callable[[str], PermissionCheck] | None = None,
        options: ProcessOptions | None = None,
        policy: RestartPolicy | None = None,
        on_event: Callable[[SupervisorEvent], None] | None = None,
    ) -> None:
        self.handlers = dict(handlers or {})
        self.check_for = check_for
        self.options = options or ProcessOptions()
        self.policy = policy or RestartPolicy()
        self.on_event = on_event
        self._instances: set[ProcessInstance] = set()
        self._closed = False
        self._spare: Session | None = None
        self._spare_task: asyncio.Task[None] | None = None
        self._forkserver: ForkServer | None = None
        self._forkserver_task: asyncio.Task[ForkServer | None] | None = None
        self._forkserver_starts: list[float] = []  # when each was started (restart budget)

    env_read_late: bool = False
    """Whether the environment variables of :meth:`command` are read only by the plugin's entry
    (not by the interpreter as it starts): then a warm spare or a forked runner, which takes
    its environment at assignment, may stand in for a cold start."""

    def command(self, manifest: Manifest, root: Path) -> tuple[list[str], bool, dict[str, str]]:
        """How ``manifest``'s plugin is started: its command line, whether that is the Python
        child runner (which a warm spare may stand in for), and environment variables of its
        own. A runtime built on this one (native libraries) overrides it."""
        argv, python_child = build_argv(manifest.entry, root, self.options)
        return argv, python_child, {}

    def runner_entry(self, manifest: Manifest) -> str:
        """The ``module:attribute`` the Python child runner loads for ``manifest`` (what a warm
        spare is assigned)."""
        return manifest.entry.strip()

    def _new_session(
        self, plugin_id: str, handler: Any, sink: OutputSink, limits: Mapping[str, Any]
    ) -> Session:
        o = self.options
        return Session(
            plugin_id,
            handler=handler,
            sink=sink,
            limits=limits,
            max_frame=o.max_frame,
            cancel_grace=o.cancel_grace,
            term_grace=o.term_grace,
        )

    # -- warm spare ----------------------------------------------------------------------------
    def _take_spare(self) -> Session | None:
        """The idle pre-started Python runner, if one is ready (it is then no longer spare)."""
        spare, self._spare = self._spare, None
        if spare is not None and spare.alive:
            return spare
        return None

    def _want_spare(self) -> None:
        """Start a warm spare in the background if the options ask for one and none exists."""
        if not self.options.warm_spare or self._closed:
            return
        if self._spare is not None or (self._spare_task and not self._spare_task.done()):
            return
        self._spare_task = asyncio.get_running_loop().create_task(self._make_spare())

    async def _make_spare(self) -> None:
        sink = OutputSink(logging.getLogger("plughost.runtimes.process.spare"))
        session = self._new_session("(spare)", _refuse_before_assign, sink, {})
        token = secrets.token_hex(16)
        env = child_env(self.options, "", token, True)
        env[ENV_SPARE] = "1"
        launcher = "from plughost.sdk.child import main; raise SystemExit(main([]))"
        argv = [self.options.python, *self.options.python_flags, "-c", launcher]
        jail = Jail.for_spare() if self.options.confine else None  # its plugin's cgroup-to-be
        if self.options.fork_server:  # forked ahead of need: its network namespace made too
            forked = await self._forked(
                "(spare)", _refuse_before_assign, sink, {},
                isolate_network=self.options.isolate_network,
            )
            if forked is None:
                if jail is not None:
                    await jail.release()
                return
            session = forked
            if jail is not None:
                await jail.attach(session.pid)
                jail.started(session)
            await self._keep_spare(session)
            return
        try:
            await session.start_process(
                argv,
                cwd=os.getcwd(),
                env=env,
                token=token,
                # Spares serve plugins without direct network; the others always start cold.
                preexec_fn=make_preexec(
                    {}, isolate_network=self.options.isolate_network, jail=jail
                ),
            )
            if jail is not None:
                await jail.attach(session.pid)
                jail.started(session)
        except OSError:
            logger.warning("could not start a warm spare; plugins will start cold", exc_info=True)
            return
        session.origin = "spare"
        await self._keep_spare(session)

    async def _keep_spare(self, session: Session) -> None:
        # Only a runner that has finished its imports is worth handing out; one that ends
        # while warming up (its fork server killed, say) is given up at once, not at the timeout.
        try:
            await asyncio.wait(
                (session.spare_ready, session.ended),
                timeout=self.options.handshake_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            await session.kill("warm spare did not become ready", expected=True)
            return
        if not session.spare_ready.done():
            await session.kill("warm spare did not become ready", expected=True)
            return
        if self._closed or not session.alive:
            await session.kill("runtime closed", expected=True)
            return
        self._spare = session

    # -- fork server -----------------------------------------------------------------------------
    FORK_SERVER_STARTS = 5
    """Fork servers started within :attr:`FORK_SERVER_WINDOW` seconds before Python plugins
    start cold instead (one that keeps ending is not worth restarting)."""
    FORK_SERVER_WINDOW = 60.0

    async def _fork_server(self) -> ForkServer | None:
        """The running fork server, started on first need; ``None``: start cold."""
        if not self.options.fork_server or self._closed:
            return None
        server = self._forkserver
        if server is not None and server.ready:
            return server
        if self._forkserver_task is None or self._forkserver_task.done():
            self._forkserver_task = asyncio.get_running_loop().create_task(
                self._start_fork_server()
            )
        return await asyncio.shield(self._forkserver_task)

    async def _start_fork_server(self) -> ForkServer | None:
        now = asyncio.get_running_loop().time()
        recent = [t for t in self._forkserver_starts if now - t < self.FORK_SERVER_WINDOW]
        if len(recent) >= self.FORK_SERVER_STARTS:
            if len(recent) == self.FORK_SERVER_STARTS:
                logger.error(
                    "the fork server for Python plugins ended %d times within %gs; Python "
                    "plugins start cold from now on", len(recent), self.FORK_SERVER_WINDOW,
                )
                self._forkserver_starts.append(now)
            return None
        self._forkserver_starts = [*recent, now]
        server = ForkServer(self.options, self._fork_server_ended)
        try:
            await server.start()
        except (OSError, PlughostError, TimeoutError) as exc:
            logger.warning("could not start the fork server (%s); Python plugins start cold", exc)
            return None
        if self._closed:
            await server.aclose()
            return None
        self._forkserver = server
        return server

    def _fork_server_ended(self, server: ForkServer) -> None:
        if self._forkserver is server:
            self._forkserver = None

    async def _forked(
        self, plugin_id: str, handler: Any, sink: OutputSink, limits: Mapping[str, Any],
        *, isolate_network: bool,
    ) -> Session | None:
        """A runner forked from the fork server, waiting for its ``$/assign``; ``None`` when
        there is no fork server (then the plugin starts cold)."""
        server = await self._fork_server()
        if server is None:
            return None
        try:
            pid, stdin, stdout, stderr = await server.fork(isolate_network=isolate_network)
        except (PlughostError, TimeoutError) as exc:
            logger.warning("fork server: %s; plugin %s starts cold", exc, plugin_id)
            return None
        session = self._new_session(plugin_id, handler, sink, limits)
        session.origin = "forked"
        server.adopt(pid, session)
        await session.connect_pipes(
            stdout, stdin, token=secrets.token_hex(16), stderr_fd=stderr, pid=pid,
            signaller=server.signaller(pid),
        )
        return session

    async def load(self, manifest: Manifest, root: Path | None) -> ProcessInstance:
        """Spawn the plugin's process and complete the handshake (state LOADED)."""
        if self._closed:
            raise PluginUnavailable("the process runtime is closed", plugin_id=manifest.id)
        inst = ProcessInstance(self, manifest, Path(root) if root is not None else Path.cwd())
        await inst._launch(phase="load")
        self._instances.add(inst)
        return inst

    async def aclose(self) -> None:
        """Close every instance still open and the warm spare; idempotent."""
        self._closed = True
        instances, self._instances = list(self._instances), set()
        await asyncio.gather(*(i.close() for i in instances), return_exceptions=True)
        if self._spare_task is not None:
            with contextlib.suppress(Exception):
                await self._spare_task
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare.shutdown(self.options.stop_grace)
        if self._forkserver_task is not None:
            with contextlib.suppress(Exception):
                await self._forkserver_task
        server, self._forkserver = self._forkserver, None
        if server is not None:
            await server.aclose()


class ProcessInstance:
    """One process plugin: a session (replaced on restart) plus its supervisor."""

    def __init__(self, runtime: ProcessRuntime, manifest: Manifest, root: Path) -> None:
        self.runtime = runtime
        self.manifest = manifest
        self.root = root
        self.options = runtime.options
        self.limits = limits_of(manifest)
        self._id = manifest.id
        self.log = logging.getLogger(f"plughost.plugin.{self._id}")
        # host.* requests go through the host operations table; until start() gives the
        # context, only log and config are served and everything that needs a grant is denied.
        self._calls = self._host_calls(None)
        # Direct sockets are all or nothing: a plugin that declares no net: permission runs in
        # its own empty network namespace; host.http requests are checked per host either way.
        self._isolate_net = runtime.options.isolate_network and not declares_network(manifest)
        self.network_isolated = False
        self._warned_network = False
        self.supervisor = Supervisor(runtime.policy)
        self._session: Session | None = None  # the current process, activated or not
        self._live: Session | None = None  # the session calls go to: activated, not ending
        self._context: PluginContext | None = None
        self._active = False
        self._closed = False
        # Set (and replaced) whenever ``_live`` changes or the plugin is quarantined, closed,
        # stopped: callers waiting out a restart wake up and look again.
        self._changed = asyncio.Event()
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._handover: dict[str, Any] | None = None  # imported state, until activation
        self._stream_ids = 0
        self._restart_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self.exports: list[Export] = []
        self.failure: str | None = None
        self.sink: OutputSink | None = None
        self._stats = {"calls": 0, "errors": 0, "timeouts": 0, "crashes": 0, "restarts": 0}
        self._jail: Jail | None = None  # the confinement of the current process (confine.py)
        self._start = "cold"  # how the current process started: cold, spare or forked
        self._call_timeout = self._timeout(None)  # limits and options are fixed: once, not per call

    @property
    def plugin_id(self) -> str:
        """The plugin's id."""
        return self._id

    @property
    def pid(self) -> int | None:
        """The current process id, if running."""
        return self._session.pid if self._session is not None else None

    # -- launching -----------------------------------------------------------------------------
    async def _launch(self, *, phase: str) -> None:
        argv, python_child, own_env = self.runtime.command(self.manifest, self.root)
        sink = OutputSink(
            self.log,
            lines_per_second=self.options.output_lines_per_second,
            bytes_per_second=self.limits.get("output"),
        )
        self.sink = sink
        # Spares start without network when isolation is on: a plugin that may use its own
        # sockets then starts cold, in the host's network namespace.
        if self._jail is not None:  # what the previous process left behind goes first
            await self._jail.release()
        spare_fits = self._isolate_net or not self.options.isolate_network
        # a spare takes its environment when assigned: too late for what the interpreter reads
        env_fits = not own_env or self.runtime.env_read_late
        spare_fits = spare_fits and env_fits
        spare = self.runtime._take_spare() if python_child and spare_fits else None
        if spare is None and python_child and self.options.fork_server and env_fits:
            # forked from the fork server now; it leaves the network namespace when asked
            spare = await self.runtime._forked(
                self._id, self._serve, sink, self.limits, isolate_network=self._isolate_net
            )
        self._start = spare.origin if spare is not None else "cold"
        jail = Jail.prepare(plan_launch(self, argv[0]), self._id, spare=spare is not None)
        try:
            if spare is not None:
                # A warm spare (or a forked runner) has paid for interpreter start and imports.
                session = spare
                if self._start == "forked":  # into the plugin's cgroup before any plugin code
                    await asyncio.to_thread(jail.adopt, session.pid)
                else:
                    jail.adopt(session.pid)  # it confines itself (below)
                session.assign(
                    self._id,
                    handler=self._serve,
                    sink=sink,
                    limits=self.limits,
                    params={
                        "plugin_id": self._id,
                        "entry": self.runtime.runner_entry(self.manifest),
                        "cwd": str(self.root),
                        "limits": {k: self.limits.get(k) for k in ("memory", "cpu", "open_files")},
                        "confine": jail.spec(),
                        # exactly what a cold start of this plugin gets: nothing of the spare's
                        "env": {
                            **child_env(self.options, self._id, session.token, True),
                            **own_env,
                            **jail.env(),
                        },
                    },
                )
                await session.handshake(self.options.handshake_timeout)
            else:
                session = self.runtime._new_session(self._id, self._serve, sink, self.limits)
                token = secrets.token_hex(16)
                await session.start_process(
                    argv,
                    cwd=str(self.root),
                    env={**child_env(self.options, self._id, token, python_child), **own_env,
                         **jail.env()},
                    token=token,
                    preexec_fn=make_preexec(
                        self.limits, isolate_network=self._isolate_net, jail=jail
                    ),
                )
                attached = jail.attach(session.pid)  # into its cgroup while it starts
                await session.handshake(self.options.handshake_timeout)
                await attached
        except PlughostError as exc:
            await self._abandon(spare, jail)
            if exc.code.startswith("protocol."):
                exc.plugin_id = self._id
                exc.phase = phase
                raise
            raise PluginLoadError(
                exc.message, plugin_id=self._id, phase=phase, details=exc.details
            ) from None
        except OSError as exc:
            await self._abandon(spare, jail)
            raise PluginLoadError(
                f"cannot start {argv[0]!r}: {exc}", plugin_id=self._id, phase=phase
            ) from None
        self._session = session
        self._jail = jail.started(session)
        self._watch_task = asyncio.get_running_loop().create_task(self._watch(session))
        self.network_isolated = session.pid is not None and network_isolated(session.pid)
        if self._isolate_net and not self.network_isolated and not self._warned_network:
            self._warned_network = True
            self.log.warning(
                "cannot isolate the network of plugin %s (no CAP_SYS_ADMIN and no user "
                "namespaces): its own sockets are not restricted; host.http is still checked",
                self._id,
            )
        if python_child:
            self.runtime._want_spare()  # the next Python plugin (or restart) starts warm

    @staticmethod
    async def _abandon(runner: Session | None, jail: Jail) -> None:
        """A start failed: end the pre-started runner it had taken (if any), free the jail."""
        if runner is not None and runner.alive:
            await runner.kill("its plugin could not start")
        await jail.release()

    def _notify_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _watch(self, session: Session) -> None:
        info = await session.ended
        for stream in [s for s in self._streams.values() if s.session is session]:
            stream.end(info.error or crashed(self._id, info.reason))
        if session is not self._session or info.expected or self._closed:
            return
        if self._live is session:
            self._live = None
        if self._jail is not None and self._jail.session is session:
            await self._jail.release()  # kill what the plugin left behind, free its cgroup
        await self._on_crash(info)

    def _emit(self, kind: str, reason: str, **details: Any) -> None:
        if self.runtime.on_event is not None:
            try:
                self.runtime.on_event(SupervisorEvent(self._id, kind, reason, details))
            except Exception:  # a listener must not break supervision
                logger.exception("supervisor listener failed")

    async def _on_crash(self, info: EndInfo) -> None:
        self._stats["crashes"] += 1
        self.log.error("plugin process crashed: %s", info.reason)
        decision = self.supervisor.record_crash(info.reason)
        self._emit("crashed", info.reason, returncode=info.returncode)
        if decision.quarantine:
            self.failure = decision.reason
            self._session = None
            self._notify_change()  # wake waiters so they see the quarantine
            self._emit("quarantined", decision.reason, crashes=decision.crashes_in_window)
            return
        self._restart_task = asyncio.get_running_loop().create_task(
            self._restart(decision.delay, info.reason)
        )

    async def _restart(self, delay: float, reason: str) -> None:
        await asyncio.sleep(delay)
        if self._closed:
            return
        try:
            await self._launch(phase="restart")
            if self._active and self._context is not None:
                await self._activate(self._context)
        except PlughostError as exc:
            if self._session is not None and self._session.alive:
                await self._session.kill("restart failed", expected=True)
            await self._on_crash(EndInfo(f"restart failed: {exc.message}", None, False))
            return
        self._stats["restarts"] += 1
        self._go_live()
        self._emit("restarted", reason, pid=self.pid)

    async def _relaunch_confined(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.shutdown(self.options.stop_grace)
        if self._jail is not None:
            await self._jail.release()
        await self._launch(phase="activate")

    # -- serving the plugin's requests ---------------------------------------------------------
    def _host_calls(self, context: PluginContext | None) -> HostCalls:
        # An explicit policy from the runtime's owner wins; otherwise the PluginContext's
        # permission service; with neither, everything is denied.
        runtime = self.runtime
        check = runtime.check_for(self._id) if runtime.check_for is not None else None
        if check is None and context is None:
            check = deny_all(self._id)
        return HostCalls(
            self._id, context, check=check, handlers=runtime.handlers, log=self._log_line
        )

    @property
    def _check(self) -> PermissionCheck:
        """The permission check host.* requests pass (the confinement reads grants from it)."""
        return self._calls.check

    def _log_line(self, level: int, message: str) -> None:
        if self.sink is not None:  # rate-limited like the plugin's stderr
            self.sink.log(level, message)

    def _serve(self, method: str, params: dict[str, Any]) -> Any:
        if method == M.CHANNEL_MESSAGE or method == M.CHANNEL_CLOSE:
            self._channel_from_plugin(method, params)
            return None
        return serve(self._calls, method, params)

    # -- the PluginInstance contract -----------------------------------------------------------
    async def _activate(self, context: PluginContext) -> list[Export]:
        session = self._require_session()
        try:
            data_dir = getattr(context, "data_dir", None)
        except PlughostError:  # a host without a home has no data directories: say None
            data_dir = None
        params = {
            "plugin_id": self._id,
            "config": dict(getattr(context, "config", None) or {}),
            "data_dir": str(data_dir) if data_dir is not None else None,
            "manifest": _manifest_dict(self.manifest),
        }
        try:
            result = await session.request(
                M.ACTIVATE, params, self._timeout(None, activation=True)
            )
        except PluginUnavailable:
            raise
        except PluginError as exc:
            if exc.code.startswith(("plugin.crashed", "protocol.", "plugin.timeout")):
                raise
            raise PluginActivationError(
                f"activate failed: {exc.message}",
                plugin_id=self._id,
                phase="activate",
                details=exc.details,
            ) from None
        exports = []
        for item in (result or {}).get("exports", []) if isinstance(result, dict) else []:
            exports.append(
                Export(item["kind"], item["name"], item["target"], dict(item.get("options") or {}))
            )
        self.exports = exports
        return exports

    async def start(self, context: PluginContext) -> Sequence[Export]:
        """Send ``plugin.activate``; return the exports the plugin declared."""
        self._ensure_open()
        self._context = context
        self._calls = self._host_calls(context)
        if self._jail is not None and self._jail.plan != plan_launch(self, self._jail.plan.argv0):
            # The context brings the data directory and the grants: confine to them.
            await self._relaunch_confined()
            if self._handover is not None:  # the new process gets the state the old one got
                await self._optional(self._require_session(), M.IMPORT_STATE, self._handover)
        exports = await self._activate(context)
        self._handover = None
        self._active = True
        self._go_live()
        return exports

    def _go_live(self) -> None:
        """Calls may use the current session: it is started and (when active) activated."""
        self._live = self._session if self._active else None
        self._notify_change()

    def _timeout(self, timeout: float | None, activation: bool = False) -> float | None:
        if timeout is not None:
            return timeout
        if self.limits.get("timeout") is not None:
            return float(self.limits["timeout"])
        return self.options.default_timeout

    def _ensure_open(self) -> None:
        if self._closed:
            raise PluginUnavailable(
                "the plugin instance is closed; load it again", plugin_id=self._id
            )

    def _require_session(self) -> Session:
        self._ensure_open()
        if self.failure is not None:
            raise PluginUnavailable(self.failure, plugin_id=self._id, details={"quarantined": True})
        if self._session is None:
            raise PluginUnavailable("the plugin process is restarting", plugin_id=self._id)
        return self._session

    async def _ready_session(self, timeout: float | None) -> Session:
        """The session to send a call to, waiting out a restart within ``timeout``.

        A session being ended (killed as hung, exited, shutting down) takes no new request:
        the caller waits for the restart, whatever ended the process (docs/protocol.md §8).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._ensure_open()
            if self.failure is not None:
                raise PluginUnavailable(
                    self.failure, plugin_id=self._id, details={"quarantined": True}
                )
            if not self._active:
                raise PluginUnavailable(
                    "the plugin is not active; activate it first", plugin_id=self._id
                )
            live = self._live
            if live is not None and live.accepting:
                return live
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise PluginUnavailable(
                    f"the plugin process is restarting and was not back within {timeout:g}s",
                    plugin_id=self._id,
                    details={"restarting": True},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def call(
        self,
        target: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """``plugin.call``: invoke an export's target with keyword arguments."""
        if timeout is None:
            timeout = self._call_timeout
        session = self._live
        if session is None or not session.accepting:
            session = await self._ready_session(timeout)
        self._stats["calls"] += 1
        if self.sink is not None:  # lines logged during the call carry its correlation id
            self.sink.correlation = correlation_id.get()
        try:
            # The message is encoded before anything else runs (Session.start_request): a
            # caller's dict needs no copy; another mapping is made one (the encoder takes only
            # dicts). The session was found accepting in this very step, nothing awaited since.
            args = kwargs if type(kwargs) is dict else dict(kwargs or {})
            params = {"target": target, "args": args}
            traced = trace_context.get()
            if traced:
                params.update(traced)
            return await session.start_request(M.CALL, params, timeout)
        except TimeoutError:
            self._stats["timeouts"] += 1
            raise
        except PlughostError:
            self._stats["errors"] += 1
            raise

    async def deliver_event(self, target: str, event: Event) -> None:
        """``plugin.event`` as a notification: hand ``event`` to the subscription ``target``."""
        session = self._live
        if session is None or not session.accepting:
            session = await self._ready_session(self._timeout(None))
        args = {
            "topic": event.topic,
            "payload": event.payload,
            "source": event.source,
            "id": event.id,
            "timestamp": event.timestamp,
        }
        session.notify(M.EVENT, {"target": target, "args": args, **trace_fields()})

    async def serve_channel(self, target: str, channel: Channel) -> None:
        """Serve one opened channel with the plugin's handler ``target`` (docs/protocol.md §7).

        The host sends ``channel.open`` and then every message the opener sends as
        ``channel.message``; what the plugin sends on the stream goes to the opener. Either side
        ends the stream with ``channel.close``; the process ending aborts it with the reason.
        """
        session = await self._ready_session(self._timeout(None))
        name = next((e.name for e in self.exports if e.kind == "channel" and e.target == target),
                    target)
        self._stream_ids += 1
        stream = _Stream(session, name, str(self._stream_ids))
        key = (name, stream.id)
        self._streams[key] = stream
        session.notify(M.CHANNEL_OPEN, {**stream.params(), "target": target, **trace_fields()})
        forward = asyncio.get_running_loop().create_task(stream.forward(channel))
        try:
            await stream.pump(channel)
        finally:
            forward.cancel()
            self._streams.pop(key, None)
            if not stream.closed_by_plugin and session.accepting:
                reason = {"reason": stream.reason} if stream.reason else {}
                session.notify(M.CHANNEL_CLOSE, {**stream.params(), **reason})

    def _channel_from_plugin(self, method: str, params: dict[str, Any]) -> None:
        stream = self._streams.get((str(params.get("channel")), str(params.get("stream"))))
        if stream is None:  # a stream that ended here already: the plugin will learn
            return
        if method == M.CHANNEL_MESSAGE:
            stream.put(params.get("data"))
        else:
            reason = params.get("reason")
            stream.close(str(reason) if reason else None)

    async def config_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """``plugin.config_change``: the plugin may refuse the change by answering an error."""
        session = await self._ready_session(self._timeout(None))
        await self._optional(session, M.CONFIG_CHANGE, {"old": dict(old), "new": dict(new)})

    async def enabled_changed(self, enabled: bool) -> None:
        """``plugin.enable`` / ``plugin.disable``: the operator enabled or disabled the plugin."""
        session = await self._ready_session(self._timeout(None))
        await self._optional(session, M.ENABLE if enabled else M.DISABLE, {})

    async def _optional(self, session: Session, method: str, params: dict[str, Any]) -> Any:
        """A request the plugin need not implement: ``method not found`` is the neutral
        answer (``None``: no state, change accepted, nothing to do)."""
        try:
            return await session.request(method, params, self._timeout(None))
        except PluginError as exc:
            if exc.code == "plugin.method":
                return None
            raise

    async def health(self) -> Health:
        """``plugin.health``; a quarantined or restarting plugin reports not ok."""
        if self.failure is not None:
            return Health(False, self.failure, {"quarantined": True})
        session = self._session
        if session is None or not session.accepting:
            return Health(False, "restarting", {})
        try:
            result = await session.request(M.HEALTH, {}, self._timeout(None))
        except PlughostError as exc:
            return Health(False, exc.message, {"code": exc.code})
        if not isinstance(result, dict):
            return Health(False, "plugin.health returned a non-object", {})
        return Health(
            bool(result.get("ok")), str(result.get("detail", "")), dict(result.get("data") or {})
        )

    async def export_state(self) -> Any:
        """``plugin.export_state``: the plugin's state for a hot reload (JSON)."""
        session = self._require_session()
        result = await self._optional(session, M.EXPORT_STATE, {})
        return result.get("state") if isinstance(result, dict) else None

    async def import_state(self, state: Any, from_version: str = "") -> None:
        """``plugin.import_state``: hand over the state ``from_version`` exported."""
        session = self._require_session()
        params = {"state": state, "from_version": from_version}
        await self._optional(session, M.IMPORT_STATE, params)
        self._handover = params  # until activated: a relaunch before then imports it again

    async def stop(self) -> None:
        """``plugin.deactivate``; idempotent. The process stays up until :meth:`close`."""
        if not self._active:
            return
        self._active = False
        self._live = None
        self._notify_change()
        session = self._session
        if session is not None and session.alive:
            try:
                await session.request(M.DEACTIVATE, {}, self.options.stop_grace)
            except PlughostError as exc:
                self.log.warning("deactivate failed: %s", exc.message)

    async def close(self) -> None:
        """Deactivate if needed, then end the process (``$/exit`` → SIGTERM → SIGKILL)."""
        if self._closed:
            return
        await self.stop()
        self._closed = True
        self._notify_change()
        self.runtime._instances.discard(self)
        if self._restart_task is not None:
            self._restart_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._restart_task
        session, self._session = self._session, None
        if session is not None:
            await session.shutdown(self.options.stop_grace)
        if self._jail is not None:
            await self._jail.release()  # nothing the plugin started survives close()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task

    def stats(self) -> Mapping[str, Any]:
        """Counters: calls, errors, timeouts, crashes, restarts, pid, dropped log lines."""
        out: dict[str, Any] = dict(self._stats)
        out["pid"] = self.pid
        out["quarantined"] = self.failure is not None
        out["network_isolated"] = self.network_isolated
        out["started"] = self._start
        if self._jail is not None:
            out["confinement"] = self._jail.label
            out["processes"] = self._jail.processes()
        if self.sink is not None:
            out["log_lines_dropped"] = self.sink.dropped_lines
        return out

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        """Out of process: no direct callable."""
        return None


class _Stream:
    """One channel stream a process plugin serves: what it sent, waiting for the opener.

    The plugin's messages arrive as notifications and are queued here in order; the serving
    task hands them to the opener's end, waiting while the opener's buffer is full. Backpressure
    stops at the host: a plugin that sends more than :attr:`LIMIT` messages the opener has not
    read yet loses the stream.
    """

    LIMIT = 10_000

    def __init__(self, session: Session, name: str, stream_id: str) -> None:
        self.session = session
        self.name = name
        self.id = stream_id
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.closed_by_plugin = False
        self.reason: str | None = None  # why the opener's side ended, told to the plugin

    def params(self) -> dict[str, Any]:
        return {"channel": self.name, "stream": self.id}

    def put(self, data: Any) -> None:
        if self._queue.qsize() >= self.LIMIT:
            self.end(PluginError(
                f"channel {self.name!r}: the plugin sent more than {self.LIMIT} messages the "
                "opener has not read; the stream was closed",
                code="plugin.channel",
            ))
        else:
            self._queue.put_nowait(("data", data))

    def close(self, reason: str | None) -> None:
        self._queue.put_nowait(("close", reason))

    def end(self, error: BaseException) -> None:
        self._queue.put_nowait(("error", error))

    async def forward(self, channel: Channel) -> None:
        """Opener -> plugin: every message becomes a ``channel.message`` notification."""
        reason = None
        try:
            async for message in channel:
                if not self.session.accepting:
                    return
                self.session.notify(M.CHANNEL_MESSAGE,
                                    {**self.params(), "data": message, **trace_fields()})
        except ChannelClosed as exc:
            reason = exc.details.get("reason") or exc.message
        self._queue.put_nowait(("opener", reason))

    async def pump(self, channel: Channel) -> None:
        """Plugin -> opener, until either side ends the stream or the process ends."""
        while True:
            kind, value = await self._queue.get()
            if kind == "data":
                await channel.send(value)
            elif kind == "close":
                self.closed_by_plugin = True
                if value:
                    raise PluginError(value, code="plugin.channel")
                return
            elif kind == "opener":
                self.reason = value
                return
            else:
                self.closed_by_plugin = True
                raise value


def create_runtime(
    home: Path | None = None, on_event: Callable[[SupervisorEvent], None] | None = None
) -> ProcessRuntime:
    """Factory used by the host (see :data:`plughost.runtimes.base.BUILTIN_RUNTIMES`).

    With a ``home``, plugins are confined to ``<home>/data/<id>`` (their ``ctx.data_dir``) from
    their first start."""
    options = ProcessOptions(
        data_root=home / "data" if home is not None else None,
        pycache_root=home / "cache" / "pyc" if home is not None else None,
    )
    return ProcessRuntime(on_event=on_event, options=options)


def _manifest_dict(manifest: Manifest) -> dict[str, Any]:
    to_dict = getattr(manifest, "to_dict", None)
    if to_dict is not None:
        try:
            return dict(to_dict())
        except Exception:  # a manifest that cannot serialise should not block activation
            logger.debug("manifest.to_dict failed", exc_info=True)
    return {"id": manifest.id, "version": str(getattr(manifest, "version", ""))}
