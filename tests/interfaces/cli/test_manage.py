"""``plughost install | update | rollback | versions | uninstall | enable | disable`` and the
database-backed ``list | info | status``."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app

runner = CliRunner()

CODE = """
from plughost.sdk import Plugin

class Main(Plugin):
    def ping(self):
        return "pong"
"""


@pytest.fixture
def app() -> typer.Typer:
    return build_app()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLUGHOST_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def invoke(app: typer.Typer, *args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def data(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def package(app: typer.Typer, tmp_path: Path, home: Path):
    """``package(id, version, deps)`` → a package packed and signed with the CLI, its key
    trusted in the home."""
    keys = tmp_path / "keys"
    invoke(app, "keygen", "--out", keys, "--name", "pub")
    assert invoke(app, "trust", "add", keys / "pub.pub", "--name", "publisher").exit_code == 0

    def make(plugin_id: str, version: str = "1.0.0", deps: dict[str, str] | None = None,
             extra: str = "") -> Path:
        src = tmp_path / "src" / f"{plugin_id}-{version}"
        src.mkdir(parents=True)
        toml = f'id = "{plugin_id}"\nversion = "{version}"\nentry = "main:Main"\n' + extra
        if deps:
            toml += "[dependencies]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in deps.items())
        (src / "plugin.toml").write_text(toml)
        (src / "main.py").write_text(textwrap.dedent(CODE))
        out = tmp_path / "dist"
        out.mkdir(exist_ok=True)
        packed = Path(data(invoke(app, "pack", src, "-o", out, "--json"))["path"])
        assert invoke(app, "sign", packed, "--key", keys / "pub.key").exit_code == 0
        return packed

    return make


def test_help_lists_the_management_commands(app: typer.Typer) -> None:
    out = invoke(app, "--help").output
    for command in ("install", "uninstall", "update", "rollback", "versions", "enable",
                    "disable"):
        assert command in out


def test_install_list_info_and_refusal_of_a_second_install(app, package, home) -> None:
    pkg = package("hello")
    result = data(invoke(app, "install", pkg, "--json"))
    # No server runs on the home: recorded and checked, not run (the server activates it).
    assert (result["id"], result["version"], result["state"], result["live"]) == (
        "hello", "1.0.0", "installed", False)
    assert result["sha256"] == hashlib.sha256(pkg.read_bytes()).hexdigest()
    human = invoke(app, "install", pkg)
    assert human.exit_code == 1
    assert "install.exists" in human.output and "plughost update hello" in human.output
    listing = data(invoke(app, "list", "--json"))
    assert [(p["id"], p["state"], p["enabled"]) for p in listing["items"]] == [
        ("hello", "installed", True)]
    table = invoke(app, "list")
    assert "hello" in table.output and "enabled (not running)" in table.output
    assert f"no server is running on {home}" in table.output
    info = data(invoke(app, "info", "hello", "--json"))
    assert info["versions"][0]["version"] == "1.0.0" and info["path"]
    status = invoke(app, "status").output
    assert f"no server is running on {home}" in status
    assert "1 installed plugin(s) (enabled (not running): 1)" in status


def test_install_checks_the_expected_sha256(app, package, home) -> None:
    pkg = package("hello")
    wrong = invoke(app, "install", pkg, "--sha256", "0" * 64, "--json")
    assert wrong.exit_code == 1
    assert json.loads(wrong.stdout)["error"]["code"] == "integrity.checksum"
    assert data(invoke(app, "list", "--json"))["items"] == []
    right = hashlib.sha256(pkg.read_bytes()).hexdigest()
    assert data(invoke(app, "install", pkg, "--sha256", right, "--json"))["sha256"] == right


def test_install_no_enable_and_enable_disable(app, package, home) -> None:
    result = data(invoke(app, "install", package("hello"), "--no-enable", "--json"))
    assert (result["enabled"], result["state"]) == (False, "disabled")
    enabled = invoke(app, "enable", "hello")
    assert enabled.exit_code == 0, enabled.output
    assert "enabled hello 1.0.0 (enabled (not running))" in enabled.stdout
    assert ("it will be activated when the server starts (no server is running on this home"
            in enabled.stdout)
    out = invoke(app, "disable", "hello")
    assert out.exit_code == 0 and "it stays disabled when the server starts" in out.output
    listing = data(invoke(app, "list", "--json"))["items"]
    assert [(p["state"], p["enabled"]) for p in listing] == [("disabled", False)]


def test_no_activate_installs_it_without_running_it(app, package, home) -> None:
    result = data(invoke(app, "install", package("hello"), "--no-activate", "--json"))
    assert result["state"] == "installed"


def test_without_a_server_what_runs_is_refused_and_nothing_changes(app, package,
                                                                  home) -> None:
    invoke(app, "install", package("hello"))
    before = data(invoke(app, "info", "hello", "--json"))
    for command in (("activate", "hello"), ("deactivate", "hello"), ("reload", "hello"),
                    ("status", "--activate")):
        refused = invoke(app, *command, "--json")
        assert refused.exit_code == 1, (command, refused.output)
        error = json.loads(refused.stdout)["error"]
        assert error["code"] == "server.not_running", command
        assert str(home) in error["message"] and "plughost serve" in error["message"]
    assert data(invoke(app, "info", "hello", "--json")) == before


def test_update_versions_rollback(app, package, home) -> None:
    invoke(app, "install", package("hello", "1.0.0"))
    updated = data(invoke(app, "update", "hello", package("hello", "1.1.0"), "--json"))
    assert (updated["from_version"], updated["to_version"]) == ("1.0.0", "1.1.0")
    versions = data(invoke(app, "versions", "hello", "--json"))
    assert [(v["version"], v["current"]) for v in versions["items"]] == [("1.1.0", True),
                                                                ("1.0.0", False)]
    assert "1.0.0" in invoke(app, "versions", "hello").output
    back = invoke(app, "rollback", "hello", "--to", "1.0.0")
    assert back.exit_code == 0 and "1.1.0 → 1.0.0" in back.output
    missing = invoke(app, "rollback", "hello", "--to", "7.0.0")
    assert missing.exit_code == 1 and "install.not_kept" in missing.output


def test_update_force_reinstalls_the_installed_version(app, package, home) -> None:
    same = package("hello", "1.0.0")
    invoke(app, "install", same)
    refused = invoke(app, "update", "hello", same)
    assert refused.exit_code == 1 and "install.same_version" in refused.output
    assert "--force" in refused.output
    forced = data(invoke(app, "update", "hello", same, "--force", "--json"))
    assert (forced["from_version"], forced["to_version"]) == ("1.0.0", "1.0.0")
    versions = data(invoke(app, "versions", "hello", "--json"))
    assert [(v["version"], v["sha256"]) for v in versions["items"]] == [
        ("1.0.0", hashlib.sha256(same.read_bytes()).hexdigest())]


def test_uninstall_refuses_with_dependents_then_cascades(app, package, home) -> None:
    invoke(app, "install", package("lib"))
    invoke(app, "install", package("app", deps={"lib": "^1.0"}))
    refused = invoke(app, "uninstall", "lib")
    assert refused.exit_code == 1
    assert "resolve.dependents" in refused.output and "app" in refused.output
    removed = data(invoke(app, "uninstall", "lib", "--cascade", "--json"))
    assert [r["plugin_id"] for r in removed["items"]] == ["app", "lib"]
    assert data(invoke(app, "list", "--json"))["items"] == []


def test_unknown_plugin_is_a_clear_error(app, home) -> None:
    home.mkdir(parents=True)
    for command in (["versions", "nope"], ["enable", "nope"], ["uninstall", "nope"]):
        result = invoke(app, *command)
        assert result.exit_code == 1 and "plugin.not_found" in result.output


def test_plugins_dir_keeps_listing_plain_folders(app, package, home, tmp_path) -> None:
    invoke(app, "install", package("hello"))
    folder = tmp_path / "folders" / "devplug"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text('id = "devplug"\nversion = "0.1.0"\nentry = "m:M"\n')
    (folder / "m.py").write_text("class M:\n    pass\n")
    listing = data(invoke(app, "list", "--plugins-dir", tmp_path / "folders", "--json"))
    assert [p["id"] for p in listing["items"]] == ["devplug"]


def test_perms_and_config_commands_use_the_home_database(app, package, home) -> None:
    """One source of truth: `plughost perms` / `plughost config` on a home with a database
    change what install recorded and what the service enforces."""
    pkg = package("hello", extra='permissions = ["net:api.example.com"]\n'
                                 '[config.defaults]\ngreeting = "hi"\n')
    invoke(app, "install", pkg)
    granted = invoke(app, "perms", "grant", "hello", "fs:read:/srv/data")
    assert granted.exit_code == 0, granted.output
    assert invoke(app, "config", "set", "hello", "greeting=hey").exit_code == 0
    info = data(invoke(app, "info", "hello", "--json"))
    assert info["grants"] == ["net:api.example.com", "fs:read:/srv/data"]
    assert info["config"]["greeting"] == "hey"
    from plughost.settings import HostSettings
    from plughost.storage.backends import open_storage

    with open_storage(HostSettings(home=home)) as storage:
        repo = storage.repository
        assert [g.scope for g in repo.list_grants("hello")] == [
            "net:api.example.com", "fs:read:/srv/data"]
        assert repo.get_config("hello").config == {"greeting": "hey"}
    events = data(invoke(app, "audit", "--plugin", "hello", "--json"))["items"]
    assert ("permission.grant", "fs:read:/srv/data") in [
        (e["action"], e["details"].get("scope")) for e in events]
    # The one audit view: the install (an operation) is there too.
    assert "plugin.install" in [e["action"] for e in events]


def test_commands_that_only_read_leave_interrupted_work_for_the_next_writer(
    app, package, home
) -> None:
    """list, info, versions and status never reconcile (a read costs a read); the next command
    that changes something repairs what an interrupted operation left."""
    assert invoke(app, "install", package("hello"), "--json").exit_code == 0
    from plughost.settings import HostSettings

    settings = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
    dead = settings.staging_dir / "999999999-abcdef"  # a dead process's staging directory
    dead.mkdir(parents=True)
    for args in (["list", "--json"], ["info", "hello", "--json"], ["versions", "hello"],
                 ["status"]):
        assert invoke(app, *args).exit_code == 0, args
        assert dead.is_dir(), args
    assert invoke(app, "disable", "hello").exit_code == 0
    assert not dead.exists()


def test_list_says_which_plugins_are_signed_in_every_format(app, package, home,
                                                            tmp_path) -> None:
    assert invoke(app, "install", package("signed-one")).exit_code == 0
    src = tmp_path / "src" / "own"
    src.mkdir(parents=True)
    (src / "plugin.toml").write_text('id = "own"\nversion = "0.1.0"\nentry = "main:Main"\n')
    (src / "main.py").write_text(textwrap.dedent(CODE))
    packed = data(invoke(app, "pack", src, "-o", tmp_path / "dist", "--json"))["path"]
    assert invoke(app, "install", packed, "--allow-unsigned").exit_code == 0

    listing = data(invoke(app, "list", "--json"))
    assert [(p["id"], p["signed"]) for p in listing["items"]] == [("own", False),
                                                                  ("signed-one", True)]
    plain = invoke(app, "list", "-o", "plain").stdout.splitlines()
    assert [line.split("\t")[6] for line in plain] == ["unsigned", "signed"]
    table = runner.invoke(app, ["list", "-o", "table"], env={"COLUMNS": "200"}).stdout
    assert "signature" in table
    assert [row.split("│")[6].strip() for row in table.splitlines()
            if row.startswith("│")] == ["unsigned", "signed"]


def test_list_pages_and_says_where_the_rest_is_without_loading_the_orm(app, package,
                                                                       home) -> None:
    for pid in ("p-a", "p-b", "p-c"):
        assert invoke(app, "install", package(pid)).exit_code == 0
    first = invoke(app, "list", "--limit", "2", "-o", "plain")
    assert [line.split("\t")[0] for line in first.stdout.splitlines()] == ["p-a", "p-b"]
    hint = first.stderr.strip()  # on stderr: stdout stays one plugin per line for a pipe
    assert hint.startswith("2 of 3 shown; more: add --cursor ")
    rest = invoke(app, "list", "--cursor", hint.rsplit(" ", 1)[1], "-o", "plain")
    assert [line.split("\t")[0] for line in rest.stdout.splitlines()] == ["p-c"]
    assert rest.stderr == ""
    # the list's runtime and source filters, read the same way
    local = invoke(app, "list", "--runtime", "python", "--source", "local", "-o", "plain")
    assert [line.split("\t")[0] for line in local.stdout.splitlines()] == ["p-a", "p-b", "p-c"]
    assert invoke(app, "list", "--runtime", "wasm", "-o", "plain").stdout == ""
    # As a user runs it: a home with no server is read without SQLAlchemy (a blink, not the
    # ORM's import), and gives what the service's reader gives.
    import subprocess
    import sys

    code = ("import sys\nfrom plughost.interfaces.cli import main\nsys.argv = ['plughost', "
            "'list', '--json']\ntry:\n    main()\nfinally:\n"
            "    assert 'sqlalchemy' not in sys.modules, 'plughost list imported SQLAlchemy'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == data(invoke(app, "list", "--json"))


def test_list_of_a_home_shows_its_development_folders_too(app, package, home) -> None:
    assert invoke(app, "install", package("hello")).exit_code == 0
    dev = home / "plugins" / "devplug"
    dev.mkdir(parents=True)
    (dev / "plugin.toml").write_text('id = "devplug"\nversion = "0.1.0"\nentry = "m:M"\n')
    (dev / "m.py").write_text("class M:\n    pass\n")
    listing = data(invoke(app, "list", "--json"))
    assert [(p["id"], p["source"]) for p in listing["items"]] == [
        ("devplug", "directory"), ("hello", "local")]


def _unsigned(app: typer.Typer, tmp_path: Path, plugin_id: str, version: str) -> str:
    src = tmp_path / "src" / f"{plugin_id}-{version}-unsigned"
    src.mkdir(parents=True)
    (src / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "{version}"\nentry = "main:Main"\n')
    (src / "main.py").write_text(textwrap.dedent(CODE))
    return str(data(invoke(app, "pack", src, "-o", tmp_path / "dist", "--json"))["path"])


def test_update_allow_unsigned_works_as_install_does(app, package, home, tmp_path) -> None:
    assert invoke(app, "install", package("hello", "1.0.0")).exit_code == 0
    v2 = _unsigned(app, tmp_path, "hello", "1.1.0")
    refused = invoke(app, "update", "hello", v2, "--json")
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "signature.missing"
    assert "`plughost update hello SOURCE --allow-unsigned`" in error["hint"]
    assert data(invoke(app, "info", "hello", "--json"))["version"] == "1.0.0"

    updated = data(invoke(app, "update", "hello", v2, "--allow-unsigned", "--json"))
    assert (updated["id"], updated["version"], updated["signed"]) == ("hello", "1.1.0", False)
    assert [p["signed"] for p in data(invoke(app, "list", "--json"))["items"]] == [False]
    entries = data(invoke(app, "audit", "--plugin", "hello", "--json"))["items"]
    update = next(e for e in entries if e["action"] == "plugin.update" and e["outcome"] == "ok")
    assert (update["details"]["allow_unsigned"], update["details"]["signed"]) == (True, False)
    # and back to a signed package: the flag is recorded only when it was needed
    again = data(invoke(app, "update", "hello", package("hello", "1.2.0"), "--allow-unsigned",
                        "--json"))
    assert (again["version"], again["signed"]) == ("1.2.0", True)


def test_the_plugin_resource_has_one_shape_after_every_action(app, package, home) -> None:
    """list, info and every action print the same plugin resource: every field a list item
    has, valid against the schema, and the real signature status (never ``null``)."""
    import jsonschema

    from plughost.services.resources import SCHEMAS

    shapes = {"install": data(invoke(app, "install", package("hello"), "--json"))}
    shapes["list"] = data(invoke(app, "list", "--json"))["items"][0]
    shapes["info"] = data(invoke(app, "info", "hello", "--json"))
    for action in ("disable", "enable"):
        shapes[action] = data(invoke(app, action, "hello", "--json"))
    shapes["update"] = data(invoke(app, "update", "hello", package("hello", "1.1.0"), "--json"))
    shapes["rollback"] = data(invoke(app, "rollback", "hello", "--json"))
    validator = jsonschema.Draft202012Validator(SCHEMAS["plugin"])
    for name, item in shapes.items():
        validator.validate(item)
        assert set(item) >= set(shapes["list"]), (name, set(shapes["list"]) - set(item))
        assert item["signed"] is True, name


NEEDS_URL = """
[config.schema]
type = "object"
required = ["url"]
[config.schema.properties.url]
type = "string"
"""


def test_needs_config_is_reported_where_no_server_runs(app, package, home) -> None:
    """No server on the home: an install whose config lacks a required value says so at
    once (not that it will be activated), and `config set` clears it for the next start."""
    installed = data(invoke(app, "install", package("hooked", extra=NEEDS_URL), "--json"))
    assert (installed["state"], installed["live"]) == ("needs-config", False)
    assert "url" in installed["error"]["message"]
    assert "plughost config set hooked" in installed["error"]["hint"]
    human = invoke(app, "status")
    assert "needs-config (not running): 1" in human.stdout
    assert "plughost config set hooked" in human.stdout
    plain = invoke(app, "list", "-o", "plain").stdout.split("\t")
    assert (plain[2], plain[7]) == ("needs-config (not running)", "config.invalid")

    assert invoke(app, "config", "set", "hooked", "url=https://example.com").exit_code == 0
    listed = data(invoke(app, "list", "--json"))["items"][0]
    assert (listed["state"], listed["error"]) == ("installed", None)
    assert "will be activated when the server starts" in invoke(app, "enable", "hooked").stdout
