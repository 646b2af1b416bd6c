"""The marketplace from the command line, as a publisher and an operator use it: init,
publish, serve (a real process), add, search, install ID@RANGE with dependencies, outdated,
update --all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
def keys(tmp_path: Path, home: Path) -> Path:
    from plughost.security.signing import TrustStore, keygen

    private, public = keygen(tmp_path / "keys", "publisher")
    TrustStore.for_home(home).add(public, "publisher")
    return private


def package(tmp_path: Path, key: Path, pid: str, version: str, deps: str = "",
            description: str = "") -> Path:
    from plughost.security.package import pack
    from plughost.security.signing import sign

    src = tmp_path / "src" / f"{pid}-{version}"
    src.mkdir(parents=True)
    (src / "plugin.toml").write_text(textwrap.dedent(f"""\
        id = "{pid}"
        name = "{pid}"
        version = "{version}"
        entry = "main:Main"
        description = "{description}"
        tags = ["lyrics"]
        """) + (f"[dependencies]\n{deps}\n" if deps else ""))
    (src / "main.py").write_text(CODE)
    out = pack(src, tmp_path / f"{pid}-{version}.zip")
    sign(out, key)
    return out


@pytest.fixture
def served_repo(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """`plughost market init` + `plughost market serve` in its own process."""
    repo = tmp_path / "repo"
    result = invoke(build_app(), "market", "init", repo, "--json")
    assert result.exit_code == 0, result.output
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "plughost", "market", "serve", str(repo),
                             "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        yield repo, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_publish_add_search_install_outdated_update(app, home, tmp_path, keys, served_repo):
    repo, url = served_repo
    for pid, version, deps in (("lrc-core", "1.0.0", ""),
                               ("lrc-fetch", "0.2.0", '"lrc-core" = "^1.0"'),
                               ("lyrics-lrc", "0.3.1", '"lrc-fetch" = "^0.2"\n"lrc-core" = "*"')):
        published = data(invoke(app, "publish", package(tmp_path, keys, pid, version, deps,
                                                        f"{pid} synced lyrics"),
                                 "--repo", repo, "--json"))
        assert published["plugin_id"] == pid  # type: ignore[index]
    added = data(invoke(app, "market", "add", "main", url, "--root", repo / "root.json",
                        "--json"))
    assert added["plugins"] == 3  # type: ignore[index]
    found = data(invoke(app, "search", "lyrics", "--limit", "2", "--json"))
    assert found["total"] == 3 and len(found["items"]) == 2  # type: ignore[index]
    assert found["items"][0]["id"] == "lyrics-lrc"  # type: ignore[index]
    nxt = data(invoke(app, "search", "lyrics", "--cursor", found["next_cursor"],  # type: ignore[index]
                      "--json"))
    assert len(nxt["items"]) == 1 and nxt["next_cursor"] is None  # type: ignore[index]

    installed = data(invoke(app, "install", "lyrics-lrc@^0.3", "--json"))
    assert [i["plugin_id"] for i in installed["installed"]] == [  # type: ignore[index]
        "lrc-core", "lrc-fetch", "lyrics-lrc"]
    again = invoke(app, "install", "lyrics-lrc", "--json")
    assert json.loads(again.stdout)["error"]["code"] == "install.exists"

    assert data(invoke(app, "outdated", "--json"))["items"] == []  # type: ignore[index]
    invoke(app, "publish", package(tmp_path, keys, "lrc-core", "1.1.0"), "--repo", repo)
    outdated = data(invoke(app, "outdated", "--json"))
    assert [(i["id"], i["latest_version"]) for i in outdated["items"]] == [  # type: ignore[index]
        ("lrc-core", "1.1.0")]
    updated = data(invoke(app, "update", "--all", "--json"))
    assert [(u["id"], u["ok"], u["to_version"]) for u in updated["items"]] == [  # type: ignore[index]
        ("lrc-core", True, "1.1.0")]


def test_install_of_an_unknown_id_says_what_to_do(app, home, served_repo):
    repo, url = served_repo
    invoke(app, "market", "add", "main", url, "--root", repo / "root.json")
    result = invoke(app, "install", "nothing-here", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "market.not_found"


def test_add_refuses_a_wrong_root_and_keeps_nothing(app, home, tmp_path, served_repo):
    _repo, url = served_repo
    other = tmp_path / "other"
    invoke(app, "market", "init", other)
    result = invoke(app, "market", "add", "main", url, "--root", other / "root.json",
                    "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "market.signature"
    assert data(invoke(app, "market", "list", "--json"))["items"] == []  # type: ignore[index]


def test_policy_and_check_from_the_command_line(app, home, tmp_path, keys, served_repo):
    repo, url = served_repo
    invoke(app, "publish", package(tmp_path, keys, "solo", "1.0.0"), "--repo", repo)
    invoke(app, "market", "add", "main", url, "--root", repo / "root.json")
    data(invoke(app, "install", "solo", "--json"))
    shown = data(invoke(app, "market", "policy", "solo", "--json"))
    assert shown["policy"] == "notify"  # type: ignore[index]
    bad = invoke(app, "market", "policy", "solo", "--policy", "auto", "--window", "9-5",
                 "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error"]["code"] == "market.invalid"
    data(invoke(app, "market", "policy", "solo", "--policy", "auto", "--json"))
    invoke(app, "publish", package(tmp_path, keys, "solo", "1.1.0"), "--repo", repo)
    checked = data(invoke(app, "market", "check", "--json"))
    assert [(d["id"], d["action"]) for d in checked["items"]] == [  # type: ignore[index]
        ("solo", "updated")]


def test_every_market_command_takes_output_json_and_plain(app, home, tmp_path, keys,
                                                          served_repo):
    """Like every other command: ``--output json`` in the documented shape of its kind,
    ``--output plain`` with the kind's stable tab-separated columns on every line."""
    from tests.interfaces.cli.test_output import _check, _cut

    repo, url = served_repo

    def run(*args: object, kind: str, page: bool = False, plain: bool = False) -> Any:
        result = invoke(app, *args, "--output", "plain" if plain else "json")
        assert result.exit_code == 0, (args, result.output)
        if plain:
            return _cut(result.stdout, kind)
        body = json.loads(result.stdout)
        _check(kind, body, page=page)
        return body

    assert run("market", "init", tmp_path / "other", kind="market_change",
               plain=True)[0][0] == "init"
    assert run("publish", package(tmp_path, keys, "lrc-core", "1.0.0"), "--repo", repo,
               kind="publication")["version"] == "1.0.0"
    assert run("publish", package(tmp_path, keys, "solo", "1.0.0"), "--repo", repo,
               kind="publication", plain=True)[0][:2] == ["solo", "1.0.0"]
    assert run("market", "add", "main", url, "--root", repo / "root.json",
               kind="marketplace")["plugins"] == 2
    assert run("market", "list", kind="marketplace", page=True)["total"] == 1
    assert run("market", "list", kind="marketplace", plain=True)[0][:2] == ["main", "100"]
    run("market", "refresh", kind="market_refresh", page=True)
    assert run("market", "refresh", kind="market_refresh", plain=True)[0][0] == "main"
    assert run("search", kind="market_hit", page=True)["total"] == 2
    assert sorted(r[0] for r in run("search", kind="market_hit", plain=True)) == [
        "lrc-core", "solo"]
    assert run("market", "info", "solo", kind="market_plugin")["id"] == "solo"
    assert run("market", "info", "solo", kind="market_plugin", plain=True)[0][3] == "1.0.0"

    assert run("install", "lrc-core", kind="installed_package", plain=True)[0][:2] == [
        "lrc-core", "1.0.0"]
    assert invoke(app, "install", "solo", "--output", "json").exit_code == 0
    assert run("outdated", kind="outdated", plain=True) == []
    run("publish", package(tmp_path, keys, "lrc-core", "1.1.0"), "--repo", repo,
        kind="publication", plain=True)
    run("publish", package(tmp_path, keys, "solo", "1.1.0"), "--repo", repo,
        kind="publication", plain=True)
    assert run("outdated", kind="outdated", page=True)["total"] == 2
    assert [r[:3] for r in run("outdated", kind="outdated", plain=True)] == [
        ["lrc-core", "1.0.0", "1.1.0"], ["solo", "1.0.0", "1.1.0"]]
    assert run("market", "policy", "solo", kind="update_policy")["policy"] == "notify"
    assert run("market", "policy", "solo", "--policy", "auto", kind="update_policy",
               plain=True)[0][:2] == ["solo", "auto"]
    assert [r[0] for r in run("market", "check", kind="update_decision", plain=True)] == [
        "lrc-core", "solo"]
    assert run("update", "--all", kind="update_outcome", plain=True)[0][:4] == [
        "lrc-core", "true", "1.0.0", "1.1.0"]

    # the publisher's maintenance commands
    assert run("market", "timestamp", repo, kind="market_change")["action"] == "timestamp"
    run("market", "timestamp", repo, kind="market_change", plain=True)
    assert run("market", "yank", repo, "solo@1.0.0", kind="market_change",
               plain=True)[0][:3] == ["yank", "solo", "1.0.0"]
    run("market", "advise", repo, "solo", "--id", "PHSA-1", "--affected", "<1.1.0",
        kind="market_change")
    run("market", "rotate-key", repo, "timestamp", kind="market_change", plain=True)
    assert run("market", "remove", "main", kind="market_change", plain=True)[0][:2] == [
        "remove", "main"]


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def example_package(tmp_path: Path, key: Path, name: str) -> Path:
    """An example plugin folder (as shipped, native library built by the session) packed and
    signed."""
    from plughost.security.package import pack
    from plughost.security.signing import sign

    out = pack(EXAMPLES / name, tmp_path / f"{name}.zip")
    sign(out, key)
    return out


def test_a_native_plugin_is_found_and_installed_from_a_marketplace(app, home, tmp_path, keys,
                                                                 served_repo):
    # The runtime registry, not a list of the marketplace's own, says which runtimes run here.
    repo, url = served_repo
    invoke(app, "publish", example_package(tmp_path, keys, "native-c-counter"), "--repo", repo)
    invoke(app, "market", "add", "main", url, "--root", repo / "root.json")
    found = data(invoke(app, "search", "counter", "--json"))
    assert [(i["id"], i["runtime"], i["incompatible"])  # type: ignore[index]
            for i in found["items"]] == [("native-c-counter", "native", "")]  # type: ignore[index]
    installed = data(invoke(app, "install", "native-c-counter", "--json"))
    [done] = installed["installed"]  # type: ignore[index]
    assert (done["plugin_id"], done["state"]) == ("native-c-counter", "resolved")
    listed = data(invoke(app, "list", "--json"))["items"]  # type: ignore[index]
    assert [(p["id"], p["runtime"]) for p in listed] == [("native-c-counter", "native")]


def test_a_runtime_whose_extra_is_missing_is_left_out_with_the_pip_extra(app, home, tmp_path,
                                                                        keys, served_repo):
    # A child interpreter where wasmtime cannot be imported: the host lacks the wasm extra.
    repo, url = served_repo
    invoke(app, "publish", example_package(tmp_path, keys, "wasm-hello"), "--repo", repo)
    invoke(app, "market", "add", "main", url, "--root", repo / "root.json")
    code = ("import sys; sys.modules['wasmtime'] = None\n"
            "from plughost.interfaces.cli import build_app\n"
            "build_app()(sys.argv[1:])\n")
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "PLUGHOST_HOME": str(home), "PYTHONPATH": str(src)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, env=env, timeout=120, cwd=tmp_path)

    assert json.loads(cli("search", "hello", "--json").stdout)["total"] == 0
    [item] = json.loads(cli("search", "hello", "--all", "--json").stdout)["items"]
    assert item["id"] == "wasm-hello"
    assert "pip install 'plughost[wasm]'" in item["incompatible"]
    refused = cli("install", "wasm-hello", "--json")
    assert refused.returncode == 1, refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "market.incompatible"
    assert "pip install 'plughost[wasm]'" in error["details"]["excluded"]["0.1.0"]
    assert data(invoke(app, "list", "--json"))["items"] == []  # type: ignore[index]
    # with the extra installed (this interpreter), the same version is found and installs
    assert data(invoke(app, "search", "hello", "--json"))["total"] == 1  # type: ignore[index]
    assert data(invoke(app, "install", "wasm-hello", "--json"))[  # type: ignore[index]
        "installed"][0]["state"] == "resolved"  # activates on its first call


def test_a_disabled_marketplace_is_one_error_in_every_output(app, home):
    """`enable_market = false`: search, outdated and install by id answer `market.disabled`
    with what to set, as the JSON error envelope under --output json and on stderr otherwise."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "plughost.toml").write_text("enable_market = false\n")
    for args in (("search", "lyrics"), ("outdated",), ("install", "lyrics-lrc")):
        result = invoke(app, *args, "--output", "json")
        assert result.exit_code == 1, result.output
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "market.disabled", error
        assert "enable_market = true" in error["message"], error
        plain = invoke(app, *args)
        assert plain.exit_code == 1 and plain.stdout == "", plain.output
        assert "enable_market = true" in plain.stderr, plain.stderr
