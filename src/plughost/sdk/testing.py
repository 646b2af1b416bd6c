"""Test seams for plugin authors (and plughost's own suite).

    from plughost.sdk.testing import make_test_host

    async def test_greets():
        async with make_test_host("path/to/my-plugin") as host:
            report = await host.start()
            assert report.ok, report
            assert await host.call("hello", "greet", name="Ada") == "Hello, Ada!"

A plugin class defined in a test module works too: ``make_test_host(MyPlugin)`` builds a manifest
for it (id from the class's ``plugin_id`` attribute or its name) and imports it normally.

:func:`wire_pair` is the process protocol without a process (go-plugin's ``testing.go``): the
host's end of a session and the Python runner serving a plugin object, connected by two pipes
in this process, so the protocol (docs/protocol.md) is exercised byte for byte in milliseconds::

    async with wire_pair(MyPlugin()) as session:
        result = await session.request("plugin.activate", {...}, timeout=5)
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from plughost.core.configschema import effective_config, validate_config
from plughost.core.lifecycle import State
from plughost.core.manifest import Manifest, load_manifest, manifest_from_dict
from plughost.errors import Problem
from plughost.host import LoadReport, PluginHost, ReloadResult
from plughost.runtimes.base import Runtime

__all__ = [
    "TestHost",
    "collect_events",
    "config_problems",
    "make_test_host",
    "manifest_for_class",
    "simulate_reload",
    "state_roundtrip",
    "wire_pair",
]


def manifest_for_class(cls: type, **fields: Any) -> Manifest:
    """A manifest for a plugin class that has no folder (entry = ``module:QualName``)."""
    default_id = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
    data: dict[str, Any] = {
        "id": getattr(cls, "plugin_id", default_id),
        "name": cls.__name__,
        "version": getattr(cls, "plugin_version", "0.0.0"),
        "entry": f"{cls.__module__}:{cls.__qualname__}",
    }
    data.update(fields)
    return manifest_from_dict(data, source=f"class {cls.__qualname__}")


def config_problems(plugin: str | Path | Manifest, config: Mapping[str, Any] | None = None
                    ) -> list[Problem]:
    """What the host (and ``plughost serve``) would refuse in ``config`` for ``plugin`` (a
    folder or a manifest): the plugin's effective config (schema defaults, manifest defaults,
    ``config``) checked by the same rule the service applies. Empty when it is accepted."""
    manifest = plugin if isinstance(plugin, Manifest) else load_manifest(Path(plugin))
    effective = effective_config(manifest.config_schema, manifest.config_defaults, config)
    return validate_config(effective, manifest.config_schema)


class TestHost(PluginHost):
    """The host :func:`make_test_host` builds: a :class:`PluginHost` whose ``start`` raises a
    plugin's config problems (:class:`~plughost.errors.ConfigInvalid`, the problems the
    service reports) instead of leaving it waiting in ``needs-config``, so a test that passes
    a config the service refuses fails loudly."""

    __test__ = False  # not a pytest test class

    strict_config: bool = True

    async def start(self) -> LoadReport:
        report = await super().start()
        if self.strict_config:
            for outcome in report.outcomes:
                if outcome.state is State.NEEDS_CONFIG and outcome.error is not None:
                    raise outcome.error
        return report


def make_test_host(
    *plugins: str | Path | type,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    runtimes: Iterable[Runtime] | None = None,
    home: str | Path | None = None,
    on_plugin_error: str = "fail",
    strict_config: bool = True,
    **host_options: Any,
) -> TestHost:
    """A :class:`PluginHost` over the given plugin folders and/or plugin classes.

    Failures raise by default (``on_plugin_error="fail"``) so a broken plugin fails the test
    loudly. ``config`` is validated against each plugin's config schema exactly as the service
    validates it (:mod:`plughost.core.configschema`): ``start`` raises a config the service
    refuses (``strict_config=False`` leaves the plugin in ``needs-config`` instead).
    Without ``home`` plugins get no ``ctx.data_dir`` (pass pytest's ``tmp_path``).
    """
    dirs: list[Path] = []
    classes: list[type] = []
    for item in plugins:
        if isinstance(item, type):
            classes.append(item)
        else:
            dirs.append(Path(item))
    host = TestHost(
        dirs,
        home=home,
        config=config,
        runtimes=runtimes,
        on_plugin_error=on_plugin_error,
        **host_options,
    )
    host.strict_config = strict_config
    for cls in classes:
        host.add(manifest_for_class(cls), None, source="test")
    return host


async def simulate_reload(host: PluginHost, plugin_id: str,
                          root: str | Path | None = None) -> ReloadResult:
    """Reload ``plugin_id`` as a save would (the host's :meth:`PluginHost.reload`: the new
    code loaded beside the old, ``export_state`` → ``import_state`` handed over, exports
    switched, the old version kept on any failure). ``root`` defaults to the plugin's folder,
    so a test can edit files there first."""
    return await host.reload(plugin_id, root)


def collect_events(host: PluginHost, pattern: str) -> list[Any]:
    """A list that fills with every event on ``pattern`` the host's bus delivers from now on
    (wildcards as the bus has them: ``*`` one segment, ``#`` any number, e.g.
    ``plugin.lifecycle.#``)."""
    seen: list[Any] = []
    host.bus.subscribe(pattern, seen.append)
    return seen


async def state_roundtrip(host: PluginHost, plugin_id: str) -> Any:
    """What the running plugin's ``export_state()`` returns, checked to be JSON as the host
    checks it before a reload or update hands it over."""
    return await host._export_state(host.get(plugin_id))


def _refuse(method: str, params: dict[str, Any]) -> Any:
    from plughost.runtimes.process.connection import method_not_found

    raise method_not_found(f"{method!r} is not served by this test pair")


@asynccontextmanager
async def wire_pair(
    plugin: Any,
    *,
    plugin_id: str = "test-plugin",
    handler: Callable[[str, dict[str, Any]], Any] | None = None,
    timeout: float = 10.0,
) -> AsyncIterator[Any]:
    """The host's end of a process-plugin session, talking to ``plugin`` through the wire.

    ``plugin`` is what a manifest's ``module:Attribute`` entry would name (a class, a factory or
    an object); the Python runner (:func:`plughost.sdk.child.serve`) serves it in a thread,
    over two pipes. ``handler(method, params)`` answers the plugin's ``host.*`` requests
    (default: "not served"). Yields the :class:`~plughost.runtimes.process.connection.Session`
    after the ``$/hello`` handshake; on exit the session is shut down as the host does it
    (``$/exit``, input closed) and the runner's thread is joined.
    """
    from plughost.runtimes.process.connection import Session
    from plughost.runtimes.process.output import OutputSink
    from plughost.sdk._connection import ChildConnection
    from plughost.sdk.child import serve

    loop = asyncio.get_running_loop()
    sink = OutputSink(logging.getLogger(f"plughost.plugin.{plugin_id}"))
    session = Session(plugin_id, handler=handler or _refuse, sink=sink, limits={})
    to_child_r, to_child_w = os.pipe()
    to_host_r, to_host_w = os.pipe()
    token = secrets.token_hex(8)

    def child() -> None:
        code = 4
        try:
            code = serve(ChildConnection(to_child_r, to_host_w), plugin, plugin_id=plugin_id,
                         token=token)
        finally:
            os.close(to_host_w)
            os.close(to_child_r)
            if not loop.is_closed():
                loop.call_soon_threadsafe(session.peer_exited, code)

    await session.connect_pipes(to_host_r, to_child_w, token=token)
    thread = threading.Thread(target=child, name=f"plughost-wire-pair:{plugin_id}", daemon=True)
    thread.start()
    try:
        await session.handshake(timeout)
        yield session
    finally:
        await session.shutdown(timeout)
        await asyncio.to_thread(thread.join, timeout)
