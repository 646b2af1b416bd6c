"""Shared fixtures. Each section is owned by the workstream named in its header."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# ---------------------------------------------------------------- foundation: plugin folders

DEFAULT_CODE = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        self.activated_with = ctx.plugin_id

    def ping(self, value=None):
        return ("pong", self.ctx.plugin_id, value)
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


WritePlugin = Callable[..., Path]


@pytest.fixture
def write_plugin(tmp_path: Path) -> WritePlugin:
    """Write a plugin folder under ``tmp_path/plugins`` and return its path."""

    def write(
        plugin_id: str,
        version: str = "1.0.0",
        *,
        dependencies: Mapping[str, str] | None = None,
        optional: Mapping[str, str] | None = None,
        code: str = DEFAULT_CODE,
        entry: str = "main:Main",
        extra: str = "",
        files: Mapping[str, str] | None = None,
        directory: Path | None = None,
        **fields: Any,
    ) -> Path:
        root = (directory or tmp_path / "plugins") / plugin_id
        root.mkdir(parents=True, exist_ok=True)
        lines = [
            f"id = {_toml_value(plugin_id)}",
            f"name = {_toml_value(plugin_id.title())}",
            f"version = {_toml_value(version)}",
            f"entry = {_toml_value(entry)}",
        ]
        lines += [f"{k.replace('_', '-')} = {_toml_value(v)}" for k, v in fields.items()]
        if extra:
            lines.append(textwrap.dedent(extra))
        if dependencies:
            lines.append("[dependencies]")
            lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in dependencies.items()]
        if optional:
            lines.append("[optional-dependencies]")
            lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in optional.items()]
        (root / "plugin.toml").write_text("\n".join(lines) + "\n")
        module = entry.partition(":")[0].replace(".", "/")
        (root / f"{module}.py").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{module}.py").write_text(textwrap.dedent(code))
        for name, content in (files or {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(textwrap.dedent(content))
        return root

    return write


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    path = tmp_path / "plugins"
    path.mkdir(exist_ok=True)
    return path


# ---------------------------------------------------------------- fuzzing: hypothesis profiles
# Property-based tests (tests/**/test_*_properties.py) run under a profile chosen by
# HYPOTHESIS_PROFILE: "ci" (the default: bounded and derandomized, so CI is fast and every run
# tries the same inputs) or "night" (many more examples, fresh randomness each run):
#     HYPOTHESIS_PROFILE=night python -m pytest tests -k properties -p no:cacheprovider

import os  # noqa: E402 - this section is self-contained

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile(
    "night", max_examples=20_000, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ---------------------------------------------------------------- native runtime: the C example

@pytest.fixture(scope="session", autouse=True)
def _native_examples_built() -> None:
    """The native examples are plugin folders once their library is built (as .ci/run does):
    build them, so every test that scans examples/ (or the docs' manifests) sees a valid plugin."""
    import os

    from tests.fixtures.native import build_library

    header = REPO / "include" / "plughost.h"
    for source, target in (
        (EXAMPLES / "native-c-counter" / "counter.c", EXAMPLES / "native-c-counter" / "counter.so"),
        (REPO / "docs" / "examples" / "manifests" / "slack-notify" / "slack.c",
         REPO / "docs" / "examples" / "manifests" / "slack-notify" / "slack.so"),
    ):
        newest = max(source.stat().st_mtime, header.stat().st_mtime)
        if not target.exists() or target.stat().st_mtime < newest:
            tmp = target.with_name(f".{target.stem}.{os.getpid()}.so")
            build_library(source, tmp)
            tmp.replace(target)  # atomic: parallel workers never see half a library
