"""docs/api.md's bash blocks (seed 003's curl examples, adapted) run against a real server.

Every ```bash block of the guide is run, in order, as one script in a scratch directory, with
``http://localhost:8080`` pointing at a ``plughost serve`` subprocess. A curl command preceded by
a ``# → NNN`` comment must answer that status.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._tools import require_tool
from tests.interfaces.http._server import SRC, running_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("curl", "zip", "bash"):
        require_tool(tool, "the guide's examples are run as written")

PREAMBLE = r"""
set -euo pipefail
plughost() { "$PYTHON" -m plughost "$@"; }
expect_status() {
  local want=$1; shift
  local code
  code=$("$@" -sS -o "$WORK/.body" -w '%{http_code}')
  cat "$WORK/.body"; echo
  if [ "$code" != "$want" ]; then
    echo "EXPECTED $want, GOT $code: $*" >&2
    exit 1
  fi
}
"""


def doc_script(text: str) -> tuple[str, int]:
    """The doc's bash blocks as one script; returns it and how many statuses it checks."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines: list[str] = []
    checks = 0
    for block in blocks:
        expect: str | None = None
        for line in block.splitlines():
            match = re.fullmatch(r"# → (\d{3})", line.strip())
            if match:
                expect = match.group(1)
                continue
            if expect is not None and line.startswith("curl "):
                line = f"expect_status {expect} {line}"
                checks += 1
                expect = None
            lines.append(line)
    return PREAMBLE + "\n".join(lines) + "\n", checks


def test_every_curl_example_in_the_api_guide_answers_as_documented(tmp_path: Path) -> None:
    script, checks = doc_script(DOC.read_text(encoding="utf-8"))
    assert checks >= 20, "the guide should check every curl example"
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    work = tmp_path / "work"
    work.mkdir()
    with running_server(home) as server:
        script = script.replace("http://localhost:8080", server.base_url)
        (work / "guide.sh").write_text(script)
        env = {**os.environ, "PYTHONPATH": str(SRC), "PLUGHOST_HOME": str(home),
               "PYTHON": sys.executable, "WORK": str(work)}
        done = subprocess.run(["bash", str(work / "guide.sh")], cwd=work, env=env,
                              capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + "\n" + done.stderr[-3000:]
    assert '"code":"marketplace.unavailable"' in done.stdout
    assert server.returncode == 0
