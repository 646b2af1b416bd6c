"""Platforms and alternative entries, honoured at check, install and load: the host runs the
first way that fits this machine (and whose runtime it has) and says which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plughost import PluginHost, State
from plughost.core import platforms
from plughost.core.manifest import manifest_from_dict
from plughost.interfaces.cli import build_app

HERE = platforms.current()
ELSEWHERE = "win32-arm64" if not HERE.startswith("win32") else "linux-x86_64"
CODE = "class Main:\n    def where(self):\n        return __name__.rsplit('.', 1)[-1]\n"


def test_platform_strings_match_os_prefix_and_normalised_arch() -> None:
    assert platforms.fits([], "linux-x86_64")
    assert platforms.fits(["linux"], "linux-x86_64")
    assert platforms.fits(["linux-amd64"], "linux-x86_64")
    assert platforms.fits(["darwin-aarch64"], "darwin-arm64")
    assert not platforms.fits(["darwin", "win32"], "linux-x86_64")
    assert not platforms.fits(["linux-arm64"], "linux-x86_64")
    assert platforms.fits([HERE])


def _plugin(root: Path, plugin_id: str, **fields: object) -> Path:
    folder = root / plugin_id
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(
        {"id": plugin_id, "name": plugin_id, "version": "1.0.0", **fields}))
    (folder / "main_here.py").write_text(CODE)
    (folder / "main_there.py").write_text(CODE)
    return folder


async def test_the_host_runs_the_first_alternative_that_fits_and_says_which(
    tmp_path: Path,
) -> None:
    _plugin(tmp_path, "multi", entry="main_there:Main", platforms=[ELSEWHERE],
            alternatives=[{"runtime": "python", "entry": "main_here:Main",
                           "platforms": [HERE.partition("-")[0]]}])
    _plugin(tmp_path, "plain", entry="main_here:Main")
    async with PluginHost([tmp_path]) as host:
        report = await host.start()
        assert report.ok, report
        assert await host.call("multi", "where") == "main_here"
        notes = host.get("multi").warnings
        assert any("runs alternative 1" in n and "main_here:Main" in n and ELSEWHERE in n
                   for n in notes), notes
        assert host.get("plain").warnings == []


async def test_a_plugin_with_no_way_to_run_here_fails_alone(tmp_path: Path) -> None:
    _plugin(tmp_path, "elsewhere", entry="main_there:Main", platforms=[ELSEWHERE])
    _plugin(tmp_path, "plain", entry="main_here:Main")
    async with PluginHost([tmp_path]) as host:
        await host.start()
        record = host.get("elsewhere")
        assert record.state is State.FAILED
        assert record.error is not None and record.error.code == "runtime.platform"
        assert HERE in record.error.message and ELSEWHERE in record.error.message
        assert await host.call("plain", "where") == "main_here"


async def test_a_missing_runtime_falls_back_to_the_next_alternative(tmp_path: Path) -> None:
    # The main entry needs a runtime this host does not have; the Python build runs instead.
    _plugin(tmp_path, "fallback", runtime="someone-elses", entry="lib.bin",
            alternatives=[{"runtime": "python", "entry": "main_here:Main"}])
    async with PluginHost([tmp_path]) as host:
        assert (await host.start()).ok
        assert await host.call("fallback", "where") == "main_here"
        assert any("someone-elses" in n for n in host.get("fallback").warnings)


def test_check_refuses_a_manifest_with_no_way_to_run_here(tmp_path: Path) -> None:
    folder = _plugin(tmp_path, "elsewhere", entry="main_there:Main", platforms=[ELSEWHERE])
    result = CliRunner().invoke(build_app(), ["check", str(folder), "--json"])
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["code"] == "runtime.platform" and HERE in problem["message"]
    fine = _plugin(tmp_path, "both", entry="main_there:Main", platforms=[ELSEWHERE],
                   alternatives=[{"runtime": "python", "entry": "main_here:Main"}])
    assert CliRunner().invoke(build_app(), ["check", str(fine)]).exit_code == 0


def test_alternatives_are_validated_and_round_trip() -> None:
    m = manifest_from_dict({"id": "a", "name": "a", "version": "1.0.0", "runtime": "native",
                            "entry": "a.so", "platforms": ["linux-x86_64"],
                            "alternatives": [{"runtime": "wasm", "entry": "a.wasm"}]})
    assert m.alternatives == (platforms.Alternative("wasm", "a.wasm"),)
    assert manifest_from_dict(m.to_dict()) == m
    with pytest.raises(Exception) as info:
        manifest_from_dict({"id": "a", "name": "a", "version": "1.0.0", "entry": "a:b",
                            "platforms": ["Linux x"],
                            "alternatives": [{"runtime": "wasm", "entry": "a.wasm", "x": 1}]})
    text = str(info.value)
    assert "manifest.platform" in text and "alternatives[0].x" in text
