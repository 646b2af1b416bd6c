"""The runnable example of docs/protocol.md works."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests._tools import require_tool

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_process_plugins_example() -> None:
    require_tool("node", "the example drives a Node.js plugin")
    path = DOCS / "examples" / "protocol_process_plugins.py"
    spec = importlib.util.spec_from_file_location("docs_examples_protocol", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = await module.main()
    assert result["bumps"] == [2, 3]
    assert result["out_of_process"] is True
    assert result["greeting"] == "Hello, Ada!"
    assert "examples/protocol_process_plugins.py" in (DOCS / "protocol.md").read_text()
