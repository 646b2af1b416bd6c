"""Tools the suite runs (node, curl, zip...): a missing one fails the test that needs it.

A test that quietly skips because a tool is absent passes on a machine that cannot run it;
``.ci/run`` installs what is missing, so on CI and on a developer's machine the answer is
always a real run.
"""

from __future__ import annotations

import shutil

import pytest

__all__ = ["require_tool"]


def require_tool(name: str, why: str) -> str:
    """The path of the executable ``name``; fail (never skip) the calling test without it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed, and {why}; install it (.ci/run does: "
                    f"apt-get install the Debian package that provides {name})", pytrace=False)
    return path
