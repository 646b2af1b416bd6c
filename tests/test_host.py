from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plughost.core.contract import Capability, Export, Runtime
from plughost.core.lifecycle import LifecycleEvent, State
from plughost.core.manifest import Manifest, load_manifest
from plughost.errors import (
    DependentsExist,
    OperationRefused,
    PlughostError,
    PluginActivationError,
    PluginUnavailable,
)
from plughost.host import PluginHost, SyncPluginHost
from plughost.runtimes.fake import FakeInstance, FakePlugin, FakeRuntime
from tests.conftest import WritePlugin


async def test_start_activates_in_dependency_order_and_reports(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("app", dependencies={"lib": "^1.0"})
    write_plugin("lib", "1.4.0")
    host = PluginHost([plugins_dir])
    seen: list[tuple[str, State]] = []
    host.lifecycle.subscribe(lambda e: seen.append((e.plugin_id, e.new)))
    report = await host.start()
    assert report.ok, report
    assert host.get("app").state is State.ACTIVE and host.get("lib").state is State.ACTIVE
    activations = [pid for pid, state in seen if state is State.ACTIVE]
    assert activations == ["lib", "app"]
    assert await host.call("app", "ping", value=3) == ("pong", "app", 3)
    await host.aclose()
    deactivations = [pid for pid, state in seen if state is State.DEACTIVATED]
    assert deactivations == ["app", "lib"]
    assert host.get("app").state is State.RESOLVED


async def test_every_lifecycle_change_emits_an_event_with_a_timestamp(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("solo")
    events: list[LifecycleEvent] = []
    async with PluginHost([plugins_dir]) as host:
        host.lifecycle.subscribe(events.append)
        await host.start()
    assert [(e.old.value, e.new.value) for e in events] == [
        ("discovered", "installed"),
        ("installed", "resolved"),
        ("resolved", "loaded"),
        ("loaded", "active"),
        ("active", "deactivated"),
        ("deactivated", "resolved"),
    ]
    assert all(e.timestamp > 0 for e in events)


async def test_lazy_plugin_is_resolved_but_not_imported_until_first_use(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("lazy", activation=["command:lazy.go"],
                 code="raise RuntimeError('imported too early')\n")
    write_plugin("later", activation=["manual"])
    async with PluginHost([plugins_dir]) as host:
        report = await host.start()
        assert report.ok
        assert host.get("lazy").state is State.RESOLVED
        assert host.get("later").state is State.RESOLVED
        assert host.activation_candidates("command:lazy.go") == ["lazy"]
        assert await host.call("later", "ping") == ("pong", "later", None)
        assert host.get("later").state is State.ACTIVE
        with pytest.raises(PluginUnavailable, match="imported too early"):
            await host.activate_for("command:lazy.go")
            await host.ensure_active("lazy")
        assert host.get("lazy").state is State.FAILED
        assert host.get("lazy").phase == "import"


async def test_isolate_policy_keeps_the_others_working_and_reports_phases(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("good")
    write_plugin("bad-import", code="import does_not_exist_anywhere\n")
    write_plugin("bad-activate", code="""
        from plughost.sdk import Plugin
        class Main(Plugin):
            def activate(self, ctx):
                raise ValueError("no token configured")
    """)
    write_plugin("bad-resolve", dependencies={"ghost": "^1"})
    write_plugin("needs-bad", dependencies={"bad-activate": "*"})
    broken = plugins_dir / "bad-manifest"
    broken.mkdir()
    (broken / "plugin.toml").write_text('id = "bad-manifest"\nversion = "x"\n')
    async with PluginHost([plugins_dir]) as host:
        report = await host.start()
        assert not report.ok
        phases = {o.plugin_id: o.phase for o in report.failed}
        assert phases == {
            "bad-manifest": "manifest",
            "bad-import": "import",
            "bad-activate": "activate",
            "bad-resolve": "resolve",
            "needs-bad": "dependency",
        }
        assert report["bad-activate"].error is not None
        assert "no token configured" in report["bad-activate"].error.message
        assert report["bad-resolve"].hint and "dependency" in report["bad-resolve"].hint
        assert host.get("good").state is State.ACTIVE
        assert "bad-import" in str(report)


async def test_fail_policy_stops_startup(write_plugin: WritePlugin, plugins_dir: Path) -> None:
    write_plugin("bad", code="""
        from plughost.sdk import Plugin
        class Main(Plugin):
            def activate(self, ctx):
                raise ValueError("broken")
    """)
    async with PluginHost([plugins_dir], on_plugin_error="fail") as host:
        with pytest.raises(PluginActivationError, match="broken"):
            await host.start()


async def test_per_plugin_policy_overrides_the_global_one(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("critical", code="raise ImportError('x')\n")
    async with PluginHost([plugins_dir], error_policies={"critical": "fail"}) as host:
        with pytest.raises(Exception, match="x"):
            await host.start()
    with pytest.raises(ValueError, match="unknown error policy"):
        PluginHost([plugins_dir], on_plugin_error="ignore")


async def test_failed_activation_releases_the_instance(plugins_dir: Path,
                                                       write_plugin: WritePlugin) -> None:
    write_plugin("flaky")
    fake = FakeRuntime()
    fake.define(FakePlugin("flaky", fail_on={"start": RuntimeError("nope")}))
    async with PluginHost([plugins_dir], runtimes=[fake]) as host:
        await host.start()
        assert host.get("flaky").state is State.FAILED
        assert host.get("flaky").instance is None
        assert fake.instances["flaky"].closed


async def test_independent_plugins_activate_concurrently_up_to_the_limit(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    running = 0
    peak = 0
    release = asyncio.Event()

    fake = FakeRuntime()
    for i in range(6):
        write_plugin(f"p{i}")
        fake.define(FakePlugin(f"p{i}"))

    # Wrap start() of every fake instance to measure overlap.
    from plughost.runtimes import fake as fake_module

    real_start = fake_module.FakeInstance.start

    async def counting_start(self: fake_module.FakeInstance, context: object) -> object:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running >= 3:
            release.set()
        await asyncio.wait_for(release.wait(), 5)
        running -= 1
        return await real_start(self, context)  # type: ignore[arg-type]

    fake_module.FakeInstance.start = counting_start  # type: ignore[method-assign]
    try:
        async with PluginHost([plugins_dir], runtimes=[fake], max_concurrency=3) as host:
            report = await host.start()
            assert report.ok, report
    finally:
        fake_module.FakeInstance.start = real_start  # type: ignore[method-assign]
    assert peak == 3


async def test_deactivate_refuses_while_active_dependents_unless_cascade(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("base")
    write_plugin("mid", dependencies={"base": "*"})
    write_plugin("top", dependencies={"mid": "*"})
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        with pytest.raises(DependentsExist) as info:
            await host.deactivate("base")
        assert info.value.details["dependents"] == ["mid", "top"]
        assert host.get("base").state is State.ACTIVE
        await host.deactivate("base", cascade=True)
        assert [host.get(p).state for p in ("base", "mid", "top")] == [State.DEACTIVATED] * 3
        await host.activate("top")
        assert [host.get(p).state for p in ("base", "mid", "top")] == [State.ACTIVE] * 3


async def test_cascading_deactivation_goes_dependents_first_sorting_only_them(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("base")
    write_plugin("mid", dependencies={"base": "*"})
    write_plugin("top", dependencies={"mid": "*", "base": "*"})
    for i in range(10):
        write_plugin(f"bystander-{i}")

    class Unwalkable(dict):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            raise AssertionError("walked the whole load order")

    async with PluginHost([plugins_dir]) as host:
        await host.start()
        stopped: list[str] = []
        host.lifecycle.subscribe(
            lambda e: stopped.append(e.plugin_id) if e.new is State.DEACTIVATED else None)
        host._order = Unwalkable(host._order)
        await host.deactivate("base", cascade=True)
        assert stopped == ["top", "mid", "base"]


async def test_disable_reports_who_needs_it_and_enable_brings_it_back(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("base")
    write_plugin("user", dependencies={"base": "^1"})
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        with pytest.raises(DependentsExist, match="user"):
            await host.disable("base")
        await host.disable("user")
        assert host.get("user").state is State.DISABLED
        assert host.get("user").instance is None
        await host.disable("base")
        assert host.get("base").state is State.DISABLED
        with pytest.raises(PluginUnavailable, match="disabled"):
            await host.call("base", "ping")
        await host.enable("base")
        await host.enable("user")
        assert host.get("user").state is State.ACTIVE


async def test_disabled_at_start_are_kept_but_not_loaded(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("off", code="raise RuntimeError('must not import')\n")
    async with PluginHost([plugins_dir], disabled=["off"]) as host:
        report = await host.start()
        assert report.ok
        assert host.get("off").state is State.DISABLED


async def test_unenforceable_limits_are_reported_at_load(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("limited", extra="[limits]\ntimeout = 2\nmemory = \"64Mi\"\n")
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        [warning] = host.get("limited").warnings
        assert "cannot enforce" in warning and "memory" in warning and "timeout" in warning
        assert host.status("limited")["enforced_limits"] == []


async def test_config_defaults_are_overridden_by_operator_config(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    write_plugin("configured", extra='[config.defaults]\ncolour = "red"\nsize = 1\n',
                 code="""
        from plughost.sdk import Plugin
        class Main(Plugin):
            def settings(self):
                return dict(self.ctx.config), str(self.ctx.data_dir)
    """)
    async with PluginHost([plugins_dir], config={"configured": {"size": 3}},
                          home=tmp_path / "home") as host:
        await host.start()
        config, data_dir = await host.call("configured", "settings")
    assert config == {"colour": "red", "size": 3}
    assert data_dir == str(tmp_path / "home" / "data" / "configured")


async def test_closed_host_refuses_work_and_close_is_idempotent(plugins_dir: Path) -> None:
    host = PluginHost([plugins_dir])
    await host.aclose()
    await host.aclose()
    with pytest.raises(OperationRefused, match="closed"):
        host.discover()


async def test_status_counts_states_and_lists_problems(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("ok")
    (plugins_dir / "junk").mkdir()
    (plugins_dir / "junk" / "manifest.json").write_text("{")
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        status = host.status()
    assert status["states"] == {"active": 1}
    assert status["problems"][0]["error"]["code"] == "manifest.invalid"


def test_sync_facade_runs_without_an_event_loop(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("syncy")
    with SyncPluginHost(PluginHost([plugins_dir])) as host:
        assert host.start().ok
        assert host.call("syncy", "ping", value=1) == ("pong", "syncy", 1)
        assert host.get("syncy").state is State.ACTIVE
        assert [r.id for r in host.list(state="active")] == ["syncy"]
    with pytest.raises(OperationRefused):
        host.start()


async def test_duplicate_ids_across_directories_are_reported(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    write_plugin("twin", directory=tmp_path / "a")
    write_plugin("twin", directory=tmp_path / "b")
    async with PluginHost([tmp_path / "a", tmp_path / "b"]) as host:
        report = await host.start()
    assert [o.error.code for o in report.failed if o.error] == ["registry.duplicate"]


# ------------------------------------------------------------------ the runtime contract


def _fake_without(*lacking: Capability) -> FakeRuntime:
    return FakeRuntime(capabilities=frozenset(Capability) - set(lacking))


async def test_plugin_needing_a_capability_its_runtime_lacks_is_refused_at_load(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("woken", activation=["event:files.changed"])
    fake = _fake_without(Capability.EVENTS)
    async with PluginHost([plugins_dir], runtimes=[fake]) as host:
        await host.start()
        record = await host.load("woken")
        assert record.state is State.FAILED and record.phase == "import"
        assert record.error is not None and record.error.code == "runtime.capability"
        assert "'python' runtime cannot give plugin 'woken'" in str(record.error)
        assert "events (it is activated by event:files.changed)" in str(record.error)
        assert "woken" not in fake.instances  # refused before anything was loaded


async def test_export_its_runtime_cannot_serve_fails_the_activation_after_deactivating(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("streamer")
    fake = _fake_without(Capability.CHANNELS)
    fake.define(FakePlugin("streamer", exports=[Export("channel", "talk", "talk")]))
    async with PluginHost([plugins_dir], runtimes=[fake]) as host:
        await host.start()
        record = host.get("streamer")
        assert record.state is State.FAILED and record.phase == "activate"
        assert record.error is not None and record.error.code == "runtime.capability"
        assert "channels (it serves channel 'talk')" in str(record.error)
        log = [kind for kind, _ in fake.instances["streamer"].log]
        assert log == ["start", "stop", "close"]


async def test_runtime_declaring_a_capability_its_instance_lacks_is_caught_at_load(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    class Broken(FakeInstance):
        enabled_changed = None  # type: ignore[assignment]

    class BrokenRuntime(FakeRuntime):
        async def load(self, manifest: Manifest, root: Path | None) -> FakeInstance:
            return Broken(FakePlugin(manifest.id))

    write_plugin("odd")
    async with PluginHost([plugins_dir], runtimes=[BrokenRuntime()]) as host:
        await host.start()
        record = host.get("odd")
        assert record.state is State.FAILED
        assert record.error is not None and record.error.code == "runtime.contract"
        assert "declares enable" in str(record.error)


async def test_each_runtime_checks_its_own_entry_before_loading(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    class Picky(FakeRuntime):
        def check_entry(self, entry: str, root: Path | None) -> str | None:
            return None if entry.startswith("pick:") else f"{entry!r} does not start with pick:"

    write_plugin("picky")
    picky = Picky()
    async with PluginHost([plugins_dir], runtimes=[picky]) as host:
        await host.start()
        record = host.get("picky")
        assert record.state is State.FAILED and record.phase == "import"
        assert record.error is not None and record.error.code == "manifest.entry"
        assert "'main:Main' does not start with pick:" in str(record.error)
        assert not picky.instances


async def test_plugin_is_told_when_the_operator_disables_and_enables_it(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("told")
    fake = FakeRuntime()
    async with PluginHost([plugins_dir], runtimes=[fake]) as host:
        await host.start()
        first = fake.instances["told"]
        await host.disable("told")
        assert [kind for kind, _ in first.log][-3:] == ["disabled", "stop", "close"]
        await host.enable("told")
        second = fake.instances["told"]
        assert [kind for kind, _ in second.log] == ["start", "enabled"]
        await host.deactivate("told")
        await host.activate("told")  # a plain re-activation is not an enable
        assert [kind for kind, _ in second.log].count("enabled") == 1


async def test_runtime_without_enable_notifications_still_enables_and_disables(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("quiet")
    fake = _fake_without(Capability.ENABLE)
    async with PluginHost([plugins_dir], runtimes=[fake]) as host:
        await host.start()
        await host.disable("quiet")
        await host.enable("quiet")
        assert host.get("quiet").state is State.ACTIVE
        assert "enabled" not in [kind for kind, _ in fake.instances["quiet"].log]


async def test_every_builtin_runtime_declares_its_capabilities() -> None:
    from plughost.runtimes.base import BUILTIN_RUNTIMES, create_runtime

    for name in BUILTIN_RUNTIMES:
        runtime = create_runtime(name)
        try:
            assert isinstance(runtime, Runtime)
            assert {Capability.CALL, Capability.HEALTH} <= runtime.capabilities, name
        finally:
            await runtime.aclose()


# ------------------------------------------------------------------ the host owns the lifecycle


async def test_add_disabled_replace_and_remove_go_through_transitions_and_emit_events(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    v1 = load_manifest(write_plugin("kept", "1.0.0", directory=tmp_path / "v1"))
    v2 = load_manifest(write_plugin("kept", "2.0.0", directory=tmp_path / "v2"))
    events: list[tuple[str, str, str]] = []
    async with PluginHost() as host:
        host.lifecycle.subscribe(lambda e: events.append((e.plugin_id, e.old.value, e.new.value)))
        bus_topics: list[str] = []
        host.bus.subscribe("plugin.lifecycle.#", lambda e: bus_topics.append(e.topic))
        off = host.add(v1, tmp_path / "v1" / "kept", enabled=False)
        assert off.state is State.DISABLED and events[-1] == ("kept", "discovered", "disabled")
        await host.enable("kept")
        assert off.state is State.ACTIVE
        undo = await host.replace(v2, tmp_path / "v2" / "kept")
        assert host.get("kept") is off and str(off.manifest.version) == "2.0.0"
        assert off.state is State.ACTIVE
        await undo()
        assert str(host.get("kept").manifest.version) == "1.0.0"
        assert host.get("kept").state is State.ACTIVE
        removed = await host.remove("kept")
        assert removed.state is State.UNINSTALLED and "kept" not in host.registry
        assert events[-1] == ("kept", "resolved", "uninstalled")
        assert bus_topics[-1] == "plugin.lifecycle.uninstalled"


async def test_replace_hands_the_state_over_through_the_runtime_contract(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    v1 = load_manifest(write_plugin("counter", "1.0.0", directory=tmp_path / "v1"))
    v2 = load_manifest(write_plugin("counter", "2.0.0", directory=tmp_path / "v2"))
    fake = FakeRuntime()
    received: list[tuple[object, str]] = []
    fake.define(FakePlugin("counter", handlers={
        "export_state": lambda: {"count": 41},
        "import_state": lambda state, from_version: received.append((state, from_version)),
    }))
    async with PluginHost(runtimes=[fake]) as host:
        host.add(v1, tmp_path / "v1" / "counter")
        await host.start()
        old = fake.instances["counter"]
        await host.replace(v2, tmp_path / "v2" / "counter")
        new = fake.instances["counter"]
        assert new is not old and old.closed
        assert ("export_state", None) in old.log
        assert ("call", ("export_state", {})) not in old.log  # the contract, not call()
        assert received == [({"count": 41}, "1.0.0")]
        kinds = [kind for kind, _ in new.log]
        assert kinds.index("import_state") < kinds.index("start")


async def test_replace_without_proof_points_at_the_new_files_and_loads_nothing(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    v1 = load_manifest(write_plugin("idle", "1.0.0", directory=tmp_path / "v1"))
    v2 = load_manifest(write_plugin("idle", "2.0.0", directory=tmp_path / "v2"))
    fake = FakeRuntime()
    fake.define(FakePlugin("idle"))
    async with PluginHost(runtimes=[fake]) as host:
        host.add(v1, tmp_path / "v1" / "idle")
        host.resolve()
        undo = await host.replace(v2, tmp_path / "v2" / "idle", prove=False)
        record = host.get("idle")
        assert (str(record.manifest.version), record.state) == ("2.0.0", State.RESOLVED)
        assert "idle" not in fake.instances  # nothing was loaded
        await undo()
        assert str(host.get("idle").manifest.version) == "1.0.0"
        await host.activate("idle")
        with pytest.raises(OperationRefused) as refused:  # a running plugin needs the handover
            await host.replace(v2, tmp_path / "v2" / "idle", prove=False)
        assert refused.value.code == "registry.replace"
        assert str(host.get("idle").manifest.version) == "1.0.0"



async def test_replace_refuses_a_version_outside_a_running_dependents_range(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    from plughost.errors import ResolutionError

    lib_v1 = load_manifest(write_plugin("lib", "1.0.0", directory=tmp_path / "v1"))
    lib_v2 = load_manifest(write_plugin("lib", "2.0.0", directory=tmp_path / "v2"))
    app = load_manifest(write_plugin("app", dependencies={"lib": "^1.0"},
                                     directory=tmp_path / "v1"))
    fake = FakeRuntime()
    async with PluginHost(runtimes=[fake]) as host:
        host.add(lib_v1, tmp_path / "v1" / "lib")
        host.add(app, tmp_path / "v1" / "app")
        await host.start()
        for prove in (True, False):
            with pytest.raises(ResolutionError) as refused:
                await host.replace(lib_v2, tmp_path / "v2" / "lib", prove=prove)
            assert refused.value.code == "resolve.breaks_dependents"
            assert refused.value.details == {"dependents": ["app"]}
            assert "app needs lib ^1.0" in refused.value.message
        assert str(host.get("lib").manifest.version) == "1.0.0"  # nothing changed
        assert [host.get(p).state for p in ("lib", "app")] == [State.ACTIVE, State.ACTIVE]
        await host.disable("app")  # a disabled dependent does not hold it back
        await host.replace(lib_v2, tmp_path / "v2" / "lib")
        assert str(host.get("lib").manifest.version) == "2.0.0"

async def test_replace_on_a_runtime_without_state_handover_says_so(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    v1 = load_manifest(write_plugin("amnesic", "1.0.0", directory=tmp_path / "v1"))
    v2 = load_manifest(write_plugin("amnesic", "2.0.0", directory=tmp_path / "v2"))
    fake = _fake_without(Capability.STATE)
    async with PluginHost(runtimes=[fake]) as host:
        host.add(v1, tmp_path / "v1" / "amnesic")
        await host.start()
        await host.replace(v2, tmp_path / "v2" / "amnesic")
        record = host.get("amnesic")
        assert record.state is State.ACTIVE
        assert any("cannot hand state over" in w for w in record.warnings)
        assert "export_state" not in [kind for kind, _ in fake.instances["amnesic"].log]


async def test_replace_that_fails_to_activate_puts_the_previous_version_back(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    v1 = load_manifest(write_plugin("steady", "1.0.0", directory=tmp_path / "v1"))
    v2 = load_manifest(write_plugin("steady", "2.0.0", directory=tmp_path / "v2",
                                    code="class Main:\n    def activate(self, ctx):\n"
                                         "        raise RuntimeError('broken 2.0')\n"))
    async with PluginHost() as host:
        host.add(v1, tmp_path / "v1" / "steady")
        await host.start()
        with pytest.raises(PluginActivationError, match=r"broken 2\.0"):
            await host.replace(v2, tmp_path / "v2" / "steady")
        record = host.get("steady")
        assert (str(record.manifest.version), record.state) == ("1.0.0", State.ACTIVE)


async def test_host_counts_what_a_plugin_registers_at_run_time_like_its_exports(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("dynamic", code="""
        class Main:
            def activate(self, ctx):
                ctx.commands.register("twice", lambda n: n * 2)
                ctx.bus.subscribe("dyn.*", lambda event: None)
        """)
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        assert await host.commands.execute("dynamic.twice", {"n": 2}) == 4
        with pytest.raises(TypeError):
            await host.commands.execute("dynamic.twice", {"m": 2})
        host.bus.emit("dyn.x")
        counts = host.metrics("dynamic")
        assert {k: counts[k] for k in ("calls", "commands", "events", "errors")} == {
            "calls": 3, "commands": 2, "events": 1, "errors": 1}
        assert counts["runtime"] == "python" and counts["state"] == "active"


async def test_embedded_host_refuses_config_its_schema_refuses(tmp_path) -> None:
    """The embedded host applies the service's config rule: unit = "K" against enum
    ["C", "F"] does not activate; a valid value does, with the schema's defaults merged."""

    plugin = tmp_path / "thermo"
    plugin.mkdir()
    (plugin / "plugin.toml").write_text(
        'id = "thermo"\nversion = "1.0.0"\nentry = "main:Main"\n'
        '[config.schema]\ntype = "object"\nadditionalProperties = false\n'
        '[config.schema.properties.unit]\ntype = "string"\nenum = ["C", "F"]\n'
        '[config.schema.properties.digits]\ntype = "integer"\ndefault = 1\n')
    (plugin / "main.py").write_text(
        "from plughost.sdk import Plugin\n\n"
        "class Main(Plugin):\n"
        "    def activate(self, ctx):\n        self.cfg = dict(ctx.config)\n\n"
        "    def config(self):\n        return self.cfg\n")
    async with PluginHost([plugin], config={"thermo": {"unit": "K"}}) as host:
        report = await host.start()
        outcome = report["thermo"]
        assert outcome.state is State.NEEDS_CONFIG and outcome.phase == "config"
        assert outcome.error is not None and outcome.error.code == "config.invalid"
        assert "$.unit" in outcome.error.message and "'K' is not one of" in outcome.error.message
    async with PluginHost([plugin], config={"thermo": {"unit": "F"}}) as host:
        assert (await host.start()).ok
        assert await host.call("thermo", "config") == {"unit": "F", "digits": 1}


async def test_resolving_only_added_plugins_leaves_the_others_and_indexes_their_triggers(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    from plughost.core.manifest import load_manifest

    write_plugin("lib")
    extra = tmp_path / "extra"
    app = write_plugin("app", dependencies={"lib": "^1.0"}, activation=["command:app.go"],
                       directory=extra)
    orphan = write_plugin("orphan", dependencies={"missing": "^1.0"}, directory=extra)
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        for root in (app, orphan):
            host.add(load_manifest(root), root, source="installed")
        order = host.resolve(only=["app", "orphan"])
        assert order == ["lib", "app"]
        assert host.get("app").state is State.RESOLVED
        assert host.get("orphan").state is State.FAILED
        assert host.get("lib").state is State.ACTIVE  # untouched
        assert host.activation_candidates("command:app.go") == ["app"]
        await host.remove("app")
        host.add(load_manifest(app), app, source="installed")
        assert host.resolve(only=["app"]) == ["lib", "app"]  # back once, at the end
        assert host.activation_candidates("command:app.go") == ["app"]


async def test_removing_a_plugin_fails_what_required_it_and_restarts_its_optional_users(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("lib")
    write_plugin("app", dependencies={"lib": "^1.0"})
    write_plugin("top", dependencies={"app": "^1.0"})
    write_plugin("lazy", dependencies={"lib": "^1.0"}, activation=["command:lazy.go"])
    write_plugin("watcher", dependencies={"lib": "^1.0"}, activation=["event:lib.changed"])
    write_plugin("user", optional={"lib": "^1.0"})
    write_plugin("other", activation=["command:other.go"])
    triggers = ("command:lazy.go", "event:lib.changed", "command:other.go")

    def seen(host: PluginHost) -> tuple[dict[str, State], dict[str, list[str]]]:
        return ({r.id: r.state for r in host.registry},
                {t: host.activation_candidates(t) for t in triggers})

    async with PluginHost([plugins_dir]) as host:
        await host.start()
        await host.remove("lib")
        states, candidates = seen(host)
        # What required lib, running or lazy, no longer resolves: failed, saying what is
        # missing, and out of the activation index; the optional user runs again without it;
        # the rest is untouched.
        assert states == {"app": State.FAILED, "top": State.FAILED, "lazy": State.FAILED,
                          "watcher": State.FAILED, "user": State.ACTIVE,
                          "other": State.RESOLVED}
        assert candidates == {"command:lazy.go": [], "event:lib.changed": [],
                              "command:other.go": ["other"]}
        app, top = host.get("app"), host.get("top")
        assert app.phase == "resolve" and "lib" in app.error.message
        assert top.phase == "resolve" and "app" in top.error.message
        host.resolve()  # resolving everything again changes nothing
        assert seen(host) == (states, candidates)


def _resolutions(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """From now on, the ids of the plugins handed to each resolution, sorted, in a list."""
    import plughost.host

    handed: list[list[str]] = []
    real = plughost.host.resolve

    def resolve(available, **kwargs):  # type: ignore[no-untyped-def]
        available = list(available)
        handed.append(sorted(m.id for m in available))
        return real(available, **kwargs)

    monkeypatch.setattr(plughost.host, "resolve", resolve)
    return handed


async def test_removing_a_plugin_resolves_only_what_required_it(
    write_plugin: WritePlugin, plugins_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin("lib")
    write_plugin("app", dependencies={"lib": "^1.0"})
    write_plugin("top", dependencies={"app": "^1.0"})
    for i in range(20):
        write_plugin(f"bystander-{i}", optional={"lib": "^1.0"} if i % 2 else None)
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        handed = _resolutions(monkeypatch)
        await host.remove("lib")
        assert handed == [["app", "top"]]  # lib's dependents, none of the 20 others
        assert host.get("bystander-1").state is State.ACTIVE


async def test_enabling_or_replacing_one_plugin_resolves_it_alone_and_keeps_its_place(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin("lib")
    write_plugin("app", dependencies={"lib": "^1.0"})
    for i in range(20):
        write_plugin(f"bystander-{i}", optional={"lib": "^1.0"} if i % 2 else None)
    lib_11 = load_manifest(write_plugin("lib", "1.1.0", directory=tmp_path / "v11"))
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        before = dict(host._order)
        handed = _resolutions(monkeypatch)
        await host.disable("app")
        await host.enable("app")
        assert handed == [["app", "lib"]]  # app and what it needs, none of the 20 others
        assert host.get("app").state is State.ACTIVE
        await host.replace(lib_11, tmp_path / "v11" / "lib")
        assert handed[1:] == [["lib"]]
        assert str(host.get("lib").manifest.version) == "1.1.0"
        assert [host.get(p).state for p in ("lib", "app", "bystander-1")] == [State.ACTIVE] * 3
        assert host._order == before  # both kept their places: lib before what uses it


async def test_a_plugin_back_in_the_load_order_comes_before_the_plugins_that_use_it(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    x1 = write_plugin("x")
    write_plugin("user", optional={"x": "^1.0"})
    x2 = load_manifest(write_plugin("x", "2.0.0", directory=tmp_path / "v2"))
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        await host.remove("x")
        assert host.get("user").state is State.ACTIVE  # restarted without it
        host.add(load_manifest(x1), x1)
        host.resolve(only=["x"])
        assert host._ordered(["user", "x"]) == ["x", "user"]
        await host.activate("x")
        # A version outside the range its optional user asked for: the user is told.
        await host.replace(x2, tmp_path / "v2" / "x")
        assert host.get("x").state is State.ACTIVE
        assert any("optional x ^1.0" in w for w in host.get("user").warnings)


@pytest.mark.parametrize("seed", range(12))
async def test_the_load_order_puts_every_plugin_after_what_it_uses_whatever_is_changed(
    seed: int
) -> None:
    """Enable, disable, remove, add back and replace plugins at random: every plugin that
    can run stays after the plugins it uses (required or optional) in the load order, every
    plugin resolved is in it, and the registry's count of each state is a recount's."""
    import random

    from plughost.core.manifest import manifest_from_dict

    rng = random.Random(seed)
    ids = [f"p{i}" for i in range(7)]
    uses = {pid: {d: rng.random() < 0.5 for d in rng.sample(ids[:i], min(i, rng.randint(0, 2)))}
            for i, pid in enumerate(ids)}  # dependency -> required?

    def manifest(pid: str, minor: int) -> Manifest:
        return manifest_from_dict({
            "id": pid, "version": f"1.{minor}.0", "entry": "main:Main",
            "dependencies": {d: "^1.0" for d, req in uses[pid].items() if req},
            "optional-dependencies": {d: "^1.0" for d, req in uses[pid].items() if not req}})

    async with PluginHost(runtimes=[FakeRuntime()]) as host:
        for pid in ids:
            host.add(manifest(pid, 0))
        await host.start()
        for _ in range(40):
            pid = rng.choice(ids)
            action = rng.choice(["disable", "enable", "remove", "replace"])
            try:
                if pid not in host.registry:
                    host.add(manifest(pid, 0))
                    host.resolve(only=[pid])
                elif action == "disable":
                    await host.disable(pid)
                elif action == "enable":
                    await host.enable(pid)
                elif action == "remove":
                    await host.remove(pid)
                else:
                    await host.replace(manifest(pid, rng.randint(1, 9)), None)
            except PlughostError as exc:
                # Disabling a plugin others need, or running one whose requirement is off:
                # refused, and the order must hold all the same.
                assert exc.code in ("resolve.dependents", "plugin.unavailable"), exc
            counted = {state: 0 for state in State}
            for r in host.registry:
                counted[r.state] += 1
            assert host.registry.state_counts() == counted, (action, pid)
            running = {r.id for r in host.registry if r.state in (
                State.RESOLVED, State.LOADED, State.ACTIVE, State.DEACTIVATED)}
            assert running <= set(host._order), (action, pid)
            for user in running:
                m = host.get(user).manifest
                for dep in [*m.dependencies, *m.optional_dependencies]:
                    if dep in running:
                        assert host._order[dep] < host._order[user], (action, pid, dep, user)

HANGS_IN_ACTIVATE = """
import asyncio, time
from plughost.sdk import Plugin

class Main(Plugin):
    async def activate(self, ctx):
        await asyncio.Event().wait()  # waits for something that never comes
"""

HANGS_IN_CHILD = """
import time
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        time.sleep(3600)
"""


@pytest.mark.parametrize("runtime", ["python", "process"])
async def test_a_plugin_that_hangs_while_activating_fails_alone_at_load_timeout(
        write_plugin: WritePlugin, tmp_path: Path, runtime: str) -> None:
    code = HANGS_IN_ACTIVATE if runtime == "python" else HANGS_IN_CHILD
    write_plugin("stuck", code=code, runtime=runtime)
    write_plugin("fine")
    # a process plugin's start (spawn, handshake) must fit in the bound on a loaded machine
    bound = 0.5 if runtime == "python" else 5.0
    async with PluginHost([tmp_path / "plugins"], load_timeout=bound) as host:
        report = await host.start()
        assert host.get("fine").state is State.ACTIVE
        stuck = host.get("stuck")
        assert stuck.state is State.FAILED, report
        assert stuck.error.code == "plugin.timeout" and stuck.phase == "activate"
        assert "load_timeout" in stuck.error.message
        assert stuck.instance is None  # torn down: a process plugin's child is gone
    with pytest.raises(ValueError, match="load_timeout"):
        PluginHost([], load_timeout=0)


async def test_discovery_without_listeners_registers_each_plugin_in_its_first_state(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    # Nobody listens: each record starts installed (or disabled) without a move from
    # discovered; the counts and what listeners see afterwards are as with a listener.
    for pid in ("a", "b", "off"):
        write_plugin(pid)
    async with PluginHost([plugins_dir], disabled=["off"]) as host:
        host.discover()
        assert {r.id: r.state for r in host.registry} == {
            "a": State.INSTALLED, "b": State.INSTALLED, "off": State.DISABLED}
        counts = host.registry.state_counts()
        assert (counts[State.INSTALLED], counts[State.DISABLED], counts[State.DISCOVERED]) == \
            (2, 1, 0)
        events: list[LifecycleEvent] = []
        host.lifecycle.subscribe(events.append)
        host.resolve()
        assert sorted((e.plugin_id, e.old, e.new) for e in events) == [
            ("a", State.INSTALLED, State.RESOLVED), ("b", State.INSTALLED, State.RESOLVED)]
        assert host.registry.state_counts()[State.RESOLVED] == 2


async def test_builtin_runtimes_are_created_on_first_use(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    # A host whose plugins all run in-process never builds the process runtime; both are
    # listed as the host's, and a plugin's status says what its runtime enforces.
    write_plugin("inproc")
    async with PluginHost([plugins_dir]) as host:
        assert host._runtimes == {}
        assert host.status()["runtimes"] == ["process", "python"]
        await host.start()
        assert sorted(host._runtimes) == ["python"]
        assert host.status("inproc")["capabilities"]
        assert sorted(host._runtimes) == ["python"]
        assert host.runtime_availability()["process"] is None
