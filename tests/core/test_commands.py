from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plughost.core.commands import CommandRegistry, qualify
from plughost.errors import (
    CommandArgumentsError,
    CommandConflict,
    CommandError,
    CommandNotFound,
    InvalidExport,
    PermissionDenied,
    PluginActivationError,
    PluginTimeout,
)
from plughost.runtimes.fake import FakeInstance, FakePlugin


def remote_instance(plugin_id: str, handlers: dict[str, Any]) -> FakeInstance:
    """An instance of the fake runtime in out-of-process mode: reachable only via ``call``."""
    return FakeInstance(FakePlugin(plugin_id, handlers=handlers, local=False))


def calls_of(instance: FakeInstance) -> list[tuple[str, dict[str, Any]]]:
    return [entry for kind, entry in instance.log if kind == "call"]



async def greet(name: str, punctuation: str = "!") -> str:
    return f"Hello, {name}{punctuation}"


def test_names_are_namespaced_by_owner() -> None:
    assert qualify("hello", "greet") == "hello.greet"
    assert qualify("hello", "hello.greet") == "hello.greet"
    assert qualify(None, "app.quit") == "app.quit"
    with pytest.raises(InvalidExport):
        qualify("hello", "bad name")


async def test_execute_runs_async_and_sync_commands_with_keyword_args() -> None:
    reg = CommandRegistry()
    reg.register("hello", "greet", greet)
    reg.register("hello", "add", lambda a, b: a + b)
    assert await reg.execute("hello.greet", {"name": "Ann"}) == "Hello, Ann!"
    assert await reg.execute("hello.add", {"a": 2, "b": 3}) == 5
    assert reg.names("hello") == ["hello.add", "hello.greet"]


async def test_timeout_raises_plugin_timeout_with_the_command_and_owner() -> None:
    reg = CommandRegistry()

    async def slow() -> None:
        await asyncio.Event().wait()

    reg.register("hello", "slow", slow, timeout=0.01)
    with pytest.raises(PluginTimeout) as info:
        await reg.execute("hello.slow")
    assert info.value.code == "plugin.timeout"
    assert info.value.plugin_id == "hello"
    assert info.value.details == {"command": "hello.slow", "timeout": 0.01}
    assert isinstance(info.value, TimeoutError)


async def test_call_timeout_overrides_the_command_timeout() -> None:
    reg = CommandRegistry(default_timeout=60)

    async def slow() -> None:
        await asyncio.Event().wait()

    reg.register("hello", "slow", slow, timeout=30)
    with pytest.raises(PluginTimeout):
        await reg.execute("hello.slow", timeout=0.01)


async def test_plugin_raised_command_error_keeps_its_code_and_details() -> None:
    reg = CommandRegistry()

    async def pick(name: str) -> str:
        raise CommandError("name is empty", code="hello.bad_name", details={"field": "name"})

    reg.register("hello", "pick", pick)
    with pytest.raises(CommandError) as info:
        await reg.execute("hello.pick", {"name": ""})
    assert info.value.to_dict() == {
        "code": "hello.bad_name", "message": "name is empty", "plugin_id": "hello",
        "details": {"field": "name"},
    }


async def test_any_other_exception_becomes_command_failed_with_its_cause() -> None:
    reg = CommandRegistry()
    reg.register("hello", "div", lambda: 1 / 0)
    with pytest.raises(CommandError) as info:
        await reg.execute("hello.div")
    assert info.value.code == "command.failed"
    assert info.value.details == {"command": "hello.div", "type": "ZeroDivisionError"}
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert reg.get("hello.div").failures == 1


async def test_wrong_arguments_are_a_typed_error_naming_the_parameters() -> None:
    reg = CommandRegistry()
    reg.register("hello", "greet", greet)
    with pytest.raises(CommandArgumentsError) as info:
        await reg.execute("hello.greet", {"nme": "Ann"})
    assert info.value.code == "command.arguments"
    assert "name, punctuation" in info.value.message
    with pytest.raises(CommandArgumentsError, match="mapping"):
        await reg.execute("hello.greet", ["Ann"])  # type: ignore[arg-type]


async def test_a_type_error_inside_the_command_is_not_blamed_on_the_arguments() -> None:
    reg = CommandRegistry()
    reg.register("hello", "oops", lambda name: name + 1)
    with pytest.raises(CommandError) as info:
        await reg.execute("hello.oops", {"name": "x"})
    assert info.value.code == "command.failed"


async def test_unknown_command_lists_the_registered_ones() -> None:
    reg = CommandRegistry()
    reg.register("hello", "greet", greet)
    with pytest.raises(CommandNotFound, match=r"hello\.greet") as info:
        await reg.execute("hello.wave")
    assert info.value.code == "command.not_found"


def test_duplicate_name_is_refused_and_the_first_stays() -> None:
    reg = CommandRegistry()
    reg.register("hello", "greet", greet)
    with pytest.raises(CommandConflict, match="already registered by hello"):
        reg.register(None, "hello.greet", lambda: "impostor")
    assert reg.get("hello.greet").function is greet


async def test_lazy_resolver_activates_the_declaring_plugin_on_first_execution() -> None:
    reg = CommandRegistry()
    activations: list[str] = []
    declared = {"hello.greet": "hello"}  # what manifests say: activation = ["command:..."]

    async def activate(name: str) -> bool:
        plugin = declared.get(name)
        if plugin is None:
            return False
        await asyncio.sleep(0)
        activations.append(plugin)
        reg.register(plugin, "greet", greet)  # what activating the plugin does
        return True

    reg.set_lazy_resolver(activate)
    results = await asyncio.gather(
        reg.execute("hello.greet", {"name": "A"}), reg.execute("hello.greet", {"name": "B"}),
    )
    assert results == ["Hello, A!", "Hello, B!"]
    assert activations == ["hello"]  # once, even with two racing callers
    assert await reg.execute("hello.greet", {"name": "C"}) == "Hello, C!"
    assert activations == ["hello"]
    with pytest.raises(CommandNotFound):
        await reg.execute("nobody.declares")


async def test_lazy_activation_failure_reaches_the_caller() -> None:
    reg = CommandRegistry()

    async def activate(name: str) -> None:
        raise PluginActivationError("activate() raised", plugin_id="hello")

    reg.set_lazy_resolver(activate)
    with pytest.raises(PluginActivationError):
        await reg.execute("hello.greet")


async def test_denying_checker_refuses_execute_before_anything_runs() -> None:
    ran: list[str] = []

    def deny(plugin_id: str | None, action: str, target: str) -> None:
        if (plugin_id, action) == ("guest", "commands:execute"):
            raise PermissionDenied(f"{plugin_id} may not execute {target}", plugin_id=plugin_id)

    reg = CommandRegistry(checker=deny)
    reg.register("hello", "wave", lambda: ran.append("x"))
    with pytest.raises(PermissionDenied):
        await reg.execute("hello.wave", caller="guest")
    assert ran == []
    await reg.execute("hello.wave", caller="admin")
    assert ran == ["x"]


async def test_remote_command_goes_through_plugin_instance_call() -> None:
    async def shout(text: str) -> str:
        return text.upper()

    remote = remote_instance("echo", {"shout": shout})
    reg = CommandRegistry()
    reg.register_remote("echo", "shout", lambda args, t: remote.call("shout", args, timeout=t))
    assert await reg.execute("echo.shout", {"text": "hi"}) == "HI"
    assert calls_of(remote) == [("shout", {"text": "hi"})]


def test_unregister_owner_and_undo_remove_commands() -> None:
    reg = CommandRegistry()
    undo = reg.register("a", "one", lambda: 1)
    reg.register("a", "two", lambda: 2)
    reg.register("b", "one", lambda: 1)
    undo()
    assert reg.names() == ["a.two", "b.one"]
    assert reg.unregister_owner("a") == 1
    assert reg.names() == ["b.one"]


async def test_monitor_observes_execution_and_errors() -> None:
    reg = CommandRegistry()
    reg.register("hello", "greet", greet)
    seen: list[Any] = []
    undo = reg.add_monitor(lambda kind, name, args: lambda err, res: seen.append(
        (kind, name, dict(args), res, type(err).__name__ if err else None)))
    await reg.execute("hello.greet", {"name": "Ann"})
    with pytest.raises(CommandArgumentsError):
        await reg.execute("hello.greet", {})
    undo()
    await reg.execute("hello.greet", {"name": "Bob"})
    assert seen == [
        ("command", "hello.greet", {"name": "Ann"}, "Hello, Ann!", None),
        ("command", "hello.greet", {}, None, "CommandArgumentsError"),
    ]


async def test_respond_gives_the_seed_response_shape_for_success_and_errors() -> None:
    reg = CommandRegistry()
    reg.register("hello", "greet", greet)
    ok = await reg.respond("hello.greet", {"name": "Ann"})
    assert ok.success and ok.data == "Hello, Ann!"
    assert set(ok.to_dict()) == {"id", "success", "data", "timestamp"}
    missing = await reg.respond("hello.wave")
    assert not missing.success
    assert missing.to_dict()["error"]["code"] == "command.not_found"
    assert missing.id != ok.id
