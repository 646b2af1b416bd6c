"""Where CLI management commands send their work: the local home or a remote server.

One abstraction for every command: a *backend* is an async context manager giving a
:class:`~plughost.services.views.PluginManagement` — the typed facade the HTTP API serves too
(``list_plugins``, ``get``, ``install``, ``update``, ``rollback``, ``versions``, ``health``,
``uninstall``, ``enable``, ``disable``, ``activate``, ``deactivate``, ``metrics``, ``audit``) —
returning the facade's own records, so the commands print the same thing either way; mypy
checks both backends against it.

* **Remote**: :class:`RemoteBackend`, which speaks the HTTP API (``--server URL --token T`` or
  ``PLUGHOST_SERVER`` / ``PLUGHOST_TOKEN``) and rebuilds the same records from the JSON. With
  no ``--server``, the server running on the home (advertised in its server file, see
  :mod:`~plughost.interfaces.cli._homeserver`) is the remote: the CLI never acts as the host
  beside one.
* **Local**: the home's :class:`~plughost.services.manager.PluginService` when no server runs
  on it, opened with ``run_plugins=False``: it records the intent (installed, enabled,
  disabled, configured) for the next start and never loads plugin code in the CLI process.

Commands call :func:`run_backend` with a *target* from :func:`target` — a :class:`Remote`, or
settings for a home no server runs on — and a function of the backend.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, TypeVar

import typer

from plughost.errors import PlughostError

if TYPE_CHECKING:
    from plughost.host import ReloadResult
    from plughost.services.installer import InstallResult, UninstallResult
    from plughost.services.sources import Progress
    from plughost.services.updater import UpdateResult, VersionInfo
    from plughost.services.views import (
        HealthReport,
        PluginDetail,
        PluginInfo,
        PluginList,
        PluginManagement,
    )
    from plughost.settings import HostSettings

__all__ = [
    "Remote",
    "RemoteBackend",
    "RemoteConfigManager",
    "RemotePermissionManager",
    "ServerOption",
    "TokenOption",
    "home_server",
    "home_settings",
    "open_backend",
    "run_backend",
    "server_for",
    "target",
]

T = TypeVar("T")

ServerOption = Annotated[
    str | None,
    typer.Option("--server", envvar="PLUGHOST_SERVER", metavar="URL", show_default=False,
                 help="Manage the plughost server at URL (e.g. http://127.0.0.1:8080) "
                      "instead of the local home. Env: PLUGHOST_SERVER."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="PLUGHOST_TOKEN", metavar="TOKEN", show_default=False,
                 help="API token for --server. Env: PLUGHOST_TOKEN."),
]


@dataclass(frozen=True, slots=True)
class Remote:
    """A server to manage: its base URL and the bearer token (if any)."""

    url: str
    token: str | None = None
    timeout: float = 300.0
    home: Path | None = None
    """The home this server runs on, when it was found there (not named with --server)."""


def home_settings(home: Path | None) -> HostSettings:
    """The home's settings: the environment (and ``plughost.toml``), ``--home`` winning."""
    from plughost.settings import HostSettings

    env = dict(os.environ)
    if home is not None:
        env["PLUGHOST_HOME"] = str(home)
    return HostSettings.from_env(env)


def home_server(home: Path | None) -> Remote | None:
    """The live server advertised in ``home`` (``--home``, else ``$PLUGHOST_HOME`` or the
    default), as a :class:`Remote` with its local token; ``None`` when none runs. Server files
    it ignores (stale, unsafe) are reported on stderr."""
    from plughost.interfaces.cli import _homeserver
    from plughost.interfaces.cli._common import default_home, err_console

    where = (home if home is not None else default_home()).expanduser()

    def note(message: str) -> None:
        err_console.print(f"note: {message}", markup=False)

    found = _homeserver.find(where, note)
    return None if found is None else Remote(found.url, found.token, home=where)


def server_for(home: Path | None, server: str | None, token: str | None) -> Remote | None:
    """The server to go through: the one named (``--server``), else the one running on the
    home, else ``None`` (no server: act on the home's storage)."""
    if server:
        return Remote(server.rstrip("/"), token or None)
    return home_server(home)


def target(home: Path | None, server: str | None, token: str | None) -> HostSettings | Remote:
    """:class:`Remote` when a server is named or runs on the home, else the home's settings."""
    return server_for(home, server, token) or home_settings(home)


def open_backend(where: HostSettings | Remote,
                 **service_options: Any) -> AbstractAsyncContextManager[PluginManagement]:
    """The backend for ``where`` (settings or :class:`Remote`), not yet entered. On a home
    with no server the service never runs plugins (see the module doc)."""
    if isinstance(where, Remote):
        return RemoteBackend(where)
    from plughost.services.manager import PluginService

    service_options.pop("start", None)
    return PluginService(where, start=False, run_plugins=False, **service_options)


def run_backend(where: HostSettings | Remote, fn: Callable[[PluginManagement], Awaitable[T]],
                **service_options: Any) -> T:
    """Open the backend for ``where``, run ``fn(backend)`` to completion, close it."""
    import asyncio

    if isinstance(where, Remote):
        # Local-only knobs (start, allowed URL kinds) are the server's business remotely.
        service_options = {}

    async def go() -> T:
        async with open_backend(where, **service_options) as backend:
            return await fn(backend)

    return asyncio.run(go())


# ---------------------------------------------------------------------- records from JSON


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _info(d: Mapping[str, Any]) -> PluginInfo:
    from plughost.services.views import PluginInfo

    return PluginInfo(
        id=d["id"], name=d["name"], version=d["version"], description=d.get("description", ""),
        author=d.get("author", ""), type=d.get("type", ""), runtime=d.get("runtime", ""),
        state=d["state"], enabled=bool(d["enabled"]), source=d.get("source", ""),
        source_uri=d.get("source_uri", ""), sha256=d.get("sha256", ""),
        installed_at=_dt(d.get("installed_at")), updated_at=_dt(d.get("updated_at")),
        error=d.get("error"), warnings=tuple(d.get("warnings") or ()), signed=d.get("signed"),
        live=bool(d.get("live", True)))


def _version(d: Mapping[str, Any]) -> VersionInfo:
    from plughost.services.updater import VersionInfo

    return VersionInfo(
        plugin_id=d["plugin_id"], version=d["version"], current=bool(d["current"]),
        sha256=d.get("sha256", ""), size=int(d.get("size", 0)), source=d.get("source", ""),
        source_uri=d.get("source_uri", ""), signed_by=d.get("signed_by"),
        installed_at=_dt(d.get("installed_at")), cache_path=d.get("cache_path"))


def _detail(d: Mapping[str, Any]) -> PluginDetail:
    from plughost.services.views import PluginDetail

    return PluginDetail(
        info=_info(d), manifest=d.get("manifest") or {}, path=d.get("path"),
        versions=tuple(_version(v) for v in d.get("versions") or ()),
        dependencies=d.get("dependencies") or {}, dependents=tuple(d.get("dependents") or ()),
        config=d.get("config") or {}, config_revision=int(d.get("config_revision", 0)),
        grants=tuple(d.get("grants") or ()), stats=d.get("stats") or {})


def _install_result(d: Mapping[str, Any]) -> InstallResult:
    from plughost.services.installer import InstallResult

    return InstallResult(
        plugin_id=d["plugin_id"], version=d["version"], sha256=d["sha256"], size=d["size"],
        enabled=d["enabled"], state=d["state"], signed=d["signed"], signed_by=d.get("signed_by"),
        cache_path=d.get("cache_path", ""), object_key=d.get("object_key", ""),
        source=d.get("source", ""), source_uri=d.get("source_uri", ""),
        granted=tuple(d.get("granted") or ()), timings=d.get("timings") or {})


def _update_result(d: Mapping[str, Any]) -> UpdateResult:
    from plughost.services.updater import UpdateResult

    return UpdateResult(plugin_id=d["plugin_id"], from_version=d["from_version"],
                        to_version=d["to_version"], state=d["state"],
                        pruned=tuple(d.get("pruned") or ()), timings=d.get("timings") or {})


def _uninstall_result(d: Mapping[str, Any]) -> UninstallResult:
    from plughost.services.installer import UninstallResult

    return UninstallResult(tuple(d["removed"]),
                           {k: tuple(v) for k, v in (d.get("versions") or {}).items()})


# ---------------------------------------------------------------------- the remote backend


class RemoteBackend:
    """The service facade's methods over the HTTP API (see the module doc)."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self._client: Any = None

    async def __aenter__(self) -> RemoteBackend:
        import httpx

        headers = {"User-Agent": "plughost-cli"}
        if self.remote.token:
            headers["Authorization"] = f"Bearer {self.remote.token}"
        self._client = httpx.AsyncClient(base_url=f"{self.remote.url}/api/v1", headers=headers,
                                         timeout=self.remote.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise PlughostError(
                f"cannot reach the plughost server at {self.remote.url}: {exc or type(exc)}; "
                "is `plughost serve` running there, and is the URL right?",
                code="server.unreachable") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json() if response.content else None

    # -- reading ---------------------------------------------------------------------------

    async def list_plugins(self, *, type: str | None = None, state: str | None = None,
                           enabled: bool | None = None, q: str | None = None,
                           status: int | None = None, runtime: str | None = None,
                           source: str | None = None, limit: int = 100, offset: int = 0,
                           cursor: str | None = None) -> PluginList:
        from plughost.services.resources import encode_cursor
        from plughost.services.views import PluginList

        params: dict[str, Any] = {}
        if cursor:
            params["cursor"] = cursor
        elif offset:
            params["cursor"] = encode_cursor({"offset": offset})
        for key, value in (("pluginType", type), ("state", state), ("q", q),
                           ("runtime", runtime), ("source", source)):
            if value is not None:
                params[key] = value
        if enabled is not None:
            params["enabled"] = "true" if enabled else "false"
        if status is not None:
            params["status"] = status
        items: list[PluginInfo] = []
        total = 0
        following = None
        while len(items) < limit:  # the API pages by at most 1000: follow next_cursor
            params["limit"] = min(limit - len(items), 1000)
            page = await self._call("GET", "/plugins", params=params)
            items.extend(_info(p) for p in page["items"])
            total = page["total"]
            following = page.get("next_cursor")
            if not following:
                break
            params["cursor"] = following
        return PluginList(tuple(items), total, limit, offset, next_cursor=following)

    async def get(self, plugin_id: str) -> PluginDetail:
        return _detail(await self._call("GET", f"/plugins/{plugin_id}"))

    async def versions(self, plugin_id: str) -> list[VersionInfo]:
        page = await self._call("GET", f"/plugins/{plugin_id}/versions",
                                params={"limit": 1000})
        return [_version(v) for v in page["items"]]

    async def health(self, plugin_id: str) -> HealthReport:
        from plughost.services.views import HealthReport

        d = await self._call("GET", f"/plugins/{plugin_id}/health")
        return HealthReport(d["plugin_id"], bool(d["healthy"]), d["state"],
                            d.get("detail", ""), d.get("data") or {})

    async def metrics(self, plugin_id: str | None = None, *,
                      among: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        if plugin_id is None and among is not None:
            # Those of ``among`` the server has, one entry each (a page costs the page).
            found: dict[str, dict[str, Any]] = {}
            for pid in among:
                try:
                    found.update(await self.metrics(pid))
                except PlughostError as exc:
                    if exc.code != "plugin.not_found":
                        raise
            return found
        params = {"plugin_id": plugin_id} if plugin_id is not None else {}
        return {m["id"]: m for m in await self._call("GET", "/plugins/metrics", params=params)}

    async def audit(self, *, plugin_id: str | None = None, action: str | None = None,
                    limit: int = 100, before_id: int | None = None, kind: str | None = None,
                    outcome: str | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> list[dict[str, Any]]:
        from plughost.services.resources import encode_cursor, iso

        params = {k: v for k, v in (
            ("plugin_id", plugin_id), ("action", action), ("limit", limit), ("kind", kind),
            ("outcome", outcome), ("since", iso(since)), ("until", iso(until)),
            ("cursor", encode_cursor({"before": before_id}) if before_id else None))
            if v is not None}
        items: list[dict[str, Any]] = (await self._call("GET", "/audit", params=params))["items"]
        return items

    # -- changing --------------------------------------------------------------------------

    async def _package(self, method: str, path: str, source: str | Path,
                       sha256: str | None, extra: Mapping[str, str],
                       progress: Progress | None = None) -> Any:
        text = str(source)
        fields = {**extra, **({"sha256": sha256} if sha256 else {})}
        if text.startswith(("https://", "http://")):
            return await self._call(method, path, json={"source": "url", "url": text, **{
                k: (v == "true" if v in ("true", "false") else v) for k, v in fields.items()}})
        file = Path(source)
        if not file.is_file():  # noqa: ASYNC240 - a one-shot CLI call; nothing else runs
            raise PlughostError(f"{file} is not a file; give a package (.zip) or an https URL",
                                code="install.source")
        with file.open("rb") as fh:  # noqa: ASYNC230 - streamed by httpx, see above
            body: Any = fh if progress is None else _Uploading(fh, progress)
            return await self._call(method, path, data={"source": "local", **fields},
                                    files={"file": (file.name, body, "application/zip")})

    async def install(self, source: str | Path, *, sha256: str | None = None,
                      enable: bool = True, activate: bool = True,
                      progress: Progress | None = None, actor: str = "",
                      allow_unsigned: bool = False) -> InstallResult:
        flags = {"enable": str(enable).lower(), "activate": str(activate).lower(),
                 "allow_unsigned": str(allow_unsigned).lower()}
        return _install_result(await self._package("POST", "/plugins/install", source, sha256,
                                                   flags, progress))

    async def update(self, plugin_id: str, source: str | Path, *, sha256: str | None = None,
                     progress: Progress | None = None, actor: str = "",
                     force: bool = False, allow_unsigned: bool = False) -> UpdateResult:
        flags = {"force": str(force).lower(), "allow_unsigned": str(allow_unsigned).lower()}
        return _update_result(await self._package("PUT", f"/plugins/{plugin_id}", source,
                                                  sha256, flags, progress))

    async def rollback(self, plugin_id: str, to: str | None = None, *,
                       actor: str = "") -> UpdateResult:
        return _update_result(await self._call("POST", f"/plugins/{plugin_id}/rollback",
                                               json={"to": to}))

    async def rollback_build(self, plugin_id: str, ref: str | None = None, *,
                             actor: str = "") -> ReloadResult:
        from plughost.host import ReloadResult

        d = await self._call("POST", f"/plugins/{plugin_id}/rollback",
                             json={"build": ref or "previous"})
        return ReloadResult(d["plugin_id"], d["from_version"], d["to_version"], d["state"],
                            True, None, float((d.get("timings") or {}).get("reload") or 0))

    async def reload(self, plugin_id: str, *, actor: str = "") -> ReloadResult:
        from plughost.host import ReloadResult

        d = await self._call("POST", f"/plugins/{plugin_id}/reload")
        return ReloadResult(d["plugin_id"], d["from_version"], d["to_version"], d["state"],
                            bool(d.get("ok", True)), None, float(d.get("seconds") or 0),
                            load_seconds=float(d.get("load_seconds") or 0),
                            switch_seconds=float(d.get("switch_seconds") or 0),
                            swapped=bool(d.get("swapped", True)),
                            warnings=tuple(d.get("warnings") or ()))

    async def uninstall(self, plugin_id: str, *, cascade: bool = False, keep_data: bool = False,
                        actor: str = "") -> UninstallResult:
        params = {"cascade": str(cascade).lower(), "keep_data": str(keep_data).lower()}
        return _uninstall_result(await self._call("DELETE", f"/plugins/{plugin_id}",
                                                  params=params))

    async def enable(self, plugin_id: str, *, activate: bool = True,
                     actor: str = "") -> PluginInfo:
        return _info(await self._call("POST", f"/plugins/{plugin_id}/enable"))

    async def disable(self, plugin_id: str, *, actor: str = "") -> PluginInfo:
        return _info(await self._call("POST", f"/plugins/{plugin_id}/disable"))

    async def activate(self, plugin_id: str) -> PluginInfo:
        return _info(await self._call("POST", f"/plugins/{plugin_id}/activate"))

    async def deactivate(self, plugin_id: str, *, cascade: bool = False) -> PluginInfo:
        return _info(await self._call("POST", f"/plugins/{plugin_id}/deactivate",
                                      params={"cascade": str(cascade).lower()}))


class _Uploading:
    """A package file on its way to the server: reports ``progress("upload", sent, size)``
    each time httpx reads a chunk of it to send (httpx sizes the request with ``fileno``)."""

    def __init__(self, file: BinaryIO, progress: Progress) -> None:
        self._file = file
        self._progress = progress
        self._size = os.fstat(file.fileno()).st_size

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._progress("upload", self._file.tell(), self._size)
        return chunk


def _error_from(response: Any) -> PlughostError:
    """The server's error envelope as a PlughostError (same code and message)."""
    try:
        error = response.json()["error"]
        details = dict(error.get("details") or {})
        return PlughostError(error["message"], code=error["code"],
                             plugin_id=error.get("plugin_id") or details.get("plugin_id"),
                             details=details)
    except (ValueError, KeyError, TypeError):
        return PlughostError(
            f"the server answered {response.status_code} {response.reason_phrase} without a "
            f"plughost error body; is {response.url} a plughost server?",
            code="server.error")


# ---------------------------------------------------------------------- config and permissions
#
# ``plughost config`` and ``plughost perms`` drive a ConfigManager / PermissionManager. Against
# a server they get these stand-ins with the same methods, speaking the HTTP API.


class _SyncApi:
    """A blocking API client (the config and perms commands are synchronous)."""

    def __init__(self, remote: Remote) -> None:
        import httpx

        headers = {"User-Agent": "plughost-cli"}
        if remote.token:
            headers["Authorization"] = f"Bearer {remote.token}"
        self.remote = remote
        self._client = httpx.Client(base_url=f"{remote.url}/api/v1", headers=headers,
                                    timeout=remote.timeout)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise PlughostError(
                f"cannot reach the plughost server at {self.remote.url}: {exc or type(exc)}; "
                "is `plughost serve` running there, and is the URL right?",
                code="server.unreachable") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json() if response.content else None

    def close(self) -> None:
        self._client.close()


class RemoteConfigManager:
    """The ConfigManager methods ``plughost config`` uses, over the API."""

    def __init__(self, remote: Remote) -> None:
        self._api = _SyncApi(remote)

    def _config(self, plugin_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._api.call("GET", f"/plugins/{plugin_id}/config")
        return data

    def version(self, plugin_id: str) -> int:
        return int(self._config(plugin_id)["version"])

    def get(self, plugin_id: str) -> dict[str, Any]:
        return dict(self._config(plugin_id)["config"])

    def settings(self, plugin_id: str) -> dict[str, Any]:
        return dict(self._config(plugin_id)["settings"])

    def problems(self, plugin_id: str) -> list[Any]:
        return []  # the server validates every change against the schema before accepting it

    def history(self, plugin_id: str) -> list[Any]:
        from plughost.storage.config_store import ConfigRecord

        page = self._api.call("GET", f"/plugins/{plugin_id}/config/history",
                              params={"limit": 1000})
        return [ConfigRecord(plugin_id, e["version"], e["settings"], e["action"], e["actor"],
                             datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp())
                for e in page["items"]]

    def _latest(self, plugin_id: str) -> Any:
        return self.history(plugin_id)[-1]

    async def set(self, plugin_id: str, values: Mapping[str, Any], *, actor: str = "") -> Any:
        self._api.call("PUT", f"/plugins/{plugin_id}/config", json={"values": dict(values)})
        return self._latest(plugin_id)

    async def replace(self, plugin_id: str, settings: Mapping[str, Any], *,
                      actor: str = "") -> Any:
        self._api.call("PUT", f"/plugins/{plugin_id}/config",
                       json={"values": dict(settings), "replace": True})
        return self._latest(plugin_id)

    async def reset(self, plugin_id: str, *, actor: str = "") -> Any:
        self._api.call("POST", f"/plugins/{plugin_id}/config/reset")
        return self._latest(plugin_id)

    async def restore(self, plugin_id: str, version: int, *, actor: str = "") -> Any:
        self._api.call("POST", f"/plugins/{plugin_id}/config/restore", json={"version": version})
        return self._latest(plugin_id)

    def close(self) -> None:
        self._api.close()


@dataclass(frozen=True, slots=True)
class _Request:
    id: int
    plugin: str
    scope: str
    reason: str
    status: str
    resolved_by: str | None


class RemotePermissionManager:
    """The PermissionManager methods ``plughost perms`` uses, over the API."""

    def __init__(self, remote: Remote) -> None:
        self._api = _SyncApi(remote)

    def _permissions(self, plugin_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._api.call("GET", f"/plugins/{plugin_id}/permissions")
        return data

    def declared(self, plugin_id: str) -> list[str]:
        return list(self._permissions(plugin_id)["declared"])

    def grants(self, plugin_id: str) -> list[str]:
        return list(self._permissions(plugin_id)["granted"])

    def requests(self, plugin_id: str | None = None, *, status: str | None = None) -> list[Any]:
        params = {"status": status or "all", **({"plugin_id": plugin_id} if plugin_id else {})}
        page = self._api.call("GET", "/permissions/requests", params={**params, "limit": 1000})
        return [_request(r) for r in page["items"]]

    def grant(self, plugin_id: str, scope: str, *, actor: str = "", reason: str = "") -> Any:
        from plughost.security.scopes import parse_scope

        self._api.call("POST", f"/plugins/{plugin_id}/permissions/grant",
                       json={"scope": scope, "reason": reason})
        return parse_scope(scope)

    def revoke(self, plugin_id: str, scope: str, *, actor: str = "", reason: str = "") -> Any:
        from plughost.security.scopes import parse_scope

        self._api.call("POST", f"/plugins/{plugin_id}/permissions/revoke",
                       json={"scope": scope, "reason": reason})
        return parse_scope(scope)

    def resolve(self, request_id: int, *, approve: bool, actor: str = "") -> Any:
        decision = "approve" if approve else "refuse"
        return _request(self._api.call("POST", f"/permissions/requests/{request_id}/{decision}"))

    def close(self) -> None:
        self._api.close()


def _request(d: Mapping[str, Any]) -> _Request:
    return _Request(int(d["id"]), d["plugin_id"], d["scope"], d.get("reason", ""), d["status"],
                    d.get("resolved_by"))
