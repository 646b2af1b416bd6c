"""The whole plughost exception tree.

Every error carries a stable ``code`` (a dotted string such as ``manifest.invalid``), the
``plugin_id`` when one is concerned, the ``phase`` in which it happened when known, a ``details``
mapping for machines, and a message that says what went wrong *and what to do*. The HTTP API
returns ``code`` and ``message`` as JSON; the CLI prints them and exits non-zero.

Errors subclass the builtin they resemble, so ``except PermissionError`` or
``except TimeoutError`` also catch plughost's versions.

::

    PlughostError
    ├── ConfigurationError (ValueError)            code: settings.invalid
    ├── ExtraNotInstalled (ImportError)            code: extra.missing
    ├── ManifestError (ValueError)                 code: manifest.invalid (.problems)
    ├── VersionError (ValueError)                  code: version.invalid / range.invalid
    ├── InvalidTransition (RuntimeError)           code: lifecycle.transition
    ├── PluginNotFound (LookupError)               code: plugin.not_found
    ├── ResolutionError                            code: resolve.*
    │   ├── ResolutionConflict                     code: resolve.conflict
    │   ├── DependencyMissing                      code: resolve.missing
    │   ├── DependencyCycle                        code: resolve.cycle
    │   ├── HostVersionMismatch                    code: resolve.host
    │   └── DependentsExist                        code: resolve.dependents
    ├── PluginError                                code: plugin.*
    │   ├── PluginLoadError                        code: plugin.load      (import / entry failed)
    │   ├── PluginActivationError                  code: plugin.activate
    │   ├── PluginTimeout (TimeoutError)           code: plugin.timeout
    │   ├── PluginCrashed                          code: plugin.crashed
    │   └── PluginUnavailable                      code: plugin.unavailable
    ├── PermissionDenied (PermissionError)         code: permission.denied
    ├── OperationRefused                           code: operation.refused
    ├── ReloadError                                code: reload.* (failed identity
    │                                                breaks_dependents health busy no_build)
    ├── ProtocolError (PluginError)                code: protocol.* (frame/json/handshake/version
    │                                                /abi/size)
    ├── ArchiveError (ValueError)                  code: archive.* (one code per refusal:
    │                                                path link special duplicate case_collision
    │                                                too_many_entries too_large ratio encrypted
    │                                                nested prefix_data trailing_data overlap
    │                                                header_mismatch integrity unsupported
    │                                                corrupt destination missing
    │                                                unreadable)
    ├── PackageError (ValueError)                  code: package.* (symlink special reserved
    │                                                manifest integrity output path
    │                                                signature source invalid)
    ├── SignatureError                             code: signature.* (missing invalid
    │   │                                            untrusted_key revoked_key mismatch)
    │   └── ChecksumMismatch                       code: integrity.checksum
    ├── SigningKeyError                            code: key.* (invalid exists)
    ├── TrustStoreError                            code: trust.* (unknown_key duplicate
    │                                                name name_taken revoked corrupt)
    ├── ScopeError (ValueError)                    code: permission.scope (.problems)
    ├── ConfigError                                code: config.*
    │   ├── ConfigInvalid (ValueError)             code: config.invalid (.problems)
    │   ├── ConfigRejected                         code: config.rejected
    │   ├── ConfigVersionNotFound (LookupError)    code: config.version
    │   └── ConfigConflict                         code: config.conflict
    ├── KeyValueError                              code: storage.kv
    ├── HttpServiceError                           code: http.* (request url too_large
    │                                                ratio encoding corrupt)
    ├── StorageError                               code: storage.*
    │   ├── DatabaseUnavailable                    code: storage.database_unavailable
    │   ├── MigrationError                         code: storage.migration
    │   ├── RecordExists                           code: storage.exists
    │   ├── RecordNotFound (LookupError)           code: storage.not_found
    │   ├── ConcurrentModification                 code: storage.conflict
    │   ├── ChangesPruned                          code: storage.changes_pruned
    │   ├── LockTimeout (TimeoutError)             code: storage.lock_timeout
    │   ├── InvalidRecord (ValueError)             code: storage.invalid
    │   ├── InvalidObjectKey (ValueError)          code: storage.key_invalid
    │   ├── ObjectNotFound (LookupError)           code: storage.object_missing
    │   ├── ObjectCorrupted                        code: storage.object_corrupted
    │   ├── ObjectTooLarge                         code: storage.object_too_large
    │   └── ObjectStoreUnavailable                 code: storage.object_store_unavailable
    ├── InstallError                               code: install.* (exists too_large
    │   │                                         source wrong_plugin same_version
    │   │                                         not_kept health state activate policy
    │   │                                         conflict inconsistent platform)
    │   └── DownloadError                          code: download.* (url scheme address
    │                                                redirect status too_large timeout
    │                                                failed)
    ├── InvalidExport (ValueError)                 code: export.invalid   (a bad decorator/Export)
    ├── HookError                                  code: hook.*
    │   ├── HookSpecError (ValueError)             code: hook.spec        (bad or duplicate spec)
    │   ├── HookNotFound (LookupError)             code: hook.not_found
    │   ├── HookSignatureError (TypeError)         code: hook.signature   (impl does not fit spec)
    │   ├── HookOrderCycle                         code: hook.cycle       (before/after loop)
    │   └── HookCallError (TypeError)              code: hook.call        (bad args, async-only)
    ├── EventError                                 code: event.*
    │   ├── TopicError (ValueError)                code: event.topic
    │   └── EventQueueFull                         code: event.queue_full
    ├── CommandError                               code: command.failed (or the plugin's own code)
    │   ├── CommandNotFound (LookupError)          code: command.not_found
    │   └── CommandArgumentsError (TypeError)      code: command.arguments
    ├── CommandConflict                            code: command.exists
    ├── ChannelError                               code: channel.*
    │   ├── ChannelNotFound (LookupError)          code: channel.not_found
    │   └── ChannelClosed                          code: channel.closed
    ├── InstallError                               code: install.* (exists too_large
    │                                              source wrong_plugin same_version
    │                                              not_kept health state dependent policy
    │                                              conflict inconsistent files_missing
    │                                              platform)
    │   └── DownloadError                          code: download.* (url scheme address
    │                                                redirect status too_large timeout
    │                                                failed)
    └── MarketError                                code: market.* (rollback expired
                                                     signature mix_and_match tampered
                                                     invalid unreachable not_found source
                                                     repository incompatible yanked
                                                     disabled rating unsigned)

    (management API, plughost.interfaces.http; also under PlughostError)
    ├── RequestInvalid (ValueError)                code: request.invalid
    ├── RequestTooLarge                            code: request.too_large
    │   (answers without an exception class: request.not_found, request.method,
    │    request.error — an unknown route, a method it does not take, another HTTP error)
    ├── AuthenticationRequired                     code: auth.required / auth.invalid
    └── AccessDenied (PermissionError)             code: auth.forbidden

Later layers add their own subtrees here (archive, signature, storage, protocol, ...), each with
its codes listed above.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "ArchiveError",
    "AuthenticationRequired",
    "ChangesPruned",
    "ChannelClosed",
    "ChannelError",
    "ChannelNotFound",
    "ChecksumMismatch",
    "CommandArgumentsError",
    "CommandConflict",
    "CommandError",
    "CommandNotFound",
    "ConcurrentModification",
    "ConfigConflict",
    "ConfigError",
    "ConfigInvalid",
    "ConfigRejected",
    "ConfigVersionNotFound",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DependencyCycle",
    "DependencyMissing",
    "DependentsExist",
    "DownloadError",
    "EventError",
    "EventQueueFull",
    "ExtraNotInstalled",
    "HookCallError",
    "HookError",
    "HookNotFound",
    "HookOrderCycle",
    "HookSignatureError",
    "HookSpecError",
    "HostVersionMismatch",
    "HttpServiceError",
    "InstallError",
    "InvalidExport",
    "InvalidObjectKey",
    "InvalidRecord",
    "InvalidTransition",
    "KeyValueError",
    "LockTimeout",
    "ManifestError",
    "MarketError",
    "MigrationError",
    "ObjectCorrupted",
    "ObjectNotFound",
    "ObjectStoreUnavailable",
    "ObjectTooLarge",
    "OperationRefused",
    "PackageError",
    "PermissionDenied",
    "PlughostError",
    "PluginActivationError",
    "PluginCrashed",
    "PluginError",
    "PluginLoadError",
    "PluginNotFound",
    "PluginTimeout",
    "PluginUnavailable",
    "Problem",
    "ProtocolError",
    "RecordExists",
    "RecordNotFound",
    "ReloadError",
    "RequestInvalid",
    "RequestTooLarge",
    "ResolutionConflict",
    "ResolutionError",
    "ScopeError",
    "SignatureError",
    "SigningKeyError",
    "StorageError",
    "TopicError",
    "TrustStoreError",
    "VersionError",
    "error_context",
    "extra_hint",
    "missing_extras",
]


class PlughostError(Exception):
    """Root of every error plughost raises on purpose.

    :param message: what went wrong and what to do about it.
    :param code: stable machine-readable code; defaults to the class's ``default_code``.
    :param plugin_id: the plugin concerned, if any.
    :param phase: where it happened (``discover``, ``manifest``, ``resolve``, ``import``,
        ``activate``, ``install``, ...), if known.
    :param details: extra JSON-serialisable facts for machines.
    """

    default_code: ClassVar[str] = "plughost.error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        plugin_id: str | None = None,
        phase: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.plugin_id = plugin_id
        self.phase = phase
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        prefix = f"[{self.plugin_id}] " if self.plugin_id else ""
        return f"{prefix}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by the HTTP API and ``--json`` CLI output."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.plugin_id:
            out["plugin_id"] = self.plugin_id
        if self.phase:
            out["phase"] = self.phase
        if self.details:
            out["details"] = self.details
        return out


@contextlib.contextmanager
def error_context(*, plugin_id: str | None = None, phase: str | None = None) -> Iterator[None]:
    """Attach ``plugin_id`` / ``phase`` to any :class:`PlughostError` raised inside, once.

    Values already set by the raiser win: the innermost context knows best.
    """
    try:
        yield
    except PlughostError as exc:
        if exc.plugin_id is None and plugin_id is not None:
            exc.plugin_id = plugin_id
        if exc.phase is None and phase is not None:
            exc.phase = phase
        raise


class ConfigurationError(PlughostError, ValueError):
    """Host settings are invalid (bad URL, unknown option, unreadable file)."""

    default_code = "settings.invalid"


class ExtraNotInstalled(PlughostError, ImportError):
    """An optional backend was used without its extra installed."""

    default_code = "extra.missing"

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the {module!r} package, which is not installed. "
            f"Install it with: pip install 'plughost[{extra}]'",
            details={"extra": extra, "module": module},
        )
        self.extra = extra

    @property
    def hint(self) -> str:
        """The exact command to run (the error resource's ``hint``)."""
        return extra_hint(self.extra)


def extra_hint(*extras: str) -> str:
    """What to run when something (a plugin's runtime, a command) needs an extra that is not
    installed: the exact ``pip install`` command (one or more extras), then a new start."""
    names = ",".join(dict.fromkeys(extras))
    return f"run `pip install 'plughost[{names}]'`, then start plughost again"


def missing_extras(error: BaseException) -> tuple[str, ...]:
    """The extras whose absence caused ``error``: an :class:`ExtraNotInstalled`'s own, or the
    ones a plugin with no runnable build lists in ``details["extras"]``."""
    if isinstance(error, ExtraNotInstalled):
        return (error.extra,)
    details = getattr(error, "details", None) or {}
    return tuple(str(e) for e in details.get("extras") or ())


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: where (a dotted/JSON path), a stable code, and a message."""

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message} [{self.code}]"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class ManifestError(PlughostError, ValueError):
    """A manifest is invalid. ``problems`` lists *every* problem found, not just the first."""

    default_code = "manifest.invalid"

    def __init__(
        self,
        problems: list[Problem],
        *,
        source: str | None = None,
        plugin_id: str | None = None,
    ) -> None:
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{len(problems)} problem(s){where}:\n{lines}\n"
            "Fix the manifest and run `plughost check` again.",
            plugin_id=plugin_id,
            phase="manifest",
            details={"problems": [p.to_dict() for p in problems], "source": source},
        )
        self.problems = problems
        self.source = source


class VersionError(PlughostError, ValueError):
    """A version or version range string could not be parsed."""

    default_code = "version.invalid"


class InvalidTransition(PlughostError, RuntimeError):
    """A lifecycle change that the transition table does not allow."""

    default_code = "lifecycle.transition"


class PluginNotFound(PlughostError, LookupError):
    """No plugin with that id is known to the host."""

    default_code = "plugin.not_found"


class ResolutionError(PlughostError):
    """Dependencies could not be resolved."""

    default_code = "resolve.error"


class ResolutionConflict(ResolutionError):
    """No set of versions satisfies every range; the message carries the chain."""

    default_code = "resolve.conflict"


class DependencyMissing(ResolutionError):
    """A required dependency is not available at all."""

    default_code = "resolve.missing"


class DependencyCycle(ResolutionError):
    """Plugins depend on each other in a cycle; ``details['cycle']`` is the full path."""

    default_code = "resolve.cycle"


class HostVersionMismatch(ResolutionError):
    """A plugin does not support this plughost version."""

    default_code = "resolve.host"


class DependentsExist(ResolutionError):
    """Refused: other enabled plugins depend on the target; ``details['dependents']`` names them."""

    default_code = "resolve.dependents"


class PluginError(PlughostError):
    """A plugin failed while the host was driving it."""

    default_code = "plugin.error"


class PluginLoadError(PluginError):
    """The plugin's code could not be imported or its entry point was not found."""

    default_code = "plugin.load"


class PluginActivationError(PluginError):
    """The plugin's ``activate`` raised or returned an error."""

    default_code = "plugin.activate"


class PluginTimeout(PluginError, TimeoutError):
    """A call into a plugin did not finish within its deadline."""

    default_code = "plugin.timeout"


class PluginCrashed(PluginError):
    """The plugin's process or sandbox died; every in-flight call gets this."""

    default_code = "plugin.crashed"


class PluginUnavailable(PluginError):
    """The plugin cannot be used right now (disabled, failed, quarantined, not active)."""

    default_code = "plugin.unavailable"


class PermissionDenied(PlughostError, PermissionError):
    """A plugin asked for something it has not been granted."""

    default_code = "permission.denied"


class OperationRefused(PlughostError):
    """An operation was refused before it changed anything (e.g. already installed)."""

    default_code = "operation.refused"


def _problem_lines(problems: list[Problem]) -> str:
    return "\n".join(f"  - {p}" for p in problems)


class ScopeError(PlughostError, ValueError):
    """One or more permission scope strings are malformed; ``problems`` lists every one."""

    default_code = "permission.scope"

    def __init__(self, problems: list[Problem], *, plugin_id: str | None = None) -> None:
        super().__init__(
            f"{len(problems)} invalid permission scope(s):\n{_problem_lines(problems)}\n"
            "Scopes look like fs:read:/abs/dir, net:api.example.com:443, storage:NAME, "
            "events:emit:TOPIC, commands:execute:ID, process:spawn, env:NAME "
            "(prefix with ! for a deny rule).",
            plugin_id=plugin_id,
            details={"problems": [p.to_dict() for p in problems]},
        )
        self.problems = problems


class ConfigError(PlughostError):
    """A plugin configuration operation failed."""

    default_code = "config.error"


class ConfigInvalid(ConfigError, ValueError):
    """A configuration does not satisfy the plugin's schema; ``problems`` lists every error.

    Messages never contain secret values: they are redacted before the error is built.
    """

    default_code = "config.invalid"

    def __init__(
        self, problems: list[Problem], *, plugin_id: str | None = None, what: str = "config",
        advice: str = "Nothing was changed. Fix the values and try again.",
    ) -> None:
        super().__init__(
            f"{len(problems)} problem(s) in the {what}:\n{_problem_lines(problems)}\n{advice}",
            plugin_id=plugin_id,
            details={"problems": [p.to_dict() for p in problems]},
        )
        self.problems = problems
        self.what = what
        """What was checked: ``"config schema"`` for a broken schema (the plugin's fault), else
        a configuration (the operator's to fix)."""


class ConfigRejected(ConfigError):
    """The plugin refused a configuration change; the change was rolled back."""

    default_code = "config.rejected"


class ConfigVersionNotFound(ConfigError, LookupError):
    """``restore`` named a configuration version that is not in the history."""

    default_code = "config.version"


class ConfigConflict(ConfigError):
    """Someone else changed the configuration first; reload and retry."""

    default_code = "config.conflict"


class KeyValueError(PlughostError):
    """A plugin key-value storage operation was invalid (bad key, unserialisable value, ...)."""

    default_code = "storage.kv"


class HttpServiceError(PlughostError):
    """An HTTP request made through ``ctx.http`` failed (``http.request``, after its retries),
    or its URL (``http.url``) or its response was refused: over ``max_response_size``
    (``http.too_large``), a compression bomb (``http.ratio``), an unsupported or corrupt
    ``Content-Encoding`` (``http.encoding``, ``http.corrupt``)."""

    default_code = "http.request"

class ArchiveError(PlughostError, ValueError):
    """An archive was refused. ``code`` names the precise reason (``archive.path``,
    ``archive.link``, ``archive.ratio``, ...); ``details['entry']`` names the entry when one is
    concerned. Archives are refused, never silently "sanitised"."""

    default_code = "archive.corrupt"


class PackageError(PlughostError, ValueError):
    """A plugin package (or the folder being packed) does not follow the package format."""

    default_code = "package.invalid"


class SignatureError(PlughostError):
    """A package signature is missing, invalid, untrusted, revoked or made for another package."""

    default_code = "signature.invalid"


class ChecksumMismatch(SignatureError):
    """The package's SHA-256 differs from the one the caller expected."""

    default_code = "integrity.checksum"


class SigningKeyError(PlughostError, ValueError):
    """A signing or public key file is unusable (wrong type, unreadable, would be overwritten)."""

    default_code = "key.invalid"


class TrustStoreError(PlughostError):
    """The trust store of publisher keys refused a change or could not be read."""

    default_code = "trust.error"


# --- storage (plughost.storage) -------------------------------------------------------------


class StorageError(PlughostError):
    """The database or the object store failed or refused an operation."""

    default_code = "storage.error"


class DatabaseUnavailable(StorageError):
    """The database could not be reached or opened (bad URL, server down, wrong credentials)."""

    default_code = "storage.database_unavailable"


class MigrationError(StorageError):
    """Applying or reading schema migrations failed (unknown revision, schema newer than code)."""

    default_code = "storage.migration"


class RecordExists(StorageError):
    """A row with the same identity already exists (plugin id, plugin version, token name, ...)."""

    default_code = "storage.exists"


class RecordNotFound(StorageError, LookupError):
    """A row the operation needs does not exist (version, token, operation, request, key)."""

    default_code = "storage.not_found"


class ConcurrentModification(StorageError):
    """Someone else changed the row since it was read (optimistic concurrency check failed)."""

    default_code = "storage.conflict"


class ChangesPruned(StorageError):
    """The change log no longer holds the changes after the requested sequence number."""

    default_code = "storage.changes_pruned"


class LockTimeout(StorageError, TimeoutError):
    """Another operation held the plugin's lock for longer than the caller was willing to wait."""

    default_code = "storage.lock_timeout"


class InvalidObjectKey(StorageError, ValueError):
    """An object-store key is malformed (absolute, ``..``, empty segment, backslash, too long)."""

    default_code = "storage.key_invalid"


class ObjectNotFound(StorageError, LookupError):
    """No object is stored under that key."""

    default_code = "storage.object_missing"


class ObjectCorrupted(StorageError):
    """A stored object's bytes do not match its recorded SHA-256 (or the caller's expected one)."""

    default_code = "storage.object_corrupted"


class ObjectTooLarge(StorageError):
    """An object is larger than the size limit given for the write."""

    default_code = "storage.object_too_large"


class ObjectStoreUnavailable(StorageError):
    """The object store could not be reached (S3 endpoint down, bucket missing, access denied)."""

    default_code = "storage.object_store_unavailable"


class InvalidRecord(StorageError, ValueError):
    """A value given to the repository is not acceptable (unknown state or status, bad range)."""

    default_code = "storage.invalid"


# --- install pipeline (plughost.services.installer) ------------------------------------------


class ReloadError(PlughostError):
    """A hot reload was refused or failed; the version that was serving keeps serving."""

    default_code = "reload.failed"


class InstallError(PlughostError):
    """An install, update, rollback or uninstall was refused or failed (nothing was changed)."""

    default_code = "install.failed"


class DownloadError(InstallError):
    """Fetching a package from a URL was refused or failed (address, redirect, size, time)."""

    default_code = "download.failed"


class MarketError(PlughostError):
    """A marketplace repository, its metadata or a request to it was refused or failed.

    The metadata checks of The Update Framework each have their own code: ``market.rollback``
    (a version older than one already trusted), ``market.expired`` (a frozen or stale
    repository), ``market.signature`` (too few valid signatures for a role's threshold),
    ``market.mix_and_match`` (metadata files that do not belong to one repository state),
    ``market.tampered`` (a file whose length or hash differs from the signed metadata).
    Nothing local changes when one of them is raised.
    """

    default_code = "market.error"


# --- management API (plughost.interfaces.http) ----------------------------------------------


class RequestInvalid(PlughostError, ValueError):
    """An API request is malformed: a missing field, a bad value, an unknown option."""

    default_code = "request.invalid"


class RequestTooLarge(PlughostError):
    """An API request body (e.g. an uploaded package) is larger than the configured limit."""

    default_code = "request.too_large"


class AuthenticationRequired(PlughostError):
    """The API needs a valid bearer token (``auth.required``) or the one given is not valid
    (``auth.invalid``: unknown, revoked or expired)."""

    default_code = "auth.required"


class AccessDenied(PlughostError, PermissionError):
    """The caller's API token has a role that may not do this (``auth.forbidden``)."""

    default_code = "auth.forbidden"
class InvalidExport(PlughostError, ValueError):
    """A decorator or an :class:`~plughost.runtimes.base.Export` is malformed (bad name, option)."""

    default_code = "export.invalid"


class HookError(PlughostError):
    """Something is wrong with an extension point, its spec or one of its implementations."""

    default_code = "hook.error"


class HookSpecError(HookError, ValueError):
    """An extension point spec is malformed or declared twice."""

    default_code = "hook.spec"


class HookNotFound(HookError, LookupError):
    """No extension point with that name has been declared."""

    default_code = "hook.not_found"


class HookSignatureError(HookError, TypeError):
    """An implementation's parameters do not fit its extension point's spec."""

    default_code = "hook.signature"


class HookOrderCycle(HookError):
    """``before``/``after`` constraints between plugins form a loop; ``details['cycle']``."""

    default_code = "hook.cycle"


class HookCallError(HookError, TypeError):
    """An extension point was called wrongly (missing/unknown arguments, sync call of async)."""

    default_code = "hook.call"


class EventError(PlughostError):
    """An event could not be published or delivered."""

    default_code = "event.error"


class TopicError(EventError, ValueError):
    """A topic or topic pattern is malformed."""

    default_code = "event.topic"


class EventQueueFull(EventError):
    """A ``block`` subscriber's queue is full and the emitter cannot wait (sync ``emit``)."""

    default_code = "event.queue_full"


class CommandError(PlughostError):
    """A command failed. ``code`` may be the plugin's own (``hello.bad_name``); ``details`` too.

    This is the error half of the ``PluginResponse`` shape: ``code``, ``message``, ``details``.
    """

    default_code = "command.failed"


class CommandNotFound(CommandError, LookupError):
    """No command with that name is registered (and no lazy plugin declares it)."""

    default_code = "command.not_found"


class CommandArgumentsError(CommandError, TypeError):
    """The arguments given do not fit the command's parameters."""

    default_code = "command.arguments"


class CommandConflict(PlughostError):
    """A command with that name is already registered by another owner."""

    default_code = "command.exists"


class ChannelError(PlughostError):
    """A channel could not be opened or used."""

    default_code = "channel.error"


class ChannelNotFound(ChannelError, LookupError):
    """No channel handler with that name is registered."""

    default_code = "channel.not_found"


class ChannelClosed(ChannelError):
    """The channel is closed (by either side, or because its plugin was deactivated)."""

    default_code = "channel.closed"


class ProtocolError(PluginError):
    """An out-of-process plugin broke the wire protocol; the session is ended.

    Codes: ``protocol.frame`` (bad or oversized frame header), ``protocol.json`` (a body that is
    not JSON-RPC 2.0), ``protocol.handshake`` (wrong first message, token or plugin id),
    ``protocol.version`` (the plugin speaks another protocol version; the message names both).
    """

    default_code = "protocol.error"
