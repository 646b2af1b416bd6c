"""docs/security.md: its list of refusals is exactly what src/plughost/errors.py declares for
the security-relevant code families, and the source raises no code of them that errors.py
does not declare — so neither the doc nor the error tree can go stale."""

from __future__ import annotations

import ast
import gc
import inspect
import re
from pathlib import Path

import plughost.errors as errors_module
from plughost.interfaces.http._errors import status_for

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "security.md"
README = REPO / "README.md"
SRC = REPO / "src" / "plughost"

#: The families of refusal codes the threat model lists in full.
FAMILIES = ("auth", "request", "permission", "download", "archive", "package", "signature",
            "integrity", "key", "trust", "protocol", "http", "market", "reload")
#: Single codes from other families the threat model lists.
SINGLES = {"storage.database_unavailable", "storage.object_store_unavailable"}
#: String constants that look like codes but are file names.
_FILE_SUFFIXES = ("zip", "json", "toml", "sig", "txt", "py", "md", "lock")


def _declared() -> set[str]:
    """Codes errors.py declares: its classes' default codes and its drawn tree (``code:
    family.* (sub sub ...)`` spans several lines; ``a / b`` lists alternatives)."""
    codes = {cls.default_code for cls in vars(errors_module).values()
             if inspect.isclass(cls) and issubclass(cls, errors_module.PlughostError)}
    tree = errors_module.__doc__ or ""
    for match in re.finditer(r"code: ([a-z_]+)\.(\*|[a-z_]+)([^\n(]*)(\(([^)]*)\))?", tree):
        family, sub, rest, _, inside = match.groups()
        if sub != "*":
            codes.add(f"{family}.{sub}")
            codes |= set(re.findall(r"\b[a-z_]+\.[a-z_]+\b", rest))
        elif inside:
            inside = inside.split(":", 1)[-1]  # "one code per refusal: a b c"
            codes |= {f"{family}.{word}" for word in re.findall(r"[a-z_]+", inside)}
    codes |= set(re.findall(r"\b(request\.[a-z_]+)\b", tree))  # answers without a class
    return codes


def _relevant(code: str) -> bool:
    family, _, sub = code.partition(".")
    return (family in FAMILIES and sub not in _FILE_SUFFIXES) or code in SINGLES


def _parse(source: str) -> ast.Module:
    """``ast.parse`` with the garbage collector paused. CPython 3.11.7 (fixed in 3.11.8,
    gh-106905) intermittently fails ast.parse with "SystemError: AST constructor recursion
    depth mismatch" after other tests ran in the same process; keeping collections (and the
    finalizers of earlier tests' objects) out of the parse is the suspected trigger removed."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source)
    finally:
        if enabled:
            gc.enable()


def _raised_in_source() -> set[str]:
    """Every string constant in src/plughost shaped like a code of the families."""
    found: set[str] = set()
    shape = re.compile(r"^([a-z]+)\.([a-z_]+)$")
    for path in SRC.rglob("*.py"):
        for node in ast.walk(_parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and shape.match(node.value) and _relevant(node.value)):
                found.add(node.value)
    return found


def _documented() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| ([^|]+) \|", DOC.read_text(encoding="utf-8"),
                      re.M)
    return {code: status.strip() for code, status in rows}


def test_the_refusal_list_is_exactly_what_errors_py_declares() -> None:
    declared = {c for c in _declared() if _relevant(c)}
    documented = set(_documented())
    assert not documented - _declared(), (
        f"docs/security.md lists codes errors.py does not declare: {documented - _declared()}")
    assert not declared - documented, (
        f"errors.py declares codes docs/security.md does not list: {declared - documented}")


def test_the_source_raises_no_code_errors_py_does_not_declare() -> None:
    undeclared = _raised_in_source() - _declared()
    assert not undeclared, (
        f"codes used in src/plughost but missing from the tree in errors.py: {undeclared}")


#: Answered by the HTTP layer itself (no error class): an unknown route, a wrong method.
HTTP_LEVEL = {"request.not_found", "request.method", "request.error"}


def test_the_statuses_listed_are_the_ones_the_api_answers() -> None:
    for code, status in _documented().items():
        if not status.isdigit() or code in HTTP_LEVEL:
            continue  # "—" (not an API answer), several statuses, or no error class
        error = errors_module.PlughostError("x", code=code)
        assert status_for(error) == int(status), (code, status, status_for(error))


def test_the_readme_links_the_threat_model() -> None:
    assert "(docs/security.md)" in README.read_text(encoding="utf-8")
