from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest


def make_plugin(root: Path, plugin_id: str = "notify-slack", version: str = "1.0.0",
                files: dict[str, bytes] | None = None) -> Path:
    """A plugin folder with a manifest and a few files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nname = "Slack notifications"\nversion = "{version}"\n'
        'entry = "notify_slack:Plugin"\n'
    )
    for name, data in (files or {
        "notify_slack/__init__.py": b"from .plugin import Plugin\n",
        "notify_slack/plugin.py": b"class Plugin:\n    pass\n" * 20,
        "README.md": "# Slack \u2192 notify\n".encode(),
        "bin/helper": b"#!/bin/sh\necho helper\n",
    }).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    helper = root / "bin" / "helper"
    if helper.exists():
        helper.chmod(0o755)
    return root


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    return make_plugin(tmp_path / "src")


@pytest.fixture
def plugin_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def factory(**kw: object) -> Path:
        return make_plugin(tmp_path / f"src{next(counter)}", **kw)  # type: ignore[arg-type]

    return factory


@pytest.fixture(autouse=True)
def _in_tmp_cwd(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # pack writes to the current directory by default; keep tests out of the worktree.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    os.umask(0o022)
