"""The runnable example of docs/protocol.md works."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from plughost.core import wire
from plughost.runtimes.hostcalls import HOST_OPS
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


# --- docs/protocol.md is the specification: its tables are checked against plughost.core.wire --

PROTOCOL_DOC = DOCS / "protocol.md"
_KEY = re.compile(r'(?:^|[{,]\s*)"(\w+)"(\??)')


def _sections() -> dict[str, list[list[str]]]:
    """Table rows (as cells) of each ``## N.`` section of the doc."""
    rows: dict[str, list[list[str]]] = {}
    section = ""
    for line in PROTOCOL_DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].split(".")[0]
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
            rows.setdefault(section, []).append(cells)
    return rows


def _method_rows() -> list[tuple[str, str, list[str], str]]:
    """``(section, method, cells, kind cell)`` for each table row naming methods."""
    out = []
    for section, rows in _sections().items():
        for cells in rows:
            names = re.findall(r"`([^`]+)`", cells[0])
            if not names or not re.match(r"^(\$/|plugin\.|host\.|channel\.)", names[0]):
                continue
            full = names[0]
            for name in names:
                if name.startswith("."):  # "`host.storage.get` / `.set`" style
                    name = full.rsplit(".", 1)[0] + name
                out.append((section, name, cells, cells[0] + " " + cells[1]))
    return out


def _doc_params(cells: list[str]) -> set[str]:
    cell = next(c for c in cells[1:] if c.startswith("`{"))
    return {name + opt for name, opt in _KEY.findall(cell.strip("`"))}


def test_every_method_in_the_doc_tables_has_the_params_the_code_defines() -> None:
    rows = _method_rows()
    assert rows, "no method tables found in docs/protocol.md"
    documented = set()
    for section, name, cells, kind_text in rows:
        if name in HOST_OPS:  # a host operation: its shape is the host operations table's
            op = HOST_OPS[name]
            doc = _doc_params(cells)
            assert {p.rstrip("?") for p in doc} == {p.name for p in op.params}, name
            assert {p.name for p in op.params if p.required} <= doc, f"{name}: required params"
            assert section == "7", f"{name} is a host operation, documented in §7"
            documented.add(name)
            continue
        spec = wire.METHODS.get(name)
        assert spec is not None, f"docs/protocol.md §{section} documents unknown method {name}"
        assert not spec.private, f"{name} is private to the Python runner; keep it out of tables"
        assert _doc_params(cells) == set(spec.params), f"§{section}: params of {name}"
        if spec.kind == "notification":
            assert "notification" in kind_text and "or request" not in kind_text, name
        elif spec.kind == "either":
            assert "notification (or request)" in kind_text, name
        else:
            assert "notification" not in kind_text, name
        expected_sender = {"6": {"host", "both"}, "7": {"plugin", "both"}}.get(section)
        if expected_sender is not None:
            assert spec.sender in expected_sender, f"§{section} lists {name} sent by {spec.sender}"
        documented.add(name)
    public = {name for name, spec in wire.METHODS.items() if not spec.private}
    assert public - documented == set(), "methods of plughost.core.wire missing from the doc"
    assert set(HOST_OPS) - documented == set(), "host operations missing from the doc's §7"


def test_error_codes_environment_and_hello_fields_match_the_wire_module() -> None:
    sections = _sections()
    codes = {int(cells[0]) for cells in sections["9"] if re.fullmatch(r"-\d+", cells[0])}
    assert codes == {v for k, v in vars(wire.WireCode).items() if k.isupper()}
    env = {m for cells in sections["1"] for m in re.findall(r"`(PLUGHOST_\w+)`", cells[0])}
    assert env == set(wire.launch_env("p", "t"))
    fields = {m for cells in sections["5"] for m in re.findall(r"^`(\w+)`", cells[0])}
    fields |= {m for cells in sections["5"] for m in re.findall(r"`(\w+)`", cells[0])}
    assert fields == set(wire.METHODS[wire.M.HELLO].names)
    assert f"Core protocol version {wire.PROTOCOL_VERSION} · application protocol version " \
        f"{wire.APP_PROTOCOL_VERSION}" in PROTOCOL_DOC.read_text()
