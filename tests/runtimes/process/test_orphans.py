"""Children die with the host: parent-death signal and the stdin watchdog, each proven alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from plughost.core.wire import ENV_PLUGIN_ID, ENV_TOKEN
from plughost.runtimes.process.confine import JAIL_TMP_PREFIX, sweep_dead_jails

from .conftest import PLUGINS, kill_quietly, pid_alive

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "src"))


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_plugin_process_dies_when_its_host_is_killed(mode: str) -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    host = subprocess.Popen(
        [sys.executable, str(PLUGINS / "tiny_host.py"), str(PLUGINS / "pyecho"), mode],
        stdout=subprocess.PIPE,
        env=env,
    )
    children: list[int] = []
    try:
        assert host.stdout is not None
        children = [int(p) for p in host.stdout.readline().split()]
        assert len(children) == 2  # the plugin and the warm spare
        assert all(pid_alive(c) for c in children)
        host.send_signal(signal.SIGKILL)  # no cleanup code runs in the host
        host.wait(timeout=5)
        for child in children:
            assert wait_gone(child), f"process {child} outlived its host"
        sweep_dead_jails()  # the next host's sweep: the killed host's private tmp goes
        assert list(Path(tempfile.gettempdir()).glob(f"{JAIL_TMP_PREFIX}{host.pid}-*")) == []
    finally:
        host.kill()
        host.wait()
        for child in children:
            kill_quietly(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="poll() POLLHUP on pipes")
def test_child_watchdog_exits_on_stdin_hangup_even_while_a_handler_loops() -> None:
    # Started directly (no prctl): only the runner's own watchdog can notice the host leaving.
    env = dict(os.environ, PYTHONPATH=SRC, **{ENV_TOKEN: "t", ENV_PLUGIN_ID: "pyecho"})
    child = subprocess.Popen(
        [sys.executable, "-m", "plughost.sdk.child", "pyecho_plugin:Echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=PLUGINS / "pyecho",
        env=env,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdout.read1(65536)  # the $/hello
        body = b'{"jsonrpc":"2.0","id":1,"method":"plugin.activate","params":{}}'
        call = (
            b'{"jsonrpc":"2.0","id":2,"method":"plugin.call",'
            b'"params":{"target":"sleep","args":{"seconds":60}}}'
        )
        for b in (body, call):
            child.stdin.write(b"Content-Length: %d\r\n\r\n%b" % (len(b), b))
        child.stdin.flush()
        child.stdout.read1(65536)  # activate answered; the sleep is running
        child.stdin.close()
        assert child.wait(timeout=5) == 0
    finally:
        child.kill()
        child.wait()


def test_runner_started_by_hand_explains_itself() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGHOST_")}
    env["PYTHONPATH"] = SRC
    proc = subprocess.run(
        [sys.executable, "-m", "plughost.sdk.child", "x:y"],
        capture_output=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 2
    assert b"started by a plughost host" in proc.stderr
