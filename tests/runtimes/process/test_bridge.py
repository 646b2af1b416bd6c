"""host.* requests reach the services a PluginContext carries, after its permission check."""

from __future__ import annotations

from typing import Any

import pytest

from plughost.core.context import PluginContext
from plughost.errors import PermissionDenied
from plughost.runtimes.process.bridge import check_from_context, handlers_from_context
from plughost.runtimes.process.runtime import ProcessRuntime

from .conftest import PLUGINS, fast_options, make_manifest


class BoolChecker:
    """Like security.permissions.PermissionSet: check() answers True/False, never raises."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)

    def check(self, kind: str, target: str = "") -> bool:
        return (kind, target) in self.allowed


class AsyncBus:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, str | None]] = []

    def emit(self, topic: str, payload: Any = None, *, source: str | None = None) -> int:
        raise AssertionError("aemit is preferred: it waits for queue space instead of failing")

    async def aemit(self, topic: str, payload: Any = None, *, source: str | None = None) -> int:
        self.seen.append((topic, payload, source))
        return 3


class Commands:
    async def execute(self, name: str, args: Any = None, *, caller: str | None = None) -> Any:
        return {"name": name, "args": dict(args or {}), "caller": caller}


def context(**services: Any) -> PluginContext:
    ctx = PluginContext(make_manifest("pyecho", "pyecho_plugin:Echo"), config={"k": "v"})
    for name, service in services.items():
        ctx.attach(name, service)
    return ctx


def test_bool_checker_is_turned_into_a_refusal_naming_kind_and_target() -> None:
    check = check_from_context(context(permissions=BoolChecker(("net", "a:443"))), "pyecho")
    check("net", "a:443")
    with pytest.raises(PermissionDenied, match="net:b:443 is not granted to plugin 'pyecho'"):
        check("net", "b:443")


def test_no_permission_service_means_deny_everything() -> None:
    check = check_from_context(context(), "pyecho")
    with pytest.raises(PermissionDenied, match="no permission checker configured"):
        check("events:emit", "anything")


def test_only_attached_services_get_handlers() -> None:
    assert handlers_from_context(context()) == {}
    handlers = handlers_from_context(context(bus=AsyncBus(), commands=Commands()))
    assert set(handlers) == {"host.emit", "host.execute"}


async def test_plugin_requests_reach_context_services_with_the_plugin_as_caller() -> None:
    bus = AsyncBus()
    ctx = context(
        bus=bus, commands=Commands(), permissions=BoolChecker(("events:emit", "ok.topic"))
    )
    runtime = ProcessRuntime(options=fast_options())
    try:
        inst = await runtime.load(ctx.manifest, PLUGINS / "pyecho")
        await inst.start(ctx)
        assert await inst.call("emit", {"topic": "ok.topic", "payload": [1]}) == 3
        assert bus.seen == [("ok.topic", [1], "pyecho")]
        with pytest.raises(PermissionDenied):
            await inst.call("emit", {"topic": "nope.topic"})
        assert await inst.call("config", {"key": "k"}) == "v"
        with pytest.raises(PermissionDenied):  # from inside an async handler, too
            await inst.call("async_echo", {"text": "x"})  # emits async.topic: not granted
    finally:
        await runtime.aclose()
