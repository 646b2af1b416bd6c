from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from plughost.errors import (
    ConfigConflict,
    ConfigInvalid,
    ConfigRejected,
    ConfigVersionNotFound,
    PluginNotFound,
)
from plughost.services.config import (
    REDACTED,
    ConfigManager,
    merge_patch,
    schema_defaults,
    substitute_env,
    validate_config,
)
from plughost.storage.config_store import ConfigRecord, SQLiteConfigStore

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["webhook_url"],
    "properties": {
        "webhook_url": {"type": "string", "pattern": "^https?://", "x-secret": True},
        "channel": {"type": "string", "default": "#general"},
        "retries": {"type": "integer", "minimum": 0, "default": 3},
        "server": {
            "type": "object",
            "properties": {
                "port": {"type": "integer", "default": 8080},
                "token": {"type": "string", "writeOnly": True, "minLength": 8},
            },
        },
    },
}
SECRET = "https://hooks.example.com/T000/SECRETPART"


@pytest.fixture
def manager(tmp_path: Path) -> ConfigManager:
    m = ConfigManager.open(tmp_path, environ={"HOOK": SECRET, "PORT": "9090"})
    yield m
    m.close()


def register(m: ConfigManager, **defaults: object) -> None:
    m.register("notify", SCHEMA, {"webhook_url": "https://default.example.com/x", **defaults})


def test_effective_config_layers_schema_defaults_manifest_defaults_and_settings(
    manager: ConfigManager,
) -> None:
    register(manager, channel="#ops")
    assert manager.get("notify", redact=False) == {
        "webhook_url": "https://default.example.com/x",
        "channel": "#ops",
        "retries": 3,
        "server": {"port": 8080},
    }
    assert manager.version("notify") == 0


async def test_set_merges_validates_and_bumps_the_version(manager: ConfigManager) -> None:
    register(manager)
    record = await manager.set("notify", {"retries": 5, "server": {"port": 1}})
    assert record.version == 1
    assert manager.get("notify")["server"] == {"port": 1}
    await manager.set("notify", {"retries": None})  # merge patch: None removes the setting
    assert manager.get("notify")["retries"] == 3
    assert manager.version("notify") == 2


async def test_every_schema_error_is_reported_with_its_json_path(manager: ConfigManager) -> None:
    register(manager)
    with pytest.raises(ConfigInvalid) as info:
        await manager.set("notify", {"retries": -1, "server": {"port": "x"}, "bogus": 1})
    paths = {(p.path, p.code) for p in info.value.problems}
    assert ("$.retries", "config.minimum") in paths
    assert ("$.server.port", "config.type") in paths
    assert ("$", "config.additionalProperties") in paths
    assert info.value.code == "config.invalid"
    assert manager.version("notify") == 0  # nothing changed
    assert manager.store.history("notify") == []


async def test_env_substitution_with_defaults_and_type_coercion(manager: ConfigManager) -> None:
    register(manager)
    await manager.set(
        "notify",
        {"webhook_url": "${HOOK}", "channel": "${CHAN:-#alerts}", "server": {"port": "${PORT}"}},
    )
    cfg = manager.get("notify", redact=False)
    assert cfg["webhook_url"] == SECRET
    assert cfg["channel"] == "#alerts"
    assert cfg["server"]["port"] == 9090  # coerced to the schema's integer
    assert manager.settings("notify", redact=False)["webhook_url"] == "${HOOK}"  # stored raw


async def test_unset_env_variable_is_a_clear_error(manager: ConfigManager) -> None:
    register(manager)
    with pytest.raises(ConfigInvalid, match=r"environment variable NOPE is not set") as info:
        await manager.set("notify", {"channel": "${NOPE}"})
    assert info.value.problems[0].path == "$.channel"


def test_substitute_env_escapes_double_dollar() -> None:
    assert substitute_env({"a": "$${X} ${X}"}, {"X": "1"}) == {"a": "${X} 1"}


async def test_secrets_are_redacted_in_get_history_view_and_logs(
    manager: ConfigManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register(manager)
    caplog.set_level(logging.DEBUG)
    await manager.set("notify", {"webhook_url": SECRET, "server": {"token": "tok-1234567"}})
    assert manager.get("notify")["webhook_url"] == REDACTED
    assert manager.get("notify")["server"]["token"] == REDACTED
    assert manager.settings("notify")["webhook_url"] == REDACTED
    history = manager.history("notify")
    assert history[0].settings["webhook_url"] == REDACTED
    view = manager.view("notify")
    assert view["webhook_url"] == SECRET  # the plugin sees the real value
    shown = repr(view) + json.dumps([r.to_json() for r in history]) + caplog.text
    assert SECRET not in shown and "tok-1234567" not in shown


async def test_secrets_are_redacted_in_validation_errors(manager: ConfigManager) -> None:
    register(manager)
    with pytest.raises(ConfigInvalid) as info:
        await manager.set(
            "notify", {"webhook_url": "not a uri but a secret", "server": {"token": "short"}}
        )
    text = str(info.value) + json.dumps(info.value.to_dict())
    assert "not a uri but a secret" not in text and "short" not in text
    assert {p.path for p in info.value.problems} == {"$.webhook_url", "$.server.token"}


async def test_listener_refusal_rolls_back_and_reports_the_plugin_error(
    manager: ConfigManager,
) -> None:
    register(manager)
    await manager.set("notify", {"channel": "#a"})
    seen: list[tuple[str, str]] = []

    def first(old, new):  # accepts, so it must be told about the rollback
        seen.append((old["channel"], new["channel"]))

    async def refuse(old, new):
        raise ValueError(f"cannot use {new['webhook_url']} for channel {new['channel']}")

    manager.on_change("notify", first)
    undo = manager.on_change("notify", refuse)
    with pytest.raises(ConfigRejected) as info:
        await manager.set("notify", {"channel": "#b", "webhook_url": SECRET})
    assert info.value.code == "config.rejected"
    assert "cannot use *** for channel #b" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    assert SECRET not in str(info.value)
    assert seen == [("#a", "#b"), ("#b", "#a")]
    assert manager.get("notify")["channel"] == "#a" and manager.version("notify") == 1
    assert len(manager.store.history("notify")) == 1
    undo()
    await manager.set("notify", {"channel": "#b"})
    assert manager.get("notify")["channel"] == "#b"


async def test_history_restore_and_reset_are_changes_like_any_other(
    manager: ConfigManager,
) -> None:
    register(manager)
    await manager.set("notify", {"channel": "#one"})
    await manager.set("notify", {"channel": "#two"})
    restored = await manager.restore("notify", 1)
    assert restored.version == 3 and restored.action == "restore 1"
    assert manager.get("notify")["channel"] == "#one"
    reset = await manager.reset("notify")
    assert reset.version == 4 and manager.get("notify")["channel"] == "#general"
    assert [r.action for r in manager.history("notify")] == ["set", "set", "restore 1", "reset"]
    with pytest.raises(ConfigVersionNotFound, match=r"versions are 1\.\.4"):
        await manager.restore("notify", 9)
    assert manager.version("notify") == 4


async def test_live_view_follows_changes(manager: ConfigManager) -> None:
    register(manager)
    view = manager.view("notify")
    await manager.set("notify", {"retries": 7})
    assert view["retries"] == 7 and view.version == 1


async def test_state_survives_a_new_manager_and_the_cli_can_use_the_stored_schema(
    tmp_path: Path,
) -> None:
    m = ConfigManager.open(tmp_path, environ={})
    register(m)
    await m.set("notify", {"channel": "#kept"})
    m.close()
    cli = ConfigManager.open(tmp_path, environ={})  # never registered: uses the stored schema
    assert cli.get("notify")["channel"] == "#kept" and cli.version("notify") == 1
    with pytest.raises(ConfigInvalid):
        await cli.set("notify", {"retries": "many"})
    with pytest.raises(PluginNotFound, match="no configuration is known"):
        cli.get("unknown")
    cli.close()


async def test_a_change_lands_on_the_version_another_process_wrote(tmp_path: Path) -> None:
    store = SQLiteConfigStore(tmp_path / "c.db")
    m = ConfigManager(store, environ={})
    register(m)
    calls: list[str] = []
    m.on_change("notify", lambda old, new: calls.append(new["channel"]))
    # another process (another node) writes version 1 behind this manager's back: the next
    # change starts from it instead of failing with a conflict nobody caused
    store.append(ConfigRecord("notify", 1, {"channel": "#other"}, "set", "elsewhere", 0.0))
    record = await m.set("notify", {"retries": 5})
    assert record.version == 2
    assert (m.get("notify")["channel"], m.get("notify")["retries"]) == ("#other", 5)
    assert calls == ["#other", "#other"]  # told of the other version, then of its own
    m.close()


async def test_store_conflict_rolls_listeners_back(tmp_path: Path) -> None:
    store = SQLiteConfigStore(tmp_path / "c.db")
    m = ConfigManager(store, environ={})
    register(m)
    calls: list[str] = []

    def listener(old: dict, new: dict) -> None:
        calls.append(new["channel"])
        if len(calls) == 1:  # another process commits while this change is being applied
            store.append(ConfigRecord("notify", 1, {"channel": "#other"}, "set", "elsewhere",
                                      0.0))

    m.on_change("notify", listener)
    with pytest.raises(ConfigConflict):
        await m.set("notify", {"channel": "#mine"})
    assert calls == ["#mine", "#general"]
    assert await m.refresh("notify") is True
    assert m.get("notify")["channel"] == "#other"
    m.close()


def test_invalid_schema_is_refused_at_registration(manager: ConfigManager) -> None:
    with pytest.raises(ConfigInvalid, match="config schema"):
        manager.register("bad", {"type": "object", "properties": {"a": {"type": 5}}})
    with pytest.raises(PluginNotFound):
        manager.get("bad")


class Leaks:
    """A local file and a local HTTP server that a schema reference could read: both hold a
    schema whose error message would echo their content, and the server counts requests."""

    def __init__(self, tmp_path: Path) -> None:
        self.file = tmp_path / "private.json"
        self.file.write_text(json.dumps({"enum": ["FILE-CONTENT"]}))
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = json.dumps({"enum": ["SERVER-CONTENT"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def schemas(self) -> list[dict[str, object]]:
        """Config schemas that reach outside themselves, each in a different way."""
        return [
            {"properties": {"a": {"$ref": self.file.as_uri()}}},
            {"properties": {"a": {"$ref": f"{self.url}/schema.json"}}},
            {"$id": f"{self.url}/base/", "properties": {"a": {"$ref": "schema.json"}}},
            {"properties": {"a": {"$dynamicRef": f"{self.url}/d.json"}}},
            {"properties": {"a": {"allOf": [{"$ref": self.file.as_uri() + "#/enum"}]}}},
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def leaks(tmp_path: Path) -> Iterator[Leaks]:
    leaks = Leaks(tmp_path)
    yield leaks
    leaks.close()


def test_schema_reaching_outside_itself_is_refused_at_registration(
    manager: ConfigManager, leaks: Leaks
) -> None:
    for i, schema in enumerate(leaks.schemas()):
        with pytest.raises(ConfigInvalid) as info:
            manager.register(f"p{i}", schema)
        problems = info.value.problems
        assert [p.code for p in problems] == ["config.schema"], schema
        assert "points outside the schema" in problems[0].message
        assert problems[0].path.startswith("$.properties.a") or problems[0].path == "$"
        assert "CONTENT" not in str(info.value)
        with pytest.raises(PluginNotFound):
            manager.get(f"p{i}")
    assert leaks.requests == []


def test_validation_never_fetches_a_reference_even_from_a_schema_stored_before(
    leaks: Leaks,
) -> None:
    # A schema recorded by an older version (before the registration check) still validates
    # through a registry that retrieves nothing: one clear problem, no file read, no request.
    for schema in leaks.schemas():
        problems = validate_config({"a": "x"}, schema)
        assert [p.code for p in problems] == ["config.schema"], schema
        assert "nothing is fetched" in problems[0].message
        assert "CONTENT" not in repr(problems)
    assert leaks.requests == []


async def test_references_inside_the_schema_are_resolved(manager: ConfigManager) -> None:
    schema = {
        "$id": "https://example.com/cfg",
        "type": "object",
        "properties": {
            "port": {"$ref": "#/$defs/port"},
            "backup": {"$ref": "#port"},
            "limit": {"$ref": "limits#/properties/max"},
        },
        "$defs": {
            "port": {"$anchor": "port", "type": "integer", "maximum": 65535},
            "limits": {"$id": "limits", "properties": {"max": {"type": "integer"}}},
        },
    }
    manager.register("p", schema)
    with pytest.raises(ConfigInvalid) as info:
        await manager.set("p", {"port": 70000, "backup": "x", "limit": 1.5})
    assert [(p.path, p.code) for p in info.value.problems] == [
        ("$.backup", "config.type"), ("$.limit", "config.type"), ("$.port", "config.maximum")]
    await manager.set("p", {"port": 80, "backup": 81, "limit": 3})


def test_a_config_too_deep_to_validate_is_a_problem_not_a_crash() -> None:
    schema = {"type": "object", "additionalProperties": {"$ref": "#"}}
    value: dict[str, object] = {}
    for _ in range(5000):
        value = {"a": value}
    assert [p.code for p in validate_config(value, schema)] == ["config.depth"]


def test_helpers() -> None:
    assert schema_defaults(SCHEMA) == {
        "channel": "#general",
        "retries": 3,
        "server": {"port": 8080},
    }
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}, "d": 1}) == {
        "a": {"c": 2},
        "d": 1,
    }


@pytest.mark.redis
async def test_a_host_following_redis_sees_changes_made_by_another_host() -> None:
    import asyncio
    import time
    import uuid

    from plughost.storage.config_store import RedisConfigStore

    prefix = f"plughost-test-{uuid.uuid4().hex}:"
    a = ConfigManager(RedisConfigStore(prefix=prefix), environ={})
    b = ConfigManager(RedisConfigStore(prefix=prefix), environ={})
    schema = {"type": "object", "properties": {"channel": {"type": "string"}}}
    a.register("notify", schema, {"channel": "#a"})
    view = b.register("notify", schema, {"channel": "#a"})
    seen: list[str] = []
    b.on_change("notify", lambda old, new: seen.append(new["channel"]))
    follower = asyncio.create_task(b.follow())
    try:
        deadline = time.monotonic() + 10
        n = 0
        while view["channel"] == "#a":  # repeat until the subscription (still arming) sees one
            assert time.monotonic() < deadline, "change never arrived"
            n += 1
            await a.set("notify", {"channel": f"#b{n}"})
            await asyncio.sleep(0.05)
        assert view["channel"].startswith("#b") and seen
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower
        a.close()
        b.close()
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
