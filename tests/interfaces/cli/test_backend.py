"""The CLI's two backends are one facade: the local service and the remote one over HTTP."""

from __future__ import annotations

import inspect

from plughost.interfaces.cli._backend import RemoteBackend
from plughost.services.manager import PluginService
from plughost.services.views import PluginManagement


def _facade_methods() -> list[str]:
    return sorted(name for name, value in vars(PluginManagement).items()
                  if inspect.iscoroutinefunction(value))


def test_both_backends_offer_every_facade_method_with_the_same_parameters() -> None:
    names = _facade_methods()
    assert {"health", "install", "list_plugins", "metrics", "uninstall"} <= set(names)
    for name in names:
        wanted = list(inspect.signature(getattr(PluginManagement, name)).parameters)
        for backend in (PluginService, RemoteBackend):
            method = getattr(backend, name, None)
            assert method is not None, f"{backend.__name__} has no {name}()"
            params = list(inspect.signature(method).parameters)
            if backend is PluginService:
                # `origin` is set only by the marketplace, which drives the service directly;
                # it records where a package came from and is not part of the facade.
                params = [p for p in params if p != "origin"]
            assert params == wanted, (backend, name)
