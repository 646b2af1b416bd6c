from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from plughost.errors import ConfigurationError
from plughost.services.config import ConfigManager
from plughost.services.config_file import PluginSettings, SettingsFile, load_settings_file

SCHEMA = {
    "type": "object",
    "properties": {
        "channel": {"type": "string", "default": "#general"},
        "retries": {"type": "integer", "minimum": 0},
    },
}


@pytest.fixture
def manager(tmp_path: Path) -> ConfigManager:
    m = ConfigManager.open(tmp_path / "home", environ={"CHAN": "#from-env"})
    m.register("notify", SCHEMA, {})
    yield m
    m.close()


def write_toml(path: Path, channel: str, *, enabled: bool = True, priority: int = 10) -> None:
    path.write_text(
        f"[plugins.notify]\nenabled = {str(enabled).lower()}\npriority = {priority}\n"
        f'[plugins.notify.config]\nchannel = "{channel}"\n'
    )


def test_toml_and_yaml_settings_files_parse_to_the_same_tables(tmp_path: Path) -> None:
    toml = tmp_path / "plughost.toml"
    write_toml(toml, "#a")
    yml = tmp_path / "plugins.yaml"
    yml.write_text(
        "plugins:\n  plugin_configs:\n    notify:\n      enabled: true\n"
        "      priority: 10\n      config:\n        channel: '#a'\n"
    )
    expected = {"notify": PluginSettings(True, 10, {"channel": "#a"})}
    assert load_settings_file(toml) == expected == load_settings_file(yml)
    assert load_settings_file(tmp_path / "missing.toml") == {}


def test_bad_settings_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "plughost.toml"
    path.write_text('[plugins.a]\nenabled = "yes"\ncolour = 1\n[plugins.b]\nconfig = 3\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings_file(path)
    paths = [p["path"] for p in info.value.details["problems"]]
    assert paths == ["plugins.a", "plugins.a.enabled", "plugins.b.config"]
    path.write_text("[plugins\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings_file(path)


async def test_apply_sets_config_and_reports_enabled_priority(
    manager: ConfigManager,
    tmp_path: Path,
) -> None:
    path = tmp_path / "plughost.toml"
    write_toml(path, "${CHAN}", priority=5)
    seen: list[tuple[str, PluginSettings]] = []
    sf = SettingsFile(path, manager, on_plugin_settings=lambda pid, s: seen.append((pid, s)))
    assert await sf.apply() == ["notify"]
    assert manager.get("notify")["channel"] == "#from-env"
    assert manager.history("notify")[-1].actor == "file:plughost.toml"
    assert seen[0][1].priority == 5
    assert await sf.apply() == []  # nothing changed, no new version
    assert manager.version("notify") == 1


async def test_invalid_config_in_the_file_changes_nothing(
    manager: ConfigManager,
    tmp_path: Path,
) -> None:
    path = tmp_path / "plughost.toml"
    path.write_text("[plugins.notify.config]\nretries = -3\n")
    sf = SettingsFile(path, manager)
    assert await sf.apply() == []
    assert sf.errors["notify"].code == "config.invalid"
    assert manager.version("notify") == 0


async def test_editing_the_file_while_watching_applies_the_change(
    manager: ConfigManager,
    tmp_path: Path,
) -> None:
    path = tmp_path / "plughost.toml"
    write_toml(path, "#first")
    sf = SettingsFile(path, manager)
    task = sf.start()
    try:
        await _until(lambda: manager.get("notify")["channel"] == "#first")
        # The watcher may still be arming itself: repeat the edit until it is seen (deadline).
        await _until(
            lambda: manager.get("notify")["channel"] == "#edited",
            action=lambda: write_toml(path, "#edited"),
        )
        # A broken edit keeps the last good settings.
        await _until(lambda: "" in sf.errors, action=lambda: path.write_text("[plugins\n"))
        assert manager.get("notify")["channel"] == "#edited"
    finally:
        await sf.stop()
    assert task.done() and task.exception() is None


async def test_stop_before_the_watcher_starts_ends_it(
    manager: ConfigManager, tmp_path: Path
) -> None:
    sf = SettingsFile(tmp_path / "plughost.toml", manager)
    task = sf.start()
    await sf.stop()
    assert task.done()


async def _until(predicate, timeout: float = 10.0, action=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if action is not None:
            action()
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.1)
