"""Host settings: where plughost keeps its state, which backends it uses, and its limits.

With no settings at all everything lives under one *home* directory::

    <home>/plughost.db     SQLite database        (database_url)
    <home>/objects/        filesystem object store (object_store)
    <home>/cache/          unpacked, read-only plugin versions (cache_dir)
    <home>/plugins/        plugin folders discovered at start (plugins_dir)
    <home>/staging/        temporary work of installs/updates (staging_dir)
    <home>/locks/          plugin locks and owner leases with SQLite (lock_dir)

The home is ``$PLUGHOST_HOME`` or ``~/.local/share/plughost``. Settings can be given in code
(``HostSettings(home=...)``), in a ``plughost.toml`` file (:meth:`HostSettings.from_file`) and in
``PLUGHOST_*`` environment variables (:meth:`HostSettings.from_env`, which also reads the file).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from plughost.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_PLUGIN_SIZE",
    "DEFAULT_REQUIRE_SIGNATURE",
    "PLUGIN_TABLE_KEYS",
    "SETTINGS_FILE",
    "SIGNATURE_POLICIES",
    "HostSettings",
    "default_home",
    "managed_settings",
    "parse_size",
]

#: Arcade's ``max_plugin_size = 100`` (MB), in bytes.
DEFAULT_MAX_PLUGIN_SIZE = 100 * 1024 * 1024
#: The settings file looked up in the home directory (or named by ``$PLUGHOST_SETTINGS``).
SETTINGS_FILE = "plughost.toml"
#: Tables of the settings file that other parts read (not :class:`HostSettings` fields).
SHARED_TABLES = frozenset({"plugins", "logs", "health", "metrics", "alerts"})
#: The Arcade-compatible ``[plugin]`` service table: its keys and the settings they set.
PLUGIN_TABLE_KEYS = {
    "local_cache_dir": "cache_dir",
    "enable_market": "enable_market",
    "market_api": "market_api",
    "auto_check_update": "auto_check_update",
    "update_check_interval": "update_check_interval",
    "load_timeout": "load_timeout",
    "max_plugin_size": "max_plugin_size",
}
#: Accepted values of :attr:`HostSettings.require_signature`.
SIGNATURE_POLICIES = ("always", "never", "unless-allowlisted")
#: The signature policy when nothing is configured — for install, update and ``plughost
#: verify`` alike: every package must carry a trusted signature, except the plugin ids in
#: ``signature_allowlist`` (empty by default) and one ``install --allow-unsigned``.
DEFAULT_REQUIRE_SIGNATURE: Final = "unless-allowlisted"

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def default_home() -> Path:
    """``$PLUGHOST_HOME`` if set, else ``~/.local/share/plughost``."""
    env = os.environ.get("PLUGHOST_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "plughost"


def managed_settings(home: Path | None) -> HostSettings | None:
    """The settings of ``home`` (``$PLUGHOST_HOME`` etc. when ``None``) if it has a plugin
    database (an SQLite file that exists, or a server URL configured); else ``None``."""
    env = dict(os.environ)
    if home is not None:
        env["PLUGHOST_HOME"] = str(home)
    settings = HostSettings.from_env(env)
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return settings if Path(url[len("sqlite:///"):]).is_file() else None
    return settings


def parse_size(value: int | str, *, what: str = "size") -> int:
    """Parse a byte count: an int (bytes) or a string such as ``"100MiB"``, ``"64MB"``, ``"512"``.

    :raises ConfigurationError: when the value is negative or not understood.
    """
    if isinstance(value, bool):
        raise ConfigurationError(
            f"{what}: expected a size such as 104857600 or '100MiB', got {value!r}"
        )
    if isinstance(value, int):
        number = value
    else:
        match = _SIZE_RE.match(str(value))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _SIZE_UNITS:
            raise ConfigurationError(
                f"{what}: cannot read {value!r} as a size; use bytes (104857600) or a number "
                "with a unit: B, KB, KiB, MB, MiB, GB, GiB (e.g. '100MiB')."
            )
        number = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if number < 0:
        raise ConfigurationError(f"{what}: must not be negative, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Everything a host or the management service needs to know about its environment.

    Fields left at ``None`` / ``""`` are derived from :attr:`home` when the object is created, so
    after construction every field holds a concrete value.
    """

    #: Root directory for all local state. Relative paths and ``~`` are resolved.
    home: Path = field(default_factory=default_home)
    #: SQLAlchemy database URL. Default ``sqlite:///<home>/plughost.db``. Also accepted:
    #: ``postgresql+psycopg://user:pw@host/db`` (extra ``postgres``) and
    #: ``mysql+pymysql://user:pw@host/db`` (extra ``mysql``); ``postgresql://`` and ``mysql://``
    #: are rewritten to those drivers.
    database_url: str = ""
    #: Object store URL. Default ``file://<home>/objects``; or
    #: ``s3://bucket/prefix?endpoint_url=http://host:9000&region=eu-west-1`` (extra ``s3``).
    object_store: str = ""
    #: Unpacked plugin versions, one read-only content-addressed directory each.
    cache_dir: Path = None  # type: ignore[assignment]
    #: Plugin folders the host discovers at start (development plugins, pre-installed ones).
    plugins_dir: Path = None  # type: ignore[assignment]
    #: Temporary work area of install / update / uploads, one directory per task named after
    #: its process's owner id; what dead processes left is removed at start.
    staging_dir: Path = None  # type: ignore[assignment]
    #: Per-plugin lock files and owner leases (used when the database is SQLite).
    lock_dir: Path = None  # type: ignore[assignment]
    #: Largest accepted plugin package, in bytes (Arcade's ``max_plugin_size``: 100 MiB).
    max_plugin_size: int = DEFAULT_MAX_PLUGIN_SIZE
    #: How many installed versions of each plugin are kept for rollback (the current included).
    keep_versions: int = 3
    #: Signature policy for packages: ``always``, ``never`` or ``unless-allowlisted``.
    require_signature: str = DEFAULT_REQUIRE_SIGNATURE
    #: Plugin ids that may be installed unsigned under ``unless-allowlisted``.
    signature_allowlist: tuple[str, ...] = ()
    #: Apply pending database migrations automatically when storage is opened.
    auto_migrate: bool = True
    #: Redis URL (``redis://host:6379/0``) through which the nodes of a cluster announce
    #: changes to each other. Empty: PostgreSQL ``LISTEN/NOTIFY`` when the database is
    #: PostgreSQL, else polling the database (see ``docs/deploy.md``).
    redis_url: str = ""
    #: This node's name in ``plughost nodes`` (default: the host name and port it serves on).
    node_name: str = ""
    #: Arcade's ``market_api``: the server meant to keep a marketplace's ratings and download
    #: counts. Read and validated, but not used yet: every server keeps its own (the API logs
    #: a warning at start when it is set; see docs/market.md).
    market_api: str = ""
    #: Whether installs from the marketplace are allowed (Arcade's ``enable_market``).
    enable_market: bool = True
    #: Whether the service checks for plugin updates on its own (Arcade's
    #: ``auto_check_update``), every :attr:`update_check_interval` seconds.
    auto_check_update: bool = False
    #: Seconds between automatic update checks (Arcade's ``update_check_interval``).
    update_check_interval: int = 86400
    #: Seconds a plugin may take to load and activate (Arcade's ``load_timeout``).
    load_timeout: float = 30.0
    #: Hot reload: watch the plugin folders (``plugins_dir``) and reload a plugin when its
    #: files change (``plughost serve --watch`` turns it on too).
    watch: bool = False
    #: Seconds without a change that end a burst of saves before a reload (``watch``).
    reload_debounce: float = 0.2

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser()
        if not home.is_absolute():
            home = Path.cwd() / home
        set_ = object.__setattr__  # frozen dataclass: derive fields once, here
        set_(self, "home", home)
        if not self.database_url:
            set_(self, "database_url", f"sqlite:///{home / 'plughost.db'}")
        if not self.object_store:
            set_(self, "object_store", f"file://{home / 'objects'}")
        for name, default in (
            ("cache_dir", "cache"),
            ("plugins_dir", "plugins"),
            ("staging_dir", "staging"),
            ("lock_dir", "locks"),
        ):
            value = getattr(self, name)
            path = home / default if value is None else Path(value).expanduser()
            set_(self, name, path if path.is_absolute() else home / path)
        set_(self, "max_plugin_size", parse_size(self.max_plugin_size, what="max_plugin_size"))
        if isinstance(self.keep_versions, bool) or not isinstance(self.keep_versions, int):
            raise ConfigurationError(
                f"keep_versions: expected a whole number >= 1, got {self.keep_versions!r}"
            )
        if self.keep_versions < 1:
            raise ConfigurationError(
                f"keep_versions: must be at least 1 (the current version), got {self.keep_versions}"
            )
        if self.require_signature not in SIGNATURE_POLICIES:
            raise ConfigurationError(
                f"require_signature: {self.require_signature!r} is not a policy; use one of "
                + ", ".join(SIGNATURE_POLICIES)
            )
        set_(self, "signature_allowlist", tuple(self.signature_allowlist))
        for name, kind in (("enable_market", bool), ("auto_check_update", bool)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigurationError(f"{name}: expected true or false, got "
                                         f"{getattr(self, name)!r}")
        for name in ("update_check_interval", "load_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{name}: expected a positive number of seconds, got "
                                         f"{value!r}")
        for name in ("redis_url", "node_name", "market_api"):
            if not isinstance(getattr(self, name), str):
                raise ConfigurationError(f"{name}: expected a string, got "
                                         f"{getattr(self, name)!r}")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://",
                                                              "unix://")):
            raise ConfigurationError(f"redis_url: {self.redis_url!r} is not a Redis URL; use "
                                     "redis://host:6379/0 (or rediss://, unix://)")
        if not isinstance(self.watch, bool):
            raise ConfigurationError(f"watch: expected true or false, got {self.watch!r}")
        debounce = self.reload_debounce
        if isinstance(debounce, bool) or not isinstance(debounce, int | float) \
                or not 0 <= debounce <= 60:
            raise ConfigurationError(
                f"reload_debounce: expected seconds between 0 and 60, got {debounce!r}")

    def ensure_dirs(self) -> None:
        """Create the home and the local directories (not the database or object store)."""
        for path in (self.home, self.cache_dir, self.plugins_dir, self.staging_dir, self.lock_dir):
            path.mkdir(parents=True, exist_ok=True)

    def development_dirs(self) -> list[Path]:
        """``[plugins_dir]`` when it holds anything (development plugin folders that run
        beside the installed plugins), else ``[]``."""
        folder = self.plugins_dir
        return [folder] if folder.is_dir() and any(folder.iterdir()) else []

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "settings") -> HostSettings:
        """Build settings from a mapping of field names (as in ``plughost.toml``).

        :raises ConfigurationError: naming every unknown key and the valid ones.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigurationError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; valid settings are "
                + ", ".join(sorted(names))
            )
        values = dict(data)
        if "signature_allowlist" in values:
            allow = values["signature_allowlist"]
            if isinstance(allow, str):
                allow = [a.strip() for a in allow.split(",") if a.strip()]
            values["signature_allowlist"] = tuple(allow)
        for key in ("home", "cache_dir", "plugins_dir", "staging_dir", "lock_dir"):
            if key in values:
                values[key] = Path(values[key])
        try:
            return cls(**values)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc.message}") from None

    @classmethod
    def from_file(cls, path: Path | str, **overrides: Any) -> HostSettings:
        """Read a ``plughost.toml``: keys named like the fields, top level or in ``[plughost]``.

        Relative directories in the file are relative to the home. ``overrides`` win over the file.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(
                f"settings file {path} does not exist; create it or unset PLUGHOST_SETTINGS"
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read settings file {path}: {exc}") from None
        # Tables read by other parts of plughost share the file (observability, plugin config).
        data = {k: v for k, v in data.items() if k not in SHARED_TABLES}
        service = data.pop("plugin", None)
        if set(data) == {"plughost"} and isinstance(data["plughost"], dict):
            data = data["plughost"]
        if service is not None:
            data = {**_plugin_table(service, source=str(path)), **data}
        data = {**data, **overrides}
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HostSettings:
        """Settings from ``PLUGHOST_*`` variables on top of the settings file, if any.

        Variables: ``PLUGHOST_HOME``, ``PLUGHOST_SETTINGS`` (settings file; default
        ``<home>/plughost.toml`` when it exists), ``PLUGHOST_DATABASE_URL``,
        ``PLUGHOST_OBJECT_STORE``, ``PLUGHOST_CACHE_DIR``, ``PLUGHOST_PLUGINS_DIR``,
        ``PLUGHOST_STAGING_DIR``, ``PLUGHOST_LOCK_DIR``, ``PLUGHOST_MAX_PLUGIN_SIZE``,
        ``PLUGHOST_KEEP_VERSIONS``, ``PLUGHOST_REQUIRE_SIGNATURE``,
        ``PLUGHOST_SIGNATURE_ALLOWLIST`` (comma-separated), ``PLUGHOST_AUTO_MIGRATE`` (0/1),
        ``PLUGHOST_WATCH`` (0/1), ``PLUGHOST_RELOAD_DEBOUNCE`` (seconds).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"PLUGHOST_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _from_env_text(f.name, raw)
        home = Path(values.get("home") or default_home()).expanduser()
        settings_file = env.get("PLUGHOST_SETTINGS")
        if settings_file:
            return cls.from_file(settings_file, **values)
        if (home / SETTINGS_FILE).is_file():
            return cls.from_file(home / SETTINGS_FILE, **{"home": home, **values})
        return cls.from_mapping({"home": home, **values}, source="environment")


def _plugin_table(table: Any, *, source: str) -> dict[str, Any]:
    """The settings an Arcade-compatible ``[plugin]`` table sets (``max_plugin_size`` there
    counts megabytes: ``100`` is 100 MiB). Keys it does not know are refused by name."""
    if not isinstance(table, dict):
        raise ConfigurationError(f"{source}: [plugin] must be a table of settings")
    unknown = sorted(set(table) - set(PLUGIN_TABLE_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown key(s) in [plugin]: {', '.join(unknown)}; valid keys are "
            + ", ".join(sorted(PLUGIN_TABLE_KEYS)))
    out = {PLUGIN_TABLE_KEYS[k]: v for k, v in table.items()}
    size = out.get("max_plugin_size")
    if isinstance(size, int) and not isinstance(size, bool):
        out["max_plugin_size"] = size * 1024 * 1024
    return out


def _from_env_text(name: str, raw: str) -> Any:
    if name == "keep_versions":
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(
                f"PLUGHOST_KEEP_VERSIONS: expected a whole number, got {raw!r}"
            ) from None
    if name in ("auto_migrate", "watch", "enable_market", "auto_check_update"):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(
            f"PLUGHOST_{name.upper()}: expected 0/1/true/false, got {raw!r}")
    if name in ("update_check_interval", "load_timeout"):
        try:
            return int(raw) if name == "update_check_interval" else float(raw)
        except ValueError:
            raise ConfigurationError(
                f"PLUGHOST_{name.upper()}: expected a number of seconds, got {raw!r}") from None
    if name == "reload_debounce":
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(
                f"PLUGHOST_RELOAD_DEBOUNCE: expected seconds, got {raw!r}") from None
    if name == "max_plugin_size":
        return raw.strip() if not raw.strip().isdigit() else int(raw)
    return raw
