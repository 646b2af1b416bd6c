"""Every example in docs/quickstart.md runs and does what the page says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

DOCS = Path(__file__).resolve().parents[2] / "docs"


def load(name: str) -> ModuleType:
    path = DOCS / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_examples_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_embed_example() -> None:
    result = await load("quickstart_embed").main(load("quickstart_embed").EXAMPLES)
    assert result["greeting"] == "Hello, Ada!"
    assert result["lyrics"] == "[00:00.00] (instrumental)"
    assert result["tracks"] == [{"title": "Gymnopédie No.1", "artist": "Satie", "id": "t2"}]


def test_sync_example() -> None:
    assert load("quickstart_sync").main() == "Hello, Grace!"


async def test_author_example() -> None:
    assert await load("quickstart_author").main() == "Bonjour, Ada!"


def test_every_example_file_is_referenced_by_the_docs() -> None:
    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    for example in (DOCS / "examples").glob("quickstart_*.py"):
        assert f"examples/{example.name}" in text, example.name


def test_embed_example_runs_as_a_script() -> None:
    out = subprocess.run([sys.executable, str(DOCS / "examples" / "quickstart_embed.py")],
                         capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(DOCS.parent / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "Hello, Ada!" in out.stdout


def test_code_blocks_in_the_page_are_the_tested_files() -> None:
    import re

    page = (DOCS / "quickstart.md").read_text()
    blocks = re.findall(r"<!-- file: (examples/[\w.]+) -->\n```python\n(.*?)```", page, re.S)
    assert len(blocks) == 3
    for name, code in blocks:
        assert code == (DOCS / name).read_text(), name
