from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from plughost.errors import ArchiveError, ManifestError, PackageError
from plughost.security.package import (
    INTEGRITY_FILE,
    open_package,
    pack,
    parse_integrity,
)

from .conftest import make_plugin
from .zipcraft import rewrite


def test_pack_writes_id_version_zip_in_the_current_directory(plugin_dir: Path) -> None:
    out = pack(plugin_dir)
    assert out == Path.cwd() / "notify-slack-1.0.0.zip"
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert names == [*sorted(names[:-1]), INTEGRITY_FILE]
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.extra == b""
            assert info.external_attr >> 16 in (0o100644, 0o100755)
        assert zf.getinfo("bin/helper").external_attr >> 16 == 0o100755


def test_pack_is_reproducible_byte_for_byte(plugin_dir: Path, tmp_path: Path) -> None:
    first = pack(plugin_dir, tmp_path / "a.zip").read_bytes()
    second = pack(plugin_dir, tmp_path / "b.zip").read_bytes()
    assert first == second


def test_pack_ignores_timestamps_and_listing_order(tmp_path: Path) -> None:
    one = make_plugin(tmp_path / "one")
    two = make_plugin(tmp_path / "two")
    for i, path in enumerate(sorted(two.rglob("*"))):
        os.utime(path, (1_600_000_000 + i * 1000, 1_700_000_000 + i * 7777))
    (two / "extra.txt").write_text("x")
    (two / "extra.txt").unlink()  # churn the directory so its listing order may differ
    assert pack(one, tmp_path / "1.zip").read_bytes() == pack(two, tmp_path / "2.zip").read_bytes()


def test_pack_excludes_caches_vcs_and_the_output_itself(plugin_dir: Path) -> None:
    (plugin_dir / "__pycache__").mkdir()
    (plugin_dir / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (plugin_dir / "notify_slack" / "stale.pyc").write_bytes(b"\0")
    (plugin_dir / ".git").mkdir()
    (plugin_dir / ".git" / "HEAD").write_text("ref: x")
    (plugin_dir / ".DS_Store").write_bytes(b"\0")
    out = pack(plugin_dir, plugin_dir)
    assert out == plugin_dir / "notify-slack-1.0.0.zip"
    again = pack(plugin_dir, plugin_dir)  # the previous output sits in the folder now
    with zipfile.ZipFile(again) as zf:
        names = zf.namelist()
    assert not [n for n in names if "pycache" in n or n.endswith((".pyc", ".zip", "DS_Store"))]
    assert not [n for n in names if n.startswith(".git")]


def test_pack_refuses_symlinks_with_a_clear_error(plugin_dir: Path, tmp_path: Path) -> None:
    (plugin_dir / "link.py").symlink_to(plugin_dir / "notify_slack" / "plugin.py")
    with pytest.raises(PackageError) as info:
        pack(plugin_dir, tmp_path)
    assert info.value.code == "package.symlink"
    assert "link.py" in info.value.message
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".*tmp*"))


def test_pack_refuses_symlinked_directories(plugin_dir: Path, tmp_path: Path) -> None:
    (plugin_dir / "shared").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(PackageError) as info:
        pack(plugin_dir, tmp_path / "x.zip")
    assert info.value.code == "package.symlink"


def test_pack_refuses_fifos(plugin_dir: Path, tmp_path: Path) -> None:
    os.mkfifo(plugin_dir / "pipe")
    with pytest.raises(PackageError) as info:
        pack(plugin_dir, tmp_path / "x.zip")
    assert info.value.code == "package.special"


def test_pack_refuses_reserved_names(plugin_dir: Path, tmp_path: Path) -> None:
    (plugin_dir / INTEGRITY_FILE).write_text("{}")
    with pytest.raises(PackageError) as info:
        pack(plugin_dir, tmp_path / "x.zip")
    assert info.value.code == "package.reserved"


def test_pack_refuses_a_folder_without_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError):
        pack(tmp_path / "empty", tmp_path / "x.zip")
    with pytest.raises(PackageError) as info:
        pack(tmp_path / "nope", tmp_path / "x.zip")
    assert info.value.code == "package.source"


def test_pack_refuses_what_install_would_refuse_and_writes_nothing(
    plugin_dir: Path, tmp_path: Path
) -> None:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x", "y")
    (plugin_dir / "vendor.whl").write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError) as info:
        pack(plugin_dir, tmp_path / "out.zip")
    assert info.value.code == "archive.nested"
    assert info.value.details["entry"] == "vendor.whl"
    assert not (tmp_path / "out.zip").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.zip")]


def test_pack_refuses_names_that_collide_on_case_insensitive_systems(
    plugin_dir: Path, tmp_path: Path
) -> None:
    (plugin_dir / "Readme.md").write_text("x")
    with pytest.raises(ArchiveError) as info:
        pack(plugin_dir, tmp_path / "out.zip")
    assert info.value.code == "archive.case_collision"


def test_pack_output_into_a_missing_folder_is_refused(plugin_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError) as info:
        pack(plugin_dir, tmp_path / "no" / "x.zip")
    assert info.value.code == "package.output"


def test_open_package_reads_identity_and_integrity(plugin_dir: Path) -> None:
    out = pack(plugin_dir)
    with open_package(out) as pkg:
        info = pkg.info
        assert (info.plugin_id, info.version) == ("notify-slack", "1.0.0")
        assert info.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
        assert info.integrity_sha256 == hashlib.sha256(info.integrity_bytes).hexdigest()
        assert info.signature_bytes is None
        plugin_py = (plugin_dir / "notify_slack" / "plugin.py").read_bytes()
        assert info.integrity["notify_slack/plugin.py"].sha256 == hashlib.sha256(
            plugin_py).hexdigest()
        assert info.integrity["bin/helper"].executable is True
        assert INTEGRITY_FILE not in info.integrity
        digests = pkg.check_integrity()
        assert set(digests) == {*info.integrity, INTEGRITY_FILE}


def test_extract_package_gives_the_plugin_files_read_only(plugin_dir: Path, tmp_path: Path) -> None:
    with open_package(pack(plugin_dir)) as pkg:
        dest = pkg.extract(tmp_path / "installed")
    assert (dest / "notify_slack" / "plugin.py").read_bytes() == (
        plugin_dir / "notify_slack" / "plugin.py").read_bytes()
    assert stat.S_IMODE((dest / "bin" / "helper").stat().st_mode) == 0o555
    assert stat.S_IMODE((dest / "README.md").stat().st_mode) == 0o444


_rewrite = rewrite


@pytest.mark.parametrize(
    "change,what",
    [({"notify_slack/plugin.py": b"import os; os.system('evil')\n"}, "modified"),
     ({"notify_slack/evil.py": b"import os\n"}, "unlisted"),
     ({"README.md": None}, "missing")],
)
def test_integrity_refuses_modified_unlisted_and_missing_files(
    plugin_dir: Path, tmp_path: Path, change: dict[str, bytes | None], what: str
) -> None:
    bad = _rewrite(pack(plugin_dir), tmp_path / "bad.zip", change=change)
    with open_package(bad) as pkg, pytest.raises(ArchiveError) as info:
        pkg.check_integrity()
    assert info.value.code == "archive.integrity", what
    with open_package(bad) as pkg, pytest.raises(ArchiveError):
        pkg.extract(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_package_without_integrity_file_is_refused(plugin_dir: Path, tmp_path: Path) -> None:
    bad = _rewrite(pack(plugin_dir), tmp_path / "bad.zip", change={INTEGRITY_FILE: None})
    with pytest.raises(PackageError) as info:
        open_package(bad)
    assert info.value.code == "package.integrity"


def test_package_with_manifest_in_a_subfolder_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("myplugin/plugin.toml", 'id = "x"\nversion = "1.0.0"\n')
    with pytest.raises(PackageError) as info:
        open_package(path)
    assert info.value.code == "package.manifest"
    assert "myplugin/plugin.toml" in info.value.message


@pytest.mark.parametrize(
    "doc",
    [b"not json", b"[]",
     json.dumps({"format": "other", "algorithm": "sha256", "files": {}}).encode(),
     json.dumps({"format": "plughost-integrity/v1", "algorithm": "md5", "files": {}}).encode(),
     json.dumps({"format": "plughost-integrity/v1", "algorithm": "sha256",
                 "files": {"../x": {"size": 1, "sha256": "0" * 64}}}).encode(),
     json.dumps({"format": "plughost-integrity/v1", "algorithm": "sha256",
                 "files": {"x": {"size": -1, "sha256": "0" * 64}}}).encode(),
     json.dumps({"format": "plughost-integrity/v1", "algorithm": "sha256",
                 "files": {"x": {"size": 1, "sha256": "XYZ"}}}).encode(),
     b'{"format": "plughost-integrity/v1", "algorithm": "sha256", "files": '
     b'{"x": {"size": 1, "sha256": "' + b"0" * 64 + b'"}, "x": {"size": 1, "sha256": "'
     + b"0" * 64 + b'"}}}'],
)
def test_malformed_integrity_files_are_refused(doc: bytes) -> None:
    with pytest.raises(PackageError) as info:
        parse_integrity(doc)
    assert info.value.code == "package.integrity"


def test_package_with_two_manifests_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("plugin.toml", 'id = "x"\nversion = "1.0.0"\n')
        zf.writestr("manifest.json", '{"id": "x", "version": "1.0.0"}')
    with pytest.raises(PackageError) as info:
        open_package(path)
    assert info.value.code == "package.manifest"
    assert "exactly one" in info.value.message


def test_oversized_manifest_in_a_package_is_refused_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("plugin.toml", "# " + "x" * (1 << 20))
    with pytest.raises(PackageError) as info:
        open_package(path)
    assert info.value.code == "package.manifest"
