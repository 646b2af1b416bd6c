"""Fixtures for the process-runtime tests: manifests, a runtime, a plugin folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from plughost.core.manifest import manifest_from_dict
from plughost.observability.health import RestartPolicy
from plughost.runtimes.process.runtime import ProcessOptions, ProcessRuntime

PLUGINS = Path(__file__).parent / "plugins"


def make_manifest(
    plugin_id: str,
    entry: str,
    limits: Mapping[str, Any] | None = None,
    *,
    permissions: list[str] | None = None,
) -> Any:
    """A real Manifest for a process plugin."""
    data: dict[str, Any] = {
        "id": plugin_id,
        "name": plugin_id,
        "version": "1.0.0",
        "runtime": "process",
        "entry": entry,
    }
    if limits:
        data["limits"] = {k.replace("_", "-"): v for k, v in limits.items()}
    if permissions:
        data["permissions"] = permissions
    return manifest_from_dict(data)


class Context:
    """The slice of PluginContext the process runtime reads (config, data_dir)."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = MappingProxyType(dict(config or {}))
        self.data_dir = None


def fast_options(**over: Any) -> ProcessOptions:
    base: dict[str, Any] = {
        "cancel_grace": 0.3,
        "term_grace": 0.5,
        "stop_grace": 1.0,
        "handshake_timeout": 10.0,
        "default_timeout": 10.0,
    }
    base.update(over)
    return ProcessOptions(**base)


@pytest.fixture
async def runtime() -> AsyncIterator[ProcessRuntime]:
    granted: set[tuple[str, str]] = {
        ("events:emit", "allowed.topic"),
        ("events:emit", "async.topic"),
        ("fs:read", "/etc/hostname"),
    }
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def check_for(plugin_id: str):
        def check(kind: str, target: str) -> None:
            from plughost.errors import PermissionDenied

            if (kind, target) not in granted:
                raise PermissionDenied(f"{kind}:{target} not granted", plugin_id=plugin_id)

        return check

    def emit(plugin_id: str, params: dict[str, Any]) -> str:
        calls.append(("host.emit", plugin_id, params))
        return f"emitted {params['topic']}"

    rt = ProcessRuntime(
        handlers={"host.emit": emit},
        check_for=check_for,
        options=fast_options(),
        policy=RestartPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.1),
    )
    rt.host_calls = calls  # type: ignore[attr-defined]
    yield rt
    await rt.aclose()


async def eventually(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``pred`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        if f.read().split(")")[-1].split()[0] == "Z":
            return False  # a zombie is dead, only not yet reaped
    return True


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
