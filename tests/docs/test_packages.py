"""docs/packages.md: its example runs, its code block is the tested file, every code is listed."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_package_example_signs_verifies_and_extracts() -> None:
    path = DOCS / "examples" / "packages_sign_verify.py"
    spec = importlib.util.spec_from_file_location("docs_examples_packages", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main()
    assert result["plugin"] == "notify-slack"
    assert result["signed_by"] == "Acme"
    assert "slack.py" in result["files"] and "PLUGHOST-INTEGRITY.json" in result["files"]


def test_code_block_in_the_page_is_the_tested_file() -> None:
    page = (DOCS / "packages.md").read_text()
    blocks = re.findall(r"<!-- file: (examples/[\w.]+) -->\n```python\n(.*?)```", page, re.S)
    assert [name for name, _ in blocks] == ["examples/packages_sign_verify.py"]
    assert blocks[0][1] == (DOCS / blocks[0][0]).read_text()


def test_every_error_code_raised_by_the_package_modules_is_documented() -> None:
    page = (DOCS / "packages.md").read_text()
    sources = [ROOT / "src" / "plughost" / "security" / f"{m}.py"
               for m in ("archive", "_zipstructure", "package", "keys", "trust", "signing")]
    codes: set[str] = set()
    for src in sources:
        text = src.read_text()
        codes |= set(re.findall(r'"((?:archive|package|signature|integrity|key|trust)'
                                r'\.[a-z_]+)"', text))
    codes.discard("trust.json")  # the trust store's file name, not a code
    codes |= {"signature.invalid", "key.invalid", "integrity.checksum"}  # class defaults
    assert len(codes) > 30
    missing = sorted(c for c in codes if f"`{c}`" not in page)
    assert not missing, missing
