"""The in-process Python runtime: import a plugin's module into this interpreter.

Isolation of *names*: every plugin version is imported under its own private package
(``_plughost_plugins.<id>__<version>_<n>``) whose ``__path__`` is the plugin folder, so two plugins
(or two versions of one) that both ship a ``utils`` module never collide. Plugins import their own
modules relatively (``from . import utils``). Unloading removes that package and every submodule
from ``sys.modules`` and drops every reference the runtime holds, so the code can be collected.

Isolation of *power*: none. In-process plugins are trusted code; they can import ``os`` and bypass
the context. Limits cannot be enforced here (Python code cannot be pre-empted), which is why
``enforces`` is empty and the host reports declared limits as unenforced at load time. Use the
``process`` or ``wasm`` runtime for untrusted plugins.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import itertools
import logging
import re
import sys
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core._manifest_checks import entry_problem
from plughost.core.contract import Capability, Export, Health
from plughost.errors import PluginLoadError, PluginTimeout, PluginUnavailable

if TYPE_CHECKING:
    from plughost.core.bus import Event
    from plughost.core.channels import Channel
    from plughost.core.context import PluginContext
    from plughost.core.manifest import Manifest

__all__ = [
    "NAMESPACE_ROOT",
    "InProcessInstance",
    "InProcessRuntime",
    "create_runtime",
    "resolve_entry",
]

logger = logging.getLogger(__name__)

NAMESPACE_ROOT = "_plughost_plugins"
"""The top-level package under which folder plugins are imported."""

_counter = itertools.count(1)
_UNSAFE = re.compile(r"[^0-9A-Za-z_]")


def _ensure_root_package() -> None:
    if NAMESPACE_ROOT not in sys.modules:
        root = types.ModuleType(NAMESPACE_ROOT, "Private namespace for plughost plugin modules.")
        root.__path__ = []
        root.__spec__ = importlib.machinery.ModuleSpec(NAMESPACE_ROOT, None, is_package=True)
        sys.modules[NAMESPACE_ROOT] = root


def _make_namespace(manifest: Manifest, root: Path) -> str:
    """Create the private package for one load of one plugin version; return its name."""
    _ensure_root_package()
    safe = _UNSAFE.sub("_", f"{manifest.id}__{manifest.version}")
    name = f"{NAMESPACE_ROOT}.{safe}_{next(_counter)}"
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(root)]
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(root)]
    sys.modules[name] = package
    return name


def _drop_namespace(name: str, root: Path | None) -> int:
    """Remove a plugin package and its submodules from ``sys.modules``; return how many."""
    prefix = name + "."
    doomed = [key for key in sys.modules if key == name or key.startswith(prefix)]
    for key in doomed:
        del sys.modules[key]
    parent = sys.modules.get(NAMESPACE_ROOT)
    leaf = name.rpartition(".")[2]
    if parent is not None and hasattr(parent, leaf):
        delattr(parent, leaf)
    if root is not None:
        # The path finder caches a FileFinder per directory; drop it so a reload sees new files.
        sys.path_importer_cache.pop(str(root), None)
    importlib.invalidate_caches()
    return len(doomed)


def resolve_entry(manifest: Manifest, root: Path | None) -> tuple[Any, str | None]:
    """Import ``manifest.entry`` (``module:attribute``) and return ``(object, namespace)``.

    With a plugin folder the module is imported under a private namespace; without one (an
    entry-point plugin from an installed distribution) it is imported normally and the namespace
    is ``None``. The attribute may be a Plugin subclass (instantiated with no arguments), a
    factory function (called with no arguments), or any object.
    """
    module_name, _, attr_path = manifest.entry.partition(":")
    namespace: str | None = None
    if root is not None:
        namespace = _make_namespace(manifest, root)
        qualified = f"{namespace}.{module_name}"
    else:
        qualified = module_name
    try:
        module = _import(qualified, module_name, root)
        target: Any = module
        for part in attr_path.split(".") if attr_path else ():
            target = getattr(target, part)
    except BaseException as exc:
        if namespace is not None:
            _drop_namespace(namespace, root)
        where = f" from {root}" if root else ""
        if isinstance(exc, AttributeError):
            hint = f"module {module_name!r} has no attribute {attr_path!r}; fix `entry`"
        elif isinstance(exc, ModuleNotFoundError) and exc.name and module_name in exc.name:
            hint = f"no module {module_name!r}{where}; fix `entry` or add {module_name}.py"
        else:
            hint = f"the module raised while being imported{_raised_at(exc)}; fix it there"
        raise PluginLoadError(
            f"Could not import entry {manifest.entry!r}{where}: {type(exc).__name__}: {exc} "
            f"({hint}).",
            plugin_id=manifest.id,
            phase="import",
            details={"entry": manifest.entry, "hint": hint},
        ) from exc
    try:
        if inspect.isclass(target) or (inspect.isfunction(target) and not _is_plugin_like(target)):
            obj = target()
        else:
            obj = target
    except BaseException as exc:
        if namespace is not None:
            _drop_namespace(namespace, root)
        raise PluginLoadError(
            f"Creating the plugin object from {manifest.entry!r} failed: "
            f"{type(exc).__name__}: {exc}. The class must take no constructor arguments.",
            plugin_id=manifest.id,
            phase="import",
        ) from exc
    return obj, namespace


def _import(qualified: str, module_name: str, root: Path | None) -> types.ModuleType:
    """Import the entry module.

    A top-level ``module.py`` in the plugin folder is loaded straight from its known path: the
    generic path search would build a finder per plugin folder, which costs more than the import.
    Anything else (packages, dotted names) goes through the normal machinery.
    """
    if root is not None and "." not in module_name:
        path = root / f"{module_name}.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(qualified, path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[qualified] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(qualified, None)
                    raise
                return module
    return importlib.import_module(qualified)



def _raised_at(exc: BaseException) -> str:
    """`` at <file>:<line>`` of where ``exc`` was raised (a syntax error: where it is)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" at {exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""

def _is_plugin_like(obj: Any) -> bool:
    return any(hasattr(obj, name) for name in ("activate", "__plughost_exports__"))


def _exports_of(obj: Any) -> list[Export]:
    """What ``obj`` provides: its decorated methods (see ``plughost.sdk.decorators``)."""
    try:
        from plughost.sdk.decorators import collect_exports
    except ImportError:  # the decorators arrive with the communication layer
        return []
    return list(collect_exports(obj))


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class InProcessInstance:
    """A plugin object living in this interpreter."""

    __slots__ = (
        "_closed",
        "_namespace",
        "_obj",
        "_plugin_id",
        "_root",
        "_started",
    )

    def __init__(self, plugin_id: str, obj: Any, namespace: str | None, root: Path | None):
        self._plugin_id = plugin_id
        self._obj: Any = obj
        self._namespace = namespace
        self._root = root
        self._started = False
        self._closed = False

    @property
    def plugin_id(self) -> str:
        return self._plugin_id

    @property
    def plugin_object(self) -> Any:
        """The plugin object itself (trusted in-process code may be handed around directly)."""
        self._check_open()
        return self._obj

    @property
    def namespace(self) -> str | None:
        """The private package the plugin's modules live under (``None`` for entry points)."""
        return self._namespace

    def _check_open(self) -> None:
        if self._closed:
            raise PluginUnavailable(
                "This plugin instance was unloaded; load the plugin again to use it.",
                plugin_id=self._plugin_id,
            )

    def _callback(self, name: str) -> Callable[..., Any] | None:
        """The plugin's optional lifecycle callback ``name`` (None when it has none)."""
        self._check_open()
        fn = getattr(self._obj, name, None)
        return fn if callable(fn) else None

    def _target(self, target: str) -> Callable[..., Any]:
        fn = self.local_callable(target)
        if fn is None:
            raise PluginUnavailable(
                f"Plugin has no callable {target!r}.",
                plugin_id=self._plugin_id,
                code="plugin.no_target",
            )
        return fn

    async def start(self, context: PluginContext) -> Sequence[Export]:
        self._check_open()
        obj = self._obj
        # Objects with __slots__ or frozen ones cannot take it; they get it through activate().
        with contextlib.suppress(AttributeError, TypeError):
            obj.ctx = context
        activate = getattr(obj, "activate", None)
        if activate is not None:
            await _maybe_await(activate(context))
        self._started = True
        return _exports_of(obj)

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        self._check_open()
        if target.startswith("_"):
            return None
        fn = getattr(self._obj, target, None)
        return fn if callable(fn) else None

    async def call(
        self,
        target: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        result = self._target(target)(**(kwargs or {}))
        if inspect.isawaitable(result):
            try:
                result = await asyncio.wait_for(_maybe_await(result), timeout)
            except TimeoutError:
                raise PluginTimeout(
                    f"Call to {target!r} did not finish within {timeout}s.",
                    plugin_id=self._plugin_id,
                    details={"target": target, "timeout": timeout},
                ) from None
        return result

    async def deliver_event(self, target: str, event: Event) -> None:
        await _maybe_await(self._target(target)(event))

    async def serve_channel(self, target: str, channel: Channel) -> None:
        await _maybe_await(self._target(target)(channel))

    async def export_state(self) -> Any:
        fn = self._callback("export_state")
        return await _maybe_await(fn()) if fn is not None else None

    async def import_state(self, state: Any, from_version: str) -> None:
        fn = self._callback("import_state")
        if fn is not None:
            await _maybe_await(fn(state, from_version))

    async def config_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        fn = self._callback("on_config_change")
        if fn is not None:
            await _maybe_await(fn(old, new))

    async def enabled_changed(self, enabled: bool) -> None:
        fn = self._callback("on_enable" if enabled else "on_disable")
        if fn is not None:
            await _maybe_await(fn())

    async def health(self) -> Health:
        if self._closed:
            return Health(False, "unloaded")
        probe = getattr(self._obj, "health", None)
        if probe is None:
            return Health(True)
        try:
            value = await _maybe_await(probe())
        except Exception as exc:
            return Health(False, f"health() raised {type(exc).__name__}: {exc}")
        if isinstance(value, Health):
            return value
        return Health(bool(value))

    async def stop(self) -> None:
        if self._closed or not self._started:
            return
        self._started = False
        deactivate = getattr(self._obj, "deactivate", None)
        if deactivate is not None:
            await _maybe_await(deactivate())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._obj = None
        if self._namespace is not None:
            removed = _drop_namespace(self._namespace, self._root)
            logger.debug("unloaded %s: removed %d modules", self._plugin_id, removed)

    def stats(self) -> Mapping[str, Any]:
        """Nothing only this runtime can count: the host counts calls and deliveries."""
        return {}


class InProcessRuntime:
    """Loads ``runtime = "python"`` plugins into this interpreter."""

    name = "python"
    enforces: frozenset[str] = frozenset()
    capabilities: frozenset[Capability] = frozenset(Capability)

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        return entry_problem(self.name, entry, str(root) if root is not None else None)

    async def load(self, manifest: Manifest, root: Path | None) -> InProcessInstance:
        obj, namespace = resolve_entry(manifest, root)
        return InProcessInstance(manifest.id, obj, namespace, root)

    async def aclose(self) -> None:
        return None


def create_runtime(home: Path | None = None, on_event: Any = None) -> InProcessRuntime:
    """Factory used by the host (see :data:`plughost.runtimes.base.BUILTIN_RUNTIMES`)."""
    return InProcessRuntime()
