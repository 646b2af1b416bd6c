"""What the routes share: the service facade, settings, options, events, operations, auth."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from plughost.core.bus import Event
from plughost.errors import (
    AccessDenied,
    AuthenticationRequired,
    OperationRefused,
)
from plughost.interfaces.http._cache import ReadCache
from plughost.interfaces.http._events import EventBroker
from plughost.interfaces.http._operations import OperationRunner
from plughost.interfaces.tokens import Principal, TokenAuthority, role_allows
from plughost.observability.observer import Observer
from plughost.observability.settings import ObservabilitySettings
from plughost.services.manager import PluginService
from plughost.settings import HostSettings

__all__ = ["ROLE_ATTRIBUTE", "ApiOptions", "ApiState", "api_state", "authenticate_request",
           "requires"]

log = logging.getLogger("plughost.server")

_ANONYMOUS = Principal("anonymous", "admin", anonymous=True)
_LOCAL = Principal("local-cli", "admin")

#: Attribute of a :func:`requires` dependency naming the role its route needs (the route
#: class reads it to authenticate before the body is read).
ROLE_ATTRIBUTE = "plughost_role"


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """How the API behaves (``plughost serve`` fills these from its flags)."""

    #: Requests without a token act as admin while no token exists. ``serve`` sets this only
    #: when bound to loopback, or with ``--insecure``.
    allow_anonymous: bool = True
    #: Origins allowed by CORS (``*`` for any); empty: CORS off.
    cors_origins: tuple[str, ...] = ()
    #: Largest body of any request other than a package upload, in bytes.
    max_request_size: int = 1024 * 1024
    #: Close the service at shutdown (the server owns it).
    owns_service: bool = True
    #: Seconds shutdown waits for background operations before cancelling them.
    shutdown_timeout: float = 10.0
    #: Seconds between keep-alive comments on idle event streams.
    heartbeat: float = 15.0
    #: Seconds a cached ``GET /plugins`` answer may be reused when nothing changed through
    #: this server (bounds staleness for changes made by other processes); 0 turns it off.
    read_cache_ttl: float = 1.0
    #: A secret accepted as an admin token named ``local-cli``: ``plughost serve`` makes one
    #: at each start and writes it in its server file in the home (mode 0600), so the local
    #: CLI goes through this server (see ``plughost.interfaces.cli._homeserver``).
    local_token: str | None = None


class ApiState:
    """The server's shared objects; one per app (``app.state.api``)."""

    @property
    def service(self) -> PluginService:
        """The management facade the routes talk to (typed: routes reach nothing past it)."""
        if self._service is None:
            raise OperationRefused(
                "this app was built without a service (for its OpenAPI document only); "
                "create it with create_app(PluginService(settings))", code="service.unavailable")
        return self._service

    def __init__(self, service: PluginService | None, settings: HostSettings,
                 options: ApiOptions) -> None:
        self._service = service
        self.settings = settings
        self.options = options
        self.broker = EventBroker()
        self.observer = Observer(ObservabilitySettings.for_home(settings.home))
        self.cache = ReadCache(options.read_cache_ttl)
        self._authority: TokenAuthority | None = None
        self._runner: OperationRunner | None = None
        self.ready = False
        self.not_ready_reason = "starting: opening storage and loading plugins"
        self._undo: list[Callable[[], None]] = []
        self._started = False
        self._frozen = False
        self._probe: asyncio.Future[str] | None = None
        self._store_probe: asyncio.Future[str] | None = None

    @property
    def authority(self) -> TokenAuthority:
        if self._authority is None:
            self._authority = TokenAuthority(self.service.repository)
        return self._authority

    @property
    def runner(self) -> OperationRunner:
        if self._runner is None:
            self._runner = OperationRunner(self.service.repository, self.broker,
                                           on_finished=self.cache.bump)
        return self._runner

    # -- lifecycle -----------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the service (migrations, enabled plugins in dependency order), wire events,
        then turn ready. Idempotent."""
        if self._started:
            return
        self._started = True
        self.broker.bind(asyncio.get_running_loop())
        self.observer.capture()  # plugins' first log lines (activation) are captured too
        await self.service.start()

        loop = asyncio.get_running_loop()

        def on_lifecycle(event: Any) -> None:
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if on_loop:
                self.cache.bump()
            else:
                loop.call_soon_threadsafe(self.cache.bump)
            self.broker.publish("lifecycle", event.to_dict())

        self._undo.append(self.service.on_lifecycle(on_lifecycle))
        self._undo.extend(_subscribe_plugin_events(self.service, self.broker))
        await self.observer.start(self.service, self.broker.publish)
        # What start-up built (every plugin's record, manifest and index entries: hundreds of
        # thousands of objects at 10,000 plugins) lives as long as the server. Out of the cyclic
        # collector's way, its collections walk what the server allocates afterwards instead of
        # that heap again: a full collection of it costs ~100 ms at 10,000 plugins, which an
        # idle server would pay whenever its own small allocations add up. Undone at shutdown.
        gc.freeze()
        self._frozen = True
        self.ready = True
        self.not_ready_reason = ""
        report = getattr(self.service, "load_report", None)
        if report is not None and hasattr(report, "failed") and report.failed:
            log.warning("plugins that failed to start: %s",
                        ", ".join(o.plugin_id for o in report.failed))

    async def shutdown(self) -> None:
        """Not ready; end event streams; finish (bounded) background operations; close the
        service if owned (plugins deactivated in reverse dependency order)."""
        self.ready = False
        self.not_ready_reason = "shutting down"
        if self._frozen:  # what the closed service leaves becomes collectable again
            self._frozen = False
            gc.unfreeze()
        self.broker.close()
        if self._runner is not None:
            await self._runner.drain(self.options.shutdown_timeout)
        for undo in reversed(self._undo):
            with contextlib.suppress(Exception):
                undo()
        self._undo.clear()
        await self.observer.aclose()  # its last log lines go to the database, still open
        if self.options.owns_service:
            try:  # bounded: a plugin whose deactivate hangs must not keep the process alive
                await asyncio.wait_for(self.service.close(), self.options.shutdown_timeout)
            except TimeoutError:
                log.error("plugins did not stop within %.0f s of the shutdown; exiting anyway "
                          "(their deactivate did not finish)", self.options.shutdown_timeout)

    async def storage_problem(self, timeout: float = 5.0) -> str:
        """Why the shared stores cannot serve requests right now ("" when they can): a
        ``SELECT 1`` through the pool and a look-up in the object store, run side by side and
        each bounded by ``timeout``; the answer names the store that failed. Concurrent
        callers share one probe of each."""
        service = self.service
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(service.database_problem))
        if self._store_probe is None or self._store_probe.done():
            self._store_probe = asyncio.ensure_future(
                asyncio.to_thread(service.object_store_problem))
        database, store = await asyncio.gather(
            _bounded(self._probe, timeout,
                     f"the database did not answer within {timeout:g} s; check that it is "
                     "running and reachable from this node"),
            _bounded(self._store_probe, timeout,
                     f"the object store {service.object_store_name} did not answer within "
                     f"{timeout:g} s; check that it is running and reachable from this node "
                     "(endpoint, network, credentials)"))
        return database or store

    # -- auth ----------------------------------------------------------------------------

    def authenticate(self, request: Request, required: str) -> Principal:
        """The caller, checked to have ``required`` role or more.

        :raises AuthenticationRequired: no token where one is needed, or an invalid one.
        :raises AccessDenied: the token's role is too weak.
        """
        header = request.headers.get("authorization")
        if header:
            scheme, _, secret = header.partition(" ")
            secret = secret.strip()
            if scheme.lower() != "bearer" or not secret:
                raise AuthenticationRequired(
                    "the Authorization header must be 'Bearer <token>'", code="auth.invalid")
            local = self.options.local_token
            found = _LOCAL if local and hmac.compare_digest(secret.encode(), local.encode()) \
                else self.authority.verify(secret)
            if found is None:
                raise AuthenticationRequired(
                    "the API token is unknown, revoked or expired; create a new one with "
                    "`plughost token create --role ROLE`", code="auth.invalid")
            principal = found
        elif self.options.allow_anonymous and not self.authority.any_active():
            principal = _ANONYMOUS
        else:
            raise AuthenticationRequired(
                "this server requires an API token: send 'Authorization: Bearer <token>' "
                "(an admin creates one with `plughost token create --role viewer`)")
        if not role_allows(principal.role, required):
            raise AccessDenied(
                f"the token {principal.name!r} has the role {principal.role!r}; this needs "
                f"{required!r} or higher",
                details={"role": principal.role, "required": required})
        return principal


async def _bounded(probe: asyncio.Future[str], timeout: float, late: str) -> str:
    """``probe``'s answer, or ``late`` when it takes longer than ``timeout`` (the probe goes
    on: the next caller gets its answer)."""
    try:
        return await asyncio.wait_for(asyncio.shield(probe), timeout)
    except TimeoutError:
        return late


def _subscribe_plugin_events(service: PluginService,
                             broker: EventBroker) -> list[Callable[[], None]]:
    """Forward the plugins' own bus events to the stream. Lifecycle changes the bus re-emits
    (``plugin.lifecycle.*``) are already on the stream as ``lifecycle`` events."""

    def forward(event: Event) -> None:
        if event.topic.startswith("plugin.lifecycle."):
            return
        broker.publish("plugin", {"topic": event.topic, "plugin_id": event.source,
                                  "payload": event.payload, "event_id": event.id})

    return [service.on_event("#", forward)]


def api_state(request: Request) -> ApiState:
    """The app's :class:`ApiState`."""
    state: ApiState = request.app.state.api
    return state


def authenticate_request(request: Request, role: str) -> Principal:
    """The caller of ``request``, checked to have ``role``; verified once per request (the
    route class does it before the body is read, the dependency then finds it)."""
    state = request.state
    principal: Principal | None = getattr(state, "principal", None)
    if principal is None or getattr(state, "principal_role", None) != role:
        principal = api_state(request).authenticate(request, role)
        state.principal = principal
        state.principal_role = role
    return principal


def requires(role: str) -> Any:
    """A dependency returning the caller's :class:`Principal`, who must have ``role``."""

    async def dependency(request: Request) -> Principal:
        # async so it runs on the loop: verifying is a cached lookup, not worth a thread hop
        return authenticate_request(request, role)

    dependency.__name__ = f"requires_{role}"
    setattr(dependency, ROLE_ATTRIBUTE, role)
    return Depends(dependency)
