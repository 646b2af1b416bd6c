"""Runtime registration: a runtime whose backend is missing is named with its extra by
``plughost check``, and a plugin on it fails alone when the host starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from plughost.runtimes.base import BUILTIN_RUNTIMES, unavailable
from plughost.security.package import pack

REPO = Path(__file__).resolve().parents[2]

def _run(code: str, *args: str, module: str = "wasmtime") -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child interpreter where ``module`` (a runtime's backend, by default
    wasmtime) cannot be imported, as when its extra is not installed."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    missing = f"import sys; sys.modules[{module!r}] = None\n"
    return subprocess.run([sys.executable, "-c", missing + code, *args],
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


@pytest.mark.parametrize(("module", "example", "extra"), [
    ("wasmtime", "wasm-hello", "wasm"), ("grpc", "grpc-python-echo", "grpc")])
def test_the_hint_of_a_missing_runtime_names_the_pip_command(
    tmp_path: Path, module: str, example: str, extra: str
) -> None:
    """Each runtime extra: the plugin fails alone, and its hint (record and load report) is
    the exact command, not the generic advice about ``entry``."""
    folder = tmp_path / "plugins"
    shutil.copytree(REPO / "examples" / example, folder / example)
    code = textwrap.dedent(f"""
        import asyncio, json
        from plughost import PluginHost

        async def main():
            async with PluginHost([{str(folder)!r}]) as host:
                await host.start()
                record = host.get({example!r})
                if record.state.value != "failed":  # activated on first use
                    await host.activate({example!r})
                report = host.report()[{example!r}]
                return {{"state": record.state.value, "hint": record.hint,
                        "report": report.to_dict()}}
        print(json.dumps(asyncio.run(main())))
    """)
    out = _run(code, module=module)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    command = f"pip install 'plughost[{extra}]'"
    assert data["state"] == "failed"
    assert command in data["hint"] and "entry" not in data["hint"]
    assert data["report"]["hint"] == data["hint"]
    assert data["report"]["error"]["code"] == "extra.missing"


def test_an_installed_plugin_whose_runtime_is_missing_says_which_extra(tmp_path: Path) -> None:
    """Through the service (what `plughost serve` runs) and then the CLI with no server: the
    installed wasm plugin fails alone at start, and list/status give the pip command."""
    home = tmp_path / "home"
    package = pack(REPO / "examples" / "wasm-hello", tmp_path)
    code = textwrap.dedent(f"""
        import asyncio, json
        from plughost.services.manager import PluginService
        from plughost.settings import HostSettings

        settings = HostSettings(home={str(home)!r}, require_signature="never")

        async def main():
            async with PluginService(settings, start=True) as svc:
                try:
                    await svc.install({str(package)!r})
                except Exception as exc:
                    from plughost.services.resources import error
                    refused = error(exc)["error"]
                await svc.install({str(package)!r}, activate=False)
            async with PluginService(settings, start=True) as svc:  # a server start
                item = (await svc.list_plugins()).items[0].to_dict()
            return {{"refused": refused, "item": item}}
        print(json.dumps(asyncio.run(main()), default=str))
    """)
    out = _run(code)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    command = "pip install 'plughost[wasm]'"
    assert data["refused"]["code"] == "extra.missing"
    assert command in data["refused"]["hint"]
    assert data["item"]["state"] == "failed"
    assert command in data["item"]["error"]["hint"]

    # No server now: the CLI reads what the last start recorded, hint included.
    cli = _run("from plughost.interfaces.cli import main\nsys.argv[0] = 'plughost'\nmain()",
               "list", "--home", str(home), "--json")
    assert cli.returncode == 0, cli.stderr
    item = json.loads(cli.stdout)["items"][0]
    assert item["state"] == "failed" and command in item["error"]["hint"]
    status = _run("from plughost.interfaces.cli import main\nsys.argv[0] = 'plughost'\nmain()",
                  "status", "--home", str(home), "-o", "table")
    assert f"hint: run `{command}`" in status.stdout, status.stdout + status.stderr
