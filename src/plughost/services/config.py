"""Plugin configuration: validate, substitute, redact, version, notify, roll back.

Why here (``services``): a change touches three things at once — the store
(:mod:`plughost.storage`), the plugin (its ``on_config_change`` listener) and the audit
trail — which is orchestration.

A plugin's **effective config** is ``schema defaults ← manifest config.defaults ← operator
settings`` (deep-merged, right wins), where operator settings have ``${VAR}`` /
``${VAR:-default}`` replaced from the environment. It must validate against the plugin's JSON
Schema (draft 2020-12); every error is reported with its JSON path. The rule itself (merging
and validation) is :mod:`plughost.core.configschema`, which an embedded host and the plugin
author's test host apply too; ``jsonschema`` only checks a schema against the meta-schema.

Properties marked ``"x-secret": true`` or ``"writeOnly": true`` are shown as ``"***"`` in every
output: :meth:`ConfigManager.get` (unless ``redact=False``), :meth:`ConfigManager.history`,
``repr`` of a :class:`ConfigView`, error messages and logs. The plugin itself receives the real
values.

Every accepted change (``set``, ``replace``, ``reset``, ``restore``, a settings-file edit) appends
a new version to the store. Listeners (``on_config_change(old, new)``, sync or async) run *before*
the change is committed; if one raises, the listeners that already accepted it are called again
with ``(new, old)``, nothing is stored, and the caller gets :class:`ConfigRejected` carrying the
plugin's error.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from plughost.core.configschema import (
    REDACTED,
    deep_merge,
    redact,
    schema_defaults,
    scrub,
    secret_paths,
    secret_strings,
    validate_config,
)
from plughost.core.configschema import json_path as _json_path
from plughost.core.schemarefs import schema_reference_problems
from plughost.errors import (
    ConfigInvalid,
    ConfigRejected,
    ConfigVersionNotFound,
    ExtraNotInstalled,
    OperationRefused,
    PluginNotFound,
    Problem,
)
from plughost.storage.config_store import ConfigRecord, ConfigStore, SQLiteConfigStore

__all__ = [
    "REDACTED",
    "ConfigListener",
    "ConfigManager",
    "ConfigView",
    "deep_merge",
    "merge_patch",
    "redact",
    "schema_defaults",
    "secret_paths",
    "substitute_env",
    "validate_config",
]

logger = logging.getLogger(__name__)


#: ``listener(old, new)``; may be a coroutine function. Raising refuses the change.
ConfigListener = Callable[[Mapping[str, Any], Mapping[str, Any]], "Awaitable[None] | None"]

_VAR_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


# --------------------------------------------------------------------------- pure helpers


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON Merge Patch: like :func:`deep_merge`, but ``None`` removes a key."""
    out = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping):
            current = out.get(key)
            out[key] = merge_patch(current if isinstance(current, Mapping) else {}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _subschema(schema: Mapping[str, Any] | None, path: tuple[str, ...]) -> Mapping[str, Any]:
    node: Any = schema or {}
    for part in path:
        node = (node.get("properties") or {}).get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            return {}
    return dict(node)


def substitute_env(
    value: Any,
    environ: Mapping[str, str],
    *,
    schema: Mapping[str, Any] | None = None,
    path: tuple[str, ...] = (),
    problems: list[Problem] | None = None,
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``.

    A string that is exactly one placeholder takes the schema's type at that path (``"${PORT}"``
    becomes ``8080`` for an ``integer`` property). Unset variables without a default are
    appended to ``problems`` (or raise :class:`ConfigInvalid` when ``problems`` is ``None``).
    """
    own = problems is None
    found: list[Problem] = [] if problems is None else problems
    if isinstance(value, Mapping):
        out: Any = {
            k: substitute_env(v, environ, schema=schema, path=(*path, str(k)), problems=found)
            for k, v in value.items()
        }
    elif isinstance(value, list):
        out = [
            substitute_env(v, environ, schema=schema, path=(*path, str(i)), problems=found)
            for i, v in enumerate(value)
        ]
    elif isinstance(value, str) and "$" in value:

        def repl(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            found.append(
                Problem(
                    _json_path(path),
                    "config.env",
                    f"environment variable {name} is not set; set it or write ${{{name}:-default}}",
                )
            )
            return ""

        out = _VAR_RE.sub(repl, value)
        whole = _VAR_RE.fullmatch(value)
        if whole and whole.group(0) != "$$":
            out = _coerce(out, _subschema(schema, path).get("type"))
    else:
        out = value
    if own and found:
        raise ConfigInvalid(found, what="operator settings")
    return out


def _coerce(text: str, type_: Any) -> Any:
    types = type_ if isinstance(type_, list) else [type_]
    if "string" in types or not ({"integer", "number", "boolean"} & set(types)):
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, int | float | bool) else text


# Formats whose checkers are pure functions of the value (no DNS, no network, no files), for the
# meta-schema check of a plugin's schema. An explicit list, so a checker some other library
# registers globally is never run.
_PURE_FORMATS: Final = (
    "date", "date-time", "duration", "email", "hostname", "idn-email", "idn-hostname", "ipv4",
    "ipv6", "iri", "iri-reference", "json-pointer", "regex", "relative-json-pointer", "time",
    "uri", "uri-reference", "uri-template", "uuid",
)


def _jsonschema() -> Any:
    try:
        import jsonschema
        import referencing
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ExtraNotInstalled("Plugin config validation", "config", "jsonschema") from exc
    return jsonschema, referencing


def _retrieve_nothing(uri: str) -> Any:
    """The registry's retrieve function: a schema never reads a file or fetches a URL."""
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs class, untyped init


def _validator(schema: Mapping[str, Any]) -> Any:
    """A draft 2020-12 validator whose references resolve only inside ``schema``.

    The registry knows the bundled meta-schemas and ``schema`` itself; anything else reaches
    :func:`_retrieve_nothing` and is unresolvable (never fetched, never read from disk).
    """
    jsonschema, referencing = _jsonschema()
    registry = referencing.Registry(retrieve=_retrieve_nothing)
    checker = jsonschema.FormatChecker(
        formats=[f for f in _PURE_FORMATS if f in jsonschema.FormatChecker.checkers]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=checker)


def check_schema(schema: Mapping[str, Any] | None, *, plugin_id: str | None = None) -> None:
    """Raise :class:`ConfigInvalid` if ``schema`` is not a valid draft 2020-12 JSON Schema
    that refers only to itself (see :mod:`plughost.core.schemarefs`)."""
    if schema is None:
        return
    # The reference rule first: it also bounds the nesting the meta-schema check recurses into.
    problems = [
        Problem(_json_path(list(where)), "config.schema", message)
        for where, message in schema_reference_problems(schema)
    ]
    if not problems:
        jsonschema, _ = _jsonschema()
        meta = _validator(jsonschema.Draft202012Validator.META_SCHEMA)
        problems = [
            Problem(_json_path(list(err.absolute_path)), "config.schema", err.message)
            for err in meta.iter_errors(schema)
        ]
    if problems:
        raise ConfigInvalid(problems, plugin_id=plugin_id, what="config schema")


async def _call(listener: ConfigListener, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    result = listener(old, new)
    if inspect.isawaitable(result):
        await result


# --------------------------------------------------------------------------- manager


@dataclass(slots=True)
class _Entry:
    schema: dict[str, Any] | None
    defaults: dict[str, Any]
    settings: dict[str, Any]
    effective: dict[str, Any]
    version: int
    listeners: list[ConfigListener] = field(default_factory=list)
    lock: asyncio.Lock | None = None
    problems: list[Problem] = field(default_factory=list)


class ConfigView(Mapping[str, Any]):
    """A live, read-only view of one plugin's effective config (``ctx.config``).

    Reading it always shows the current version; ``repr`` redacts secrets.
    """

    __slots__ = ("_manager", "_plugin_id")

    def __init__(self, manager: ConfigManager, plugin_id: str) -> None:
        self._manager = manager
        self._plugin_id = plugin_id

    def _data(self) -> dict[str, Any]:
        return self._manager._entry(self._plugin_id).effective

    def __getitem__(self, key: str) -> Any:
        return copy.deepcopy(self._data()[key])

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    @property
    def version(self) -> int:
        """The config version the view currently shows (0 = defaults only)."""
        return self._manager._entry(self._plugin_id).version

    def __repr__(self) -> str:
        entry = self._manager._entry(self._plugin_id)
        shown = redact(entry.effective, entry.schema)
        return f"ConfigView({self._plugin_id!r}, v{entry.version}, {shown!r})"


class ConfigManager:
    """Every plugin's configuration: register, read, change, history, restore, listen.

    :param store: where history lives (SQLite by default, or Redis).
    :param environ: the environment used for ``${VAR}`` substitution.
    :param clock: epoch-seconds clock for history records.
    """

    def __init__(
        self,
        store: ConfigStore | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store: ConfigStore = store if store is not None else SQLiteConfigStore()
        self._environ = environ if environ is not None else os.environ
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    @classmethod
    def open(cls, home: str | Path, **kwargs: Any) -> ConfigManager:
        """A manager on the default SQLite store under a plughost home (``<home>/config.db``)."""
        return cls(SQLiteConfigStore(Path(home) / "config.db"), **kwargs)

    # ---- registration and reads

    def register(
        self,
        plugin_id: str,
        schema: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        *,
        strict: bool = True,
    ) -> ConfigView:
        """Make a plugin's config known (from its manifest); returns its live view.

        An invalid schema raises :class:`ConfigInvalid` and registers nothing. Otherwise the
        schema is recorded in the store (so the CLI can configure the plugin) and the current
        config is validated: with ``strict`` (the host, before activation) a problem — say a
        required ``webhook_url`` nobody set yet — raises :class:`ConfigInvalid`; without it (the
        CLI) the plugin is registered anyway so the operator can fix it, and :meth:`problems`
        lists what is wrong.
        """
        schema = copy.deepcopy(dict(schema)) if schema is not None else None
        defaults = copy.deepcopy(dict(defaults or {}))
        check_schema(schema, plugin_id=plugin_id)
        self.store.save_schema(plugin_id, schema, defaults)
        latest = self.store.latest(plugin_id)
        settings = dict(latest.settings) if latest else {}
        problems: list[Problem] = []
        try:
            effective = self._effective(plugin_id, schema, defaults, settings)
        except ConfigInvalid as exc:
            problems = exc.problems
            if strict:
                raise ConfigInvalid(
                    problems, plugin_id=plugin_id, what=f"current config of {plugin_id}",
                    advice=f"Set the missing or wrong values with `plughost config set "
                    f"{plugin_id} KEY=VALUE` (or in the settings file), then enable the plugin "
                    "again.",
                ) from None
            effective = deep_merge(deep_merge(schema_defaults(schema), defaults), settings)
        old = self._entries.get(plugin_id)
        self._entries[plugin_id] = _Entry(
            schema,
            defaults,
            settings,
            effective,
            latest.version if latest else 0,
            old.listeners if old else [],
            problems=problems,
        )
        return ConfigView(self, plugin_id)

    def problems(self, plugin_id: str) -> list[Problem]:
        """What is wrong with the current config (empty when it is valid)."""
        return list(self._entry(plugin_id).problems)

    def _entry(self, plugin_id: str) -> _Entry:
        entry = self._entries.get(plugin_id)
        if entry is None:
            saved = self.store.load_schema(plugin_id)
            if saved is None:
                raise PluginNotFound(
                    f"no configuration is known for {plugin_id!r}: install the plugin or start "
                    "the host once so its config schema is recorded",
                    plugin_id=plugin_id,
                )
            self.register(plugin_id, *saved, strict=False)
            entry = self._entries[plugin_id]
        return entry

    def plugins(self) -> list[str]:
        """Plugins with a registered or stored configuration."""
        return sorted(set(self._entries) | set(self.store.plugins()))

    def loaded(self, plugin_id: str) -> bool:
        """Whether ``plugin_id``'s config is registered in memory (reading it costs no I/O)."""
        return plugin_id in self._entries

    def knows(self, plugin_id: str) -> bool:
        """Whether ``plugin_id`` is one of :meth:`plugins` (one lookup, not a listing)."""
        return plugin_id in self._entries or self.store.load_schema(plugin_id) is not None

    def view(self, plugin_id: str) -> ConfigView:
        """The live read-only view handed to the plugin as ``ctx.config``."""
        self._entry(plugin_id)
        return ConfigView(self, plugin_id)

    def get(self, plugin_id: str, *, redact: bool = True) -> dict[str, Any]:
        """The effective config; secrets shown as ``"***"`` unless ``redact=False``."""
        entry = self._entry(plugin_id)
        return _redact(entry.effective, entry.schema) if redact else copy.deepcopy(entry.effective)

    def settings(self, plugin_id: str, *, redact: bool = True) -> dict[str, Any]:
        """The operator settings only (raw, ``${VAR}`` unsubstituted)."""
        entry = self._entry(plugin_id)
        return _redact(entry.settings, entry.schema) if redact else copy.deepcopy(entry.settings)

    def schema(self, plugin_id: str) -> dict[str, Any] | None:
        """The registered JSON Schema."""
        return copy.deepcopy(self._entry(plugin_id).schema)

    def version(self, plugin_id: str) -> int:
        """The current version (0 = never changed: defaults only)."""
        return self._entry(plugin_id).version

    def history(self, plugin_id: str) -> list[ConfigRecord]:
        """Every accepted change, oldest first, with secrets redacted."""
        entry = self._entry(plugin_id)
        return [
            ConfigRecord(
                r.plugin_id,
                r.version,
                _redact(r.settings, entry.schema),
                r.action,
                r.actor,
                r.time,
                r.meta,
            )
            for r in self.store.history(plugin_id)
        ]

    def on_change(self, plugin_id: str, listener: ConfigListener) -> Callable[[], None]:
        """Call ``listener(old, new)`` before each change commits; returns the undo callable."""
        entry = self._entry(plugin_id)
        entry.listeners.append(listener)

        def undo() -> None:
            if listener in entry.listeners:
                entry.listeners.remove(listener)

        return undo

    # ---- changes

    async def set(
        self,
        plugin_id: str,
        values: Mapping[str, Any],
        *,
        actor: str = "operator",
        action: str = "set",
    ) -> ConfigRecord:
        """Merge ``values`` into the operator settings (RFC 7386: ``None`` removes a key)."""
        return await self._change(plugin_id, lambda base: merge_patch(base, values), action,
                                  actor)

    async def replace(
        self,
        plugin_id: str,
        settings: Mapping[str, Any],
        *,
        actor: str = "operator",
        action: str = "replace",
    ) -> ConfigRecord:
        """Replace the operator settings wholesale."""
        return await self._change(plugin_id, dict(settings), action, actor)

    async def reset(self, plugin_id: str, *, actor: str = "operator") -> ConfigRecord:
        """Back to defaults (empty operator settings), as a new version."""
        return await self._change(plugin_id, {}, "reset", actor)

    async def restore(
        self, plugin_id: str, version: int, *, actor: str = "operator"
    ) -> ConfigRecord:
        """Make the settings of an earlier version current again, as a new version."""
        record = self.store.get(plugin_id, version)
        if record is None:
            latest = self.version(plugin_id)
            raise ConfigVersionNotFound(
                f"{plugin_id} has no config version {version}; versions are 1..{latest}. "
                f"See them with: plughost config history {plugin_id}",
                plugin_id=plugin_id,
                details={"version": version, "latest": latest},
            )
        return await self._change(plugin_id, dict(record.settings), f"restore {version}", actor)

    def replace_now(
        self,
        plugin_id: str,
        settings: Mapping[str, Any],
        *,
        actor: str = "operator",
        action: str = "replace",
    ) -> ConfigRecord:
        """Replace the settings synchronously; only while nobody listens (before activation).

        Raises :class:`OperationRefused` when listeners are registered: a running plugin must be
        asked through the async :meth:`replace`.
        """
        entry = self._entry(plugin_id)
        if entry.listeners:
            raise OperationRefused(
                f"{plugin_id} is listening for config changes; use the async replace()",
                plugin_id=plugin_id,
            )
        settings = dict(settings)
        new = self._effective(plugin_id, entry.schema, entry.defaults, settings)
        record = ConfigRecord(plugin_id, entry.version + 1, settings, action, actor, self._clock())
        self.store.append(record)
        entry.settings, entry.effective, entry.version = settings, new, record.version
        entry.problems = []
        logger.info(
            "config of %s is now version %d (%s by %s)", plugin_id, record.version, action, actor
        )
        return ConfigRecord(
            plugin_id, record.version, _redact(settings, entry.schema), action, actor, record.time
        )

    async def refresh(self, plugin_id: str) -> bool:
        """Pick up a version another process appended to a shared store; ``True`` if changed.

        Listeners are told, but cannot refuse (the change is already committed elsewhere).
        """
        entry = self._entry(plugin_id)
        latest = await asyncio.to_thread(self.store.latest, plugin_id)  # I/O: off the loop
        if latest is None or latest.version == entry.version:
            return False
        try:
            new = self._effective(plugin_id, entry.schema, entry.defaults,
                                  dict(latest.settings))
        except ConfigInvalid as exc:
            # Stored but not (yet) valid, e.g. a required setting nobody gave: adopt it as the
            # base of the next change; the plugin keeps its last valid configuration.
            entry.settings, entry.version = dict(latest.settings), latest.version
            entry.problems = list(exc.problems)
            return True
        old = entry.effective
        entry.settings, entry.effective, entry.version = dict(latest.settings), new, latest.version
        for listener in list(entry.listeners):
            try:
                await _call(listener, old, new)
            except Exception:
                logger.exception("config listener of %s failed on refresh", plugin_id)
        return True

    async def follow(self) -> None:
        """Refresh plugins as other hosts change them (stores that publish changes, e.g. Redis).

        Runs until cancelled; start it as a task next to the host. Stores without change
        notifications make this return at once.
        """
        changes = getattr(self.store, "changes", None)
        if changes is None:
            return
        async for plugin_id in changes():
            if plugin_id in self._entries:
                try:
                    await self.refresh(plugin_id)
                except Exception:
                    logger.exception("could not refresh the config of %s", plugin_id)

    async def _change(
        self, plugin_id: str,
        change: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]],
        action: str, actor: str,
    ) -> ConfigRecord:
        entry = self._entry(plugin_id)
        if entry.lock is None:
            entry.lock = asyncio.Lock()
        async with entry.lock:
            # Start from the store's latest version: another process, another node of the
            # cluster or the installer's own transaction may have written one since this
            # manager last looked (not a conflict: the change applies to what is current).
            await self.refresh(plugin_id)
            settings = change(dict(entry.settings)) if callable(change) else change
            new = self._effective(plugin_id, entry.schema, entry.defaults, settings)
            old = entry.effective
            record = ConfigRecord(
                plugin_id, entry.version + 1, settings, action, actor, self._clock()
            )
            accepted: list[ConfigListener] = []
            for listener in list(entry.listeners):
                try:
                    await _call(listener, copy.deepcopy(old), copy.deepcopy(new))
                except Exception as exc:
                    await self._roll_back(plugin_id, accepted, new, old)
                    secrets = secret_strings(new, entry.schema) + secret_strings(
                        old, entry.schema
                    )
                    detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
                    raise ConfigRejected(
                        f"{plugin_id} refused the configuration change ({detail}); it was "
                        f"rolled back and version {entry.version} is still current",
                        plugin_id=plugin_id,
                        details={"error": detail},
                    ) from exc
                accepted.append(listener)
            try:
                self.store.append(record)
            except BaseException:
                await self._roll_back(plugin_id, accepted, new, old)
                raise
            entry.settings, entry.effective, entry.version = settings, new, record.version
            entry.problems = []
        logger.info(
            "config of %s is now version %d (%s by %s)", plugin_id, record.version, action, actor
        )
        return ConfigRecord(
            plugin_id, record.version, _redact(settings, entry.schema), action, actor, record.time
        )

    async def _roll_back(
        self,
        plugin_id: str,
        accepted: list[ConfigListener],
        new: Mapping[str, Any],
        old: Mapping[str, Any],
    ) -> None:
        for listener in reversed(accepted):
            try:
                await _call(listener, copy.deepcopy(new), copy.deepcopy(old))
            except Exception:
                logger.exception("config listener of %s failed while rolling back", plugin_id)

    def _effective(
        self,
        plugin_id: str,
        schema: dict[str, Any] | None,
        defaults: dict[str, Any],
        settings: Mapping[str, Any],
    ) -> dict[str, Any]:
        problems: list[Problem] = []
        resolved = substitute_env(settings, self._environ, schema=schema, problems=problems)
        effective = deep_merge(deep_merge(schema_defaults(schema), defaults), resolved)
        problems.extend(validate_config(effective, schema))
        if problems:
            raise ConfigInvalid(problems, plugin_id=plugin_id)
        return effective

    def close(self) -> None:
        """Close the store."""
        self.store.close()


def _redact(value: Mapping[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(redact(dict(value), schema))
