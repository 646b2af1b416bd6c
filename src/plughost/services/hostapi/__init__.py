"""The host services a plugin uses through its context: ctx.files, ctx.http, ctx.storage.

Why ``services/hostapi``: each service combines a security check (``plughost.security``) with a
backend (the filesystem, ``httpx``, :mod:`plughost.storage.kv`), so it sits above both layers;
``core.context`` only holds the slots and never imports these. The same objects will back the
``host.fs`` / ``host.http`` / ``host.storage`` methods of the out-of-process protocol, where
the boundary is actually enforced (in-process plugins can bypass ``ctx`` by importing ``os``).

:func:`make_services` builds the three for one plugin and registers the implicit grants (its
private data directory and its own storage namespace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plughost.security.permissions import PermissionManager
from plughost.services.hostapi.files import FileInfo, FileService
from plughost.services.hostapi.storage import StorageService
from plughost.storage.kv import KeyValueBackend

if TYPE_CHECKING:
    from plughost.services.hostapi.http import HttpOptions, HttpService

__all__ = [
    "FileInfo",
    "FileService",
    "HostServices",
    "StorageService",
    "implicit_scopes",
    "make_services",
]


def implicit_scopes(plugin_id: str, data_dir: str | Path) -> list[str]:
    """What every plugin gets without asking: its data directory and its storage namespace."""
    real = os.path.realpath(data_dir)
    return [f"fs:read:{real}", f"fs:write:{real}", f"storage:{plugin_id}"]


@dataclass(slots=True)
class HostServices:
    """The services of one plugin; :meth:`aclose` releases the HTTP pool."""

    files: FileService
    http: HttpService
    storage: StorageService

    async def aclose(self) -> None:
        """Close what the services hold open."""
        await self.http.aclose()


def make_services(
    plugin_id: str,
    permissions: PermissionManager,
    *,
    data_dir: str | Path,
    kv: KeyValueBackend,
    http_options: HttpOptions | None = None,
) -> HostServices:
    """Build ``files``/``http``/``storage`` for a plugin and register its implicit grants.

    The data directory is not created here but on the plugin's first write (see
    :class:`FileService`): an activation that fails, or a crash, leaves no empty directory.
    """
    from plughost.services.hostapi.http import HttpService

    permissions.set_implicit(plugin_id, implicit_scopes(plugin_id, data_dir))
    return HostServices(
        files=FileService(plugin_id, permissions, data_dir),
        http=HttpService(plugin_id, permissions, options=http_options),
        storage=StorageService(plugin_id, permissions, kv),
    )
