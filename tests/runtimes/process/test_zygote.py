"""The fork server: Python plugins forked from one pre-imported parent, each still confined,
given its own environment, and isolated from the server and from each other
(runtimes/process/zygote.py, sdk/_zygote.py). The kernel probes of test_confine.py run against
forked children too (their ``forked`` cases)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from plughost.errors import PluginCrashed
from plughost.runtimes.process.runtime import ProcessInstance, ProcessRuntime

from .conftest import PLUGINS, Context, eventually, fast_options, make_manifest, pid_alive

PROBE = PLUGINS / "forkprobe"


def _ppid(pid: int | None) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


async def _start(rt: ProcessRuntime, plugin_id: str) -> ProcessInstance:
    inst = await rt.load(make_manifest(plugin_id, "forkprobe_plugin:Probe"), PROBE)
    context = Context()
    if rt.options.data_root is not None:  # as the host gives it: no second start at activation
        context.data_dir = rt.options.data_root / plugin_id  # type: ignore[assignment]
    await inst.start(context)
    return inst


@pytest.fixture
async def forking(tmp_path: Path):
    rt = ProcessRuntime(options=fast_options(fork_server=True, data_root=tmp_path / "data",
                                             pycache_root=tmp_path / "pyc"))
    yield rt
    await rt.aclose()


async def test_a_forked_plugin_gets_exactly_a_cold_starts_environment(forking, tmp_path) -> None:
    forked = await _start(forking, "probe")
    assert forked.stats()["started"] == "forked"
    assert _ppid(forked.pid) == forking._forkserver.pid  # type: ignore[union-attr]
    cold_rt = ProcessRuntime(options=fast_options(warm_spare=False, data_root=tmp_path / "data",
                                                  pycache_root=tmp_path / "pyc"))
    try:
        cold = await _start(cold_rt, "probe")
        assert cold.stats()["started"] == "cold"
        got, want = await forked.call("env"), await cold.call("env")
    finally:
        await cold_rt.aclose()
    # the same variables; only the per-process ones differ in value
    assert sorted(got) == sorted(want)
    differ = {k for k in want if got[k] != want[k]}
    assert differ <= {"PLUGHOST_TOKEN", "TMPDIR"}, differ
    assert "PLUGHOST_ZYGOTE" not in got and "PLUGHOST_SPARE" not in got
    assert got["PLUGHOST_PLUGIN_ID"] == "probe"
    assert got["PYTHONPYCACHEPREFIX"] == str(tmp_path / "pyc" / "probe")


async def test_a_forked_plugin_holds_nothing_of_the_fork_server(forking) -> None:
    inst = await _start(forking, "probe")
    fds = await inst.call("fds")
    assert not [t for t in fds.values() if t.startswith("socket:")], fds  # no control socket
    assert sorted(fds, key=int)[:3] == ["0", "1", "2"]
    # Landlock scopes it away from the server (its parent): no signal, no look at its files
    assert await inst.call("signal_parent") == "PermissionError"
    assert await inst.call("parent_fds") == "PermissionError"
    assert inst.stats()["confinement"] == "cgroup+landlock+seccomp"
    assert inst.network_isolated  # a network namespace of its own (not the server's: shared)
    other = await _start(forking, "other")
    ns = [os.readlink(f"/proc/{i.pid}/ns/net") for i in (inst, other)]
    assert ns[0] != ns[1] != os.readlink("/proc/self/ns/net")


async def test_a_crashed_child_leaves_the_server_and_its_siblings_alone(forking) -> None:
    a, b = await _start(forking, "a"), await _start(forking, "b")
    server = forking._forkserver
    assert server is not None
    old = a.pid
    with pytest.raises(PluginCrashed, match="exited with code 9"):
        await a.call("crash")
    assert await b.call("env")  # the sibling answers
    assert pid_alive(server.pid) and forking._forkserver is server  # type: ignore[arg-type]
    await eventually(lambda: a.pid not in (None, old) and a._live is not None)
    assert a.stats()["started"] == "forked" and _ppid(a.pid) == server.pid
    assert (await a.call("env"))["PLUGHOST_PLUGIN_ID"] == "a"
    os.kill(b.pid, signal.SIGKILL)  # killed from outside: reported with its signal
    await eventually(lambda: b.stats()["crashes"] == 1)
    assert pid_alive(server.pid)  # type: ignore[arg-type]


async def test_when_the_fork_server_dies_its_plugins_restart_from_a_new_one(
    forking, caplog
) -> None:
    caplog.set_level(logging.WARNING, "plughost.runtimes.process")
    a, b = await _start(forking, "a"), await _start(forking, "b")
    first = forking._forkserver
    assert first is not None
    pids = (a.pid, b.pid)
    os.kill(first.pid, signal.SIGKILL)  # type: ignore[arg-type]
    await eventually(lambda: a.stats()["crashes"] == 1 and b.stats()["crashes"] == 1)
    assert not any(pid_alive(p) for p in pids)  # they died with it: nobody left to reap them
    assert "the fork server for Python plugins" in caplog.text and "ended" in caplog.text
    await eventually(lambda: a._live is not None and b._live is not None, timeout=10)
    second = forking._forkserver
    assert second is not None and second is not first
    for inst in (a, b):
        assert (await inst.call("env"))["PLUGHOST_PLUGIN_ID"] == inst.plugin_id
        assert inst.stats()["started"] == "forked" and _ppid(inst.pid) == second.pid


async def test_a_fork_server_that_keeps_dying_leaves_plugins_starting_cold(
    forking, caplog
) -> None:
    caplog.set_level(logging.WARNING, "plughost.runtimes.process")
    forking.FORK_SERVER_STARTS = 1  # the first start uses up the budget
    inst = await _start(forking, "a")
    server = forking._forkserver
    assert server is not None
    os.kill(server.pid, signal.SIGKILL)  # type: ignore[arg-type]
    await eventually(lambda: inst.stats()["crashes"] == 1)
    await eventually(lambda: inst._live is not None, timeout=10)
    assert inst.stats()["started"] == "cold"
    assert "Python plugins start cold" in caplog.text
    assert (await inst.call("env"))["PLUGHOST_PLUGIN_ID"] == "a"


async def test_closing_the_runtime_ends_the_fork_server(forking) -> None:
    inst = await _start(forking, "a")
    server = forking._forkserver
    assert server is not None
    pids = [inst.pid, server.pid]
    await forking.aclose()
    assert not any(pid_alive(p) for p in pids)  # type: ignore[arg-type]


async def test_the_next_plugin_takes_a_child_forked_ahead_of_need(forking) -> None:
    await _start(forking, "a")  # forked on demand; the next one is forked in advance
    await eventually(lambda: forking._spare is not None)
    spare = forking._spare
    assert spare is not None and spare.origin == "forked"
    assert _ppid(spare.pid) == forking._forkserver.pid  # type: ignore[union-attr]
    b = await _start(forking, "b")
    assert b.pid == spare.pid and b.stats()["started"] == "forked"
    assert (await b.call("env"))["PLUGHOST_PLUGIN_ID"] == "b"
    assert b.stats()["confinement"] == "cgroup+landlock+seccomp"
    assert await b.call("signal_parent") == "PermissionError"


async def test_a_spare_that_ends_while_warming_up_is_given_up_at_once(tmp_path) -> None:
    # An interpreter that exits at once stands for a spare that dies during its imports (its
    # fork server killed, say): the runtime stops waiting when it ends, not at the timeout.
    rt = ProcessRuntime(options=fast_options(python="/bin/false", handshake_timeout=60.0,
                                             data_root=tmp_path / "data"))
    try:
        rt._want_spare()
        assert rt._spare_task is not None
        await eventually(rt._spare_task.done, timeout=10)
        assert rt._spare is None
    finally:
        await rt.aclose()
