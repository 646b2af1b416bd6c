"""The example in docs/wasm-abi.md runs and does what the page says."""

from __future__ import annotations

import subprocess
import sys

from .test_quickstart import DOCS, load


async def test_wasm_embed_example() -> None:
    result = await load("wasm_embed").main()
    assert result["greeting"] == {"greeting": "hello from wasm", "request": {"name": "Ada"}}
    assert result["total"] == 5
    assert result["stats"]["calls"] >= 2 and result["stats"]["errors"] == 0


def test_wasm_embed_example_is_referenced_and_runs_as_a_script() -> None:
    assert "examples/wasm_embed.py" in (DOCS / "wasm-abi.md").read_text()
    out = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "wasm_embed.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(DOCS.parent / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "hello from wasm" in out.stdout


def test_the_manifest_shown_on_the_page_is_valid() -> None:
    import re

    from plughost.core.manifest import parse_manifest

    text = (DOCS / "wasm-abi.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    manifest = parse_manifest(block.group(1), format="toml")
    assert manifest.runtime == "wasm"
    assert (manifest.limits.memory, manifest.limits.fuel) == (16 << 20, 10_000_000)
