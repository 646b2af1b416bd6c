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


def test_the_marketplace_keys_are_read_from_the_file_and_the_environment(tmp_path: Path
                                                                        ) -> None:
    s = HostSettings(home=tmp_path)
    assert (s.enable_market, s.market_api, s.auto_check_update) == (True, "", False)
    assert (s.update_check_interval, s.load_timeout) == (86400, 30.0)
    file = tmp_path / "plughost.toml"
    file.write_text('enable_market = false\nmarket_api = "https://market.example.com"\n'
                    "auto_check_update = true\nupdate_check_interval = 3600\n"
                    "load_timeout = 10\n")
    s = HostSettings.from_file(file, home=tmp_path)
    assert (s.enable_market, s.market_api, s.auto_check_update) == (
        False, "https://market.example.com", True)
    assert (s.update_check_interval, s.load_timeout) == (3600, 10.0)
    s = HostSettings.from_env({"PLUGHOST_HOME": str(tmp_path), "PLUGHOST_SETTINGS": str(file),
                               "PLUGHOST_ENABLE_MARKET": "1",
                               "PLUGHOST_UPDATE_CHECK_INTERVAL": "600"})
    assert (s.enable_market, s.update_check_interval) == (True, 600)


def test_the_arcade_plugin_table_is_read_with_its_units(tmp_path: Path) -> None:
    file = tmp_path / "plughost.toml"
    file.write_text('[plugin]\nlocal_cache_dir = "/var/lib/arcade/plugins"\n'
                    "enable_market = true\nauto_check_update = true\n"
                    "update_check_interval = 86400\nload_timeout = 30\n"
                    "max_plugin_size = 100\n")
    s = HostSettings.from_file(file, home=tmp_path)
    assert s.cache_dir == Path("/var/lib/arcade/plugins")
    assert s.max_plugin_size == 100 * 1024 * 1024 and s.auto_check_update


@pytest.mark.parametrize(("data", "message"), [
    ({"enable_market": "yes"}, "enable_market"),
    ({"update_check_interval": 5}, "update_check_interval"),
    ({"load_timeout": 0}, "load_timeout"),
    ({"market_api": "ftp://x"}, "market_api"),
])
def test_bad_marketplace_keys_name_the_problem(tmp_path: Path, data: dict,
                                               message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HostSettings.from_mapping({"home": tmp_path, **data})
