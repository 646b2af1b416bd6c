"""Property-based run of the API's own OpenAPI document against a real server (schemathesis):
no server errors, responses conform to the documented schemas, status codes and media types."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import schemathesis  # noqa: F401 - in the test extra: missing, this module fails

from tests.interfaces.http._server import SRC, running_server

pytestmark = pytest.mark.timeout(300)

CHECKS = ("not_a_server_error,response_schema_conformance,status_code_conformance,"
          "content_type_conformance")


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    tmp_path: Path, make_package: object
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    token = subprocess.run(
        [sys.executable, "-m", "plughost", "token", "create", "--role", "admin", "--name",
         "fuzz", "--home", str(home)], capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()
    package = make_package("fuzzed", type="notify")  # type: ignore[operator]
    with running_server(home, "--no-access-log") as server:
        with package.open("rb") as fh:
            r = httpx.post(f"{server.base_url}/api/v1/plugins/install",
                           data={"source": "local"}, files={"file": fh},
                           headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 201, r.text
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/openapi.json",
             "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
             "--exclude-path", "/api/v1/events",  # an endless stream
             "--exclude-path", "/api/v1/logs/stream",  # an endless stream
             "--exclude-method", "DELETE", "--exclude-path", "/api/v1/tokens/{name}",
             "--phases", "examples,coverage,fuzzing", "-n", "8", "--max-time", "60",
             "--seed", "7", "--no-color", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path)  # its cache goes there
        still = httpx.get(f"{server.base_url}/api/v1/plugins",
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert still.status_code == 200, "the fuzzing token must still work afterwards"
    summary = done.stdout[-4000:]
    assert done.returncode == 0, summary
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts and counts.group(1) == counts.group(2), summary
    assert server.returncode == 0
