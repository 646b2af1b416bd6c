"""docs/cli.md documents the output model as the code defines it: every resource kind, and the
plain columns of each kind in their order."""

from __future__ import annotations

import re
from pathlib import Path

from plughost.interfaces.cli._output import COLUMNS
from plughost.services.resources import SCHEMAS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")


def test_every_kind_is_named_in_the_doc() -> None:
    kinds = re.search(r"\*\*Kinds\.\*\*(.*?)\n\n", DOC, re.S)
    assert kinds is not None
    named = set(re.findall(r"`([a-z_]+)`", kinds.group(1)))
    assert named == set(SCHEMAS)


def test_plain_columns_match_the_code() -> None:
    rows = dict(re.findall(r"^\| ([a-z_]+) \| ([a-z0-9_, ]+) \|$", DOC, re.M))
    documented = {k: [c.strip() for c in v.split(",")] for k, v in rows.items() if k in COLUMNS}
    assert documented == {k: [c.name for c in cols] for k, cols in COLUMNS.items()}
