"""The guide pages for extension points, events, commands and channels: every example runs and
the code shown on each page is the tested file."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = {
    "hooks.md": "hooks_pipeline",
    "events.md": "events_wildcards",
    "commands.md": "commands_lazy",
    "channels.md": "channels_stream",
}


def load(name: str) -> ModuleType:
    path = DOCS / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_examples_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hooks_example() -> None:
    result = load("hooks_pipeline").main()
    assert result["sent"] == "**** <link>x.org"
    assert result["order"] == ["audit", "profanity", "links"]
    assert result["model"] == "big-model"
    assert result["audit"][0] == ("darn https://x.org", "**** <link>x.org")
    assert result["loud"] == "**** IT"


async def test_events_example() -> None:
    result = await load("events_wildcards").main()
    assert result["log"] == ["one segment: chat.message", "any depth: chat.message",
                             "any depth: chat.message.edited"]
    assert result["tokens"] == ["a", "b", "c"]
    assert result["dropped"] == 2


async def test_commands_example() -> None:
    result = await load("commands_lazy").main()
    assert result["greet"] == "Hello, Ada!"
    assert result["error"] == {"code": "hello.bad_name", "message": "name is empty",
                               "plugin_id": "hello", "details": {"field": "name"}}
    assert result["timeout"] == "plugin.timeout"
    assert result["lazy"] == "Sunny in Lyon"


async def test_channels_example() -> None:
    result = await load("channels_stream").main()
    assert result["ahead"] == 2
    assert result["tokens"] == ["Echo:", "what", "is", "backpressure"]
    assert result["closed"] is True


@pytest.mark.parametrize(("page", "example"), sorted(PAGES.items()))
def test_page_shows_the_tested_file(page: str, example: str) -> None:
    text = (DOCS / page).read_text()
    blocks = re.findall(r"<!-- file: (examples/[\w.]+) -->\n```python\n(.*?)```", text, re.S)
    assert [name for name, _ in blocks] == [f"examples/{example}.py"]
    for name, code in blocks:
        assert code == (DOCS / name).read_text(), name


@pytest.mark.parametrize("example", sorted(PAGES.values()))
def test_examples_run_as_scripts(example: str) -> None:
    out = subprocess.run([sys.executable, str(DOCS / "examples" / f"{example}.py")],
                         capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(DOCS.parent / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
