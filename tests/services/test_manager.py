"""The PluginService facade: queries, uninstall, enable/disable persistence across restarts."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from plughost.errors import PlughostError


async def test_list_filters_and_paginates(service, make_package):
    await service.install(make_package("alpha", extra='type = "notify"\ndescription = "Slack"'))
    await service.install(make_package("beta", extra='type = "music-source"'))
    await service.install(make_package("gamma", extra='type = "notify"'), enable=False)
    page = await service.list_plugins()
    assert [p.id for p in page] == ["alpha", "beta", "gamma"] and page.total == 3
    assert [p.id for p in await service.list_plugins(type="notify")] == ["alpha", "gamma"]
    assert [p.id for p in await service.list_plugins(state="disabled")] == ["gamma"]
    assert [p.id for p in await service.list_plugins(q="SLACK")] == ["alpha"]
    assert [p.id for p in await service.list_plugins(enabled=True)] == ["alpha", "beta"]
    page = await service.list_plugins(limit=1, offset=1)
    assert ([p.id for p in page], page.total) == (["beta"], 3)
    assert page.to_dict()["items"][0]["id"] == "beta"
    with pytest.raises(PlughostError) as info:
        await service.list_plugins(state="sleeping")
    assert info.value.code == "request.invalid"


async def test_plugin_page_is_the_list_as_plugin_resources(service, make_package):
    # The API's page is built straight from the rows: the same resources, cursors and totals
    # as list_plugins' items turned into dicts, whatever the filters.
    await service.install(make_package("alpha", extra='type = "notify"'))
    await service.install(make_package("beta", extra='type = "notify"'), enable=False)
    await service.install(make_package("gamma"))
    for filters in ({}, {"type": "notify"}, {"state": "disabled"}, {"status": 1},
                    {"status": 2},
                    {"enabled": True}, {"q": "GAM"}, {"limit": 2}):
        listed = await service.list_plugins(**filters)
        page = await service.plugin_page(**filters)
        assert page == {"items": [p.to_dict() for p in listed], "total": listed.total,
                        "next_cursor": listed.next_cursor}, filters
    first = await service.plugin_page(limit=2)
    rest = await service.plugin_page(limit=2, cursor=first["next_cursor"])
    assert [p["id"] for p in rest["items"]] == ["gamma"] and rest["next_cursor"] is None


async def test_get_returns_everything_json_ready(service, make_package):
    import json

    await service.install(make_package("lib"))
    await service.install(make_package("app", dependencies={"lib": "^1.0"},
                                       extra='permissions = ["net:api.example.com"]'))
    detail = await service.get("lib")
    assert detail.dependents == ("app",)
    app = await service.get("app")
    assert app.dependencies == {"lib": "^1.0"}
    assert app.grants == ("net:api.example.com",)
    assert [v.version for v in app.versions] == ["1.0.0"]
    json.dumps(app.to_dict())
    with pytest.raises(PlughostError) as info:
        await service.get("nope")
    assert info.value.code == "plugin.not_found"


async def test_metrics_count_calls_and_errors(service, make_package):
    await service.install(make_package("hello"))
    await service.host.call("hello", "ping")
    await service.host.call("hello", "ping")
    with pytest.raises(TypeError):
        await service.host.call("hello", "ping", unexpected=1)
    metrics = await service.metrics()
    assert metrics["hello"]["calls"] == 3 and metrics["hello"]["errors"] == 1


async def test_uninstall_removes_rows_blobs_and_files(service, make_package, state_snapshot):
    empty = state_snapshot(service.settings, service)
    await service.install(make_package("hello", "1.0.0"))
    data_dir = service.settings.home / "data" / "hello"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "notes.txt").write_text("plugin data")
    await service.update("hello", make_package("hello", "1.1.0"))
    result = await service.uninstall("hello")
    assert result.removed == ("hello",)
    assert sorted(result.versions["hello"]) == ["1.0.0", "1.1.0"]
    assert state_snapshot(service.settings, service) == empty
    assert not data_dir.exists()
    actions = [e["action"] for e in await service.audit(plugin_id="hello")]
    assert actions[0] == "plugin.uninstall"
    with pytest.raises(PlughostError) as info:
        await service.uninstall("hello")
    assert info.value.code == "plugin.not_found"


async def test_install_update_and_uninstall_change_states_only_through_the_host(
        service, make_package):
    seen = []
    service.host.lifecycle.subscribe(lambda e: seen.append((e.plugin_id, e.old.value,
                                                            e.new.value)))
    await service.install(make_package("hello", "1.0.0"), enable=False)
    assert seen[-1] == ("hello", "discovered", "disabled")
    await service.enable("hello")
    await service.update("hello", make_package("hello", "1.1.0"))
    await service.uninstall("hello")
    assert seen[-1] == ("hello", "resolved", "uninstalled")
    # one record went through every state: each change followed the last (no hidden writes)
    for (_, _, before), (_, after, _) in itertools.pairwise(seen):
        assert before == after


async def test_the_facade_answers_health_states_and_commands_without_the_host(
        service, make_package):
    await service.install(make_package("hello"))
    report = await service.health("hello")
    assert (report.plugin_id, report.healthy, report.state) == ("hello", True, "active")
    await service.deactivate("hello")
    assert (await service.health("hello")).to_dict() == {
        "plugin_id": "hello", "healthy": False, "state": "deactivated",
        "detail": "not active (deactivated)", "data": {}}
    assert service.plugin_states() == {"deactivated": 1}
    assert service.command_names() == []
    seen = []
    undo = service.on_lifecycle(lambda e: seen.append(e.new.value))
    await service.activate("hello")
    undo()
    assert seen == ["active"]


async def test_uninstall_refused_while_enabled_plugins_depend_on_it(service, make_package,
                                                                    state_snapshot):
    await service.install(make_package("lib"))
    await service.install(make_package("app", dependencies={"lib": "^1.0"}))
    await service.install(make_package("top", dependencies={"app": "^1.0"}))
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError) as info:
        await service.uninstall("lib")
    assert info.value.code == "resolve.dependents"
    assert "app" in info.value.message and "--cascade" in info.value.message
    assert state_snapshot(service.settings, service) == before
    result = await service.uninstall("lib", cascade=True)
    assert result.removed == ("top", "app", "lib")
    assert (await service.list_plugins()).total == 0
    assert len(service.host.registry) == 0


async def test_uninstall_can_keep_the_plugin_data(service, make_package):
    await service.install(make_package("hello"))
    data_dir = service.settings.home / "data" / "hello"
    data_dir.mkdir(parents=True, exist_ok=True)
    await service.uninstall("hello", keep_data=True)
    assert data_dir.is_dir()


async def test_uninstall_allowed_when_the_dependent_is_disabled(service, make_package):
    await service.install(make_package("lib"))
    await service.install(make_package("app", dependencies={"lib": "^1.0"}))
    await service.disable("app")
    await service.uninstall("lib")
    assert [p.id for p in await service.list_plugins()] == ["app"]


async def test_disable_refused_while_enabled_dependents_exist(service, make_package,
                                                              state_snapshot):
    await service.install(make_package("lib"))
    await service.install(make_package("app", dependencies={"lib": "^1.0"}))
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError) as info:
        await service.disable("lib")
    assert info.value.code == "resolve.dependents" and "app" in info.value.message
    assert state_snapshot(service.settings, service) == before


async def test_enable_and_disable_persist_across_restarts(trusted, make_package):
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
        await svc.install(make_package("other"))
        info = await svc.disable("hello")
        assert (info.state, info.enabled) == ("disabled", False)
    async with PluginService(trusted) as svc:
        record = svc.host.get("hello")
        assert record.state.value == "disabled" and record.instance is None
        assert svc.host.get("other").state.value == "active"
        assert [(p.id, p.state) for p in await svc.list_plugins()] == [
            ("hello", "disabled"), ("other", "active")]
        with pytest.raises(PlughostError) as info_:
            await svc.activate("hello")
        assert "enable it first" in info_.value.message
        info = await svc.enable("hello")
        assert (info.state, info.enabled) == ("active", True)
    async with PluginService(trusted) as svc:
        assert svc.host.get("hello").state.value == "active"
        assert await svc.host.call("hello", "ping") == ["1.0.0", 1]
        events = [e["action"] for e in await svc.audit(plugin_id="hello")]
        assert events[:2] == ["plugin.enable", "plugin.disable"]


async def test_a_start_reads_and_registers_the_installed_plugins_with_the_collector_paused(
    trusted, make_package, monkeypatch
):
    """Reading and registering every installed plugin builds objects that all stay alive:
    a start over 10,000 plugins spent 0.15 s of its 0.9 s in two full collections walking
    them (see core._gc)."""
    import gc

    from plughost.services.manager import PluginService
    from plughost.storage.repository import Repository

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
    seen: dict[str, bool] = {}
    read, register = Repository.installed_with_versions, PluginService._register

    def reading(self, *args, **kwargs):
        seen["read"] = gc.isenabled()
        return read(self, *args, **kwargs)

    def registering(*args, **kwargs):
        seen["register"] = gc.isenabled()
        return register(*args, **kwargs)

    monkeypatch.setattr(Repository, "installed_with_versions", reading)
    monkeypatch.setattr(PluginService, "_register", staticmethod(registering))
    async with PluginService(trusted) as svc:
        assert svc.host.get("hello").state.value == "active"
        assert gc.isenabled()
    assert seen == {"read": False, "register": False}


async def test_a_recorded_manifest_that_no_longer_validates_is_read_from_the_files(
        trusted, make_package):
    # The start reads each manifest from its version row (plain JSON, validated field by
    # field); a row that fails validation falls back to the plugin's own plugin.toml.
    import sqlalchemy as sa

    from plughost.services.manager import PluginService
    from plughost.storage.backends import open_storage

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
    with open_storage(trusted) as storage, storage.database.engine.begin() as conn:
        conn.execute(sa.text("UPDATE plugin_versions SET manifest = :m WHERE plugin_id = 'hello'"),
                     {"m": '{"id": "hello", "version": 5}'})
    async with PluginService(trusted) as svc:
        assert svc.host.get("hello").state.value == "active"
        assert str(svc.host.get("hello").manifest.version) == "1.0.0"
        assert await svc.host.call("hello", "ping") == ["1.0.0", 1]


async def test_deactivate_and_activate(service, make_package):
    await service.install(make_package("hello"))
    info = await service.deactivate("hello")
    assert info.state == "deactivated" and info.enabled
    info = await service.activate("hello")
    assert info.state == "active"


async def test_cli_style_service_does_not_start_plugins_but_shows_last_state(trusted,
                                                                            make_package):
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
    async with PluginService(trusted, start=False) as svc:
        assert svc.host.get("hello").instance is None
        [info] = (await svc.list_plugins()).items
        assert info.state == "active"  # as last observed by a running service


MARKING = """
from plughost.sdk import Plugin

with open({marks!r}, "a") as fh:
    fh.write("import\\n")

class Main(Plugin):
    def activate(self, ctx):
        with open({marks!r}, "a") as fh:
            fh.write("activate\\n")
"""


async def test_a_service_that_runs_no_plugins_records_the_intent_only(trusted, make_package,
                                                                     tmp_path):
    from plughost.services.manager import PluginService

    marks = tmp_path / "marks.txt"
    code = MARKING.format(marks=str(marks))
    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        assert (await svc.install(make_package("hello", code=code))).state == "resolved"
        await svc.disable("hello")
        info = await svc.enable("hello")
        assert (info.state, info.enabled, info.live) == ("installed", True, False)
        await svc.update("hello", make_package("hello", "1.1.0", code=code))
        assert (await svc.get("hello")).info.version == "1.1.0"
        for operation in (svc.activate, svc.deactivate, svc.reload):
            with pytest.raises(PlughostError) as refused:
                await operation("hello")
            assert refused.value.code == "server.not_running"
            assert str(trusted.home) in refused.value.message
    assert not marks.exists()  # no plugin code was imported, let alone activated
    async with PluginService(trusted) as svc:  # the next start runs what was recorded
        [info] = (await svc.list_plugins()).items
        assert (info.version, info.state, info.live) == ("1.1.0", "active", True)
    assert marks.read_text().split() == ["import", "activate"]
    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        [info] = (await svc.list_plugins()).items
        assert (info.state, info.live) == ("installed", False)  # never "active": nothing runs
        assert (await svc.list_plugins(state="active")).total == 0
        assert [i.id for i in await svc.list_plugins(state="installed")] == ["hello"]
        # the counts of the list's menus count what it shows, not the last server's states
        counts = await svc.plugin_counts()
        assert (counts["total"], counts["by"]["state"]) == (1, {"installed": 1})
        assert (await svc.plugin_counts(state="active"))["total"] == 0
    async with PluginService(trusted) as svc:  # a server's: the stored states, counted
        counts = await svc.plugin_counts(state="active")
        assert (counts["total"], counts["by"]["state"]) == (1, {"active": 1})
    with pytest.raises(PlughostError) as refused:
        PluginService(trusted, start=True, run_plugins=False)
    assert refused.value.code == "request.invalid"


async def test_a_service_that_runs_no_plugins_registers_only_what_an_operation_touches(
        trusted, make_package, monkeypatch):
    # The CLI beside no server: a command on one plugin must cost that plugin and its
    # neighbours (what requires it, what they use), never a read of every installed plugin,
    # and still apply the host's rules to them exactly as a host with every plugin would.
    from plughost.services.manager import PluginService
    from plughost.storage.repository import Repository

    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        await svc.install(make_package("lib"))
        await svc.install(make_package("app", dependencies={"lib": "^1.0"}))
        await svc.install(make_package("top", dependencies={"app": "*"}))
        await svc.install(make_package("user", extra='[optional-dependencies]\nlib = "*"'))
        for i in range(12):
            await svc.install(make_package(f"bystander-{i:02d}"))
    whole_reads = []
    read = Repository.installed_with_versions

    def counted(self, ids=None):
        if ids is None:
            whole_reads.append(1)
        return read(self, ids)

    monkeypatch.setattr(Repository, "installed_with_versions", counted)
    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        assert (await svc.get("lib")).dependents == ("app", "top")
        assert (await svc.get("top")).dependents == ()
        with pytest.raises(PlughostError) as refused:
            await svc.disable("lib")  # enabled plugins require it, transitively
        assert refused.value.code == "resolve.dependents"
        assert refused.value.details["dependents"] == ["app", "top"]
        await svc.disable("top")
        await svc.disable("app")
        await svc.disable("lib")
        with pytest.raises(PlughostError) as refused:
            await svc.enable("app")  # what it requires is disabled
        assert (await svc.info("app")).enabled is False
        await svc.enable("lib")
        assert (await svc.enable("app")).enabled and (await svc.enable("top")).enabled
        with pytest.raises(PlughostError) as refused:
            await svc.update("lib", make_package("lib", "2.0.0"))  # app needs ^1.0
        assert refused.value.code == "resolve.breaks_dependents"
        assert (await svc.update("lib", make_package("lib", "1.1.0"))).to_version == "1.1.0"
        await svc.uninstall("user")
        registered = set(svc._h.registry.ids())
        assert not whole_reads and not any(pid.startswith("bystander") for pid in registered)
        assert registered <= {"lib", "app", "top", "user"}
        # Asking for the host itself registers every installed plugin.
        assert len(svc.host.registry) == 15 and whole_reads == [1]
        assert str(svc.host.registry.get("lib").manifest.version) == "1.1.0"
        assert (await svc.get("lib")).dependents == ("app", "top")


async def test_a_neighbour_whose_stored_manifest_is_damaged_does_not_stop_an_operation(
        trusted, make_package):
    # A row edited behind plughost's back (dependencies no longer a table) is read as a
    # neighbour without breaking the operation: the host registers what the installed
    # version's files say, as a host with every plugin does.
    import json

    import sqlalchemy as sa

    from plughost.services.manager import PluginService
    from plughost.storage.backends import open_storage

    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        await svc.install(make_package("lib"))
        await svc.install(make_package("app", dependencies={"lib": "^1.0"}))
    with open_storage(trusted) as storage:
        row = storage.repository.get_plugin("app")
        damaged = {**row.manifest, "dependencies": 5}
        with storage.database.engine.begin() as conn:
            conn.execute(sa.text("UPDATE plugins SET manifest = :m WHERE id = 'app'"),
                         {"m": json.dumps(damaged)})
    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        assert (await svc.get("lib")).dependents == ("app",)
        with pytest.raises(PlughostError) as refused:
            await svc.disable("lib")
        assert refused.value.code == "resolve.dependents"
        assert (await svc.disable("app")).enabled is False


async def test_service_refuses_use_before_open_and_after_close(trusted):
    from plughost.services.manager import PluginService

    svc = PluginService(trusted)
    with pytest.raises(PlughostError) as info:
        await svc.list_plugins()
    assert info.value.code == "service.closed"
    await svc.start()
    await svc.close()
    with pytest.raises(PlughostError):
        await svc.list_plugins()
    await svc.close()  # idempotent


async def test_development_folder_plugins_run_beside_installed_ones(trusted, make_package,
                                                                   write_plugin):
    from plughost.services.manager import PluginService

    write_plugin("devplug", directory=trusted.plugins_dir, description="work in progress")
    async with PluginService(trusted) as svc:
        assert svc.host.get("devplug").state.value == "active"
        await svc.install(make_package("hello"))
        page = await svc.list_plugins()
        assert [(p.id, p.source, p.state) for p in page] == [
            ("devplug", "directory", "active"), ("hello", "local", "active")]
        assert (await svc.plugin_page())["items"] == [p.to_dict() for p in page]
        assert [p.id for p in await svc.list_plugins(q="progress")] == ["devplug"]
        assert [p.id for p in await svc.list_plugins(enabled=False)] == []
        detail = await svc.get("devplug")
        assert (detail.info.source, detail.versions) == ("directory", ())
        for enable in (True, False):
            with pytest.raises(PlughostError) as info:
                await svc.install(make_package("devplug"), enable=enable)
            assert info.value.code == "install.conflict"
        assert svc.host.get("devplug").source == "directory"



async def test_enable_of_a_plugin_that_cannot_activate_is_refused_and_stays_disabled(
        service, make_package, state_snapshot, monkeypatch):
    await service.install(make_package("hello", code="""
        import os
        from plughost.sdk import Plugin

        class Main(Plugin):
            def activate(self, ctx):
                if os.environ.get("HELLO_BROKEN"):
                    raise RuntimeError("broken on purpose")
    """))
    await service.disable("hello")
    before = state_snapshot(service.settings, service)
    monkeypatch.setenv("HELLO_BROKEN", "1")
    with pytest.raises(PlughostError) as info:
        await service.enable("hello")
    monkeypatch.delenv("HELLO_BROKEN")
    assert "broken on purpose" in info.value.message
    assert state_snapshot(service.settings, service) == before
    assert (await service.enable("hello")).state == "active"


async def test_refresh_picks_up_what_another_process_changed(trusted, make_package):
    """A server-like service (plugins running) and a CLI-like one on the same storage: the
    server's refresh() follows installs, updates (state handed over), disable/enable and
    uninstalls done by the other."""
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as server:
        async with PluginService(trusted, start=False) as cli:
            await cli.install(make_package("hello", "1.0.0"))
        assert await server.refresh() == ["hello"]
        assert await server.host.call("hello", "ping") == ["1.0.0", 1]
        assert await server.refresh() == []
        async with PluginService(trusted, start=False) as cli:
            await cli.update("hello", make_package("hello", "1.1.0"))
        assert await server.refresh() == ["hello"]
        assert await server.host.call("hello", "ping") == ["1.1.0", 2]
        async with PluginService(trusted, start=False) as cli:
            await cli.disable("hello")
        assert await server.refresh() == ["hello"]
        assert server.host.get("hello").state.value == "disabled"
        async with PluginService(trusted, start=False) as cli:
            await cli.enable("hello")
        await server.refresh()
        assert server.host.get("hello").state.value == "active"
        async with PluginService(trusted, start=False) as cli:
            await cli.uninstall("hello")
        assert await server.refresh() == ["hello"]
        assert "hello" not in server.host.registry


async def test_refresh_applies_only_what_the_change_log_names(trusted, make_package):
    """refresh() reads the change log from its position and touches only the plugins named
    there: a row altered behind the repository's back (no change recorded) is not re-read,
    while the plugin another process changed is; once the log is pruned past its position it
    compares everything instead."""
    import sqlalchemy as sa

    from plughost.services.manager import PluginService
    from plughost.storage.models import PluginRow

    async with PluginService(trusted) as server:
        async with PluginService(trusted, start=False) as cli:
            await cli.install(make_package("alpha"))
            await cli.install(make_package("beta"))
        assert await server.refresh() == ["alpha", "beta"]
        assert await server.refresh() == []  # own state writes are not changes to apply

        def sneak() -> None:  # a raw write: no change row
            with server.repository.database.engine.begin() as conn:
                conn.execute(sa.update(PluginRow).where(PluginRow.id == "alpha")
                             .values(enabled=False))

        await asyncio.to_thread(sneak)
        async with PluginService(trusted, start=False) as cli:
            await cli.disable("beta")
        assert await server.refresh() == ["beta"]
        assert server.host.get("alpha").state.value == "active"  # not re-read
        assert server.host.get("beta").state.value == "disabled"

        last = await asyncio.to_thread(server.repository.last_change_seq)
        await asyncio.to_thread(server.repository.prune_changes, last)
        server._change_seq = 0  # a position the log no longer reaches
        assert await server.refresh() == ["alpha"]  # the full comparison finds the raw write
        assert server.host.get("alpha").state.value == "disabled"


async def test_refresh_interval_runs_in_the_background(trusted, make_package):
    import asyncio

    from plughost.services.manager import PluginService

    async with PluginService(trusted, refresh_interval=0.05) as server:
        async with PluginService(trusted, start=False) as cli:
            await cli.install(make_package("hello"))
        deadline = asyncio.get_running_loop().time() + 10
        while (record := server.host.registry.find("hello")) is None or \
                record.state.value != "active":
            assert asyncio.get_running_loop().time() < deadline, "refresh never ran"
            await asyncio.sleep(0.02)


async def test_config_and_permissions_pass_through_to_the_live_managers(service, make_package):
    await service.install(make_package("hello", extra="""
        permissions = ["net:api.example.com"]
        [config.schema]
        type = "object"
        [config.schema.properties.greeting]
        type = "string"
        [config.schema.properties.token]
        type = "string"
        writeOnly = true
        [config.defaults]
        greeting = "hi"
    """))
    current = await service.config("hello")
    assert (current["config"]["greeting"], current["version"]) == ("hi", 1)  # 1: install
    changed = await service.set_config("hello", {"greeting": "hello", "token": "s3cret"},
                                       actor="test")
    assert changed["config"] == {"greeting": "hello", "token": "***"}
    assert (await service.config("hello", redact=False))["config"]["token"] == "s3cret"
    with pytest.raises(PlughostError) as info:
        await service.set_config("hello", {"greeting": 5})
    assert info.value.code == "config.invalid"
    history = await service.config_history("hello")
    assert [(h["version"], h["action"], h["actor"]) for h in history] == [
        (1, "install", "install"), (2, "set", "test")]
    # One source of truth: the live managers wrote the plughost database.
    stored = await asyncio.to_thread(service.repository.get_config, "hello")
    assert (stored.revision, stored.config) == (2, {"greeting": "hello", "token": "s3cret"})
    restored = await service.restore_config("hello", 1)
    assert restored["version"] == 3 and restored["config"]["greeting"] == "hi"
    await service.set_config("hello", {"greeting": "hello"})
    assert await service.grants("hello") == ["net:api.example.com"]
    assert await service.revoke("hello", "net:api.example.com") == []
    assert await service.grant("hello", "net:*.example.org") == ["net:*.example.org"]
    rows = await asyncio.to_thread(service.repository.list_grants, "hello")
    assert [g.scope for g in rows] == ["net:*.example.org"]
    detail = await service.get("hello")
    assert detail.grants == ("net:*.example.org",) and detail.config["greeting"] == "hello"
    await service.uninstall("hello")
    assert service.services.permissions.grants("hello") == []
    with pytest.raises(PlughostError) as info:
        await service.grants("hello")
    assert info.value.code == "plugin.not_found"


async def test_grants_live_in_the_database_and_are_enforced_at_once(service, make_package,
                                                                    state_snapshot):
    perms = service.services.permissions
    await service.install(make_package("hello", "1.0.0",
                                       extra='permissions = ["net:api.example.com"]'))
    rows = await asyncio.to_thread(service.repository.list_grants, "hello")
    assert [g.scope for g in rows] == ["net:api.example.com"]
    assert perms.allowed("hello", "net", "api.example.com:443")
    assert not perms.allowed("hello", "net", "other.example.com:443")
    # An update declaring a new scope grants it in its own transaction, effective at once.
    await service.update("hello", make_package(
        "hello", "1.1.0", extra='permissions = ["net:api.example.com", "fs:read:/srv/data"]'))
    assert perms.allowed("hello", "fs:read", "/srv/data/x")
    # A failed update declaring another scope leaves no grant behind.
    before = state_snapshot(service.settings, service)
    broken = make_package("hello", "2.0.0", extra='permissions = ["net:*"]', code="""
        from plughost.sdk import Plugin

        class Main(Plugin):
            def activate(self, ctx):
                raise RuntimeError("no")
    """)
    with pytest.raises(PlughostError):
        await service.update("hello", broken)
    assert state_snapshot(service.settings, service) == before
    assert not perms.allowed("hello", "net", "evil.example:443")


async def test_refresh_picks_up_grants_and_config_changed_elsewhere(trusted, make_package):
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as server:
        await server.install(make_package("hello", extra="""
            [config.defaults]
            greeting = "hi"
        """))
        async with PluginService(trusted, start=False) as cli:
            await cli.grant("hello", "net:api.example.com", actor="cli")
            await cli.set_config("hello", {"greeting": "hey"}, actor="cli")
        rows = await asyncio.to_thread(server.repository.list_grants, "hello")
        assert [g.scope for g in rows] == ["net:api.example.com"]  # one database for both
        assert "hello" in await server.refresh()
        assert server.services.permissions.allowed("hello", "net", "api.example.com:443")
        ctx = server.host.get("hello").context
        assert ctx.config["greeting"] == "hey"


async def test_permission_decisions_are_audited_beside_install_events(service, make_package):
    await service.install(make_package("hello", extra='permissions = ["net:api.example.com"]'))
    await service.grant("hello", "fs:read:/srv", actor="ops", reason="needs the data")
    assert not service.services.permissions.allowed("hello", "net", "evil.example:443")
    import contextlib

    from plughost.errors import PermissionDenied

    with contextlib.suppress(PermissionDenied):
        service.services.permissions.check("hello", "net", "evil.example:443")
    actions = [(e["action"], e["outcome"]) for e in await service.audit(plugin_id="hello")]
    assert ("permission.grant", "ok") in actions
    assert ("permission.check", "denied") in actions
    assert ("plugin.install", "ok") in actions
    events = service.services.permissions.audit.query(plugin="hello", action="grant")
    assert ("fs:read:/srv", "ops", "needs the data") in [(e.scope, e.actor, e.reason)
                                                         for e in events]


NEEDS_WEBHOOK = '''
[config.schema]
type = "object"
required = ["webhook_url"]
[config.schema.properties.webhook_url]
type = "string"
'''


async def test_plugin_missing_required_config_installs_as_needs_config(service, make_package):
    from plughost.core.lifecycle import State
    from plughost.services.manager import PluginService

    result = await service.install(make_package("notify", extra=NEEDS_WEBHOOK))
    assert result.state == "needs-config"
    record = service.host.get("notify")
    assert record.state is State.NEEDS_CONFIG and record.instance is None
    assert "webhook_url" in record.error.message and "config set notify" in record.hint
    info = (await service.list_plugins()).items[0]
    assert (info.id, info.state, info.enabled) == ("notify", "needs-config", True)
    assert (await service.get("notify")).info.error["code"] == "config.invalid"
    # Activating without the value is refused, naming what to set; nothing changes.
    with pytest.raises(PlughostError) as refused:
        await service.activate("notify")
    assert refused.value.code == "config.invalid" and "webhook_url" in refused.value.message
    assert service.host.get("notify").state is State.NEEDS_CONFIG
    # config set works on it; enabling it once the config is valid activates it.
    await service.set_config("notify", {"webhook_url": "https://hooks.example.com/x"})
    assert (await service.enable("notify")).state == "active"
    assert await service.host.call("notify", "ping") == ["1.0.0", 1]
    # A second host on the same home starts it, since the config is stored.
    await service.close()
    async with PluginService(service.settings) as again:
        assert again.host.get("notify").state is State.ACTIVE
        assert again.load_report is not None and again.load_report.ok


async def test_needs_config_is_not_a_failure_in_the_load_report(service, make_package):
    from plughost.services.manager import PluginService

    await service.install(make_package("notify", extra=NEEDS_WEBHOOK))
    await service.install(make_package("hello"))
    await service.close()
    async with PluginService(service.settings) as again:
        report = again.load_report
        assert report is not None and report.ok and report.failed == []
        outcome = report["notify"]
        assert outcome.state.value == "needs-config" and "config set notify" in (outcome.hint or "")
        assert "cfg notify" in str(report) and "ERR" not in str(report)
        assert outcome.to_dict()["error"]["code"] == "config.invalid"
        # Disabling and uninstalling work from needs-config.
        assert (await again.disable("notify")).state == "disabled"
        assert (await again.uninstall("notify")).removed == ("notify",)


async def test_list_pages_by_cursor_without_repeating_or_skipping_while_plugins_come_and_go(
        service, make_package):
    for pid in ("a1", "a3", "a5", "a7"):
        await service.install(make_package(pid))
    first = await service.list_plugins(limit=2)
    assert [p.id for p in first] == ["a1", "a3"] and first.total == 4 and first.next_cursor
    await service.install(make_package("a2"))  # behind the cursor: not in later pages
    await service.install(make_package("a4"))  # ahead of it: in the next page
    await service.uninstall("a5")
    second = await service.list_plugins(limit=2, cursor=first.next_cursor)
    assert [p.id for p in second] == ["a4", "a7"] and second.total == 5
    assert second.next_cursor is None
    assert second.to_dict()["next_cursor"] is None
    with pytest.raises(PlughostError) as info:
        await service.list_plugins(cursor="not-a-cursor")
    assert info.value.code == "request.invalid"
    from plughost.services.resources import encode_cursor

    older = await service.list_plugins(limit=2, cursor=encode_cursor({"offset": 3}))
    assert [p.id for p in older] == ["a4", "a7"]  # a cursor of an older server still works


async def test_state_and_status_filters_see_changes_as_they_happen(service, make_package):
    await service.install(make_package("eager"))
    await service.install(make_package("lazy", extra='activation = ["command:lazy.go"]'))
    await service.install(make_package("off"), enable=False)

    async def ids(**filters):
        return [p.id for p in await service.list_plugins(**filters)]

    assert await ids(state="active") == ["eager"] and await ids(state="resolved") == ["lazy"]
    await service.host.activate("lazy")  # as a first command would: not through the service
    assert await ids(state="active") == ["eager", "lazy"]
    assert await ids(state="resolved") == []
    assert (await service.list_plugins(state="active")).total == 2
    assert await ids(status=1) == ["eager", "lazy"] and await ids(status=0) == ["off"]
    await service.host.deactivate("eager")
    assert await ids(state="deactivated") == ["eager"]


async def test_a_plugin_whose_files_and_package_are_gone_starts_failed_with_its_manifest(
        trusted, make_package):
    """Start reads plugins without their JSON columns; the one that cannot be registered
    gets its recorded manifest read back for the failed record."""
    import shutil

    from plughost.core.lifecycle import State
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
        version = svc.repository.get_version("hello", "1.0.0")
        shutil.rmtree(svc.installer.local_dir(version))
        svc.installer.store.delete(version.object_key)
        shutil.rmtree(svc.settings.cache_dir / "packages", ignore_errors=True)
    async with PluginService(trusted, reconcile=False) as svc:
        record = svc.host.registry.get("hello")
        assert record.state is State.FAILED and record.manifest.id == "hello"
        assert str(record.manifest.version) == version.manifest["version"]
        assert getattr(record.error, "code", None) == "install.files_missing"


def test_a_recorded_manifest_is_rebuilt_as_validated_and_a_wrong_one_is_refused():
    from plughost.core.manifest import manifest_from_plain
    from plughost.errors import ManifestError
    from plughost.services.manager import _recorded_manifest

    data = {"id": "p", "version": "1.2.0", "entry": "m:P", "activation": ["command:p.run"],
            "dependencies": {"lib": "^1.0"}, "x-note": {"a": 1}}
    assert _recorded_manifest(data, "db") == manifest_from_plain(data)
    for wrong in ({"id": "p", "version": "one", "entry": "m:P"},
                  {"id": "p", "version": "1.0.0", "entry": "m:P", "bogus": 1},
                  {"id": "p", "entry": "m:P"}):
        with pytest.raises(ManifestError):
            _recorded_manifest(wrong, "db")
