"""HostSettings: defaults under the home, environment, settings file, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from plughost.errors import ConfigurationError
from plughost.settings import DEFAULT_MAX_PLUGIN_SIZE, HostSettings, parse_size


def test_everything_defaults_under_the_home(tmp_path: Path) -> None:
    s = HostSettings(home=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'plughost.db'}"
    assert s.object_store == f"file://{tmp_path / 'objects'}"
    assert (s.cache_dir, s.plugins_dir) == (tmp_path / "cache", tmp_path / "plugins")
    assert (s.staging_dir, s.lock_dir) == (tmp_path / "staging", tmp_path / "locks")
    assert s.max_plugin_size == DEFAULT_MAX_PLUGIN_SIZE == 100 * 1024 * 1024
    assert s.keep_versions == 3 and s.require_signature == "unless-allowlisted"
    s.ensure_dirs()
    assert all(p.is_dir() for p in (s.cache_dir, s.plugins_dir, s.staging_dir, s.lock_dir))


def test_home_comes_from_plughost_home_or_xdg_default(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLUGHOST_HOME", str(tmp_path / "h"))
    assert HostSettings().home == tmp_path / "h"
    monkeypatch.delenv("PLUGHOST_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert HostSettings().home == tmp_path / ".local" / "share" / "plughost"


def test_relative_dirs_are_relative_to_the_home(tmp_path: Path) -> None:
    s = HostSettings(home=tmp_path, cache_dir=Path("c"), plugins_dir=Path("/abs/plugins"))
    assert s.cache_dir == tmp_path / "c" and s.plugins_dir == Path("/abs/plugins")


def test_from_env_reads_every_variable(tmp_path: Path) -> None:
    env = {
        "PLUGHOST_HOME": str(tmp_path),
        "PLUGHOST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/plughost",
        "PLUGHOST_OBJECT_STORE": "s3://bucket/prefix",
        "PLUGHOST_MAX_PLUGIN_SIZE": "50MiB",
        "PLUGHOST_KEEP_VERSIONS": "5",
        "PLUGHOST_REQUIRE_SIGNATURE": "always",
        "PLUGHOST_SIGNATURE_ALLOWLIST": "a, b",
        "PLUGHOST_AUTO_MIGRATE": "no",
    }
    s = HostSettings.from_env(env)
    assert s.database_url.startswith("postgresql+psycopg://")
    assert s.object_store == "s3://bucket/prefix"
    assert s.max_plugin_size == 50 * 1024 * 1024 and s.keep_versions == 5
    assert s.require_signature == "always" and s.signature_allowlist == ("a", "b")
    assert s.auto_migrate is False


def test_settings_file_in_the_home_is_read_and_env_wins(tmp_path: Path) -> None:
    (tmp_path / "plughost.toml").write_text(
        '[plughost]\nkeep_versions = 7\nmax_plugin_size = "1MB"\ncache_dir = "pkgcache"\n'
    )
    s = HostSettings.from_env({"PLUGHOST_HOME": str(tmp_path)})
    assert (s.keep_versions, s.max_plugin_size) == (7, 1_000_000)
    assert s.cache_dir == tmp_path / "pkgcache"
    s = HostSettings.from_env({"PLUGHOST_HOME": str(tmp_path), "PLUGHOST_KEEP_VERSIONS": "2"})
    assert s.keep_versions == 2


def test_explicit_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text(f'home = "{tmp_path / "home"}"\nrequire_signature = "never"\n')
    s = HostSettings.from_env({"PLUGHOST_SETTINGS": str(path)})
    assert s.home == tmp_path / "home" and s.require_signature == "never"
    with pytest.raises(ConfigurationError, match="does not exist"):
        HostSettings.from_env({"PLUGHOST_SETTINGS": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kep_versions": 3}, "unknown setting"),
        ({"keep_versions": 0}, "at least 1"),
        ({"keep_versions": "3"}, "whole number"),
        ({"require_signature": "sometimes"}, "always, never, unless-allowlisted"),
        ({"max_plugin_size": "lots"}, "cannot read 'lots' as a size"),
        ({"max_plugin_size": -1}, "must not be negative"),
    ],
)
def test_invalid_settings_name_the_problem(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        HostSettings.from_mapping({"home": tmp_path, **data}, source="plughost.toml")
    assert info.value.code == "settings.invalid"
    assert "plughost.toml" in info.value.message


def test_bad_toml_and_bad_env_values_are_configuration_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("keep_versions = = 3")
    with pytest.raises(ConfigurationError, match="cannot read settings file"):
        HostSettings.from_file(bad)
    with pytest.raises(ConfigurationError, match="PLUGHOST_KEEP_VERSIONS"):
        HostSettings.from_env({"PLUGHOST_HOME": str(tmp_path), "PLUGHOST_KEEP_VERSIONS": "x"})


def test_parse_size_units() -> None:
    assert parse_size("100MiB") == 100 * 1024**2
    assert parse_size("64MB") == 64_000_000
    assert parse_size("1.5KiB") == 1536
    assert parse_size(512) == 512 and parse_size("512") == 512


def test_settings_are_frozen(tmp_path: Path) -> None:
    import dataclasses

    s = HostSettings(home=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.home = Path("/")  # type: ignore[misc]


def test_the_arcade_plugin_service_table_is_read(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "plughost.toml").write_text(
        '[plugin]\nlocal_cache_dir = "/var/lib/arcade/plugins"\nenable_market = true\n'
        'market_api = "https://marketplace.example/api"\nauto_check_update = true\n'
        'update_check_interval = 86400\nload_timeout = 30\nmax_plugin_size = 100\n'
        '\n[plugins.slack]\nenabled = true\n')
    s = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
    assert s.cache_dir == Path("/var/lib/arcade/plugins")
    assert s.max_plugin_size == 100 * 1024 * 1024  # megabytes, as the Arcade service counts
    assert (s.market_api, s.enable_market, s.auto_check_update) == (
        "https://marketplace.example/api", True, True)
    assert (s.update_check_interval, s.load_timeout) == (86400, 30)


@pytest.mark.parametrize(("table", "message"), [
    ("[plugin]\nlocal_cache = 1\n", "unknown key(s) in [plugin]: local_cache; valid keys"),
    ("[plugin]\nload_timeout = -1\n", "load_timeout: expected a positive number"),
    ("plugin = 3\n", "[plugin] must be a table"),
    ('redis_url = "http://x"\n', "is not a Redis URL"),
])
def test_bad_plugin_table_and_cluster_settings_name_the_problem(
        tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "plughost.toml"
    path.write_text(table)
    with pytest.raises(ConfigurationError) as info:
        HostSettings.from_file(path, home=tmp_path)
    assert message in info.value.message


def test_cluster_settings_from_the_environment(tmp_path: Path) -> None:
    s = HostSettings.from_env({"PLUGHOST_HOME": str(tmp_path),
                               "PLUGHOST_REDIS_URL": "redis://127.0.0.1:6379/3",
                               "PLUGHOST_NODE_NAME": "node-a",
                               "PLUGHOST_LOAD_TIMEOUT": "12.5",
                               "PLUGHOST_ENABLE_MARKET": "0"})
    assert (s.redis_url, s.node_name, s.load_timeout, s.enable_market) == (
        "redis://127.0.0.1:6379/3", "node-a", 12.5, False)
