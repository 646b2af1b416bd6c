"""The manifest reference (docs/manifest.md) and its examples are real and up to date."""

from __future__ import annotations

import importlib.util
import json
import re
import runpy
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from plughost.core.manifest import load_manifest, manifest_json_schema, parse_manifest
from plughost.core.version import Version
from plughost.errors import ManifestError

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = DOCS / "examples" / "manifests"
REFERENCE = DOCS / "manifest.md"


def fenced_blocks(language: str) -> list[str]:
    """The bodies of the ```language blocks of docs/manifest.md, in order."""
    text = REFERENCE.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_manifest_reference",
                                                  DOCS / "gen_manifest_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_native_example_loads_from_its_folder() -> None:
    m = load_manifest(EXAMPLES / "lyrics-finder")
    assert m.id == "lyrics-finder"
    assert m.version == Version("1.2.0")
    assert m.entry == "lyrics_finder:LyricsFinder"
    assert m.dependencies["music-source"].contains("2.4.0")
    assert m.is_lazy
    assert m.limits.memory == 128 * 2**20 and m.limits.timeout == 2.0
    assert m.config_schema is not None and m.config_schema["required"] == ["api_key"]
    assert m.extras == {"x-team": "music"}


def test_arcade_example_loads_from_its_folder() -> None:
    m = load_manifest(EXAMPLES / "slack-notify")
    assert (m.id, m.type, m.runtime, str(m.host)) == ("slack-notify", "notify", "native",
                                                      ">=1.0.0")
    assert m.config_defaults == {"channel": "#general"}


def test_example_plugin_code_is_what_the_entry_names() -> None:
    namespace = runpy.run_path(str(EXAMPLES / "lyrics-finder" / "lyrics_finder.py"))
    finder = namespace["LyricsFinder"]()
    assert finder.search("Daft Punk", "One More Time").startswith("One more time")
    assert finder.search("nobody", "nothing") is None


def test_docs_show_the_example_files_verbatim() -> None:
    assert fenced_blocks("toml") == [
        (EXAMPLES / "lyrics-finder" / "plugin.toml").read_text(encoding="utf-8")]
    assert fenced_blocks("json") == [
        (EXAMPLES / "slack-notify" / "manifest.json").read_text(encoding="utf-8")]
    assert fenced_blocks("python") == [
        (EXAMPLES / "use_manifest.py").read_text(encoding="utf-8")]


def test_python_example_prints_what_the_docs_say(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "use_manifest.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert printed in fenced_blocks("text")


def test_error_example_in_the_docs_is_real() -> None:
    text = ('id = "demo"\nversion = "1.0.0"\nentry = "demo:Plugin"\nruntime = "pyton"\n'
            'descripton = "x"\n[limits]\nmemory = "lots"\n')
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, format="toml", source="plugins/demo/plugin.toml")
    assert str(info.value) + "\n" in fenced_blocks("text")


def test_generated_reference_tables_are_up_to_date() -> None:
    generator = load_generator()
    current = REFERENCE.read_text(encoding="utf-8")
    assert generator.reference_text(current) == current, (
        "regenerate with: python docs/gen_manifest_reference.py")
    assert generator.schema_text() == (DOCS / "manifest.schema.json").read_text(encoding="utf-8")


def test_example_files_validate_against_the_published_schema() -> None:
    import jsonschema

    schema = json.loads((DOCS / "manifest.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    native = tomllib.loads((EXAMPLES / "lyrics-finder" / "plugin.toml").read_text("utf-8"))
    arcade = json.loads((EXAMPLES / "slack-notify" / "manifest.json").read_text("utf-8"))
    for instance in (native, arcade):
        assert [e.message for e in validator.iter_errors(instance)] == []
    assert schema == manifest_json_schema()
