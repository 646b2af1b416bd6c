"""The host operations table: one permission rule per operation, handlers over the real
owner-scoped services, and the same answers whichever runtime carries the request."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from plughost.core.bus import EventBus
from plughost.core.commands import CommandRegistry
from plughost.core.context import PluginContext
from plughost.core.manifest import manifest_from_dict
from plughost.core.scoped import ScopedBus, ScopedCommands
from plughost.errors import PermissionDenied
from plughost.runtimes.hostcalls import (
    HOST_OPS,
    HostCalls,
    HostOpUnserved,
    HostParamsError,
    required_permission,
)
from plughost.runtimes.wasm.abi import import_name

DOCS = Path(__file__).parents[2] / "docs"


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("host.emit", {"topic": "a.b"}, ("events:emit", "a.b")),
        ("host.execute", {"command": "x.y"}, ("commands:execute", "x.y")),
        ("host.files.read", {"path": "/etc/passwd"}, ("fs:read", "/etc/passwd")),
        ("host.files.list", {"path": "/srv"}, ("fs:read", "/srv")),
        ("host.files.write", {"path": "/tmp/x", "data": ""}, ("fs:write", "/tmp/x")),
        ("host.files.delete", {"path": "/tmp/x"}, ("fs:write", "/tmp/x")),
        (
            "host.http.request",
            {"url": "https://api.example.com/v1"},
            ("net", "api.example.com:443"),
        ),
        ("host.http.request", {"url": "http://h:8080/"}, ("net", "h:8080")),
        ("host.storage.get", {"key": "k"}, ("storage", "demo")),
        ("host.storage.set", {"key": "k", "namespace": "shared"}, ("storage", "shared")),
        ("host.storage.keys", {}, ("storage", "demo")),
        ("host.config.get", {}, None),
        ("host.log", {"message": "x"}, None),
    ],
)
def test_required_permission_maps_each_host_method_to_its_scope(
    method: str, params: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    assert required_permission(method, params, "demo") == expected


@pytest.mark.parametrize(
    ("method", "params", "match"),
    [
        ("host.emit", {}, "needs 'topic'"),
        ("host.emit", {"topic": ""}, "'topic' must be a non-empty string"),
        ("host.execute", {"command": "x", "args": [1]}, "'args' must be a JSON object"),
        ("host.http.request", {"url": "file:///etc/passwd"}, "absolute http"),
        ("host.http.request", {"url": "http://h:port/"}, "not a valid URL"),
        # the two copies of this rule disagreed: one refused, the other used str(namespace)
        ("host.storage.get", {"key": "k", "namespace": 5}, "'namespace' must be a string"),
        ("host.storage.set", {"key": "k", "namespace": ["a"]}, "'namespace' must be a string"),
        ("host.files.read", {"path": 3}, "'path' must be a non-empty string"),
    ],
)
def test_malformed_requests_are_refused_naming_the_parameter(
    method: str, params: dict[str, Any], match: str
) -> None:
    with pytest.raises(HostParamsError, match=match):
        required_permission(method, params, "demo")


def test_unknown_methods_are_not_host_operations() -> None:
    with pytest.raises(HostOpUnserved, match=r"host\.shell"):
        required_permission("host.shell", {}, "demo")
    with pytest.raises(ValueError, match="no host operation named"):
        HostCalls("demo", handlers={"host.shell": lambda pid, p: None})


def _context(plugin_id: str = "demo", **services: Any) -> PluginContext:
    manifest = manifest_from_dict(
        {"id": plugin_id, "name": plugin_id, "version": "1.0.0", "entry": "x:Y"}
    )
    ctx = PluginContext(manifest, config={"level": "high"})
    for name, service in services.items():
        ctx.attach(name, service)
    return ctx


class Grants:
    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = set(pairs)
        self.asked: list[tuple[str, str]] = []

    def check(self, kind: str, target: str = "") -> None:
        self.asked.append((kind, target))
        if (kind, target) not in self.pairs:
            raise PermissionDenied(f"{kind}:{target} is not granted")


async def test_emit_and_execute_reach_the_real_scoped_services_as_the_plugin() -> None:
    bus, commands = EventBus(), CommandRegistry()
    seen: list[Any] = []
    bus.subscribe("greeter.*", seen.append)
    commands.register("other", "other.echo", lambda **kw: kw)
    grants = Grants(("events:emit", "greeter.greeted"), ("commands:execute", "other.echo"))
    calls = HostCalls(
        "demo",
        _context(
            bus=ScopedBus(bus, "demo"),
            commands=ScopedCommands(commands, "demo"),
            permissions=grants,
        ),
    )
    assert await calls.dispatch("host.emit", {"topic": "greeter.greeted", "payload": 1}) == 1
    assert [(e.topic, e.payload, e.source) for e in seen] == [("greeter.greeted", 1, "demo")]
    result = await calls.dispatch("host.execute", {"command": "other.echo", "args": {"a": 1}})
    assert result == {"a": 1}
    with pytest.raises(PermissionDenied):
        calls.dispatch("host.emit", {"topic": "admin.shutdown"})
    with pytest.raises(PermissionDenied):
        calls.dispatch("host.execute", {"command": "admin.wipe"})
    assert grants.asked[-2:] == [
        ("events:emit", "admin.shutdown"),
        ("commands:execute", "admin.wipe"),
    ]


def test_synchronous_transports_get_the_synchronous_emit() -> None:
    bus = EventBus()
    calls = HostCalls(
        "demo",
        _context(bus=ScopedBus(bus, "demo")),
        check=lambda kind, target: None,
        can_await=False,
    )
    assert calls.dispatch("host.emit", {"topic": "a.b"}) == 0  # an int, not a coroutine
    assert not calls.awaits("host.emit") and not calls.awaits("host.storage.get")


def test_permission_is_checked_before_the_service_is_looked_for() -> None:
    calls = HostCalls("demo", _context(), check=None)
    with pytest.raises(PermissionDenied, match="no permission checker configured"):
        calls.dispatch("host.http.request", {"url": "https://example.com/"})
    allowed = HostCalls("demo", _context(), check=lambda kind, target: None)
    with pytest.raises(HostOpUnserved, match="no 'http' service"):
        allowed.dispatch("host.http.request", {"url": "https://example.com/"})
    assert not allowed.serves("host.http.request")
    assert allowed.serves("host.config.get") and allowed.serves("host.log")


def test_config_and_log_need_no_grant(caplog: pytest.LogCaptureFixture) -> None:
    lines: list[tuple[int, str]] = []
    calls = HostCalls("demo", _context(), log=lambda level, text: lines.append((level, text)))
    assert calls.dispatch("host.config.get", {}) == {"level": "high"}
    assert calls.dispatch("host.config.get", {"key": "nope", "default": 3}) == 3
    calls.dispatch("host.log", {"level": "warning", "message": "w"})
    calls.dispatch("host.log", {"level": 3, "message": "e"})  # WebAssembly's numeric levels
    calls.dispatch("host.log", {"level": "shout", "message": "i"})
    assert lines == [(logging.WARNING, "w"), (logging.ERROR, "e"), (logging.INFO, "i")]


def test_file_paths_are_resolved_before_the_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret").write_text("s")
    (data / "link").symlink_to(tmp_path / "secret")
    grants = Grants()
    manifest = manifest_from_dict({"id": "demo", "name": "d", "version": "1.0.0", "entry": "x:Y"})
    ctx = PluginContext(manifest, data_dir=data)
    ctx.attach("permissions", grants)
    with pytest.raises(PermissionDenied):
        HostCalls("demo", ctx).dispatch("host.files.read", {"path": "link"})
    assert grants.asked == [("fs:read", str(tmp_path / "secret"))]


def _documented(method: str, doc: str) -> bool:
    """``host.storage.delete`` counts as named by a line reading `host.storage.get` / `.delete`."""
    prefix, last = method.rsplit(".", 1)
    return any(
        f"`{method}`" in line or (f"`{prefix}." in line and f"`.{last}`" in line)
        for line in doc.splitlines()
    )


def test_every_operation_is_documented_for_both_transports() -> None:
    protocol = (DOCS / "protocol.md").read_text()
    wasm = (DOCS / "wasm-abi.md").read_text()
    for method in HOST_OPS:
        assert _documented(method, protocol), f"{method} is missing from docs/protocol.md"
        name = import_name(method)
        assert f"`{name}`" in wasm, f"{name} is missing from docs/wasm-abi.md"
