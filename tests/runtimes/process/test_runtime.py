"""The process runtime against real child processes (Python runner and hand-written rogues)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import pytest

from plughost.core.bus import Event, EventBus
from plughost.errors import (
    PermissionDenied,
    PluginActivationError,
    PluginCrashed,
    PluginError,
    PluginLoadError,
    PluginTimeout,
    PluginUnavailable,
    ProtocolError,
)
from plughost.observability.health import RestartPolicy
from plughost.runtimes.base import PluginInstance
from plughost.runtimes.process.runtime import ProcessInstance, ProcessRuntime

from .conftest import PLUGINS, Context, eventually, fast_options, make_manifest, pid_alive

PYECHO = PLUGINS / "pyecho"


def make_event(topic: str, payload: Any) -> Event:
    """An event as the host's bus makes it."""
    bus = EventBus()
    got: list[Event] = []
    bus.subscribe(topic, got.append)
    bus.emit(topic, payload, source="shop")
    return got[0]


async def start_echo(runtime: ProcessRuntime, **limits: Any) -> ProcessInstance:
    inst = await runtime.load(make_manifest("pyecho", "pyecho_plugin:Echo", limits), PYECHO)
    await inst.start(Context({"greeting": "hi"}))
    return inst


async def start_rogue(runtime: ProcessRuntime, mode: str, **limits: Any) -> ProcessInstance:
    inst = await runtime.load(make_manifest("rogue", f"python ../rogue.py {mode}", limits), PYECHO)
    await inst.start(Context())
    return inst


async def test_python_plugin_runs_out_of_process_and_reports_its_exports(runtime) -> None:
    inst = await start_echo(runtime)
    assert isinstance(inst, PluginInstance)
    names = {(e.kind, e.name, e.target) for e in inst.exports}
    assert ("command", "echo.say", "say") in names
    assert ("hook", "greeting.format", "format_greeting") in names
    assert ("event", "user.created", "remember") in names
    result = await inst.call("say", {"text": "hello"})
    assert result["text"] == "hello"
    assert result["pid"] == inst.pid != os.getpid()
    assert await inst.call("format_greeting", {"name": "Ada"}) == "Hello, Ada!"
    assert await inst.call("config", {"key": "greeting"}) == "hi"
    assert (await inst.health()).ok


async def test_events_delivered_as_notifications_reach_the_plugin(runtime) -> None:
    inst = await start_echo(runtime)
    await inst.deliver_event("remember", make_event("user.created", {"user": "ada"}))
    await inst.deliver_event("remember", make_event("user.created", {"user": "bob"}))
    assert await inst.call("seen_users") == ["ada", "bob"]


async def test_events_arrive_as_event_objects_with_topic_and_payload(runtime) -> None:
    inst = await start_echo(runtime)
    await inst.deliver_event("on_order", make_event("order.created", {"id": 42}))
    assert await inst.call("seen_users") == ["order.created:42"]


async def test_sixty_four_concurrent_calls_each_get_their_own_answer(runtime) -> None:
    inst = await start_echo(runtime)
    results = await asyncio.gather(*(inst.call("say", {"text": str(i)}) for i in range(64)))
    assert [r["text"] for r in results] == [str(i) for i in range(64)]


async def test_plugin_exception_becomes_a_plugin_error_and_the_plugin_keeps_working(runtime):
    inst = await start_echo(runtime)
    with pytest.raises(PluginError) as info:
        await inst.call("fail")
    assert info.value.code == "plugin.error"
    assert "asked to fail" in info.value.message
    assert info.value.details["type"] == "ValueError"
    with pytest.raises(PluginError) as missing:
        await inst.call("no_such_target")
    assert "no export or public method 'no_such_target'" in missing.value.message
    assert (await inst.call("say", {"text": "still here"}))["text"] == "still here"


async def test_host_calls_are_permission_checked_at_the_boundary(runtime) -> None:
    inst = await start_echo(runtime)
    assert await inst.call("emit", {"topic": "allowed.topic"}) == "emitted allowed.topic"
    with pytest.raises(PermissionDenied) as info:
        await inst.call("emit", {"topic": "secret.topic"})
    # The plugin saw the refusal from the host and let it propagate: the caller gets it typed.
    assert "events:emit:secret.topic not granted" in info.value.message
    assert [c[2]["topic"] for c in runtime.host_calls] == ["allowed.topic"]


async def test_host_service_not_configured_is_reported_as_such(runtime) -> None:
    inst = await start_echo(runtime)
    with pytest.raises(PermissionDenied) as denied:
        await inst.call("read", {"path": "/etc/passwd"})
    assert "not granted" in denied.value.message  # refused before the missing service matters
    with pytest.raises(PluginError) as info:  # granted, but this host runs no files service
        await inst.call("read", {"path": "/etc/hostname"})
    assert "'host.files.read' is not served by this host" in info.value.message


async def test_async_handler_can_await_host_calls(runtime) -> None:
    inst = await start_echo(runtime)
    assert await inst.call("async_echo", {"text": "x"}) == "async:x:emitted async.topic"


async def test_state_export_and_import_round_trip(runtime) -> None:
    inst = await start_echo(runtime)
    assert await inst.export_state() == {"activations": 1}
    await inst.import_state({"activations": 5}, from_version="0.9.0")
    assert await inst.export_state() == {"activations": 5, "from": "0.9.0"}


async def test_slow_call_times_out_and_a_plugin_that_answers_late_is_kept(runtime) -> None:
    inst = await start_echo(runtime)
    pid = inst.pid
    with pytest.raises(PluginTimeout) as info:
        await inst.call("sleep", {"seconds": 0.2}, timeout=0.05)
    assert "did not answer within 0.05s" in info.value.message
    await asyncio.sleep(0.4)  # past the 0.3 s cancel grace: it answered at 0.2 s, so not hung
    assert inst.pid == pid
    assert (await inst.call("say", {"text": "ok"}))["text"] == "ok"
    assert inst.stats()["timeouts"] == 1


async def test_hung_child_gets_sigterm_then_sigkill_and_is_restarted(runtime) -> None:
    events: list[str] = []
    runtime.on_event = lambda ev: events.append(f"{ev.kind}: {ev.reason}")
    inst = await start_rogue(runtime, "stubborn")  # ignores SIGTERM, loops forever
    pid = inst.pid
    assert pid is not None
    with pytest.raises(PluginTimeout):
        await inst.call("run", timeout=0.1)
    await eventually(lambda: not pid_alive(pid))
    await eventually(lambda: any(e.startswith("restarted") for e in events))
    assert "did not answer plugin.call" in events[0]
    assert inst.pid not in (None, pid)


class _OnRecord(logging.Handler):
    """Runs ``action`` inside the host's own code, at the instant it logs a record."""

    def __init__(self, action: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(logging.WARNING)
        self.action = action

    def emit(self, record: logging.LogRecord) -> None:
        self.action(record)


async def test_a_call_made_the_instant_a_plugin_is_found_hung_waits_for_the_restart(
    caplog,
) -> None:
    # The call starts from inside the host's decision that the plugin is hung (its warning),
    # so it runs before anything that decision schedules: no timing luck either way.
    caplog.set_level(logging.WARNING, logger="plughost.runtimes.process.connection")
    runtime = ProcessRuntime(
        options=fast_options(term_grace=1.0),
        policy=RestartPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.1),
    )
    inst = await start_echo(runtime)
    await inst.call("ignore_term")  # SIGTERM is ignored: the kill takes the whole term grace
    pid = inst.pid
    calls: list[asyncio.Task[Any]] = []

    def call_now(record: logging.LogRecord) -> None:
        if "terminated" in record.getMessage():
            assert pid_alive(pid)  # still running: it is being ended, not yet gone
            calls.append(asyncio.ensure_future(inst.call("say", {"text": "after"}, timeout=10)))

    hook = _OnRecord(call_now)
    logging.getLogger("plughost.runtimes.process.connection").addHandler(hook)
    try:
        with pytest.raises(PluginTimeout):
            await inst.call("sleep", {"seconds": 30}, timeout=0.1)  # blocks: cannot answer cancel
        await eventually(lambda: bool(calls))
        result = await calls[0]
        assert result["text"] == "after" and result["pid"] not in (None, pid)
        assert not pid_alive(pid) and len(calls) == 1
    finally:
        logging.getLogger("plughost.runtimes.process.connection").removeHandler(hook)
        await runtime.aclose()


@pytest.mark.parametrize("end", ["exit 0", "exit 7", "SIGKILL from outside"])
async def test_a_call_made_the_instant_the_host_sees_the_process_end_waits_for_the_restart(
    runtime, end: str
) -> None:
    calls: list[asyncio.Task[Any]] = []

    def on_event(ev: Any) -> None:  # runs inside the supervisor's handling of the end
        if ev.kind == "crashed":
            calls.append(asyncio.ensure_future(inst.call("say", {"text": "after"}, timeout=10)))

    runtime.on_event = on_event
    inst = await start_echo(runtime)
    pid = inst.pid
    assert pid is not None
    if end == "SIGKILL from outside":
        os.kill(pid, signal.SIGKILL)
    else:
        with pytest.raises(PluginCrashed, match=f"exited .*code {end.split()[1]}"):
            await inst.call("exit", {"code": int(end.split()[1])})
    await eventually(lambda: bool(calls))
    result = await calls[0]
    assert result["text"] == "after" and result["pid"] not in (None, pid)


async def test_a_call_made_while_the_plugin_is_closing_is_refused_as_unavailable(runtime):
    inst = await start_echo(runtime)
    closing = asyncio.ensure_future(inst.close())
    await asyncio.sleep(0)  # close() has begun: deactivating, then ending the process
    with pytest.raises(PluginUnavailable):
        await inst.call("say", {"text": "late"})
    await closing
    with pytest.raises(PluginUnavailable, match="closed"):
        await inst.call("say", {"text": "later"})


async def test_crash_mid_call_fails_every_in_flight_call_quickly(runtime) -> None:
    inst = await start_echo(runtime)
    # async handlers run concurrently in the child, so these are really in flight together
    slow = [asyncio.ensure_future(inst.call("nap", {"seconds": 5})) for _ in range(3)]
    await asyncio.sleep(0.05)
    # Noticed from the exit itself (EOF / process exit), not from the 30 s deadline expiring.
    with pytest.raises(PluginCrashed) as info:
        await inst.call("exit", {"code": 7}, timeout=30)
    assert "exited with code 7" in info.value.message
    for fut in slow:
        with pytest.raises(PluginCrashed):
            await fut


async def test_crashed_plugin_restarts_with_backoff_then_is_quarantined(runtime) -> None:
    events: list[str] = []
    runtime.on_event = lambda ev: events.append(ev.kind)
    inst = await start_echo(runtime)
    pids = {inst.pid}
    for _ in range(2):
        with pytest.raises(PluginCrashed):
            await inst.call("exit", {"code": 3})
        # The next call waits for the restart (within its deadline) and is served.
        assert (await inst.call("say", {"text": "back"}))["text"] == "back"
        pids.add(inst.pid)
    assert len(pids) == 3
    with pytest.raises(PluginCrashed):
        await inst.call("exit", {"code": 3})
    await eventually(lambda: "quarantined" in events)
    with pytest.raises(PluginUnavailable) as info:
        await inst.call("say", {"text": "x"})
    assert "quarantined after 3 crashes" in info.value.message
    health = await inst.health()
    assert not health.ok and health.data["quarantined"]
    assert events.count("crashed") == 3 and events.count("restarted") == 2
    # The operator re-enables it by loading it again (the host closes a quarantined instance).
    await inst.close()
    again = await start_echo(runtime)
    assert (await again.call("say", {"text": "again"}))["text"] == "again"


async def test_cpu_limit_kills_a_busy_loop_and_says_so(runtime) -> None:
    inst = await start_rogue(runtime, "hang", cpu=1)
    with pytest.raises(PluginCrashed) as info:
        await inst.call("run", timeout=10)
    assert "cpu limit 1s exceeded" in info.value.message


async def test_memory_limit_stops_a_memory_bomb_and_says_so(runtime, tmp_path) -> None:
    (tmp_path / "bomb.py").write_text(
        "from plughost.sdk.decorators import command\n"
        "class Bomb:\n"
        "    @command('bomb.run')\n"
        "    def run(self):\n"
        "        hog = []\n"
        "        while True:\n"
        "            hog.append(bytearray(1 << 20))\n"
    )
    manifest = make_manifest("bomb", "bomb:Bomb", {"memory": 128 * 1024 * 1024})
    inst = await runtime.load(manifest, tmp_path)
    await inst.start(Context())
    with pytest.raises(PluginCrashed) as info:
        await inst.call("run", timeout=20)
    assert "memory limit 128 MiB exceeded" in info.value.message


async def test_open_files_limit_applies_inside_the_child(runtime, tmp_path) -> None:
    (tmp_path / "files.py").write_text(
        "from plughost.sdk.decorators import command\n"
        "class Files:\n"
        "    @command('files.open')\n"
        "    def open_many(self, n):\n"
        "        held = [open(__file__) for _ in range(n)]\n"
        "        return len(held)\n"
    )
    inst = await runtime.load(make_manifest("files", "files:Files", {"open_files": 32}), tmp_path)
    await inst.start(Context())
    assert await inst.call("open_many", {"n": 5}) == 5
    with pytest.raises(PluginError) as info:
        await inst.call("open_many", {"n": 64})
    assert "Too many open files" in info.value.message


async def test_stderr_is_logged_line_by_line_and_rate_limited(runtime, caplog) -> None:
    caplog.set_level(logging.INFO, logger="plughost.plugin.pyecho")
    inst = await start_echo(runtime)
    assert await inst.call("log", {"n": 500}) == 500
    await eventually(lambda: inst.sink is not None and inst.sink.dropped_lines >= 300)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("line ")]
    assert lines[:3] == ["line 0", "line 1", "line 2"]
    assert len(lines) <= 100
    assert inst.stats()["log_lines_dropped"] >= 300


async def test_handshake_version_mismatch_names_both_versions(runtime) -> None:
    with pytest.raises(ProtocolError) as info:
        await runtime.load(make_manifest("rogue", "python ../rogue.py future-protocol"), PYECHO)
    assert info.value.code == "protocol.version"
    assert "core protocol 99" in info.value.message and "speaks 1" in info.value.message


async def test_plain_text_on_stdout_ends_the_session_with_a_protocol_error(runtime) -> None:
    with pytest.raises(ProtocolError) as info:
        await runtime.load(make_manifest("rogue", "python ../rogue.py print-first"), PYECHO)
    assert info.value.code == "protocol.frame"


async def test_missing_handshake_is_a_load_error_naming_the_deadline(runtime) -> None:
    runtime.options = type(runtime.options)(handshake_timeout=0.3, term_grace=0.3)
    with pytest.raises(PluginLoadError) as info:
        await runtime.load(make_manifest("rogue", "python ../rogue.py silent"), PYECHO)
    assert "within 0.3s" in info.value.message


@pytest.mark.parametrize(
    ("mode", "code"), [("oversized", "protocol.frame"), ("bad-json", "protocol.json")]
)
async def test_oversized_or_invalid_frames_end_the_session(runtime, mode: str, code: str) -> None:
    inst = await start_rogue(runtime, mode)
    with pytest.raises(ProtocolError) as info:
        await inst.call("run", timeout=5)
    assert info.value.code == code


async def test_entry_that_cannot_be_imported_reports_the_traceback(runtime, tmp_path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_module_xyz\n")
    with pytest.raises(PluginLoadError) as info:
        await runtime.load(make_manifest("broken", "broken:Plugin"), tmp_path)
    assert "No module named 'no_such_module_xyz'" in info.value.message


async def test_activate_failure_is_an_activation_error(runtime, tmp_path) -> None:
    (tmp_path / "bad.py").write_text(
        "class Bad:\n    def activate(self, ctx):\n        raise RuntimeError('no config')\n"
    )
    inst = await runtime.load(make_manifest("bad", "bad:Bad"), tmp_path)
    with pytest.raises(PluginActivationError, match="no config"):
        await inst.start(Context())


async def test_missing_program_is_a_clear_load_error(runtime, tmp_path) -> None:
    with pytest.raises(PluginLoadError, match="not installed"):
        await runtime.load(make_manifest("x", "no-such-program-xyz --flag"), tmp_path)


async def test_close_is_idempotent_and_reaps_the_child(runtime) -> None:
    inst = await start_echo(runtime)
    pid = inst.pid
    assert pid is not None
    await inst.close()
    await inst.close()
    assert not pid_alive(pid)
    with pytest.raises(PluginUnavailable, match="closed"):
        await inst.call("say")


async def test_cancellation_interrupts_an_async_handler_in_the_child(runtime) -> None:
    inst = await start_echo(runtime)
    pid = inst.pid
    with pytest.raises(PluginTimeout):
        await inst.call("nap", {"seconds": 30}, timeout=0.05)
    # The child cancelled the coroutine and answered "cancelled" at once: no hang, no kill.
    session = inst._session
    assert session is not None
    await eventually(lambda: not session._late)
    assert inst.pid == pid
    assert await inst.call("nap", {"seconds": 0}) == 0


async def test_a_plugin_that_declares_net_keeps_its_sockets_others_do_not(runtime, tmp_path):
    (tmp_path / "net.py").write_text(
        "import socket\n"
        "from plughost.sdk.decorators import command\n"
        "class Net:\n"
        "    @command('net.connect')\n"
        "    def connect(self, port):\n"
        "        try:\n"
        "            socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
        "            return 'connected'\n"
        "        except OSError as exc:\n"
        "            return type(exc).__name__\n"
    )
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        plain = await runtime.load(make_manifest("plain", "net:Net"), tmp_path)
        await plain.start(Context())
        networked = await runtime.load(
            make_manifest("networked", "net:Net", permissions=["net:127.0.0.1:*"]), tmp_path
        )
        await networked.start(Context())
        assert networked.stats()["network_isolated"] is False
        assert await networked.call("connect", {"port": port}) == "connected"
        if plain.stats()["network_isolated"]:  # where namespaces are available (Linux, root/userns)
            assert await plain.call("connect", {"port": port}) != "connected"
