"""Property-based run of the API's own OpenAPI document against a real server (schemathesis):
every operation in docs/openapi.json is exercised — examples, the coverage phase (boundary
and invalid values of every parameter and body) and fuzzing — and not one answer is a server
error, or breaks the documented schemas, status codes or media types.

Operations run in three passes so that destroying things comes last: everything but DELETE,
then the DELETEs, then revoking tokens (which may revoke the run's own token). The streams
get a bounded ``max_seconds`` from the hooks in _schemathesis_hooks.py. The figures (inputs
tried per pass) are printed; ``-s`` shows them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import schemathesis  # noqa: F401 - in the test extra: missing, this module fails

from tests.interfaces.http._server import SRC, running_server

pytestmark = pytest.mark.timeout(9000)  # the night run; CI's takes about 2 minutes

REPO = SRC.parent
CHECKS = ("not_a_server_error,response_schema_conformance,status_code_conformance,"
          "content_type_conformance")
TOKEN_ROUTE = "/api/v1/tokens/{name}"
#: Examples per operation and phase; the night run (HYPOTHESIS_PROFILE=night) tries ten times more.
EXAMPLES = "400" if os.environ.get("HYPOTHESIS_PROFILE") == "night" else "40"
PASSES: list[tuple[str, list[str]]] = [
    ("everything but DELETE", ["--exclude-method", "DELETE"]),
    ("DELETE", ["--include-method", "DELETE", "--exclude-path", TOKEN_ROUTE]),
    ("revoking tokens", ["--include-path", TOKEN_ROUTE]),  # its only method is DELETE
]


def _documented_operations() -> set[tuple[str, str]]:
    doc = json.loads((REPO / "docs" / "openapi.json").read_text())
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    tmp_path: Path, make_package: object
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    token = subprocess.run(
        [sys.executable, "-m", "plughost", "token", "create", "--role", "admin", "--name",
         "fuzz-7f3e9c2a41", "--home", str(home)], capture_output=True, text=True, env=env,
        check=True,
    ).stdout.strip()
    package = make_package("fuzzed", type="notify")  # type: ignore[operator]
    hooks_env = {**os.environ, "PYTHONPATH": str(REPO),
                 "SCHEMATHESIS_HOOKS": "tests.interfaces.http._schemathesis_hooks"}
    tried: dict[str, int] = {}
    operations = 0
    with running_server(home, "--no-access-log") as server:
        with package.open("rb") as fh:
            r = httpx.post(f"{server.base_url}/api/v1/plugins/install",
                           data={"source": "local"}, files={"file": fh},
                           headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 201, r.text
        served = set()
        for path, item in httpx.get(f"{server.base_url}/openapi.json").json()["paths"].items():
            served |= {(method.upper(), path) for method in item}
        assert served == _documented_operations(), "docs/openapi.json is what the server serves"
        for name, selection in PASSES:
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run",
                 f"{server.base_url}/openapi.json", *selection,
                 "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
                 "--phases", "examples,coverage,fuzzing", "-n", EXAMPLES, "-w", "1",
                 "--seed", "7", "--no-color", "--request-timeout", "30"],
                capture_output=True, text=True, timeout=3000, cwd=tmp_path, env=hooks_env)
            summary = done.stdout[-5000:] + done.stderr[-2000:]
            assert done.returncode == 0, f"{name}:\n{summary}"
            counts = re.search(r"(\d+) generated, (\d+) passed", summary)
            assert counts and counts.group(1) == counts.group(2), f"{name}:\n{summary}"
            tested = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", summary)
            assert tested and tested.group(1) == tested.group(3), f"{name}:\n{summary}"
            tried[name] = int(counts.group(1))
            print(f"{name}: {counts.group(1)} inputs in {time.monotonic() - started:.0f} s")
            operations += int(tested.group(3))
        assert httpx.get(f"{server.base_url}/readyz", timeout=30).status_code == 200
        failures = [line for line in server.lines if "unexpected error" in line]
    assert not failures, "the server logged unexpected errors:\n" + "\n".join(failures[:10])
    assert server.returncode == 0
    assert operations == len(_documented_operations()), "every documented operation ran"
    print(f"\nschemathesis: {sum(tried.values())} inputs over {operations} operations, "
          f"no server error ({', '.join(f'{k}: {v}' for k, v in tried.items())})")
