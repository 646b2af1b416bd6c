from __future__ import annotations

import pytest

from plughost import errors


def test_every_error_has_a_stable_dotted_code() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, errors.PlughostError):
            assert "." in obj.default_code, name


def test_errors_subclass_the_builtin_they_resemble() -> None:
    assert issubclass(errors.PermissionDenied, PermissionError)
    assert issubclass(errors.PluginTimeout, TimeoutError)
    assert issubclass(errors.PluginNotFound, LookupError)
    assert issubclass(errors.ManifestError, ValueError)


def test_error_context_attaches_plugin_and_phase_once() -> None:
    with (
        pytest.raises(errors.PluginLoadError) as info,
        errors.error_context(plugin_id="outer", phase="activate"),
        errors.error_context(plugin_id="inner"),
    ):
        raise errors.PluginLoadError("no module")
    assert info.value.plugin_id == "inner"
    assert info.value.phase == "activate"
    assert info.value.to_dict() == {
        "code": "plugin.load",
        "message": "no module",
        "plugin_id": "inner",
        "phase": "activate",
    }


def test_manifest_error_lists_every_problem() -> None:
    problems = [
        errors.Problem("id", "manifest.id", "bad id"),
        errors.Problem("version", "manifest.version", "bad version"),
    ]
    err = errors.ManifestError(problems, source="plugin.toml")
    assert "bad id" in err.message and "bad version" in err.message
    assert err.details["problems"][1]["path"] == "version"


def test_extra_not_installed_names_the_extra() -> None:
    err = errors.ExtraNotInstalled("The WebAssembly runtime", "wasm", "wasmtime")
    assert "pip install 'plughost[wasm]'" in err.message
    assert isinstance(err, ImportError)
