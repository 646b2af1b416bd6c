"""docs/runtimes.md: its example runs, and its capability table is what the runtimes declare."""

from __future__ import annotations

import re
import subprocess
import sys

from plughost.core.contract import Capability
from plughost.runtimes.base import BUILTIN_RUNTIMES, create_runtime

from .test_quickstart import DOCS, load

PAGE = DOCS / "runtimes.md"


async def test_new_runtime_example_serves_calls_and_refuses_what_it_lacks() -> None:
    assert await load("runtimes_new").main() == {
        "greeting": "Hello from JSON", "ok": True, "woken": "failed",
        "refusal": "runtime.capability"}


def test_new_runtime_example_is_referenced_and_runs_as_a_script() -> None:
    assert "examples/runtimes_new.py" in PAGE.read_text()
    out = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "runtimes_new.py")], capture_output=True,
        text=True, timeout=60,
        env={"PYTHONPATH": str(DOCS.parent / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "Hello from JSON" in out.stdout


async def test_capability_table_is_what_each_builtin_runtime_declares() -> None:
    text = PAGE.read_text()
    header = "| runtime | " + " | ".join(c.value for c in Capability) + " |"
    assert header in text, "the table's columns must be the capabilities, in their order"
    rows = dict(re.findall(r"^\| `(\w+)` \| ((?:yes|no)(?: \| (?:yes|no))*) \|$", text, re.M))
    assert sorted(rows) == sorted(BUILTIN_RUNTIMES)
    for name in BUILTIN_RUNTIMES:
        runtime = create_runtime(name)
        try:
            declared = {c.value for c in runtime.capabilities}
        finally:
            await runtime.aclose()
        marks = rows[name].split(" | ")
        documented = {c.value for c, mark in zip(Capability, marks, strict=True) if mark == "yes"}
        assert documented == declared, name
