"""Runtime registration: a runtime whose backend is missing is named with its extra by
``plughost check``, and a plugin on it fails alone when the host starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from plughost.runtimes.base import BUILTIN_RUNTIMES, unavailable

REPO = Path(__file__).resolve().parents[2]

# Runs in a child interpreter where the wasmtime package cannot be imported.
_WITHOUT_WASMTIME = "import sys; sys.modules['wasmtime'] = None\n"


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    return subprocess.run([sys.executable, "-c", _WITHOUT_WASMTIME + code, *args],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def test_every_builtin_runtime_is_available_with_the_test_extras() -> None:
    assert {name: unavailable(name) for name in BUILTIN_RUNTIMES} == dict.fromkeys(
        BUILTIN_RUNTIMES)
    assert unavailable("someone-elses") is None  # a host may register it


def test_a_missing_backend_is_named_with_its_extra() -> None:
    out = _run("from plughost.runtimes.base import unavailable; print(unavailable('wasm'))")
    assert "pip install 'plughost[wasm]'" in out.stdout, out.stderr


def test_check_refuses_a_runtime_whose_extra_is_missing() -> None:
    code = textwrap.dedent("""
        from plughost.interfaces.cli import build_app
        build_app()(sys.argv[1:])
    """)
    out = _run(code, "check", str(REPO / "examples" / "wasm-hello"), "--json")
    assert out.returncode == 1, out.stderr
    problems = json.loads(out.stdout)["problems"]
    assert problems == [{"path": "runtime", "code": "runtime.unavailable",
                         "message": problems[0]["message"]}]
    assert "plughost[wasm]" in problems[0]["message"]
    # with the extra installed, the same folder is valid
    ok = CliRunner().invoke(build_app(), ["check", str(REPO / "examples" / "wasm-hello")])
    assert ok.exit_code == 0, ok.output


def test_a_plugin_whose_runtime_is_missing_fails_alone(tmp_path: Path) -> None:
    # The quickstart's scenario with wasmtime missing: wasm-hello fails at load with the extra
    # to install; host.start() carries on and every other plugin answers.
    code = textwrap.dedent("""
        import asyncio, json
        sys.path.insert(0, "docs/examples")
        import quickstart_embed
        from plughost import PluginHost

        async def main():
            result = await quickstart_embed.main(quickstart_embed.EXAMPLES)
            async with PluginHost([quickstart_embed.EXAMPLES]) as host:
                report = await host.start()
                wasm = host.get("wasm-hello")
                return {"result": result, "state": wasm.state.value, "code": wasm.error.code,
                        "error": str(wasm.error),
                        "failed": sorted(o.plugin_id for o in report.outcomes if o.error)}
        print(json.dumps(asyncio.run(main()), default=str))
    """)
    out = _run(code)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["result"]["greeting"] == "Hello, Ada!"
    assert data["state"] == "failed"
    assert data["code"] == "extra.missing"
    assert "pip install 'plughost[wasm]'" in data["error"]
    assert "wasm-hello" in data["failed"]
    assert "hello" not in data["failed"] and "native-c-counter" not in data["failed"]
