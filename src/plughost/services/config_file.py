"""The host settings file (``plughost.toml`` or YAML): per-plugin enabled, priority, config.

The shape follows the ``config/plugins.yaml`` other plugin managers use, one table per plugin::

    [plugins.notify-slack]
    enabled = true
    priority = 100
    [plugins.notify-slack.config]
    webhook_url = "${SLACK_WEBHOOK}"
    channel = "#ops"

YAML works the same (``plugins: {notify-slack: {enabled: true, config: {...}}}``); the
``plugins.plugin_configs`` nesting other plugin managers use is accepted too.

:class:`SettingsFile` applies the file's ``config`` tables as operator settings (each through
:meth:`ConfigManager.replace`, so validation, listeners, history and rollback all apply) and
reports ``enabled`` / ``priority`` to a callback. :meth:`SettingsFile.watch` re-applies on every
edit while the host runs (``watchfiles``); a broken edit is logged and changes nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plughost.errors import ConfigurationError, ExtraNotInstalled, PlughostError, Problem
from plughost.services.config import ConfigManager

__all__ = ["PluginSettings", "SettingsFile", "load_settings_file", "parse_settings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """One plugin's table in the settings file.

    :ivar enabled: ``False`` keeps the plugin disabled.
    :ivar priority: ordering hint (higher first) for hosts that order plugins.
    :ivar config: operator settings, or ``None`` when the table has no ``config``.
    """

    enabled: bool = True
    priority: int = 0
    config: Mapping[str, Any] | None = None


def parse_settings(
    data: Mapping[str, Any], *, source: str = "settings"
) -> dict[str, PluginSettings]:
    """Validate a parsed settings document; :class:`ConfigurationError` lists every problem."""
    problems: list[Problem] = []
    plugins = data.get("plugins", {})
    if not isinstance(plugins, Mapping):
        problems.append(Problem("plugins", "settings.type", "must be a table of plugin ids"))
        plugins = {}
    if isinstance(plugins.get("plugin_configs"), Mapping):  # other plugin managers' nesting
        plugins = plugins["plugin_configs"]
    out: dict[str, PluginSettings] = {}
    for plugin_id, table in plugins.items():
        where = f"plugins.{plugin_id}"
        if not isinstance(table, Mapping):
            problems.append(Problem(where, "settings.type", "must be a table"))
            continue
        unknown = sorted(set(table) - {"enabled", "priority", "config"})
        if unknown:
            problems.append(
                Problem(
                    where,
                    "settings.unknown",
                    f"unknown key(s) {', '.join(unknown)}; allowed: enabled, priority, config",
                )
            )
        enabled = table.get("enabled", True)
        priority = table.get("priority", 0)
        config = table.get("config")
        if not isinstance(enabled, bool):
            problems.append(Problem(f"{where}.enabled", "settings.type", "must be true or false"))
        if not isinstance(priority, int) or isinstance(priority, bool):
            problems.append(Problem(f"{where}.priority", "settings.type", "must be an integer"))
        if config is not None and not isinstance(config, Mapping):
            problems.append(Problem(f"{where}.config", "settings.type", "must be a table"))
        out[str(plugin_id)] = PluginSettings(
            bool(enabled),
            int(priority) if isinstance(priority, int) else 0,
            dict(config) if isinstance(config, Mapping) else None,
        )
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigurationError(
            f"{len(problems)} problem(s) in {source}:\n{lines}\n"
            "Fix the file; the previous settings stay in effect.",
            details={"problems": [p.to_dict() for p in problems]},
        )
    return out


def load_settings_file(path: str | Path) -> dict[str, PluginSettings]:
    """Read and validate ``plughost.toml`` / ``.yaml`` / ``.yml``; a missing file is empty."""
    path = Path(path)
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:  # pragma: no cover - exercised only without the extra
                raise ExtraNotInstalled("YAML settings files", "config", "pyyaml") from exc
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigurationError(
            f"{path} is not valid {path.suffix[1:].upper()}: {exc}. "
            "Fix the file; the previous settings stay in effect."
        ) from exc
    except Exception as exc:  # yaml.YAMLError and friends
        raise ConfigurationError(f"{path} could not be parsed: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{path} must contain a table/mapping at the top level")
    return parse_settings(data, source=str(path))


#: Called with (plugin id, settings) when a plugin's ``enabled``/``priority`` changes.
SettingsCallback = Callable[[str, PluginSettings], "Awaitable[None] | None"]


@dataclass(slots=True)
class _State:
    configs: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    flags: dict[str, tuple[bool, int]] = field(default_factory=dict)


class SettingsFile:
    """Applies a settings file to a :class:`ConfigManager`, once or on every edit.

    :param path: the file (it may not exist yet; creating it later is an edit).
    :param manager: the config manager whose plugins receive the ``config`` tables.
    :param on_plugin_settings: told about ``enabled`` / ``priority`` changes (the host enables or
        disables the plugin).
    """

    def __init__(
        self,
        path: str | Path,
        manager: ConfigManager,
        *,
        on_plugin_settings: SettingsCallback | None = None,
    ) -> None:
        self.path = Path(path).absolute()
        self.manager = manager
        self.on_plugin_settings = on_plugin_settings
        self.plugins: dict[str, PluginSettings] = {}
        self.errors: dict[str, PlughostError] = {}
        self._state = _State()
        self._loaded = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.applied_count = 0

    async def apply(self) -> list[str]:
        """Read the file and apply what changed since the last apply; return the plugin ids changed.

        A file that does not parse changes nothing (the error is in ``errors[""]`` and logged).
        A plugin whose config is refused (invalid, or its listener raised) keeps its previous
        config; the error is in ``errors[plugin_id]``. Plugins not registered yet are applied
        when :meth:`apply_plugin` is called for them.
        """
        try:
            self.plugins = load_settings_file(self.path)
        except PlughostError as exc:
            logger.error("settings file not applied: %s", exc)
            self.errors[""] = exc
            return []
        self._loaded = True
        self.errors.pop("", None)
        known = set(self.manager.plugins())
        changed = [pid for pid in self.plugins if pid in known and await self.apply_plugin(pid)]
        self.applied_count += 1
        return changed

    async def apply_plugin(self, plugin_id: str) -> bool:
        """Apply the file's table for one plugin if it changed; ``True`` if something changed."""
        self._ensure_loaded()
        wanted = self.plugins.get(plugin_id)
        if wanted is None:
            return False
        changed = False
        if self._config_pending(plugin_id, wanted):
            try:
                await self.manager.replace(
                    plugin_id, wanted.config or {}, actor=f"file:{self.path.name}", action="file"
                )
            except PlughostError as exc:
                logger.error("settings file: config of %s not applied: %s", plugin_id, exc)
                self.errors[plugin_id] = exc
                return False
            changed = True
        self._state.configs[plugin_id] = wanted.config
        self.errors.pop(plugin_id, None)
        flags = (wanted.enabled, wanted.priority)
        if self.on_plugin_settings is not None and self._state.flags.get(plugin_id) != flags:
            result = self.on_plugin_settings(plugin_id, wanted)
            if inspect.isawaitable(result):
                await result
            changed = True
        self._state.flags[plugin_id] = flags
        return changed

    def apply_plugin_config_now(self, plugin_id: str) -> bool:
        """Apply one plugin's ``config`` table synchronously, before the plugin is activated.

        The host calls this while preparing the plugin, so it starts with the file's settings
        (a webhook URL that only the file provides). Errors are kept in :attr:`errors`.
        """
        self._ensure_loaded()
        wanted = self.plugins.get(plugin_id)
        if wanted is None or not self._config_pending(plugin_id, wanted):
            return False
        try:
            self.manager.replace_now(
                plugin_id, wanted.config or {}, actor=f"file:{self.path.name}", action="file"
            )
        except PlughostError as exc:
            logger.error("settings file: config of %s not applied: %s", plugin_id, exc)
            self.errors[plugin_id] = exc
            return False
        self._state.configs[plugin_id] = wanted.config
        self.errors.pop(plugin_id, None)
        return True

    def _config_pending(self, plugin_id: str, wanted: PluginSettings) -> bool:
        if wanted.config is None:
            return False
        if plugin_id in self._state.configs and self._state.configs[plugin_id] == wanted.config:
            return False
        return self.manager.settings(plugin_id, redact=False) != dict(wanted.config)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        try:
            self.plugins = load_settings_file(self.path)
        except PlughostError as exc:
            logger.error("settings file not applied: %s", exc)
            self.errors[""] = exc
        self._loaded = True

    async def watch(self) -> None:
        """Apply now, then again after every edit, until :meth:`stop` is called."""
        try:
            import watchfiles
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ExtraNotInstalled("Watching the settings file", "config", "watchfiles") from exc
        stop = self._stop
        await self.apply()
        if stop.is_set():
            return
        target = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        async for _changes in watchfiles.awatch(
            self.path.parent,
            stop_event=stop,
            debounce=50,
            step=20,
            watch_filter=lambda _change, p: p == target,
            recursive=False,
        ):
            await self.apply()

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`watch` as a task (call :meth:`stop` to end it cleanly)."""
        if self._task is not None and not self._task.done():
            return self._task
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self.watch(), name=f"watch {self.path}")
        return self._task

    async def stop(self) -> None:
        """Stop watching and wait for the watcher to finish; idempotent."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
