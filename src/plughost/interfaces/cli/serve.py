"""``plughost serve``: the management service (HTTP API + dashboard) on uvicorn.

Start-up: settings from the home (embedded defaults: SQLite, filesystem object store), pending
migrations applied, enabled plugins loaded in dependency order, then ``/readyz`` turns ready.
SIGTERM / SIGINT: stop accepting, end event streams, finish in-flight requests and background
operations (bounded by ``--shutdown-timeout``), deactivate plugins in reverse order, exit 0.
Once listening, it advertises itself in the home (``<home>/run/server-<pid>.json``, mode 0600:
its URL and a local admin secret) so local commands go through it instead of acting as the
host; the file goes when it stops (see :mod:`plughost.interfaces.cli._homeserver`).
Logs are JSON lines on stderr when it is not a terminal, coloured lines on one
(``--log-format`` / ``$PLUGHOST_LOG_FORMAT`` chooses); access lines carry time, method, path,
status, duration_ms, client and request_id.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from plughost.interfaces.cli._common import HomeOption, err_console, handle_errors
from plughost.observability.console import FORMATS, JsonFormatter, configure_logging

__all__ = ["JsonLogFormatter", "is_loopback", "register", "serve", "settings_for"]

log = logging.getLogger("plughost.server")


def settings_for(home: Path | None) -> Any:
    """HostSettings from the environment, with ``--home`` overriding ``$PLUGHOST_HOME``."""
    from plughost.settings import HostSettings

    if home is None:
        return HostSettings.from_env()
    return HostSettings.from_env({**os.environ, "PLUGHOST_HOME": str(home)})


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


JsonLogFormatter = JsonFormatter  # the server's JSON lines (one logging setup for every command)


def _configure_logging(level: str, access_log: bool, fmt: str = "auto") -> None:
    configure_logging(level, fmt=fmt)
    logging.getLogger("plughost.access").setLevel(logging.INFO if access_log else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    if level.lower() != "debug":  # migration chatter is not news at every start
        logging.getLogger("alembic").setLevel(logging.WARNING)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port, logged at start).",
                                      min=0, max=65535)] = 8080,
    home: HomeOption = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure",
        help="Allow serving on a non-loopback address while no API token exists (anyone who "
             "can reach it is admin).")] = False,
    cors: Annotated[list[str] | None, typer.Option(
        "--cors", help="An origin allowed by CORS ('*' for any); repeat for several.",
        show_default=False)] = None,
    shutdown_timeout: Annotated[float, typer.Option(
        help="Seconds to finish in-flight requests and operations at shutdown.", min=0.0,
        max=600.0)] = 10.0,
    cache_ttl: Annotated[float, typer.Option(
        "--cache-ttl", min=0.0, max=60.0,
        help="Seconds a cached plugin list may be reused when nothing changed through this "
             "server (bounds staleness for changes by other processes); 0: no cache.")] = 1.0,
    refresh_interval: Annotated[float, typer.Option(
        "--refresh-interval", min=0.0, max=3600.0,
        help="Seconds between checks for changes made by other processes on the same "
             "storage (a local CLI, other hosts); 0: never.")] = 2.0,
    allow_private_urls: Annotated[bool, typer.Option(
        "--allow-private-urls",
        help="Allow package URLs on loopback/private addresses (trusted networks only).")
    ] = False,
    allow_http_urls: Annotated[bool, typer.Option(
        "--allow-http-urls", help="Allow plain http:// package URLs (trusted networks only).")
    ] = False,
    node_name: Annotated[str | None, typer.Option(
        "--node-name", help="This server's name in `plughost nodes` (default: the setting "
                            "node_name, else the host name).", show_default=False)] = None,
    heartbeat: Annotated[float, typer.Option(
        "--heartbeat", min=0.2, max=300.0,
        help="Seconds between this server's heartbeats in the nodes table.")] = 2.0,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Hot reload: watch the plugin folders and reload a plugin when its "
        "files change (also `watch = true` in plughost.toml).")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    no_access_log: Annotated[bool, typer.Option("--no-access-log",
                                                help="Do not log every request.")] = False,
    log_format: Annotated[str, typer.Option(
        "--log-format", envvar="PLUGHOST_LOG_FORMAT",
        help="auto (colours on a terminal, JSON otherwise), console or json.")] = "auto",
) -> None:
    """Run the management service: HTTP API under /api/v1, dashboard at /, health at /healthz
    and /readyz. Loads every enabled plugin."""
    from plughost.errors import OperationRefused

    with handle_errors():
        if log_level.lower() not in ("debug", "info", "warning", "error"):
            raise OperationRefused(f"unknown log level {log_level!r}; use debug, info, "
                                   "warning or error", code="request.invalid")
        try:
            import uvicorn
        except ImportError as exc:
            from plughost.errors import ExtraNotInstalled

            raise ExtraNotInstalled("plughost serve", "server", "uvicorn") from exc
        from plughost.interfaces.http import ApiOptions, create_app
        from plughost.services.manager import PluginService
        from plughost.storage.backends import open_storage

        if log_format.lower() not in FORMATS:
            raise OperationRefused(f"unknown log format {log_format!r}; use "
                                   + ", ".join(FORMATS), code="request.invalid")
        _configure_logging(log_level, not no_access_log, log_format.lower())
        settings = settings_for(home)
        if watch:
            settings = dataclasses.replace(settings, watch=True)
        loopback = is_loopback(host)
        with open_storage(settings) as storage:  # migrations happen here, before binding
            has_tokens = bool(storage.repository.list_tokens())
        if not has_tokens and not loopback and not insecure:
            raise OperationRefused(
                f"refusing to serve on {host} without authentication: no API token exists, so "
                "anyone who can reach the port would be admin. Create one first (`plughost "
                "token create --role admin`), bind to 127.0.0.1, or pass --insecure to accept "
                "the risk.", code="serve.insecure")
        if not has_tokens:
            where = "this machine" if loopback else "ANYONE who can reach it (--insecure)"
            err_console.print(
                f"[yellow]no API token configured:[/] requests without a token act as admin; "
                f"the server is reachable from {where}. Create one with `plughost token create "
                "--role admin` to require tokens.")
        from plughost.interfaces.cli import _homeserver

        local_token = _homeserver.new_token()
        options = ApiOptions(allow_anonymous=loopback or insecure, local_token=local_token,
                             cors_origins=tuple(cors or ()),
                             shutdown_timeout=shutdown_timeout, read_cache_ttl=cache_ttl)
        # Every server is a node of the cluster on its database: it announces its changes,
        # applies the others' (polling every --refresh-interval as the fallback) and reports
        # its heartbeat; alone on its database it is a cluster of one.
        cluster = {"name": node_name or "", "heartbeat_interval": heartbeat,
                   "url": f"http://{host}:{port}" if port else ""}
        service = PluginService(settings, start=True, cluster=cluster,
                                refresh_interval=refresh_interval or None,
                                allow_private_urls=allow_private_urls,
                                allow_http_urls=allow_http_urls)
        app = create_app(service, settings, options=options)
        state = app.state.api

        class Server(uvicorn.Server):
            advertised: _homeserver.HomeServer | None = None

            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                names = [sock.getsockname() for server in self.servers
                         for sock in server.sockets]
                for name in names:
                    log.info("listening on http://%s:%s (home %s)",
                             f"[{name[0]}]" if ":" in name[0] else name[0], name[1],
                             settings.home)
                if names and not self.should_exit:
                    self.advertised = _advertise(settings.home, names[0], service, local_token)

            def handle_exit(self, sig: int, frame: Any) -> None:
                # End event streams now: they would otherwise hold the graceful shutdown open.
                state.broker.close()
                state.observer.logs.end_tails()
                super().handle_exit(sig, frame)
                # A graceful stop is a success: exit 0 instead of re-raising the signal.
                self._captured_signals.clear()

        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
            timeout_graceful_shutdown=max(1, round(shutdown_timeout)), server_header=False,
            log_level=log_level.lower())
        server = Server(config)
        try:
            server.run()
        finally:
            if server.advertised is not None:
                _homeserver.withdraw(server.advertised)
        if not server.started:
            raise typer.Exit(1)
        log.info("stopped")


def _advertise(home: Path, bound: Any, service: Any, token: str) -> Any:
    """Write the server file so local commands find this server (a failure is logged: they
    then record changes in the database, which this server applies as it refreshes)."""
    from datetime import UTC, datetime

    from plughost.interfaces.cli import _homeserver

    address = bound[0]
    if address in ("0.0.0.0", "::"):  # every interface: this machine reaches it on loopback
        address = "127.0.0.1" if address == "0.0.0.0" else "::1"
    url = f"http://{f'[{address}]' if ':' in address else address}:{bound[1]}"
    node = service.cluster.id if service.cluster is not None else ""
    started = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    try:
        advertised = _homeserver.advertise(home, url=url, node=node, token=token,
                                           started_at=started)
    except (OSError, _homeserver.UnsafeServerFile) as exc:
        log.warning("not advertising this server in %s: %s; local commands will not go "
                    "through it (they record changes, which it applies within its refresh "
                    "interval)", home, exc)
        return None
    log.info("advertised in %s for local commands", advertised.path)
    return advertised


def register(app: typer.Typer) -> None:
    """Add ``plughost serve``."""
    app.command("serve")(serve)
