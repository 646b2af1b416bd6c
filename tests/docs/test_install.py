"""docs/install.md: the runnable example does what the page says, and the page names every
crash point and CLI command that exists."""

from __future__ import annotations

import runpy
from pathlib import Path

from plughost.services.crash import CRASH_POINTS

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_install_service_example_runs(tmp_path: Path) -> None:
    module = runpy.run_path(str(DOCS / "examples" / "install_service.py"))
    log = await module["main"](tmp_path)
    assert log == [
        "installed counter 1.0.0: active",
        "updated 1.0.0 -> 1.1.0",
        "count after update: 3",
        "kept: 1.1.0, 1.0.0",
        "rolled back to 1.0.0",
        "after restart: counter 1.0.0 disabled",
        "installed now: 0",
    ]


def test_install_page_lists_every_crash_point_and_command() -> None:
    text = (DOCS / "install.md").read_text(encoding="utf-8")
    for point in CRASH_POINTS:
        assert f"`{point}`" in text, point
    for command in ("install", "update", "rollback", "versions", "uninstall", "enable",
                    "disable"):
        assert f"plughost {command}" in text, command
