"""The facade's records, and the installed-plugin list read from the database alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plughost.services.views import PluginInfo, list_stored, stored_info
from plughost.storage.db import Database
from plughost.storage.objects import package_key
from plughost.storage.records import StoredPlugin, StoredVersion
from plughost.storage.repository import Repository


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    with Database(f"sqlite:///{tmp_path / 'plughost.db'}") as db:
        db.migrate()
        yield Repository(db, lock_dir=tmp_path / "locks")


def _install(repo: Repository, pid: str, *, type: str = "notify", state: str = "active",
             enabled: bool = True, signed_by: str | None = None,
             failure: str | None = None) -> None:
    manifest = {"id": pid, "name": pid.title(), "version": "1.0.0", "type": type,
                "description": f"the {pid} plugin", "entry": "m:P"}
    key = package_key(pid, "1.0.0")
    with repo.unit_of_work():
        repo.add_plugin(StoredPlugin.from_manifest(manifest, checksum="a" * 64, object_key=key,
                                                   state=state, enabled=enabled))
        repo.add_version(StoredVersion(pid, "1.0.0", "a" * 64, key, manifest,
                                       signed_by=signed_by))
        if failure is not None:
            repo.update_plugin(pid, failure_reason=failure, failure_phase="config")


def test_a_stored_plugin_shows_its_recorded_state_and_why_it_waits() -> None:
    row = StoredPlugin.from_manifest({"id": "slack", "name": "Slack", "version": "1.2.0",
                                      "entry": "m:P"}, state="needs-config")
    waiting = stored_info(replace(row, failure_reason="token: required", failure_phase="config"),
                          signed=False)
    assert (waiting.state, waiting.signed, waiting.enabled) == ("needs-config", False, True)
    assert waiting.error is not None and waiting.error["code"] == "config.invalid"
    assert "plughost config set slack" in (waiting.error["hint"] or "")
    off = stored_info(StoredPlugin.from_manifest({"id": "x", "name": "X", "version": "1.0.0",
                                                  "entry": "m:P"}, enabled=False))
    assert (off.state, off.error, off.signed) == ("disabled", None, None)


def test_list_stored_pages_filters_and_says_which_are_signed(repo: Repository) -> None:
    _install(repo, "alpha", signed_by="key-1")
    _install(repo, "beta", type="theme")
    _install(repo, "gamma", enabled=False)
    _install(repo, "delta", state="needs-config", failure="token: required")

    page = list_stored(repo)
    assert [(i.id, i.state, i.signed) for i in page] == [
        ("alpha", "active", True), ("beta", "active", False), ("delta", "needs-config", False),
        ("gamma", "disabled", False)]
    assert page.total == 4 and all(isinstance(i, PluginInfo) for i in page)

    second = list_stored(repo, limit=2, offset=2)
    assert ([i.id for i in second], second.total) == (["delta", "gamma"], 4)
    assert [i.id for i in list_stored(repo, type="theme")] == ["beta"]
    assert [i.id for i in list_stored(repo, q="GAMMA PLUGIN")] == ["gamma"]
    assert list_stored(repo, q="gamma theme").total == 0
    # States as shown: a disabled plugin is "disabled" whatever it last did, and its last
    # state is not matched while it is off.
    assert [i.id for i in list_stored(repo, state="disabled")] == ["gamma"]
    assert [i.id for i in list_stored(repo, state="active")] == ["alpha", "beta"]
    assert list_stored(repo, state="disabled", enabled=True).total == 0
    assert list_stored(repo, state="active", enabled=False).total == 0
    delta = list_stored(repo, state="needs-config").items[0]
    assert delta.error is not None and delta.error["message"] == "token: required"


def test_list_stored_lets_a_service_overlay_what_it_runs(repo: Repository) -> None:
    _install(repo, "alpha", state="resolved")

    def live(stored: StoredPlugin, *, signed: bool | None = None) -> PluginInfo:
        return replace(stored_info(stored, signed=signed), state="active")

    assert [(i.id, i.state) for i in list_stored(repo, info=live)] == [("alpha", "active")]


def test_an_info_is_the_plugin_resource_already_and_a_live_record_overlays_it() -> None:
    """``to_dict()`` is what the list serves as is: the resource shape, times in ISO UTC."""
    import jsonschema

    from plughost.core.lifecycle import State
    from plughost.core.manifest import manifest_from_dict
    from plughost.core.registry import PluginRecord
    from plughost.services import resources

    at = datetime(2026, 12, 3, 17, 20, 0, 123456, tzinfo=UTC)
    row = replace(StoredPlugin.from_manifest({"id": "slack", "name": "Slack", "version": "1.2.0",
                                              "entry": "m:P"}, state="resolved"),
                  installed_at=at, updated_at=at)
    data = stored_info(row, signed=True).to_dict()
    assert resources.plugin(data) == data  # nothing left for the output model to change
    assert data["installed_at"] == data["installTime"] == "2026-12-03T17:20:00.123Z"
    jsonschema.Draft202012Validator(resources.SCHEMAS["plugin"]).validate(data)
    record = PluginRecord(manifest_from_dict({"id": "slack", "version": "1.2.0",
                                             "entry": "m:P"}), None, source="installed",
                          state=State.FAILED, error=RuntimeError("boom"), phase="activate")
    record.warnings.append("slow start")
    live = stored_info(row, signed=True, live=record)
    assert (live.state, live.live, live.signed, live.warnings) == (
        "failed", True, True, ("slow start",))
    assert live.error is not None and live.error["message"] == "boom"
    assert live.to_dict()["isEnabled"] == 2
