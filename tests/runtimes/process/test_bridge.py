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


class Storage:
    """Shaped like services.hostapi.storage.StorageService: namespaces via with_namespace()."""

    def __init__(self, data: dict[str, dict[str, Any]], namespace: str = "pyecho") -> None:
        self.data, self.namespace = data, namespace

    def with_namespace(self, name: str) -> Storage:
        return Storage(self.data, name)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.setdefault(self.namespace, {}).get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data.setdefault(self.namespace, {})[key] = value

    def delete(self, key: str) -> bool:
        return self.data.setdefault(self.namespace, {}).pop(key, None) is not None

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.data.get(self.namespace, {}) if k.startswith(prefix))


class Response:
    status_code = 201
    headers = {"content-type": "text/plain"}
    text = "made"


class Http:
    """Shaped like services.hostapi.http.HttpService: async request() returning a response."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.sent.append((method, url, kwargs.get("content")))
        return Response()


async def test_storage_handlers_use_the_requested_namespace() -> None:
    data: dict[str, dict[str, Any]] = {}
    handlers = handlers_from_context(context(storage=Storage(data)))
    handlers["host.storage.set"]("pyecho", {"key": "a", "value": 1})
    handlers["host.storage.set"]("pyecho", {"key": "b", "value": 2, "namespace": "shared"})
    assert data == {"pyecho": {"a": 1}, "shared": {"b": 2}}
    assert handlers["host.storage.keys"]("pyecho", {}) == ["a"]
    assert handlers["host.storage.get"]("pyecho", {"key": "zz", "default": 5}) == 5


async def test_http_response_objects_become_json_shaped() -> None:
    http = Http()
    handler = handlers_from_context(context(http=http))["host.http.request"]
    result = await handler("pyecho", {"method": "POST", "url": "https://a.example/x", "body": "hi"})
    assert result == {"status": 201, "headers": {"content-type": "text/plain"}, "body": "made"}
    assert http.sent == [("POST", "https://a.example/x", "hi")]
