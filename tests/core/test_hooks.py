from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import pytest

from plughost.core.hooks import HookRegistry, HookSpec, hookspec, order_impls
from plughost.errors import (
    HookCallError,
    HookError,
    HookNotFound,
    HookOrderCycle,
    HookSignatureError,
    HookSpecError,
    InvalidExport,
    PluginTimeout,
)
from plughost.runtimes.fake import FakeInstance, FakePlugin


def remote_instance(plugin_id: str, handlers: dict[str, Any]) -> FakeInstance:
    """An instance of the fake runtime in out-of-process mode: reachable only via ``call``."""
    return FakeInstance(FakePlugin(plugin_id, handlers=handlers, local=False))


def calls_of(instance: FakeInstance) -> list[tuple[str, dict[str, Any]]]:
    return [entry for kind, entry in instance.log if kind == "call"]



def registry_with(policy: str = "all", name: str = "chat.before_send", **options: Any
                  ) -> HookRegistry:
    reg = HookRegistry()

    def before_send(message: str, user: str = "anon") -> Any: ...

    reg.add_spec(before_send, name=name, policy=policy, **options)
    return reg


def order(reg: HookRegistry, name: str = "chat.before_send") -> list[str]:
    return [i.plugin_id for i in reg[name].implementations()]


# ------------------------------------------------------------------------------ result policies


def test_all_collects_every_non_none_result_in_order() -> None:
    reg = registry_with("all")
    reg.register("a", "chat.before_send", lambda message: message + "-a")
    reg.register("b", "chat.before_send", lambda message: None)
    reg.register("c", "chat.before_send", lambda message, user: f"{message}-{user}")
    assert reg.call("chat.before_send", message="hi", user="ann") == ["hi-a", "hi-ann"]


def test_first_returns_first_non_none_and_skips_the_rest() -> None:
    reg = registry_with("first")
    called: list[str] = []

    def none(message: str) -> None:
        called.append("none")

    def hit(message: str) -> str:
        called.append("hit")
        return "found"

    def later(message: str) -> str:
        called.append("later")
        return "too late"

    for pid, fn in (("a", none), ("b", hit), ("c", later)):
        reg.register(pid, "chat.before_send", fn)
    assert reg.call("chat.before_send", message="x") == "found"
    assert called == ["none", "hit"]


def test_first_returns_none_when_nobody_answers() -> None:
    reg = registry_with("first")
    reg.register("a", "chat.before_send", lambda message: None)
    assert reg.call("chat.before_send", message="x") is None


def test_pipeline_feeds_each_result_to_the_next_and_none_keeps_the_value() -> None:
    reg = registry_with("pipeline")
    reg.register("upper", "chat.before_send", lambda message: message.upper())
    reg.register("noop", "chat.before_send", lambda message: None)
    reg.register("bang", "chat.before_send", lambda message, user: f"{message}! ({user})")
    assert reg.call("chat.before_send", message="hi", user="ann") == "HI! (ann)"


def test_pipeline_can_pipe_a_named_parameter() -> None:
    reg = HookRegistry()

    def score(user: str, value: int) -> int: ...

    reg.add_spec(score, name="rank.score", policy="pipeline", pipe="value")
    reg.register("double", "rank.score", lambda value: value * 2)
    reg.register("plus", "rank.score", lambda user, value: value + len(user))
    assert reg.call("rank.score", user="ann", value=5) == 13


def test_pipe_must_name_a_parameter() -> None:
    with pytest.raises(HookSpecError, match="pipe='nope'"):
        HookSpec(name="x.y", params=("a",), policy="pipeline", pipe="nope")


def test_sync_wrapper_runs_around_the_others_and_can_replace_the_result() -> None:
    reg = registry_with("all")
    trail: list[str] = []

    def outer(message: str) -> Any:
        trail.append("outer-in")
        result = yield
        trail.append(f"outer-out {result}")
        return [*result, "outer"]

    def inner(message: str) -> Any:
        trail.append("inner-in")
        result = yield
        trail.append("inner-out")
        return result

    reg.register("w1", "chat.before_send", outer, wrapper=True, tryfirst=True)
    reg.register("w2", "chat.before_send", inner, wrapper=True)
    reg.register("a", "chat.before_send", lambda message: trail.append("impl") or "a")
    assert reg.call("chat.before_send", message="m") == ["a", "outer"]
    assert trail == ["outer-in", "inner-in", "impl", "inner-out", "outer-out ['a']"]


def test_wrapper_sees_the_exception_and_can_replace_it() -> None:
    reg = registry_with("all")
    seen: list[BaseException] = []

    def guard(message: str) -> Any:
        try:
            yield
        except ValueError as exc:
            seen.append(exc)
            return ["fallback"]

    reg.register("guard", "chat.before_send", guard, wrapper=True)
    reg.register("bad", "chat.before_send", lambda message: int("x"))
    assert reg.call("chat.before_send", message="m") == ["fallback"]
    assert isinstance(seen[0], ValueError)


def test_wrapper_that_does_not_yield_is_an_error() -> None:
    reg = registry_with("all")

    def lazy(message: str) -> Any:
        if False:
            yield
        return None

    reg.register("w", "chat.before_send", lazy, wrapper=True)
    with pytest.raises(HookError, match="did not yield"):
        reg.call("chat.before_send", message="m")


def test_wrapper_flag_needs_a_generator() -> None:
    reg = registry_with("all")
    with pytest.raises(HookSignatureError, match="not a generator"):
        reg.register("w", "chat.before_send", lambda message: None, wrapper=True)
    assert reg["chat.before_send"].implementations() == ()


async def test_async_generator_wrapper_can_replace_the_result_in_acall() -> None:
    reg = registry_with("all")

    async def timing(message: str) -> Any:
        result = yield
        yield [*result, "wrapped"]

    async def impl(message: str) -> str:
        await asyncio.sleep(0)
        return message

    reg.register("w", "chat.before_send", timing, wrapper=True)
    reg.register("a", "chat.before_send", impl)
    assert await reg.acall("chat.before_send", message="m") == ["m", "wrapped"]


# -------------------------------------------------------------------------------- error policies


def failing_registry(errors: str | None = None, policy: str = "all") -> tuple[HookRegistry,
                                                                               list[str]]:
    reg = registry_with(policy)
    called: list[str] = []

    def ok1(message: str) -> str:
        called.append("ok1")
        return message + "1"

    def boom(message: str) -> str:
        called.append("boom")
        raise ValueError("boom")

    def ok2(message: str) -> str:
        called.append("ok2")
        return message + "2"

    def boom2(message: str) -> str:
        called.append("boom2")
        raise KeyError("boom2")

    for pid, fn in (("ok1", ok1), ("boom", boom), ("ok2", ok2), ("boom2", boom2)):
        reg.register(pid, "chat.before_send", fn)
    return reg, called


def test_raise_stops_at_the_first_error_and_names_the_plugin() -> None:
    reg, called = failing_registry()
    with pytest.raises(ValueError, match="boom") as info:
        reg.call("chat.before_send", message="m")
    assert called == ["ok1", "boom"]
    assert any("plugin 'boom'" in note for note in info.value.__notes__)


def test_collect_calls_everyone_then_raises_an_exception_group() -> None:
    reg, called = failing_registry()
    with pytest.raises(ExceptionGroup) as info:
        reg["chat.before_send"].using(errors="collect")(message="m")
    assert called == ["ok1", "boom", "ok2", "boom2"]
    assert [type(e) for e in info.value.exceptions] == [ValueError, KeyError]
    assert "2 implementation(s)" in str(info.value)


def test_isolate_logs_counts_and_skips_the_failing_implementation(
        caplog: pytest.LogCaptureFixture) -> None:
    reg, _called = failing_registry()
    with caplog.at_level(logging.ERROR):
        result = reg["chat.before_send"].using(errors="isolate")(message="m")
    assert result == ["m1", "m2"]
    failures = {i.plugin_id: i.failures for i in reg["chat.before_send"].implementations()}
    assert failures == {"ok1": 0, "boom": 1, "ok2": 0, "boom2": 1}
    assert "plugin 'boom'" in caplog.text


def test_isolate_in_a_pipeline_keeps_the_value_flowing() -> None:
    reg, _ = failing_registry(policy="pipeline")
    assert reg["chat.before_send"].using(errors="isolate")(message="m") == "m12"


def test_spec_sets_the_default_error_policy() -> None:
    reg = registry_with("all", errors="isolate")
    reg.register("bad", "chat.before_send", lambda message: 1 / 0)
    reg.register("good", "chat.before_send", lambda message: "ok")
    assert reg.call("chat.before_send", message="m") == ["ok"]


async def test_async_error_policies_match_the_sync_ones() -> None:
    reg, _called = failing_registry()
    with pytest.raises(ExceptionGroup):
        await reg["chat.before_send"].using(errors="collect").acall(message="m")
    assert await reg["chat.before_send"].using(errors="isolate").acall(message="m") == \
        ["m1", "m2"]
    with pytest.raises(ValueError):
        await reg.acall("chat.before_send", message="m")


def test_unknown_error_policy_is_refused() -> None:
    reg = registry_with("all")
    with pytest.raises(HookCallError, match="raise, collect, isolate"):
        reg["chat.before_send"].using(errors="ignore")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- historic


def test_historic_call_is_replayed_to_late_implementations() -> None:
    reg = HookRegistry()

    def configure(settings: dict) -> Any: ...

    reg.add_spec(configure, name="app.configure", historic=True)
    results: list[Any] = []
    reg.register("early", "app.configure", lambda settings: f"early:{settings['x']}")
    reg["app.configure"].call_historic({"settings": {"x": 1}}, result_callback=results.append)
    assert results == ["early:1"]
    reg.register("late", "app.configure", lambda settings: f"late:{settings['x']}")
    assert results == ["early:1", "late:1"]


def test_historic_hook_refuses_a_normal_call() -> None:
    reg = HookRegistry()

    def configure(settings: dict) -> Any: ...

    reg.add_spec(configure, name="app.configure", historic=True)
    with pytest.raises(HookCallError, match="call_historic"):
        reg.call("app.configure", settings={})


async def test_historic_replay_to_an_async_implementation_runs_as_its_task() -> None:
    reg = HookRegistry()

    def configure(settings: dict) -> Any: ...

    reg.add_spec(configure, name="app.configure", historic=True)
    results: list[Any] = []
    await reg["app.configure"].acall_historic({"settings": {"x": 2}},
                                              result_callback=results.append)
    got = asyncio.Event()

    async def late(settings: dict) -> str:
        got.set()
        return f"late:{settings['x']}"

    reg.register("late", "app.configure", late)
    await asyncio.wait_for(got.wait(), 5)
    for task in reg.tasks.of("late"):
        await task
    assert results == ["late:2"]


def test_historic_requires_policy_all() -> None:
    with pytest.raises(HookSpecError, match="historic"):
        HookSpec(name="a.b", params=("x",), policy="first", historic=True)


# -------------------------------------------------------------------------------------- ordering


def test_priority_orders_within_a_band_and_ties_keep_registration_order() -> None:
    reg = registry_with("all")
    for pid, prio in (("low", -5), ("mid1", 0), ("high", 10), ("mid2", 0)):
        reg.register(pid, "chat.before_send", lambda message: None, priority=prio)
    assert order(reg) == ["high", "mid1", "mid2", "low"]


def test_a_plugin_registered_again_takes_its_old_place_among_equal_priorities() -> None:
    reg = registry_with("all")
    for pid in ("first", "second", "third"):
        reg.register(pid, "chat.before_send", lambda message: None)
        reg.register(pid, "chat.before_send", lambda message: None)  # two each
    assert order(reg) == ["first", "first", "second", "second", "third", "third"]
    # stopped and started again (a reload or an update): the same place, not the last
    reg.unregister_owner("first")
    reg.register("first", "chat.before_send", lambda message: None)
    reg.register("first", "chat.before_send", lambda message: None)
    assert order(reg) == ["first", "first", "second", "second", "third", "third"]
    # a priority still wins over the place
    reg.unregister_owner("third")
    reg.register("third", "chat.before_send", lambda message: None, priority=1)
    assert order(reg)[0] == "third"
    # a plugin that left for good comes back as a new one: last
    reg.unregister_owner("first")
    reg.forget_places("first")
    reg.register("first", "chat.before_send", lambda message: None)
    assert order(reg) == ["third", "second", "second", "first"]


def test_tryfirst_and_trylast_bands_beat_priority() -> None:
    reg = registry_with("all")
    reg.register("last", "chat.before_send", lambda message: None, trylast=True, priority=100)
    reg.register("normal", "chat.before_send", lambda message: None, priority=50)
    reg.register("first", "chat.before_send", lambda message: None, tryfirst=True, priority=-9)
    assert order(reg) == ["first", "normal", "last"]


def test_before_and_after_constraints_between_plugins() -> None:
    reg = registry_with("pipeline")
    reg.register("links", "chat.before_send", lambda message: message + "[links]", priority=10)
    reg.register("profanity", "chat.before_send", lambda message: message + "[profanity]",
                 before=["links"])
    reg.register("audit", "chat.before_send", lambda message: message + "[audit]",
                 after="links", tryfirst=True)
    assert order(reg) == ["profanity", "links", "audit"]
    assert reg.call("chat.before_send", message="") == "[profanity][links][audit]"


def test_constraint_naming_an_absent_plugin_is_ignored() -> None:
    reg = registry_with("all")
    reg.register("a", "chat.before_send", lambda message: None, before=["not-installed"])
    reg.register("b", "chat.before_send", lambda message: None)
    assert order(reg) == ["a", "b"]


def test_cycle_is_refused_at_registration_naming_it_and_nothing_changes() -> None:
    reg = registry_with("all")
    reg.register("a", "chat.before_send", lambda message: "a", before=["b"])
    reg.register("b", "chat.before_send", lambda message: "b", before=["c"])
    with pytest.raises(HookOrderCycle) as info:
        reg.register("c", "chat.before_send", lambda message: "c", before=["a"])
    assert "a → b → c → a" in info.value.message
    assert info.value.details["cycle"] == ["a", "b", "c", "a"]
    assert order(reg) == ["a", "b"]
    assert reg.call("chat.before_send", message="m") == ["a", "b"]


def test_ordering_is_deterministic_across_registration_permutations() -> None:
    import itertools

    from plughost.core.hooks import HookImpl

    specs = [("x", {"before": ("z",)}), ("y", {"priority": 3}), ("z", {}),
             ("w", {"after": ("y",), "trylast": True})]
    seen = set()
    for perm in itertools.permutations(specs):
        impls = [HookImpl(hook="h", plugin_id=pid, seq=n, **opts)
                 for n, (pid, opts) in enumerate(perm)]
        seen.add(tuple(i.plugin_id for i in order_impls(impls)))
    assert seen == {("y", "x", "z", "w")}


def test_tryfirst_and_trylast_together_are_refused() -> None:
    reg = registry_with("all")
    with pytest.raises(InvalidExport, match="exclusive"):
        reg.register("a", "chat.before_send", lambda message: None, tryfirst=True, trylast=True)


# ----------------------------------------------------------------------------- signatures, specs


def test_implementation_with_a_parameter_the_spec_lacks_is_refused_by_name() -> None:
    reg = registry_with("all")
    with pytest.raises(HookSignatureError) as info:
        reg.register("p", "chat.before_send", lambda message, channel: None)
    assert "'channel'" in info.value.message
    assert "message, user" in info.value.message
    assert info.value.details["unknown"] == ["channel"]
    assert reg["chat.before_send"].implementations() == ()


def test_implementation_taking_a_subset_receives_only_that_subset() -> None:
    reg = registry_with("all")
    reg.register("p", "chat.before_send", lambda user: user)
    reg.register("q", "chat.before_send", lambda: "nothing")
    reg.register("r", "chat.before_send", lambda message, extra="default": extra)
    reg.register("s", "chat.before_send", lambda **kw: sorted(kw))
    assert reg.call("chat.before_send", message="m", user="u") == \
        ["u", "nothing", "default", ["message", "user"]]


def test_spec_defaults_fill_omitted_arguments() -> None:
    reg = registry_with("all")
    reg.register("p", "chat.before_send", lambda user: user)
    assert reg.call("chat.before_send", message="m") == ["anon"]


def test_bad_call_arguments_name_what_is_missing_and_unknown() -> None:
    reg = registry_with("all")
    with pytest.raises(HookCallError) as info:
        reg.call("chat.before_send", usr="x")
    assert "missing 'message'" in info.value.message
    assert "unknown 'usr'" in info.value.message


def test_declaring_a_spec_checks_implementations_registered_before_it() -> None:
    reg = HookRegistry()
    reg.register("early", "music.search", lambda query, page: [])

    def search(query: str) -> list: ...

    with pytest.raises(HookSignatureError, match="'page'"):
        reg.add_spec(search, name="music.search")
    assert "music.search" not in reg

    def search2(query: str, page: int = 1) -> list: ...

    reg.add_spec(search2, name="music.search")
    assert reg.call("music.search", query="x") == [[]]


def test_calling_an_undeclared_extension_point_names_the_declared_ones() -> None:
    reg = registry_with("all")
    with pytest.raises(HookNotFound, match=r"chat\.before_send"):
        reg.call("chat.after_send", message="m")


def test_a_spec_is_declared_once_and_undo_removes_it() -> None:
    reg = HookRegistry()

    def gc_strategy(heap: int) -> Any: ...

    undo = reg.add_spec(gc_strategy, name="vm.gc.strategy", policy="first")
    with pytest.raises(HookSpecError, match="already declared"):
        reg.add_spec(gc_strategy, name="vm.gc.strategy")
    undo()
    assert "vm.gc.strategy" not in reg


def test_specs_from_a_protocol_with_per_method_options() -> None:
    class ChatHooks(Protocol):
        @hookspec(policy="pipeline")
        def before_send(self, message: str) -> str: ...

        @hookspec(policy="first")
        def pick_model(self, prompt: str) -> str: ...

        def after_send(self, message: str) -> None: ...

    reg = HookRegistry()
    reg.add_spec(ChatHooks, prefix="chat")
    assert {s.name: s.policy for s in reg.specs()} == {
        "chat.before_send": "pipeline", "chat.pick_model": "first", "chat.after_send": "all",
    }


def test_spec_with_star_args_is_refused() -> None:
    reg = HookRegistry()
    with pytest.raises(HookSpecError, match="named"):
        reg.add_spec(lambda *args: None, name="x.y")


def test_hookspec_validates_options_where_written() -> None:
    with pytest.raises(HookSpecError, match="concurrent"):
        hookspec(policy="first", concurrent=True)


# --------------------------------------------------------------------------------- async calls


def test_sync_call_of_an_async_implementation_says_to_use_acall() -> None:
    reg = registry_with("all")

    async def impl(message: str) -> str:
        return message

    reg.register("slowpoke", "chat.before_send", impl)
    with pytest.raises(HookCallError, match="acall") as info:
        reg.call("chat.before_send", message="m")
    assert info.value.details["plugin"] == "slowpoke"


async def test_acall_awaits_async_and_runs_sync_implementations_in_order() -> None:
    reg = registry_with("pipeline")

    async def shout(message: str) -> str:
        await asyncio.sleep(0)
        return message.upper()

    reg.register("a", "chat.before_send", shout)
    reg.register("b", "chat.before_send", lambda message: message + "!")
    assert await reg.acall("chat.before_send", message="hi") == "HI!"


async def test_per_implementation_timeout_raises_plugin_timeout_naming_the_plugin() -> None:
    reg = registry_with("all")
    never = asyncio.Event()

    async def stuck(message: str) -> str:
        await never.wait()
        return "never"

    reg.register("stuck", "chat.before_send", stuck, timeout=0.01)
    reg.register("fine", "chat.before_send", lambda message: "fine")
    with pytest.raises(PluginTimeout) as info:
        await reg.acall("chat.before_send", message="m")
    assert info.value.plugin_id == "stuck"
    assert await reg["chat.before_send"].using(errors="isolate").acall(message="m") == ["fine"]


async def test_call_timeout_overrides_the_spec_timeout() -> None:
    reg = registry_with("all", timeout=30)
    never = asyncio.Event()

    async def stuck(message: str) -> None:
        await never.wait()

    reg.register("stuck", "chat.before_send", stuck)
    with pytest.raises(PluginTimeout):
        await reg["chat.before_send"].using(timeout=0.01).acall(message="m")


async def test_concurrent_spec_runs_implementations_at_the_same_time() -> None:
    reg = registry_with("all", concurrent=True)
    a_started, b_started = asyncio.Event(), asyncio.Event()

    async def a(message: str) -> str:
        a_started.set()
        await b_started.wait()  # only finishes if b runs while a waits
        return "a"

    async def b(message: str) -> str:
        b_started.set()
        await a_started.wait()
        return "b"

    reg.register("a", "chat.before_send", a)
    reg.register("b", "chat.before_send", b)
    assert await asyncio.wait_for(reg.acall("chat.before_send", message="m"), 5) == ["a", "b"]


async def test_concurrent_raise_cancels_the_others_on_first_failure() -> None:
    reg = registry_with("all", concurrent=True)
    cancelled = asyncio.Event()

    async def slow(message: str) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def bad(message: str) -> str:
        raise RuntimeError("bad")

    reg.register("slow", "chat.before_send", slow)
    reg.register("bad", "chat.before_send", bad)
    with pytest.raises(RuntimeError, match="bad"):
        await asyncio.wait_for(reg.acall("chat.before_send", message="m"), 5)
    assert cancelled.is_set()


async def test_concurrent_needs_the_spec_to_allow_it() -> None:
    reg = registry_with("all")
    with pytest.raises(HookCallError, match="concurrent=True"):
        reg["chat.before_send"].using(concurrent=True)


# ------------------------------------------------------------------------------- remote runtime


async def test_remote_implementation_is_called_through_plugin_instance_call() -> None:
    async def before_send(message: str) -> str:
        return message.replace("darn", "****")

    remote = remote_instance("remote-filter", {"before_send": before_send})
    reg = registry_with("pipeline")
    reg.register("local", "chat.before_send", lambda message: message + "!")
    reg.register_remote(
        "remote-filter", "chat.before_send",
        lambda kw, timeout: remote.call("before_send", kw, timeout=timeout),
        args=["message"], tryfirst=True,
    )
    assert await reg.acall("chat.before_send", message="darn it", user="ann") == "**** it!"
    assert calls_of(remote) == [("before_send", {"message": "darn it"})]


async def test_remote_implementation_args_are_checked_against_the_spec() -> None:
    reg = registry_with("all")
    with pytest.raises(HookSignatureError, match="'channel'"):
        reg.register_remote("r", "chat.before_send", lambda kw, t: asyncio.sleep(0),
                            args=["message", "channel"])


async def test_sync_call_with_a_remote_implementation_says_to_use_acall() -> None:
    remote = remote_instance("r", {"f": lambda **kw: asyncio.sleep(0)})
    reg = registry_with("all")
    reg.register_remote("r", "chat.before_send",
                        lambda kw, t: remote.call("f", kw, timeout=t))
    with pytest.raises(HookCallError, match="acall"):
        reg.call("chat.before_send", message="m")


async def test_remote_timeout_is_passed_to_the_runtime() -> None:
    async def slow(**kw: Any) -> None:
        await asyncio.Event().wait()

    remote = remote_instance("r", {"slow": slow})
    reg = registry_with("all")
    reg.register_remote("r", "chat.before_send",
                        lambda kw, t: remote.call("slow", kw, timeout=t), timeout=0.02)
    with pytest.raises(PluginTimeout):
        await reg.acall("chat.before_send", message="m")


# ------------------------------------------------------------------------ monitoring and cleanup


def test_monitor_wraps_every_call_and_undo_restores_the_plain_path() -> None:
    reg = registry_with("all")
    reg.register("a", "chat.before_send", lambda message: message)
    seen: list[tuple[str, str, Any, Any]] = []

    def monitor(kind: str, name: str, payload: Any) -> Any:
        def finish(error: BaseException | None, result: Any) -> None:
            seen.append((kind, name, dict(payload), result if error is None else error))
        return finish

    undo = reg.add_monitor(monitor)
    assert reg.call("chat.before_send", message="m") == ["m"]
    assert seen == [("hook", "chat.before_send", {"message": "m", "user": "anon"}, ["m"])]
    undo()
    reg.call("chat.before_send", message="again")
    assert len(seen) == 1
    assert reg["chat.before_send"]._plan.direct is not None  # back on the inlined fast path


async def test_monitor_sees_async_calls_finish_after_the_await_and_errors() -> None:
    reg = registry_with("all")

    async def impl(message: str) -> str:
        await asyncio.sleep(0)
        if message == "bad":
            raise ValueError("bad")
        return message

    reg.register("a", "chat.before_send", impl)
    seen: list[Any] = []
    reg.add_monitor(lambda kind, name, payload: lambda err, res: seen.append((err, res)))
    await reg.acall("chat.before_send", message="ok")
    with pytest.raises(ValueError):
        await reg.acall("chat.before_send", message="bad")
    assert seen[0] == (None, ["ok"])
    assert isinstance(seen[1][0], ValueError)


def test_a_failing_monitor_does_not_break_the_call() -> None:
    reg = registry_with("all")
    reg.register("a", "chat.before_send", lambda message: message)
    reg.add_monitor(lambda kind, name, payload: 1 / 0)
    assert reg.call("chat.before_send", message="m") == ["m"]


def test_unregister_owner_removes_all_its_implementations() -> None:
    reg = registry_with("all")

    def after_send(message: str) -> None: ...

    reg.add_spec(after_send, name="chat.after_send")
    reg.register("p", "chat.before_send", lambda message: "p")
    reg.register("p", "chat.after_send", lambda message: "p2")
    reg.register("q", "chat.before_send", lambda message: "q")
    assert reg.unregister_owner("p") == 2
    assert reg.owners() == {"q"}
    assert reg.implementations("p") == []
    assert reg.call("chat.before_send", message="m") == ["q"]
    assert reg.call("chat.after_send", message="m") == []


def test_register_returns_an_undo() -> None:
    reg = registry_with("all")
    undo = reg.register("p", "chat.before_send", lambda message: "p")
    assert reg.call("chat.before_send", message="m") == ["p"]
    undo()
    undo()  # idempotent
    assert reg.call("chat.before_send", message="m") == []


@pytest.mark.parametrize("policy", ["all", "first", "pipeline"])
def test_implementations_receive_the_right_values_whatever_their_parameter_layout(
        policy: str) -> None:
    reg = HookRegistry()

    def spec(message: str, user: str, channel: str = "general") -> Any: ...

    reg.add_spec(spec, name="chat.route", policy=policy)
    seen: list[tuple[str, Any]] = []

    def same_order(message, user, channel):  # type: ignore[no-untyped-def]
        seen.append(("same", (message, user, channel)))

    def reversed_order(channel, user, message):  # type: ignore[no-untyped-def]
        seen.append(("reversed", (message, user, channel)))

    def keyword_only(*, user, message):  # type: ignore[no-untyped-def]
        seen.append(("kwonly", (message, user)))

    def gap(message, extra=1, user="?"):  # type: ignore[no-untyped-def]
        seen.append(("gap", (message, extra, user)))

    def positional_only_optional(tag=None, /, message="?"):  # type: ignore[no-untyped-def]
        seen.append(("posonly", (message, tag)))

    for pid, fn in (("a", same_order), ("b", reversed_order), ("c", keyword_only),
                    ("d", gap), ("e", positional_only_optional),
                    ("f", lambda channel: seen.append(("one", channel))),
                    ("g", lambda **kw: seen.append(("kw", sorted(kw.items()))))):
        reg.register(pid, "chat.route", fn)
    reg.call("chat.route", message="m", user="u")
    assert seen == [
        ("same", ("m", "u", "general")),
        ("reversed", ("m", "u", "general")),
        ("kwonly", ("m", "u")),
        ("gap", ("m", 1, "u")),
        ("posonly", ("m", None)),
        ("one", "general"),
        ("kw", [("channel", "general"), ("message", "m"), ("user", "u")]),
    ]


async def test_lazy_resolver_runs_once_before_the_first_acall_and_again_after_removal() -> None:
    reg = registry_with("all")
    woken: list[str] = []

    async def wake(name: str) -> None:
        woken.append(name)
        await asyncio.sleep(0)
        reg.register("lazy", name, lambda message: "lazy")

    reg.set_lazy_resolver(wake)
    results = await asyncio.gather(reg.acall("chat.before_send", message="m"),
                                   reg.acall("chat.before_send", message="m"))
    assert results == [["lazy"], ["lazy"]]
    assert woken == ["chat.before_send"]
    reg.unregister_owner("lazy")
    assert await reg.acall("chat.before_send", message="m") == ["lazy"]
    assert woken == ["chat.before_send", "chat.before_send"]
