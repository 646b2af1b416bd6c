"""Regenerate the manifest artefacts derived from ``plughost.core.manifest.FIELDS``.

    python docs/gen_manifest_reference.py

writes ``docs/manifest.schema.json`` and the generated tables of ``docs/manifest.md`` (between the
markers). ``tests/docs/test_manifest_examples.py`` fails when either is out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "src"))

from plughost.core.manifest import manifest_json_schema, reference_markdown  # noqa: E402

SCHEMA_FILE = DOCS / "manifest.schema.json"
REFERENCE_FILE = DOCS / "manifest.md"
START = "<!-- BEGIN GENERATED: python docs/gen_manifest_reference.py -->"
END = "<!-- END GENERATED -->"


def schema_text() -> str:
    """The committed form of the JSON Schema."""
    return json.dumps(manifest_json_schema(), indent=2, ensure_ascii=False) + "\n"


def reference_text(current: str) -> str:
    """``current`` (the text of docs/manifest.md) with the generated section replaced."""
    head, sep, rest = current.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{REFERENCE_FILE} lacks the {START!r} / {END!r} markers")
    return f"{head}{START}\n\n{reference_markdown()}\n{END}{tail}"


def main() -> None:
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    REFERENCE_FILE.write_text(reference_text(REFERENCE_FILE.read_text(encoding="utf-8")),
                              encoding="utf-8")
    sys.stderr.write(f"wrote {SCHEMA_FILE} and {REFERENCE_FILE}\n")


if __name__ == "__main__":
    main()
