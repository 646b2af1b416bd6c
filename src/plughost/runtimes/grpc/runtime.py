"""The ``grpc`` runtime: plugins that are gRPC services implementing ``plughost.proto``.

``entry`` is either a command line the host starts (``python server.py``, ``node server.js``,
``./plugin``), run like a process plugin — the plugin folder as working directory, a minimal
environment, rlimits, its own network namespace when it declares no ``net:`` permission,
children killed with the host — and supervised the same way (restarts with backoff, quarantine,
through :class:`~plughost.observability.health.Supervisor`); or the address of a service that
already runs elsewhere (``host:port``, ``unix:/path``), which the host attaches to and
reconnects to with backoff when it goes away.

A launched plugin completes the handshake of :mod:`.handshake` (go-plugin style: a magic cookie
in its environment, one line on stdout, a timeout, a clear version mismatch); by default it
listens on a Unix socket in a private directory the host made for it. With
``GrpcOptions(mtls=True)`` each launch also gets per-launch certificates (go-plugin's AutoMTLS,
:mod:`.tls`). Readiness is the standard ``grpc.health.v1.Health`` service.

Host operations reach the host on the ``HostCalls`` stream and go through the shared table
(:mod:`plughost.runtimes.hostcalls`): this module restates no permission rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from plughost.core._manifest_checks import entry_problem, grpc_address
from plughost.core.contract import Capability
from plughost.core.wire import decode_json
from plughost.errors import (
    ChannelClosed,
    PermissionDenied,
    PlughostError,
    PluginActivationError,
    PluginCrashed,
    PluginError,
    PluginLoadError,
    PluginTimeout,
    PluginUnavailable,
    ProtocolError,
)
from plughost.observability.health import RestartPolicy, Supervisor, SupervisorEvent
from plughost.runtimes.base import Export, Health
from plughost.runtimes.grpc import plughost_pb2 as pb
from plughost.runtimes.grpc import plughost_pb2_grpc as pb_grpc
from plughost.runtimes.grpc.handshake import (
    APP_PROTOCOL_VERSION,
    ENV_COOKIE,
    ENV_SOCKET_DIR,
    ENV_VERSIONS,
    MAGIC_COOKIE,
    Handshake,
    parse_line,
)
from plughost.runtimes.hostcalls import (
    HostCalls,
    HostOpUnserved,
    HostParamsError,
    PermissionCheck,
)
from plughost.runtimes.process.confine import Jail, plan_launch
from plughost.runtimes.process.launch import (
    ProcessOptions,
    build_argv,
    child_env,
    declares_network,
    limits_of,
    make_preexec,
)
from plughost.runtimes.process.output import OutputSink

if TYPE_CHECKING:
    from plughost.core.bus import Event
    from plughost.core.channels import Channel as ChannelEnd
    from plughost.core.context import PluginContext
    from plughost.core.manifest import Manifest

__all__ = ["GrpcInstance", "GrpcOptions", "GrpcRuntime", "create_runtime"]

logger = logging.getLogger(__name__)

SERVICE: Final = "plughost.v1.Plugin"
"""The name the plugin's health service reports for (``""`` is accepted too)."""


@dataclass(frozen=True, slots=True)
class GrpcOptions:
    """Knobs of the gRPC runtime.

    :param handshake_timeout: seconds a launched plugin has to print its handshake line and an
        attached one to answer its health check.
    :param default_timeout: per-call deadline when neither the caller nor the manifest sets one.
    :param stop_grace: seconds a launched plugin has to exit after SIGTERM at close.
    :param mtls: give each launch its own certificates and speak mutual TLS (go-plugin's
        AutoMTLS); the default is a Unix socket in a private directory.
    :param hung_probe: after a call misses its deadline, a launched plugin must answer a health
        check within this many seconds, or it is considered hung, killed and restarted (as the
        process runtime does with a child that ignores a cancellation).
    :param reconnect_backoff: first and largest delay between reconnection attempts to an
        attached service (gRPC's own backoff, jittered).
    :param process: the process runtime's launch settings (environment passthrough, network
        isolation, output rate).
    """

    handshake_timeout: float = 10.0
    default_timeout: float | None = 30.0
    stop_grace: float = 2.0
    mtls: bool = False
    hung_probe: float = 1.0
    reconnect_backoff: tuple[float, float] = (0.1, 5.0)
    process: ProcessOptions = field(default_factory=ProcessOptions)


def _json(text: str, plugin_id: str, what: str) -> Any:
    """A JSON field of a message from the plugin; ``protocol.json`` naming ``what`` when it is
    not JSON."""
    return decode_json(text, f"{what} from the plugin", "A gRPC plugin sends every *_json "
                       "field as a JSON text (docs/grpc.md)", plugin_id=plugin_id)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class GrpcRuntime:
    """Loads ``runtime = "grpc"`` plugins. One per host; instances are independent."""

    name = "grpc"
    enforces: frozenset[str] = frozenset({"timeout", "memory", "cpu", "open_files", "output"})
    capabilities: frozenset[Capability] = frozenset(Capability)

    def __init__(
        self,
        *,
        options: GrpcOptions | None = None,
        policy: RestartPolicy | None = None,
        on_event: Callable[[SupervisorEvent], None] | None = None,
    ) -> None:
        self.options = options or GrpcOptions()
        self.policy = policy or RestartPolicy()
        self.on_event = on_event
        self._instances: set[GrpcInstance] = set()
        self._closed = False

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        return entry_problem(self.name, entry, str(root) if root is not None else None)

    async def load(self, manifest: Manifest, root: Path | None) -> GrpcInstance:
        if self._closed:
            raise PluginUnavailable("the grpc runtime is closed", plugin_id=manifest.id)
        inst = GrpcInstance(self, manifest, Path(root) if root is not None else Path.cwd())
        try:
            await inst._connect(phase="load")
        except BaseException:
            await inst.close()
            raise
        self._instances.add(inst)
        return inst

    async def aclose(self) -> None:
        self._closed = True
        instances, self._instances = list(self._instances), set()
        await asyncio.gather(*(i.close() for i in instances), return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Started:
    """What :meth:`Jail.started` reads of a started process."""

    pid: int | None


class _Launched:
    """One started plugin process: its handshake, its output, its end."""

    def __init__(self, proc: asyncio.subprocess.Process, socket_dir: str, sink: OutputSink):
        self.proc = proc
        self.socket_dir = socket_dir
        self.sink = sink
        self.expected_end = False
        self._pumps: list[asyncio.Task[None]] = []

    def pump_output(self) -> None:
        loop = asyncio.get_running_loop()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                self._pumps.append(loop.create_task(self._pump(stream)))

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                self.sink.close()
                return
            self.sink.feed(chunk)

    async def end(self, grace: float) -> None:
        self.expected_end = True
        proc = self.proc
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._pumps:
            task.cancel()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def _exit_reason(returncode: int | None) -> str:
    import signal

    if returncode is None:
        return "ended"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


class GrpcInstance:
    """One gRPC plugin: a channel (replaced on restart), the process when launched, its
    supervisor."""

    def __init__(self, runtime: GrpcRuntime, manifest: Manifest, root: Path) -> None:
        self.runtime = runtime
        self.options = runtime.options
        self.manifest = manifest
        self.root = root
        self.limits = limits_of(manifest)
        self._id = manifest.id
        self.log = logging.getLogger(f"plughost.plugin.{self._id}")
        self.address = grpc_address(manifest.entry)
        self.supervisor = Supervisor(runtime.policy)
        self._launched: _Launched | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.PluginStub | None = None
        self._context: PluginContext | None = None
        self._calls = HostCalls(self._id, None, log=self._log_line)
        self._host_stream: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._link: asyncio.Task[None] | None = None  # an attached service's connection
        self._linked = False  # ... is up and the service activated (when the host started it)
        self._active = False
        self._closed = False
        self.failure: str | None = None
        self.exports: list[Export] = []
        self.sink = OutputSink(self.log, lines_per_second=self.options.process
                               .output_lines_per_second, bytes_per_second=self.limits.get("output"))
        self._changed = asyncio.Event()
        self._stats = {"calls": 0, "errors": 0, "timeouts": 0, "crashes": 0, "restarts": 0,
                       "host_calls": 0, "channels": 0, "disconnects": 0, "reconnects": 0}
        self._tls: Any = None
        self._jail: Jail | None = None  # the confinement of the current process

    @property
    def plugin_id(self) -> str:
        return self._id

    @property
    def pid(self) -> int | None:
        launched = self._launched
        return launched.proc.pid if launched is not None else None

    def _log_line(self, level: int, message: str) -> None:
        self.sink.log(level, message)

    # -- connecting ------------------------------------------------------------------------------
    def _channel_options(self) -> list[tuple[str, Any]]:
        first, most = self.options.reconnect_backoff
        return [
            ("grpc.initial_reconnect_backoff_ms", int(first * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(first * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(most * 1000)),
            ("grpc.max_receive_message_length", self.options.process.max_frame),
            ("grpc.max_send_message_length", self.options.process.max_frame),
            # a quiet channel never goes idle: only a lost connection makes it leave READY
            # (which, for an attached service, means activating it again once it is back)
            ("grpc.client_idle_timeout_ms", 2**31 - 1),
        ]

    async def _connect(self, *, phase: str) -> None:
        if self.address is not None:
            target, credentials = self.address, None
        else:
            handshake = await self._launch(phase)
            target = handshake.target
            credentials = self._tls.channel_credentials() if self._tls is not None else None
        options = self._channel_options()
        if credentials is not None:
            from plughost.runtimes.grpc.tls import SERVER_NAME

            options.append(("grpc.ssl_target_name_override", SERVER_NAME))
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        self._channel = channel
        self._stub = pb_grpc.PluginStub(channel)  # type: ignore[no-untyped-call]
        try:
            await self._wait_serving(phase)
        except BaseException:
            await self._drop_channel()
            raise
        if self.address is not None:
            self._linked = True
            self._link = asyncio.get_running_loop().create_task(self._watch_link(channel))

    # -- an attached service: losing it, getting it back --------------------------------------
    async def _watch_link(self, channel: grpc.aio.Channel) -> None:
        """Follow the connection to an attached service. When it is lost, calls wait; when the
        service answers again, it is activated again before they go on (a service that was
        restarted remembers nothing of its activation), and its host-call stream reopened."""
        ready = grpc.ChannelConnectivity.READY
        while self._following(channel):
            state = channel.get_state(try_to_connect=False)
            if state == ready:
                await channel.wait_for_state_change(state)
                continue
            self._linked = False
            self._notify()
            reason = f"lost the connection to {self.address}"
            self.log.warning("gRPC plugin: %s; reconnecting", reason)
            self._stats["disconnects"] += 1
            self._emit("disconnected", reason)
            await self._relink(channel, reason)

    def _following(self, channel: grpc.aio.Channel) -> bool:
        """Whether ``channel`` is still this open instance's connection."""
        return not self._closed and channel is self._channel

    async def _relink(self, channel: grpc.aio.Channel, reason: str) -> None:
        """Wait (gRPC's reconnection backoff) until the service reports SERVING, then activate
        it again if the host had started it."""
        delay = self.options.reconnect_backoff[0]
        while self._following(channel):
            try:
                await self._wait_serving("reconnect")
                if self._active and self._context is not None:
                    await self._activate(self._context)
            except PlughostError as exc:
                self.log.warning("gRPC plugin at %s is not back yet: %s", self.address,
                                 exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.reconnect_backoff[1])
                continue
            self._linked = True
            self._stats["reconnects"] += 1
            self._notify()
            self.log.info("gRPC plugin at %s is back%s", self.address,
                          " and activated again" if self._active else "")
            self._emit("reconnected", reason)
            return

    async def _wait_serving(self, phase: str) -> None:
        assert self._channel is not None
        health = health_pb2_grpc.HealthStub(self._channel)
        deadline = time.monotonic() + self.options.handshake_timeout
        last = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PluginLoadError(
                    f"the gRPC plugin at {self._target_text()} did not report SERVING on the "
                    f"grpc.health.v1 service within {self.options.handshake_timeout:g}s "
                    f"({last})", plugin_id=self._id, phase=phase)
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE),
                                           timeout=remaining, wait_for_ready=True)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = f"status {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # reports for "" only
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""),
                                               timeout=remaining, wait_for_ready=True)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                last = f"{exc.code().name}: {exc.details()}"
                if self._launched is not None and self._launched.proc.returncode is not None:
                    raise PluginLoadError(
                        f"the gRPC plugin process {_exit_reason(self._launched.proc.returncode)} "
                        "before it was serving", plugin_id=self._id, phase=phase) from None
            await asyncio.sleep(0.02)

    def _target_text(self) -> str:
        return self.address or "its handshake address"

    @property
    def _check(self) -> PermissionCheck:
        """The permission check host operations pass (the confinement reads grants from it)."""
        return self._calls.check

    async def _launch(self, phase: str) -> Handshake:
        opts = self.options.process
        argv, _ = build_argv(self.manifest.entry, self.root, opts)
        if self._jail is not None:  # what the previous process left behind goes first
            await self._jail.release()
            self._jail = None
        # The same confinement as a process plugin (pids cgroup, Landlock, seccomp); its
        # socket lives in the jail's private temporary directory, which it may write.
        jail = Jail.prepare(plan_launch(self, argv[0], opts), self._id)
        try:
            socket_dir = jail.tmpdir or tempfile.mkdtemp(prefix="plughost-grpc-")
        except OSError:
            await jail.release()
            raise
        env = {**child_env(opts, self._id, secrets.token_hex(16), True), **jail.env()}
        env.update({ENV_COOKIE: MAGIC_COOKIE, ENV_SOCKET_DIR: socket_dir,
                    ENV_VERSIONS: str(APP_PROTOCOL_VERSION)})
        if self.options.mtls:
            from plughost.runtimes.grpc.tls import AutoTLS

            self._tls = AutoTLS.for_launch()
            env.update(self._tls.env())
        isolate = opts.isolate_network and not declares_network(self.manifest)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=str(self.root), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                preexec_fn=make_preexec(self.limits, isolate_network=isolate, jail=jail),
            )
            await jail.attach(proc.pid)
        except OSError as exc:
            shutil.rmtree(socket_dir, ignore_errors=True)
            await jail.release()
            raise PluginLoadError(f"cannot start {argv[0]!r}: {exc}", plugin_id=self._id,
                                  phase=phase) from None
        self._jail = jail.started(_Started(proc.pid))
        launched = _Launched(proc, socket_dir, self.sink)
        self._launched = launched
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), self.options.handshake_timeout)
        except TimeoutError:
            await launched.end(self.options.stop_grace)
            raise ProtocolError(
                f"the plugin printed no handshake line within {self.options.handshake_timeout:g}s"
                "; a gRPC plugin prints one line like '1|1|unix|/path/plugin.sock|grpc' on "
                "stdout once it listens (docs/grpc.md)", code="protocol.handshake",
                plugin_id=self._id, phase=phase) from None
        if not line:
            await launched.end(self.options.stop_grace)
            raise PluginLoadError(
                f"the gRPC plugin {_exit_reason(await proc.wait())} before its handshake",
                plugin_id=self._id, phase=phase)
        try:
            handshake = parse_line(line.decode("utf-8", "replace"), self._id)
            if self._tls is not None:
                self._tls.accept_server(line.decode().strip().split("|"))
        except PlughostError as exc:
            await launched.end(self.options.stop_grace)
            exc.phase = phase
            raise
        launched.pump_output()
        self._watch = asyncio.get_running_loop().create_task(self._watch_exit(launched))
        return handshake

    async def _drop_channel(self) -> None:
        if self._host_stream is not None:
            self._host_stream.cancel()
            self._host_stream = None
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close(grace=None)

    # -- supervision (the process runtime's policy) ---------------------------------------------
    async def _watch_exit(self, launched: _Launched) -> None:
        code = await launched.proc.wait()
        if launched.expected_end or self._closed or launched is not self._launched:
            return
        reason = _exit_reason(code)
        self._stats["crashes"] += 1
        self.log.error("gRPC plugin process ended: %s", reason)
        await self._drop_channel()
        shutil.rmtree(launched.socket_dir, ignore_errors=True)
        self._launched = None
        if self._jail is not None:  # whatever the plugin left running goes with it
            await self._jail.release()
            self._jail = None
        decision = self.supervisor.record_crash(reason)
        self._emit("crashed", reason, returncode=code)
        if decision.quarantine:
            self.failure = decision.reason
            self._notify()
            self._emit("quarantined", decision.reason, crashes=decision.crashes_in_window)
            return
        self._restart = asyncio.get_running_loop().create_task(
            self._relaunch(decision.delay, reason))

    async def _relaunch(self, delay: float, reason: str) -> None:
        await asyncio.sleep(delay)
        if self._closed:
            return
        try:
            await self._connect(phase="restart")
            if self._active and self._context is not None:
                await self._activate(self._context)
        except PlughostError as exc:
            launched = self._launched
            if launched is not None:
                await launched.end(self.options.stop_grace)
            self._launched = None
            decision = self.supervisor.record_crash(f"restart failed: {exc.message}")
            if decision.quarantine:
                self.failure = decision.reason
                self._notify()
                self._emit("quarantined", decision.reason)
                return
            self._restart = asyncio.get_running_loop().create_task(
                self._relaunch(decision.delay, reason))
            return
        self._stats["restarts"] += 1
        self._notify()
        self._emit("restarted", reason, pid=self.pid)

    def _emit(self, kind: str, reason: str, **details: Any) -> None:
        if self.runtime.on_event is not None:
            try:
                self.runtime.on_event(SupervisorEvent(self._id, kind, reason, details))
            except Exception:
                logger.exception("supervisor listener failed")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _ready(self, timeout: float | None) -> pb_grpc.PluginStub:
        """The stub to call, waiting out a restart within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                raise PluginUnavailable("the plugin instance is closed; load it again",
                                        plugin_id=self._id)
            if self.failure is not None:
                raise PluginUnavailable(self.failure, plugin_id=self._id,
                                        details={"quarantined": True})
            if self._stub is not None and (self._linked if self.address is not None
                                           else self._launched):
                return self._stub
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if self.address is not None:
                    raise PluginUnavailable(
                        f"the gRPC service at {self.address} is unreachable and was not back "
                        f"within {timeout:g}s; the host keeps reconnecting", plugin_id=self._id,
                        details={"reconnecting": True})
                raise PluginUnavailable(
                    f"the gRPC plugin is restarting and was not back within {timeout:g}s",
                    plugin_id=self._id, details={"restarting": True})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # -- errors ----------------------------------------------------------------------------------
    def _error(self, exc: grpc.aio.AioRpcError, what: str, timeout: float | None) -> PlughostError:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            self._stats["timeouts"] += 1
            return PluginTimeout(f"{what} did not finish within {timeout}s", plugin_id=self._id,
                                 details={"timeout": timeout})
        self._stats["errors"] += 1
        if code == grpc.StatusCode.NOT_FOUND:
            return PluginUnavailable(f"{what}: {details}", plugin_id=self._id,
                                     code="plugin.no_target")
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return PermissionDenied(f"{what}: {details}", plugin_id=self._id)
        if code == grpc.StatusCode.UNAVAILABLE:
            if self.address is None:
                return PluginCrashed(f"{what}: the plugin process went away ({details})",
                                     plugin_id=self._id)
            return PluginUnavailable(f"{what}: {self.address} is unreachable ({details})",
                                     plugin_id=self._id)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return ProtocolError(f"{what}: {details}", code="protocol.frame", plugin_id=self._id)
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return PluginError(f"{what}: not implemented by the plugin", plugin_id=self._id,
                               code="plugin.method")
        return PluginError(f"{what}: {details}", plugin_id=self._id,
                           details={"grpc_status": code.name})

    def _cancelled(self, what: str) -> BaseException:
        """A call ended by cancellation: ours to pass on when this task is being cancelled;
        otherwise grpc cancelled it because the channel was closed under it (the process went
        away and supervision dropped the connection), which is the plugin's failure."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            return asyncio.CancelledError()
        self._stats["errors"] += 1
        return PluginCrashed(f"{what}: the plugin process went away (its connection was closed)",
                             plugin_id=self._id)

    def _timeout(self, timeout: float | None) -> float | None:
        if timeout is not None:
            return timeout
        if self.limits.get("timeout") is not None:
            return float(self.limits["timeout"])
        return self.options.default_timeout

    async def _rpc(self, name: str, request: Any, timeout: float | None = None, *,
                   optional: bool = False, wait: bool = True) -> Any:
        timeout = self._timeout(timeout)
        stub = await self._ready(timeout) if wait else self._stub
        if stub is None:
            raise PluginUnavailable("the gRPC plugin is not connected", plugin_id=self._id)
        try:
            return await getattr(stub, name)(request, timeout=timeout,
                                             wait_for_ready=self.address is not None)
        except asyncio.CancelledError:
            raise self._cancelled(name) from None
        except grpc.aio.AioRpcError as exc:
            if optional and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and self._launched is not None:
                self._probe_task = asyncio.get_running_loop().create_task(
                    self._kill_if_hung(self._launched))
            raise self._error(exc, name, timeout) from None

    async def _kill_if_hung(self, launched: _Launched) -> None:
        """A call missed its deadline: a plugin that cannot answer a health check either is
        hung; kill it, and supervision restarts it."""
        health = await self.health(timeout=self.options.hung_probe)
        if health.ok or launched is not self._launched or launched.proc.returncode is not None:
            return
        self.log.error("gRPC plugin is unresponsive after a missed deadline (%s); killing it",
                       health.detail)
        with contextlib.suppress(ProcessLookupError):
            launched.proc.kill()

    # -- host operations on the HostCalls stream ---------------------------------------------------
    async def _serve_host_calls(self, stub: pb_grpc.PluginStub) -> None:
        replies: asyncio.Queue[pb.HostReply | None] = asyncio.Queue()

        async def outgoing() -> AsyncIterator[pb.HostReply]:
            # grpc cancels its reader of this when the call ends (shutdown, the plugin gone):
            # end quietly then, or grpc logs the cancellation as a traceback
            with contextlib.suppress(asyncio.CancelledError):
                while True:
                    reply = await replies.get()
                    if reply is None:
                        return
                    yield reply

        call = stub.HostCalls(outgoing())
        try:
            async for request in call:
                asyncio.get_running_loop().create_task(self._host_call(request, replies))
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.UNIMPLEMENTED):
                self.log.warning("host call stream ended: %s", exc.details())
        finally:
            replies.put_nowait(None)

    async def _host_call(self, request: pb.HostCall,
                         replies: asyncio.Queue[pb.HostReply | None]) -> None:
        self._stats["host_calls"] += 1
        try:
            params = json.loads(request.params_json or "{}")
            result = self._calls.dispatch(request.method, params)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            reply = pb.HostReply(id=request.id, result_json=_dumps(result))
        except PlughostError as exc:
            reply = pb.HostReply(id=request.id, error_code=exc.code, error_message=exc.message)
        except (HostParamsError, ValueError) as exc:
            reply = pb.HostReply(id=request.id, error_code="host.params", error_message=str(exc))
        except HostOpUnserved as exc:
            reply = pb.HostReply(id=request.id, error_code="host.unserved",
                                 error_message=str(exc))
        except Exception as exc:  # a service failed: tell the plugin, keep serving
            reply = pb.HostReply(id=request.id, error_code="host.error",
                                 error_message=f"{type(exc).__name__}: {exc}")
        replies.put_nowait(reply)

    # -- the PluginInstance contract ---------------------------------------------------------------
    async def _activate(self, context: PluginContext) -> list[Export]:
        try:
            data_dir = getattr(context, "data_dir", None)
        except PlughostError:
            data_dir = None
        manifest = getattr(self.manifest, "to_dict", None)
        request = pb.ActivateRequest(
            plugin_id=self._id,
            config_json=_dumps(dict(getattr(context, "config", None) or {})),
            data_dir=str(data_dir) if data_dir is not None else "",
            manifest_json=_dumps(manifest() if manifest is not None else {"id": self._id}),
        )
        try:
            reply = await self._rpc("Activate", request, wait=False)
        except PluginError as exc:
            if exc.code != "plugin.error":
                raise
            raise PluginActivationError(f"activate failed: {exc.message}", plugin_id=self._id,
                                        phase="activate") from None
        exports = [Export(e.kind, e.name, e.target,
                          _json(e.options_json, self._id,
                                f"the options_json of export {e.name!r}") or {})
                   for e in reply.exports]
        self.exports = exports
        if self._stub is not None:
            if self._host_stream is not None:
                self._host_stream.cancel()
            self._host_stream = asyncio.get_running_loop().create_task(
                self._serve_host_calls(self._stub))
        return exports

    async def start(self, context: PluginContext) -> Sequence[Export]:
        self._context = context
        self._calls = HostCalls(self._id, context, log=self._log_line)
        jail, launched = self._jail, self._launched
        if jail is not None and launched is not None and jail.plan != plan_launch(
                self, jail.plan.argv0, self.options.process):
            # started at load without the plugin's grants and data directory: start it again
            # confined to what the context grants (as the process runtime does)
            self._launched = None
            await launched.end(self.options.stop_grace)
            await self._drop_channel()
            await self._connect(phase="activate")
        exports = await self._activate(context)
        self._active = True
        return exports

    async def call(self, target: str, kwargs: Mapping[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        self._stats["calls"] += 1
        reply = await self._rpc("Call", pb.CallRequest(target=target,
                                                       args_json=_dumps(dict(kwargs or {}))),
                                timeout)
        return _json(reply.result_json, self._id, f"the result_json of call {target!r}")

    async def deliver_event(self, target: str, event: Event) -> None:
        await self._rpc("Event", pb.EventRequest(
            target=target, topic=event.topic, payload_json=_dumps(event.payload),
            source=event.source or "", id=event.id, timestamp=event.timestamp))

    async def serve_channel(self, target: str, channel: ChannelEnd) -> None:
        """Serve one opened channel on the plugin's ``Channel`` stream (plughost.proto).

        The first frame names ``target`` and the channel; each message the opener sends is one
        frame, and the opener closing its end half-closes the stream. Each frame the plugin
        sends goes to the opener; the plugin ending the stream closes the channel, and a failed
        stream (a status, the process going away) aborts it with the reason. No deadline: a
        channel lives as long as both ends keep it open.
        """
        stub = await self._ready(self._timeout(None))
        name = next((e.name for e in self.exports if e.kind == "channel" and e.target == target),
                    target)
        self._stats["channels"] += 1

        async def outgoing() -> AsyncIterator[pb.ChannelFrame]:
            yield pb.ChannelFrame(target=target, name=name)
            # the opener went away: end the input; the call ended (cancelled): end quietly, as
            # grpc would log the cancellation as a traceback
            with contextlib.suppress(ChannelClosed, asyncio.CancelledError):
                async for message in channel:
                    yield pb.ChannelFrame(data_json=_dumps(message))

        call = stub.Channel(outgoing())
        try:
            async for frame in call:
                await channel.send(_json(frame.data_json, self._id,
                                         f"a data_json frame on channel {name!r}"))
        except asyncio.CancelledError:
            raise self._cancelled(f"channel {name}") from None
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"channel {name}", None) from None
        finally:
            if not call.done():
                call.cancel()

    async def export_state(self) -> Any:
        reply = await self._rpc("ExportState", pb.Empty(), optional=True)
        if reply is None:
            return None
        return _json(reply.state_json, self._id, "the state_json of ExportState")

    async def import_state(self, state: Any, from_version: str) -> None:
        await self._rpc("ImportState", pb.State(state_json=_dumps(state),
                                                from_version=from_version), optional=True)

    async def config_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        await self._rpc("ConfigChange", pb.ConfigChangeRequest(
            old_json=_dumps(dict(old)), new_json=_dumps(dict(new))), optional=True)

    async def enabled_changed(self, enabled: bool) -> None:
        await self._rpc("EnabledChange", pb.EnabledChangeRequest(enabled=enabled),
                        optional=True)

    async def health(self, timeout: float | None = None) -> Health:
        if self.failure is not None:
            return Health(False, self.failure, {"quarantined": True})
        channel = self._channel
        if channel is None:
            return Health(False, "restarting", {})
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE),
                timeout=timeout or self._timeout(None) or 5.0)
        except grpc.aio.AioRpcError as exc:
            return Health(False, f"{exc.code().name}: {exc.details()}", {})
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return Health(reply.status == health_pb2.HealthCheckResponse.SERVING, status, {})

    async def stop(self) -> None:
        if not self._active:
            return
        self._active = False
        if self._stub is not None:
            try:
                await self._rpc("Deactivate", pb.Empty(), self.options.stop_grace,
                                optional=True, wait=False)
            except PlughostError as exc:
                self.log.warning("deactivate failed: %s", exc.message)

    async def close(self) -> None:
        if self._closed:
            return
        await self.stop()
        self._closed = True
        self._notify()
        self.runtime._instances.discard(self)
        for task in (self._restart, self._watch, self._probe_task, self._link):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._drop_channel()
        launched, self._launched = self._launched, None
        if launched is not None:
            await launched.end(self.options.stop_grace)
        if self._jail is not None:
            await self._jail.release()
            self._jail = None

    def stats(self) -> Mapping[str, Any]:
        out: dict[str, Any] = dict(self._stats)
        out["pid"] = self.pid
        out["address"] = self.address
        out["quarantined"] = self.failure is not None
        out["mtls"] = self._tls is not None
        out["log_lines_dropped"] = self.sink.dropped_lines
        if self._jail is not None:
            out["confinement"] = self._jail.label
        return out

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        return None


def create_runtime(home: Path | None = None,
                   on_event: Callable[[SupervisorEvent], None] | None = None) -> GrpcRuntime:
    """Factory used by the host (see :data:`plughost.runtimes.base.BUILTIN_RUNTIMES`)."""
    process = ProcessOptions(data_root=home / "data" if home is not None else None)
    return GrpcRuntime(options=GrpcOptions(process=process), on_event=on_event)


