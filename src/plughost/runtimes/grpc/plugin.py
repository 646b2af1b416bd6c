"""Writing a gRPC plugin in Python: the plugin's side of the handshake, and a servicer base.

::

    from plughost.runtimes.grpc.plugin import JsonPlugin, serve

    class Echo(JsonPlugin):
        exports = [{"kind": "command", "name": "echo", "target": "echo"}]

        def echo(self, text: str) -> str:
            self.host_call("host.log", {"message": f"echo {text}"})
            return text

    if __name__ == "__main__":
        serve(Echo())

:func:`serve` checks the magic cookie, listens on a Unix socket in the directory the host gave
(or ``127.0.0.1`` on a free port when it gave none), with mutual TLS when the host asked for it,
registers the standard health service, prints the handshake line and serves until terminated.
Another language does the same with its own gRPC library: docs/grpc.md lists every step.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any, ClassVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from plughost.runtimes.grpc import plughost_pb2 as pb
from plughost.runtimes.grpc import plughost_pb2_grpc as pb_grpc
from plughost.runtimes.grpc.handshake import (
    APP_PROTOCOL_VERSION,
    CORE_PROTOCOL_VERSION,
    ENV_COOKIE,
    ENV_SOCKET_DIR,
    MAGIC_COOKIE,
)

__all__ = ["ChannelGone", "HostRefused", "JsonPlugin", "PluginChannel", "serve"]

SERVICE = "plughost.v1.Plugin"
EXIT_OUT_OF_MEMORY = 70


class HostRefused(Exception):
    """The host refused a host operation (``code`` is its error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ChannelGone(Exception):
    """The host ended the channel (the opener went away or aborted it): stop sending."""


class PluginChannel:
    """One channel opened to the plugin, as its handler sees it.

    Iterate over it for the opener's messages (the loop ends when the opener closes its end);
    :meth:`send` a JSON value to the opener (it waits while the opener's buffer is full, and
    raises :class:`ChannelGone` once the host has ended the channel). Returning from the
    handler closes the plugin's end; raising aborts the channel with the error as the reason.
    """

    def __init__(self, name: str, frames: Iterator[Any], context: Any, buffer: int = 64) -> None:
        self.name = name
        self._frames = frames
        self._outgoing: queue.Queue[Any] = queue.Queue(maxsize=buffer)
        self._gone = threading.Event()
        context.add_callback(self._gone.set)

    def __iter__(self) -> Iterator[Any]:
        try:
            for frame in self._frames:
                yield json.loads(frame.data_json) if frame.data_json else None
        except grpc.RpcError:  # the host cancelled the stream
            self._gone.set()

    def receive(self) -> Any:
        """The opener's next message; :class:`ChannelGone` once its end is closed."""
        for message in self:
            return message
        raise ChannelGone(f"the opener closed channel {self.name!r}")

    def send(self, message: Any) -> None:
        data = json.dumps(message)
        while not self._gone.is_set():
            try:
                self._outgoing.put(data, timeout=0.1)
                return
            except queue.Full:
                continue
        raise ChannelGone(f"the host ended channel {self.name!r}")


_END = object()


class JsonPlugin(pb_grpc.PluginServicer):
    """A ``Plugin`` servicer that calls methods of ``self`` by target name with JSON arguments.

    Subclasses list their :attr:`exports` and define the targets as methods (keyword
    arguments in, a JSON value out); ``activate``/``deactivate``/``export_state``/
    ``import_state``/``on_config_change`` may be overridden. ``host_call(method, params)``
    asks the host for a host operation (checked against the plugin's permissions).
    """

    exports: ClassVar[list[dict[str, Any]]] = []

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.plugin_id = ""
        self._outgoing: queue.Queue[pb.HostCall | None] = queue.Queue()
        self._waiting: dict[int, tuple[threading.Event, list[pb.HostReply]]] = {}
        self._ids = itertools.count(1)
        self._connected = threading.Event()

    # -- overridable callbacks
    def activate(self) -> None: ...

    def deactivate(self) -> None: ...

    def export_state(self) -> Any:
        return None

    def import_state(self, state: Any, from_version: str) -> None: ...

    def on_config_change(self, old: dict[str, Any], new: dict[str, Any]) -> None: ...

    def on_event(self, target: str, event: dict[str, Any]) -> None:
        getattr(self, target)(event)

    # -- host operations
    def host_call(self, method: str, params: dict[str, Any] | None = None,
                  timeout: float = 30.0) -> Any:
        if not self._connected.wait(timeout):
            raise HostRefused("plugin.unavailable", "the host has not opened HostCalls yet")
        rid = next(self._ids)
        done = threading.Event()
        box: list[pb.HostReply] = []
        self._waiting[rid] = (done, box)
        self._outgoing.put(pb.HostCall(id=rid, method=method,
                                       params_json=json.dumps(params or {})))
        if not done.wait(timeout):
            self._waiting.pop(rid, None)
            raise HostRefused("plugin.timeout", f"{method}: no answer within {timeout}s")
        reply = box[0]
        if reply.error_code:
            raise HostRefused(reply.error_code, reply.error_message)
        return json.loads(reply.result_json) if reply.result_json else None

    # -- the Plugin service
    def Activate(self, request: Any, context: Any) -> Any:
        self.plugin_id = request.plugin_id
        self.config = json.loads(request.config_json or "{}")
        self.activate()
        return pb.ActivateResponse(exports=[
            pb.Export(kind=e["kind"], name=e["name"], target=e["target"],
                      options_json=json.dumps(e.get("options") or {}))
            for e in self.exports])

    def Deactivate(self, request: Any, context: Any) -> Any:
        self.deactivate()
        return pb.Empty()

    def _target(self, target: str, context: Any) -> Any:
        reserved = target.startswith("_") or target in _RESERVED
        fn = None if reserved else getattr(self, target, None)
        if fn is None or not callable(fn):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no target {target!r}")
            raise AssertionError("abort raises")
        return fn

    def Call(self, request: Any, context: Any) -> Any:
        fn = self._target(request.target, context)
        try:
            result = fn(**json.loads(request.args_json or "{}"))
        except MemoryError:  # out of its memory limit: end, and let the host restart it
            os.write(2, b"plughost gRPC plugin: out of memory (its memory limit); exiting\n")
            os._exit(EXIT_OUT_OF_MEMORY)
        except HostRefused as exc:
            status = (grpc.StatusCode.PERMISSION_DENIED if exc.code == "permission.denied"
                      else grpc.StatusCode.FAILED_PRECONDITION)
            context.abort(status, str(exc))
        except Exception as exc:
            context.abort(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
        return pb.CallResponse(result_json=json.dumps(result))

    def Event(self, request: Any, context: Any) -> Any:
        self.on_event(request.target, {
            "topic": request.topic, "payload": json.loads(request.payload_json or "null"),
            "source": request.source or None, "id": request.id, "timestamp": request.timestamp})
        return pb.Empty()

    def ExportState(self, request: Any, context: Any) -> Any:
        return pb.State(state_json=json.dumps(self.export_state()))

    def ImportState(self, request: Any, context: Any) -> Any:
        self.import_state(json.loads(request.state_json or "null"), request.from_version)
        return pb.Empty()

    def ConfigChange(self, request: Any, context: Any) -> Any:
        old, new = json.loads(request.old_json or "{}"), json.loads(request.new_json or "{}")
        try:
            self.on_config_change(old, new)
        except Exception as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        self.config = new
        return pb.Empty()

    def Channel(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        first = next(request_iterator, None)
        if first is None:
            return
        fn = self._target(first.target, context)
        channel = PluginChannel(first.name, request_iterator, context)
        failure: list[str] = []

        def run() -> None:
            try:
                fn(channel)
            except ChannelGone:
                pass
            except Exception as exc:
                failure.append(f"{type(exc).__name__}: {exc}")
            channel._outgoing.put(_END)

        threading.Thread(target=run, name=f"channel:{first.name}", daemon=True).start()
        while True:
            item = channel._outgoing.get()
            if item is _END:
                break
            yield pb.ChannelFrame(data_json=item)
        if failure:
            context.abort(grpc.StatusCode.UNKNOWN, failure[0])

    def HostCalls(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        def replies() -> None:
            try:
                for reply in request_iterator:
                    waiter = self._waiting.pop(reply.id, None)
                    if waiter is not None:
                        waiter[1].append(reply)
                        waiter[0].set()
            except grpc.RpcError:  # the host closed the stream: it shut down or went away
                pass
            self._outgoing.put(None)

        threading.Thread(target=replies, daemon=True).start()
        self._connected.set()
        while True:
            item = self._outgoing.get()
            if item is None:
                return
            yield item


_RESERVED = frozenset(dir(JsonPlugin))
"""The servicer's own names: never a call target."""


def serve(servicer: pb_grpc.PluginServicer, *, workers: int = 8) -> None:
    """Run ``servicer`` as a plughost gRPC plugin (see the module docstring)."""
    if os.environ.get(ENV_COOKIE) != MAGIC_COOKIE:
        sys.stderr.write("This is a plughost gRPC plugin: it is started by a plughost host, "
                         "not by hand (the magic cookie is missing).\n")
        raise SystemExit(1)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    pb_grpc.add_PluginServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    probe = health.HealthServicer()
    for name in ("", SERVICE):
        probe.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(probe, server)
    socket_dir = os.environ.get(ENV_SOCKET_DIR)
    if socket_dir:
        network, address = "unix", os.path.join(socket_dir, "plugin.sock")
        bind = f"unix:{address}"
    else:
        network, bind = "tcp", "127.0.0.1:0"
    client_pem = os.environ.get("PLUGHOST_GRPC_CLIENT_CERT")
    extra = ""
    if client_pem:
        from plughost.runtimes.grpc.tls import make_identity

        me = make_identity("plughost-plugin")
        credentials = grpc.ssl_server_credentials(
            [(me.key_pem, me.cert_pem)], root_certificates=client_pem.encode(),
            require_client_auth=True)
        port = server.add_secure_port(bind, credentials)
        extra = f"|{me.cert_der_b64}"
    else:
        port = server.add_insecure_port(bind)
    if network == "tcp":
        address = f"127.0.0.1:{port}"
    server.start()
    sys.stdout.write(f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|{network}|{address}|grpc"
                     f"{extra}\n")
    sys.stdout.flush()
    server.wait_for_termination()
