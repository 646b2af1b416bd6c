"""Permission scope grammar: parse scope strings and match targets against them.

A scope is ``[!]KIND:PATTERN``; ``!`` makes it a deny rule. Kinds and what their pattern means:

=====================  ==============================================================
``fs:read:<dir>``      read files at or below an absolute directory
``fs:write:<dir>``     create, change and remove files at or below a directory
``net:<host>[:<port>]``  connect to a host (``*.example.com``, ``*``, ``[::1]``); any port if none
``storage:<ns>``       use a key-value namespace (glob: ``shared-*``)
``events:emit:<t>``    publish events on a topic (``user.*`` one segment, ``user.#`` or
                       ``user.**`` any number, as the event bus matches)
``events:subscribe:<t>``  subscribe to a topic
``commands:execute:<id>``  call a command;   ``commands:register:<id>``: provide one
``channels:open:<name>``  open a stream channel
``process:spawn``      start subprocesses
``env:<NAME>``         read an environment variable (glob: ``MYAPP_*``)
=====================  ==============================================================

Matching is pure and stdlib-only; :mod:`plughost.security.permissions` compiles scopes into a
fast, cached :class:`~plughost.security.permissions.PermissionSet`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final

from plughost.errors import Problem, ScopeError

__all__ = [
    "KINDS",
    "SPECIAL_DIRS",
    "Scope",
    "canonical_host",
    "match_net",
    "match_path",
    "match_segments",
    "parse_scope",
    "parse_scopes",
    "split_net_target",
]

#: kind -> what the pattern is: "path", "net", "topic" (dot segments), "glob", or "none".
KINDS: Final[dict[str, str]] = {
    "fs:read": "path",
    "fs:write": "path",
    "net": "net",
    "storage": "glob",
    "events:emit": "topic",
    "events:subscribe": "topic",
    "commands:execute": "topic",
    "commands:register": "topic",
    "channels:open": "topic",
    "process:spawn": "none",
    "env": "glob",
}

#: Pseudo-filesystems that a broad grant (``fs:read:/``) does not cover: a grant must name them.
SPECIAL_DIRS: Final[tuple[str, ...]] = ("/proc", "/sys", "/dev")

_SEGMENT = r"(\*\*|\*|#|[A-Za-z0-9_\-:/@]+)"
_TOPIC_RE = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})*$")
_GLOB_RE = re.compile(r"^[A-Za-z0-9_.\-*]+$")
_HOST_RE = re.compile(
    r"^(\*|(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*)$"
)


@dataclass(frozen=True, slots=True)
class Scope:
    """One parsed permission scope.

    :ivar kind: one of :data:`KINDS` (``fs:read``, ``net``, ...).
    :ivar pattern: the kind-specific pattern; for ``fs:*`` the normalised absolute directory,
        for ``net`` the canonical host pattern; ``""`` for ``process:spawn``.
    :ivar port: for ``net``, the port, or ``None`` for any port.
    :ivar deny: ``True`` for a deny rule (``!`` prefix); deny rules beat allow rules.
    """

    kind: str
    pattern: str
    port: int | None = None
    deny: bool = False

    def __str__(self) -> str:
        bang = "!" if self.deny else ""
        if self.kind == "process:spawn":
            return f"{bang}process:spawn"
        if self.kind == "net":
            host = f"[{self.pattern}]" if ":" in self.pattern else self.pattern
            port = f":{self.port}" if self.port is not None else ""
            return f"{bang}net:{host}{port}"
        return f"{bang}{self.kind}:{self.pattern}"

    @property
    def is_wildcard(self) -> bool:
        """``True`` when the pattern matches more than one literal target."""
        return "*" in self.pattern

    def matches(self, target: str) -> bool:
        """Whether ``target`` (canonical: a resolved path, ``host:port``, a topic) matches."""
        style = KINDS[self.kind]
        if style == "path":
            return match_path(self.pattern, target)
        if style == "net":
            return match_net(self, target)
        if style == "topic":
            return match_segments(self.pattern, target)
        if style == "glob":
            return fnmatchcase(target, self.pattern)
        return True


def parse_scope(text: str) -> Scope:
    """Parse one scope; raise :class:`ScopeError` (code ``permission.scope``) if malformed."""
    scope, problem = _parse(text, path="")
    if problem is not None:
        raise ScopeError([problem])
    assert scope is not None
    return scope


def parse_scopes(texts: Iterable[str], *, plugin_id: str | None = None) -> list[Scope]:
    """Parse many scopes, reporting *every* malformed one (path ``permissions[i]``) at once."""
    scopes: list[Scope] = []
    problems: list[Problem] = []
    for i, text in enumerate(texts):
        scope, problem = _parse(text, path=f"permissions[{i}]")
        if problem is not None:
            problems.append(problem)
        elif scope is not None and scope not in scopes:
            scopes.append(scope)
    if problems:
        raise ScopeError(problems, plugin_id=plugin_id)
    return scopes


def _parse(text: object, *, path: str) -> tuple[Scope | None, Problem | None]:
    def bad(message: str) -> tuple[None, Problem]:
        return None, Problem(path, "permission.scope", f"{text!r}: {message}")

    if not isinstance(text, str):
        return bad("a scope must be a string")
    raw = text.strip()
    deny = raw.startswith("!")
    if deny:
        raw = raw[1:].strip()
    if not raw:
        return bad("empty scope")
    if raw == "process:spawn":
        return Scope("process:spawn", "", deny=deny), None
    for kind in (
        "fs:read",
        "fs:write",
        "events:emit",
        "events:subscribe",
        "commands:execute",
        "commands:register",
        "channels:open",
    ):
        if raw.startswith(kind + ":"):
            rest = raw[len(kind) + 1 :]
            break
    else:
        head, sep, rest = raw.partition(":")
        kind = head
        if kind not in ("net", "storage", "env") or not sep:
            known = ", ".join(sorted(KINDS))
            return bad(f"unknown permission kind; known kinds: {known}")
    if not rest:
        return bad(f"{kind} needs a target after '{kind}:'")
    style = KINDS[kind]
    if style == "path":
        if rest == "*":  # the manifest checker suggests "fs:read:*" for "everywhere"
            rest = "/"
        if not rest.startswith("/"):
            return bad("the directory must be an absolute path (start with '/')")
        if "\x00" in rest:
            return bad("the directory contains a NUL byte")
        # Grants are compared with resolved targets, so resolve the granted directory too:
        # a grant on a symlinked directory means the directory it points to.
        return Scope(kind, os.path.realpath(rest), deny=deny), None
    if style == "net":
        try:
            host, port = _split_host_port(rest)
        except ValueError as exc:
            return bad(str(exc))
        return Scope("net", host, port, deny), None
    if style == "topic":
        if not _TOPIC_RE.match(rest):
            return bad("a topic/id is dot-separated names; '*' matches one segment, '#' any")
        return Scope(kind, rest, deny=deny), None
    if not _GLOB_RE.match(rest):
        return bad("use letters, digits, '.', '_', '-' and '*' only")
    return Scope(kind, rest, deny=deny), None


def _split_host_port(rest: str) -> tuple[str, int | None]:
    port_text: str | None = None
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError("unclosed '[' in an IPv6 address")
        host, after = rest[1:end], rest[end + 1 :]
        if after:
            if not after.startswith(":"):
                raise ValueError("expected ':PORT' after ']'")
            port_text = after[1:]
    elif rest.count(":") > 1:
        raise ValueError("write IPv6 addresses in brackets: net:[::1]:8080")
    else:
        host, _, port_text = rest.partition(":")
        port_text = port_text if ":" in rest else None
    port: int | None = None
    if port_text is not None and port_text != "*":
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port {port_text!r} must be a number from 1 to 65535 or '*'")
        port = int(port_text)
    if host == "*" or host.startswith("*."):
        canon = "*" if host == "*" else "*." + canonical_host(host[2:])
    else:
        canon = canonical_host(host)
    if not canon or (not _is_ip(canon) and not _HOST_RE.match(canon)):
        raise ValueError(f"{host!r} is not a host name, IP address or '*.domain' wildcard")
    return canon, port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def canonical_host(host: str) -> str:
    """Lower-case, strip a trailing dot and IDNA-encode a host; write IPs in canonical form.

    IPv4 written in decimal, octal or hex (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) is turned
    into dotted-quad, so a check can never be dodged by spelling an address differently.
    """
    host = host.strip().strip("[]").rstrip(".").lower()
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host) and not re.search(r"[g-wyz]", host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def split_net_target(target: str) -> tuple[str, int | None]:
    """Split ``host:port`` / ``[v6]:port`` / ``host`` into (canonical host, port or None)."""
    if target.startswith("["):
        end = target.find("]")
        host, rest = target[1:end], target[end + 1 :]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        return canonical_host(host), port
    if target.count(":") > 1:  # bare IPv6, no port
        return canonical_host(target), None
    host, _, port_text = target.partition(":")
    return canonical_host(host), int(port_text) if port_text.isdigit() else None


def match_net(scope: Scope, target: str) -> bool:
    """Whether a ``host:port`` target matches a ``net`` scope."""
    host, port = split_net_target(target)
    if scope.port is not None and port != scope.port:
        return False
    pattern = scope.pattern
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and not _is_ip(host)
    return host == pattern


def match_path(directory: str, path: str) -> bool:
    """Whether resolved ``path`` is ``directory`` or below it.

    Paths under :data:`SPECIAL_DIRS` only match a directory that is itself one of them (or below).
    """
    if not (path == directory or path.startswith(directory.rstrip("/") + "/")):
        return False
    for special in SPECIAL_DIRS:
        if path == special or path.startswith(special + "/"):
            return directory == special or directory.startswith(special + "/")
    return True


def match_segments(pattern: str, topic: str) -> bool:
    """Dot segments: ``*`` is one, ``#``/``**`` zero or more; a lone ``*`` matches anything."""
    if pattern == "*" or pattern == topic:
        return True
    return _match_parts(pattern.split("."), topic.split("."))


def _match_parts(pat: list[str], parts: list[str]) -> bool:
    if not pat:
        return not parts
    head = pat[0]
    if head in ("**", "#"):
        return any(_match_parts(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    if head == "*" or head == parts[0]:
        return _match_parts(pat[1:], parts[1:])
    return False
