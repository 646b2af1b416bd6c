"""Process confinement, tried for real: processes a plugin starts die with it, a process limit that
binds root, ``process:spawn`` enforced, and a filesystem reduced to the package, the data
directory and the granted directories (plugins/escapee tries each way out)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from plughost.core.manifest import load_manifest
from plughost.errors import PermissionDenied
from plughost.host import PluginHost
from plughost.runtimes.process.confine import JAIL_TMP_PREFIX, kernel_support, sweep_dead_jails
from plughost.runtimes.process.runtime import ProcessInstance, ProcessRuntime
from plughost.security.permissions import PermissionSet
from plughost.security.scopes import parse_scopes
from tests._tools import require_tool

from .conftest import PLUGINS, eventually, fast_options, kill_quietly, make_manifest, pid_alive

ESCAPEE = PLUGINS / "escapee"
NODE_EXAMPLE = Path(__file__).parents[3] / "examples" / "node-greeter"


class Context:
    """The slice of PluginContext the process runtime reads, with a data directory."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.config = MappingProxyType({})
        self.data_dir = data_dir


def grants(scopes: list[str]) -> Callable[[str], Callable[[str, str], None]]:
    """``check_for`` backed by the real permission model: these scopes are granted."""
    rules = PermissionSet(allow=parse_scopes(scopes))

    def check_for(plugin_id: str) -> Callable[[str, str], None]:
        def check(kind: str, target: str) -> None:
            if not rules.check(kind, target):
                raise PermissionDenied(f"{kind}:{target} not granted", plugin_id=plugin_id)

        return check

    return check_for


@pytest.fixture
async def make_runtime() -> AsyncIterator[Callable[..., ProcessRuntime]]:
    made: list[ProcessRuntime] = []

    def make(scopes: tuple[str, ...] | list[str] = (), **options: Any) -> ProcessRuntime:
        rt = ProcessRuntime(check_for=grants(list(scopes)), options=fast_options(**options))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.aclose()


async def start_escapee(
    rt: ProcessRuntime, scopes: list[str], limits: dict[str, Any] | None = None,
    data_dir: Path | None = None, *, warm: str = "cold",
) -> ProcessInstance:
    """Start the escapee cold, in a warm spare started before it was known (``spare``), or
    forked from the fork server (``forked``): every way must confine it alike."""
    spare = None
    if warm == "forked":
        rt.options = dataclasses.replace(rt.options, fork_server=True)
    if warm == "spare":
        await rt.load(make_manifest("other", "pyecho_plugin:Echo"), PLUGINS / "pyecho")
        await eventually(lambda: rt._spare is not None)
        spare = rt._spare.pid  # type: ignore[union-attr]
    manifest = make_manifest("escapee", "escapee_plugin:Escapee", limits, permissions=scopes)
    inst = await rt.load(manifest, ESCAPEE)
    await inst.start(Context(data_dir))
    assert (inst.pid == spare) is (warm == "spare")  # the spare was taken (and confined itself)
    assert inst.stats()["started"] == warm
    if warm == "forked":  # a child of the fork server, not of the host
        assert rt._forkserver is not None and _ppid(inst.pid) == rt._forkserver.pid
    return inst


def _ppid(pid: int | None) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


# ------------------------------------------------------------------------------ descendants


@pytest.mark.parametrize("warm", ["cold", "spare", "forked"])
@pytest.mark.parametrize("end", ["exit", "crash", "kill", "close"])
async def test_what_a_plugin_started_dies_with_it_whatever_way_it_ends(
    make_runtime, end, warm
) -> None:
    rt = make_runtime(["process:spawn"])
    inst = await start_escapee(rt, ["process:spawn"], warm=warm)
    plain = await inst.call("spawn", {"argv": ["sleep", "90"]})
    daemon = await inst.call("spawn", {"argv": ["sleep", "91"], "detach": True})  # setsid, orphan
    pids = [plain["pid"], daemon["pid"]]
    try:
        assert all(pid_alive(p) for p in pids)
        plugin = inst.pid
        assert plugin is not None
        if end == "exit":
            with pytest.raises(Exception):  # noqa: B017 - the call dies with the process
                await inst.call("exit", {"code": 0})
        elif end == "crash":
            os.kill(plugin, signal.SIGSEGV)
        elif end == "kill":
            os.kill(plugin, signal.SIGKILL)
        if end != "close":
            await eventually(lambda: inst._stats["crashes"] == 1)
        await rt.aclose()
        assert [p for p in pids if pid_alive(p)] == []
        root = kernel_support().cgroup_root
        assert root is not None and not any(root.glob(f"escapee.{os.getpid()}.*"))
    finally:
        for p in pids:
            kill_quietly(p)


# ---------------------------------------------------------------------------- process limit


@pytest.mark.parametrize("warm", ["cold", "spare", "forked"])
async def test_process_limit_binds_even_root(make_runtime, warm) -> None:
    assert kernel_support().cgroup is None, kernel_support().cgroup
    rt = make_runtime(["process:spawn"])
    inst = await start_escapee(rt, ["process:spawn"], {"processes": 12}, warm=warm)
    result = await inst.call("fork_many", {"n": 50})
    assert result["errno"] == 11  # EAGAIN: the cgroup's pids.max, which root does not bypass
    assert 1 <= result["started"] < 12
    assert inst.stats()["processes"] == 12


async def test_default_process_limit_stops_a_fork_bomb(make_runtime) -> None:
    rt = make_runtime(["process:spawn"])
    inst = await start_escapee(rt, ["process:spawn"])
    result = await inst.call("fork_many", {"n": 1000})
    assert result["errno"] == 11 and result["started"] < 256


# ---------------------------------------------------------------------------- process:spawn


@pytest.mark.parametrize("warm", ["cold", "spare", "forked"])
async def test_without_process_spawn_a_plugin_cannot_start_processes(make_runtime, warm) -> None:
    inst = await start_escapee(make_runtime(), [], warm=warm)
    refused = await inst.call("spawn", {"argv": ["true"]})
    assert refused["ok"] is False and refused["errno"] == 1  # EPERM
    assert await inst.call("fork_many", {"n": 3}) == {"started": 0, "errno": 1}
    assert await inst.call("threads", {"n": 8}) == 8  # threads are not processes
    assert "seccomp" in inst.stats()["confinement"]


async def test_with_process_spawn_it_can(make_runtime) -> None:
    inst = await start_escapee(make_runtime(["process:spawn"]), ["process:spawn"])
    assert (await inst.call("spawn", {"argv": ["true"]}))["ok"] is True
    assert "seccomp" not in inst.stats()["confinement"]


async def test_a_declared_but_refused_spawn_grant_is_not_given(make_runtime) -> None:
    inst = await start_escapee(make_runtime([]), ["process:spawn"])  # declared, not granted
    assert (await inst.call("spawn", {"argv": ["true"]}))["errno"] == 1


async def test_node_runs_confined(make_runtime) -> None:
    require_tool("node", "the Node example runs confined")
    rt = make_runtime()
    inst = await rt.load(load_manifest(NODE_EXAMPLE), NODE_EXAMPLE)
    await inst.start(Context())
    assert await inst.call("greet", {"name": "Ada"}) is not None
    assert inst.stats()["confinement"] == "cgroup+landlock+seccomp"


# ------------------------------------------------------------------------------- filesystem


@pytest.mark.parametrize("warm", ["cold", "spare", "forked"])
async def test_filesystem_is_the_package_the_data_dir_and_the_grants(make_runtime, tmp_path, warm):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    readable = tmp_path / "shared"
    readable.mkdir()
    (readable / "in.txt").write_text("shared")
    writable = tmp_path / "out"
    writable.mkdir()
    data = tmp_path / "data" / "escapee"  # as PluginHost(home=...) names it
    scopes = [f"fs:read:{readable}", f"fs:write:{writable}"]
    rt = make_runtime(scopes, data_root=tmp_path / "data")
    inst = await start_escapee(rt, scopes, data_dir=data, warm=warm)

    async def read(path: Path | str) -> bool:
        return bool((await inst.call("read", {"path": str(path)}))["ok"])

    async def write(path: Path | str) -> bool:
        return bool((await inst.call("write", {"path": str(path)}))["ok"])

    assert not await read(secret)
    assert not await write(tmp_path / "new.txt")
    assert await read(ESCAPEE / "plugin.toml")
    assert not await write(ESCAPEE / "planted.txt")  # the package is read-only
    assert await read(readable / "in.txt") and not await write(readable / "x.txt")
    assert await write(writable / "x.txt")
    assert await write(data / "state.json") and await read(data / "state.json")
    tmpdir = (await inst.call("read", {"path": "/proc/self/environ"}))["ok"]
    assert tmpdir  # its own /proc entries stay readable
    assert not await read(f"/proc/{os.getpid()}/environ")  # the host's do not
    assert not await read("/etc/shadow")
    assert await read("/etc/hosts") and await read("/dev/null")
    assert inst.stats()["confinement"] == "cgroup+landlock+seccomp"
    assert not (ESCAPEE / "planted.txt").exists()


async def test_a_declared_directory_without_the_grant_stays_closed(make_runtime, tmp_path):
    (tmp_path / "f").write_text("x")
    inst = await start_escapee(make_runtime([]), [f"fs:read:{tmp_path}"])
    assert (await inst.call("read", {"path": str(tmp_path / "f")}))["ok"] is False


async def test_confinement_can_be_turned_off_and_status_says_so(make_runtime, tmp_path):
    (tmp_path / "f").write_text("x")
    inst = await start_escapee(make_runtime(confine=False), [])
    assert (await inst.call("read", {"path": str(tmp_path / "f")}))["ok"] is True
    assert inst.stats()["confinement"].startswith("none: confinement turned off")


@pytest.mark.parametrize("forked", [False, True], ids=["cold", "forked"])
def test_a_host_killed_outright_leaves_nothing_behind(forked: bool) -> None:
    """SIGKILL on the host: the plugin dies with it (parent-death signal; a forked one with the
    fork server, which dies with the host) and the host's watchdog kills what the plugin started
    (here a daemon that left the plugin's session)."""
    src = Path(__file__).parents[3] / "src"
    host = subprocess.Popen(
        [sys.executable, str(PLUGINS / "confined_host.py"), str(ESCAPEE),
         *(["--fork-server"] if forked else [])],
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(src)),
    )
    pids: list[int] = []
    try:
        assert host.stdout is not None
        pids = [int(p) for p in host.stdout.readline().split()]
        assert len(pids) == (3 if forked else 2) and all(pid_alive(p) for p in pids)
        host.kill()
        host.wait(timeout=5)
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p for p in pids if pid_alive(p)] == []
        # What the killed host could not clean up, its plugin's private temporary directory,
        # the next host removes (a host sweeps before it makes its first one).
        sweep_dead_jails()
        assert _jail_dirs(host.pid) == []
    finally:
        host.kill()
        host.wait()
        for p in pids:
            kill_quietly(p)


def _jail_dirs(pid: int) -> list[str]:
    root = Path(tempfile.gettempdir())
    return sorted(p.name for p in root.glob(f"{JAIL_TMP_PREFIX}{pid}-*"))


def test_a_private_tmpdir_is_named_after_its_host_and_short_enough_for_a_socket() -> None:
    from plughost.runtimes.process.confine import _private_tmpdir

    made = Path(_private_tmpdir("p" * 64))
    try:
        assert made.name.startswith(f"{JAIL_TMP_PREFIX}{os.getpid()}-{'p' * 24}-")
        assert len(made.name) <= 55  # with /tmp/ and /plugin.sock: a Unix socket path fits
    finally:
        made.rmdir()


def test_the_sweep_removes_the_directories_of_dead_hosts_only(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not pid_alive(dead.pid)
    left = tmp_path / f"{JAIL_TMP_PREFIX}{dead.pid}-escapee-abc"
    (left / "sub").mkdir(parents=True)
    (left / "sub" / "f").write_text("x")
    live = tmp_path / f"{JAIL_TMP_PREFIX}{os.getpid()}-mine-abc"
    live.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("k")
    link = tmp_path / f"{JAIL_TMP_PREFIX}{dead.pid}-link-abc"
    link.symlink_to(elsewhere)
    a_file = tmp_path / f"{JAIL_TMP_PREFIX}{dead.pid}-file-abc"
    a_file.write_text("f")
    odd = tmp_path / f"{JAIL_TMP_PREFIX}notapid-x"
    odd.mkdir()
    assert sweep_dead_jails(str(tmp_path)) == [str(left)]
    assert not left.exists()
    assert live.is_dir() and odd.is_dir() and a_file.is_file() and link.is_symlink()
    assert (elsewhere / "keep").read_text() == "k"


async def test_an_activation_that_brings_a_data_dir_restarts_the_process_confined_to_it(
    make_runtime, tmp_path
) -> None:
    rt = make_runtime(warm_spare=False)  # no data_root: the data directory is news at start
    inst = await rt.load(make_manifest("escapee", "escapee_plugin:Escapee"), ESCAPEE)
    loaded = inst.pid
    await inst.start(Context(tmp_path / "data"))
    assert inst.pid != loaded and not pid_alive(loaded)  # type: ignore[arg-type]
    assert (await inst.call("write", {"path": str(tmp_path / "data" / "x")}))["ok"] is True



async def test_a_host_with_a_home_confines_to_the_data_dir_from_the_first_start(tmp_path) -> None:
    shutil.copytree(ESCAPEE, tmp_path / "plugins" / "escapee")
    host = PluginHost([tmp_path / "plugins"], home=tmp_path / "home")
    try:
        host.discover()
        host.resolve()
        record = await host.load("escapee")
        loaded = record.instance.pid
        await host.activate("escapee")
        assert record.instance.pid == loaded  # no second start to learn the data directory
        data = tmp_path / "home" / "data" / "escapee"
        assert (await host.call("escapee", "write", path=str(data / "x")))["ok"] is True
        (tmp_path / "home" / "tokens").write_text("the host's, not the plugin's")
        assert (await host.call("escapee", "read", path=str(tmp_path / "home" / "tokens")))[
            "errno"
        ] == 13
        stats = host.status("escapee")["stats"]
        assert stats["confinement"] == "cgroup+landlock+seccomp"
        assert stats["processes"] >= 1
    finally:
        await host.aclose()
