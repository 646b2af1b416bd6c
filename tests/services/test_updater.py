"""Update (with state handover), failure keeping the old version, version history, rollback."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from plughost.errors import PlughostError
from tests.services.conftest import make_settings


async def _refused_update(svc: Any, snapshot: Any, code: str, *args: Any) -> PlughostError:
    before = snapshot(svc.settings, svc)
    with pytest.raises(PlughostError) as info:
        await svc.update(*args)
    assert info.value.code == code, info.value.to_dict()
    assert snapshot(svc.settings, svc) == before
    return info.value


async def test_update_hands_state_over_and_switches_version(service, make_package,
                                                            state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    assert await service.host.call("hello", "ping") == ["1.0.0", 1]
    assert await service.host.call("hello", "ping") == ["1.0.0", 2]
    result = await service.update("hello", make_package("hello", "1.1.0"))
    assert (result.from_version, result.to_version, result.state) == ("1.0.0", "1.1.0",
                                                                      "active")
    assert await service.host.call("hello", "ping") == ["1.1.0", 3]
    plugin = service.host.get("hello").instance.plugin_object
    assert plugin.imported_from == "1.0.0"
    versions = await service.versions("hello")
    assert [(v.version, v.current) for v in versions] == [("1.1.0", True), ("1.0.0", False)]
    snap = state_snapshot(service.settings, service)
    assert sorted(snap["objects"]) == ["plugins/hello/1.0.0/hello_1.0.0.zip",
                                       "plugins/hello/1.1.0/hello_1.1.0.zip"]
    assert snap["running"]["hello"][:2] == ("active", "1.1.0")
    actions = [e["action"] for e in await service.audit(plugin_id="hello")]
    assert actions == ["plugin.update", "plugin.install"]


async def test_failed_activation_of_new_version_keeps_old_running(service, make_package,
                                                                  state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    await service.host.call("hello", "ping")
    broken = make_package("hello", "2.0.0", code="""
        from plughost.sdk import Plugin

        class Main(Plugin):
            def import_state(self, state, from_version):
                self.got = state

            def activate(self, ctx):
                raise RuntimeError("2.0.0 cannot start")
    """)
    error = await _refused_update(service, state_snapshot, "plugin.activate", "hello", broken)
    assert "2.0.0 cannot start" in error.message
    # The old version runs again, with the state it had.
    assert await service.host.call("hello", "ping") == ["1.0.0", 2]


async def test_failed_health_check_keeps_old_version(service, make_package, state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    sick = make_package("hello", "2.0.0", code="""
        from plughost.runtimes.base import Health
        from plughost.sdk import Plugin

        class Main(Plugin):
            def health(self):
                return Health(False, "database unreachable")
    """)
    error = await _refused_update(service, state_snapshot, "install.health", "hello", sick)
    assert "database unreachable" in error.message
    assert (await service.host.call("hello", "ping"))[0] == "1.0.0"


async def test_state_that_is_not_json_refuses_the_update(service, make_package,
                                                         state_snapshot):
    await service.install(make_package("hello", "1.0.0", code="""
        from plughost.sdk import Plugin

        class Main(Plugin):
            def export_state(self):
                return {"handle": object()}

            def ping(self):
                return "old"
    """))
    error = await _refused_update(service, state_snapshot, "install.state", "hello",
                                  make_package("hello", "2.0.0"))
    assert "JSON" in error.message
    assert await service.host.call("hello", "ping") == "old"


async def test_update_to_a_kept_or_current_version_is_refused(service, make_package,
                                                              state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    error = await _refused_update(service, state_snapshot, "install.same_version", "hello",
                                  make_package("hello", "1.0.0"))
    assert "--force" in error.message
    await service.update("hello", make_package("hello", "1.1.0"))
    error = await _refused_update(service, state_snapshot, "install.same_version", "hello",
                                  make_package("hello", "1.0.0"))
    assert "rollback hello --to 1.0.0" in error.message


async def test_forced_update_reinstalls_the_same_version_beside_the_kept_one(
        service, make_package, state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    assert await service.host.call("hello", "ping") == ["1.0.0", 1]
    before = state_snapshot(service.settings, service)
    fixed = make_package("hello", "1.0.0", code="""
        from plughost.sdk import Plugin

        class Main(Plugin):
            def activate(self, ctx):
                self.count = getattr(self, "count", 0)

            def ping(self):
                self.count += 1
                return ["fixed", self.count]

            def export_state(self):
                return {"count": self.count}

            def import_state(self, state, from_version):
                self.count = state["count"]
    """)
    result = await service.update("hello", fixed, force=True)
    assert (result.from_version, result.to_version, result.state) == ("1.0.0", "1.0.0",
                                                                      "active")
    assert await service.host.call("hello", "ping") == ["fixed", 2]  # state handed over
    after = state_snapshot(service.settings, service)
    # One kept version, its new files only: the replaced blob and directory are gone.
    versions = await service.versions("hello")
    assert [v.version for v in versions] == ["1.0.0"]
    assert versions[0].sha256 == hashlib.sha256(fixed.read_bytes()).hexdigest()
    assert len(after["objects"]) == 1 and after["objects"] != before["objects"]
    audit = (await service.audit(plugin_id="hello"))[0]
    assert audit["action"] == "plugin.update" and audit["details"]["reinstalled"] is True


async def test_failed_forced_reinstall_leaves_the_kept_version_untouched(
        service, make_package, state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    await service.host.call("hello", "ping")
    broken = make_package("hello", "1.0.0", code="""
        from plughost.sdk import Plugin

        class Main(Plugin):
            def activate(self, ctx):
                raise RuntimeError("the reinstall cannot start")
    """)
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError, match="the reinstall cannot start"):
        await service.update("hello", broken, force=True)
    assert state_snapshot(service.settings, service) == before
    assert await service.host.call("hello", "ping") == ["1.0.0", 2]


async def test_update_with_another_plugins_package_is_refused(service, make_package,
                                                              state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    await _refused_update(service, state_snapshot, "install.wrong_plugin", "hello",
                          make_package("other", "2.0.0"))


async def test_update_that_breaks_a_dependent_is_refused(service, make_package, state_snapshot):
    await service.install(make_package("lib", "1.0.0"))
    await service.install(make_package("app", "1.0.0", dependencies={"lib": "^1.0"}))
    error = await _refused_update(service, state_snapshot, "resolve.breaks_dependents", "lib",
                                  make_package("lib", "2.0.0"))
    assert "app" in error.message


async def test_update_of_a_dependency_reactivates_its_dependents(service, make_package):
    await service.install(make_package("lib", "1.0.0"))
    await service.install(make_package("app", "1.0.0", dependencies={"lib": "^1.0"}))
    await service.update("lib", make_package("lib", "1.5.0"))
    assert service.host.get("app").state.value == "active"
    assert service.host.get("lib").state.value == "active"
    assert (await service.host.call("lib", "ping"))[0] == "1.5.0"


async def test_update_and_rollback_judge_what_the_change_touches_not_every_plugin(
        service, make_package, state_snapshot, monkeypatch):
    # The same refusals as against every installed manifest, read by id: the dependents,
    # what the new and the current version use, and the current version itself.
    await service.install(make_package("base", "1.0.0"))
    await service.install(make_package("lib", "1.0.0"))
    await service.update("lib", make_package("lib", "1.1.0", dependencies={"base": "^1.0"}))
    await service.install(make_package("app", "1.0.0", dependencies={"lib": "^1.1"}))
    for i in range(5):
        await service.install(make_package(f"bystander-{i}"))

    def every_plugin(self, **_: object) -> None:
        raise AssertionError("judging the change read every installed plugin")

    monkeypatch.setattr(type(service.repository), "iter_plugins", every_plugin)
    error = await _refused_update(service, state_snapshot, "resolve.breaks_dependents", "lib",
                                  make_package("lib", "2.0.0"))
    assert "app" in error.message
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError) as refused:  # 1.0.0 is outside app's ^1.1
        await service.rollback("lib", to="1.0.0")
    assert refused.value.code == "resolve.breaks_dependents"
    assert state_snapshot(service.settings, service) == before
    result = await service.update("lib", make_package("lib", "1.2.0",
                                                      dependencies={"base": "^1.0"}))
    assert result.to_version == "1.2.0"
    assert (await service.rollback("lib", to="1.1.0")).to_version == "1.1.0"
    assert service.host.get("app").state.value == "active"


async def test_only_keep_versions_are_kept(trusted, make_package, state_snapshot):
    from plughost.services.manager import PluginService

    settings = make_settings(trusted.home, database_url=trusted.database_url,
                             object_store=trusted.object_store, keep_versions=2)
    async with PluginService(settings) as svc:
        await svc.install(make_package("hello", "1.0.0"))
        await svc.update("hello", make_package("hello", "1.1.0"))
        result = await svc.update("hello", make_package("hello", "1.2.0"))
        assert result.pruned == ("1.0.0",)
        assert [v.version for v in await svc.versions("hello")] == ["1.2.0", "1.1.0"]
        snap = state_snapshot(settings, svc)
        assert sorted(snap["objects"]) == ["plugins/hello/1.1.0/hello_1.1.0.zip",
                                           "plugins/hello/1.2.0/hello_1.2.0.zip"]
        version_dirs = {k.split("/")[1].rsplit("-", 1)[0] for k in snap["cache"]
                        if k.count("/") == 1}
        assert version_dirs == {"1.1.0", "1.2.0"}
        assert not any(k.startswith("hello/1.0.0-") for k in snap["cache"])


async def test_rollback_returns_to_previous_and_to_named_version(service, make_package):
    await service.install(make_package("hello", "1.0.0"))
    await service.update("hello", make_package("hello", "1.1.0"))
    await service.update("hello", make_package("hello", "1.2.0"))
    await service.host.call("hello", "ping")
    result = await service.rollback("hello")
    assert (result.from_version, result.to_version) == ("1.2.0", "1.1.0")
    assert await service.host.call("hello", "ping") == ["1.1.0", 2]
    result = await service.rollback("hello", to="1.0.0")
    assert result.to_version == "1.0.0"
    assert (await service.host.call("hello", "ping"))[0] == "1.0.0"
    versions = await service.versions("hello")
    assert [v.version for v in versions if v.current] == ["1.0.0"]
    assert len(versions) == 3
    assert [e["action"] for e in await service.audit(action="plugin.rollback")] == [
        "plugin.rollback", "plugin.rollback"]


async def test_rollback_to_unknown_version_is_refused(service, make_package, state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError) as info:
        await service.rollback("hello")
    assert info.value.code == "install.not_kept"
    with pytest.raises(PlughostError) as info:
        await service.rollback("hello", to="0.9.0")
    assert info.value.code == "install.not_kept" and "not kept" in info.value.message
    assert state_snapshot(service.settings, service) == before


async def test_update_of_a_disabled_plugin_switches_files_only(service, make_package):
    await service.install(make_package("hello", "1.0.0"))
    await service.disable("hello")
    result = await service.update("hello", make_package("hello", "1.1.0"))
    assert (result.to_version, result.state) == ("1.1.0", "disabled")
    assert service.host.get("hello").instance is None
    info = await service.enable("hello")
    assert (info.version, info.state) == ("1.1.0", "active")
    assert (await service.host.call("hello", "ping"))[0] == "1.1.0"


BROKEN = """
    from plughost.sdk import Plugin

    class Main(Plugin):
        def activate(self, ctx):
            raise RuntimeError("2.0.0 cannot start")
"""


async def test_update_in_a_service_that_did_not_start_plugins_still_proves_activation(
        trusted, make_package, state_snapshot):
    """A one-shot CLI process does not run the plugins, but an update is only committed once
    the new version has activated and passed its health check."""
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello", "1.0.0"))
    async with PluginService(trusted, start=False) as svc:
        before = state_snapshot(trusted, svc)
        with pytest.raises(PlughostError) as info:
            await svc.update("hello", make_package("hello", "2.0.0", code=BROKEN))
        assert info.value.code == "plugin.activate"
        assert state_snapshot(trusted, svc) == before
        result = await svc.update("hello", make_package("hello", "2.1.0"))
        assert result.state == "active"


async def test_update_of_a_deactivated_plugin_checks_it_then_leaves_it_deactivated(
        service, make_package):
    await service.install(make_package("hello", "1.0.0"))
    await service.deactivate("hello")
    result = await service.update("hello", make_package("hello", "1.1.0"))
    assert (result.to_version, result.state) == ("1.1.0", "deactivated")


async def test_commit_failure_after_the_switch_restores_the_old_version(
        service, make_package, state_snapshot, monkeypatch):
    """Fault injection: the database refuses the commit after the new version already runs.
    The old version comes back with the state the new one had, and nothing is recorded."""
    from plughost.errors import DatabaseUnavailable

    await service.install(make_package("hello", "1.0.0"))
    await service.host.call("hello", "ping")
    before = state_snapshot(service.settings, service)

    def refuse(*args, **kwargs):
        raise DatabaseUnavailable("injected: the database went away")

    monkeypatch.setattr(service.repository, "prune_versions", refuse)
    with pytest.raises(PlughostError) as info:
        await service.update("hello", make_package("hello", "1.1.0"))
    assert info.value.code == "storage.database_unavailable"
    monkeypatch.undo()
    after = state_snapshot(service.settings, service)
    assert after["rows"] == before["rows"] and after["objects"] == before["objects"]
    assert after["cache"] == before["cache"] and after["running"] == before["running"]
    assert await service.host.call("hello", "ping") == ["1.0.0", 2]
    plugin = service.host.get("hello").instance.plugin_object
    assert plugin.imported_from == "1.1.0"
