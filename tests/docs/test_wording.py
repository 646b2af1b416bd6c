"""What a user reads never names the internal design documents ("seed 003", "§5.3").

Users know Arcade (the plugin API plughost is compatible with) and the pages under docs/; the
design documents behind them are not published, so a reference to them explains nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from plughost.core.hookcall import SAMPLE
from plughost.interfaces.http._schemas import MetricOut

ROOT = Path(__file__).resolve().parents[2]

#: "seed 003", "design seed 003", "seed 000's", "the seed's", "Seed 002:" and section numbers
#: with a subsection ("§5.3"; the docs' own "§7" of docs/protocol.md is fine).
JARGON = re.compile(
    r"\bseeds?(?:'s)?\s+0\d\d\b|\bthe\s+seed(?:'s)?\b|\bseed's\b|§\s*\d+\.\d+", re.I)

TEXT_SUFFIXES = {".md", ".json", ".py", ".toml", ".js", ".yaml", ".yml", ".txt"}


def _user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*")),
             *sorted((ROOT / "examples").rglob("*")),
             *sorted((ROOT / "src" / "plughost").rglob("*.py"))]
    return [f for f in files if f.is_file() and f.suffix in TEXT_SUFFIXES]


def test_no_design_document_jargon_in_docs_examples_or_source() -> None:
    files = _user_facing_files()
    assert any(f.name == "openapi.json" for f in files)
    assert any(f.parent.name == "cli" for f in files)
    hits = [
        f"{f.relative_to(ROOT)}:{n}: {line.strip()}"
        for f in files
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if JARGON.search(line)
    ]
    assert hits == [], "say what it means in plain words (e.g. \"Arcade's fields\"):\n" + "\n".join(
        hits)


def test_the_pattern_catches_the_forms_that_were_used() -> None:
    for text in ("seed 003's fields", "(design seed 003)", "Seed 000's PluginResponse",
                 "as in the seed.", "the seed's way", "after seed 000 §5.3"):
        assert JARGON.search(text), text
    for text in ("docs/protocol.md §7", "random seed", "--seed 7", "seed=42"):
        assert not JARGON.search(text), text


def test_busy_seconds_says_hook_time_is_sampled() -> None:
    description = MetricOut.model_fields["busy_seconds"].description or ""
    assert "sampled" in description and f"in {SAMPLE}" in description
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert f"one synchronous hook call in {SAMPLE} is timed" in api
