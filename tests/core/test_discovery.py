from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path
from typing import Any

import pytest

from plughost.core.discovery import DiscoveryCache, discover, discover_directories
from tests.conftest import WritePlugin


def test_finds_plugin_folders_sorted_and_skips_non_plugins(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("b-plugin")
    write_plugin("a-plugin")
    (plugins_dir / "not-a-plugin").mkdir()
    (plugins_dir / ".hidden").mkdir()
    found = discover_directories([plugins_dir])
    assert [d.manifest.id for d in found if d.manifest] == ["a-plugin", "b-plugin"]


def test_a_folder_that_is_itself_a_plugin_is_accepted(write_plugin: WritePlugin) -> None:
    root = write_plugin("solo")
    [item] = discover_directories([root])
    assert item.manifest is not None and item.manifest.id == "solo"


def test_invalid_manifest_is_reported_not_raised(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    write_plugin("good")
    bad = plugins_dir / "bad"
    bad.mkdir()
    (bad / "plugin.toml").write_text('id = "Bad Id"\nversion = "one"\n')
    found = {Path(d.location).name: d for d in discover_directories([plugins_dir])}
    assert found["good"].manifest is not None
    assert found["bad"].manifest is None
    assert found["bad"].error is not None and found["bad"].error.code == "manifest.invalid"


def test_missing_directory_is_not_an_error(tmp_path: Path) -> None:
    assert discover([tmp_path / "nowhere"]) == []


def _cache_entries(cache_file: Path) -> tuple[bytes, dict[str, Any]]:
    """The cache file's header line and its entries."""
    head, _, body = cache_file.read_bytes().partition(b"\n")
    return head, json.loads(body)


def test_cache_serves_unchanged_manifests_and_invalidates_on_change(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    root = write_plugin("cached", "1.0.0")
    cache_file = tmp_path / "cache.json"
    first = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert first[0].manifest is not None and str(first[0].manifest.version) == "1.0.0"
    assert "cached" in cache_file.read_text()

    # Put a different manifest in the cache the way plughost writes it: an unchanged file must
    # be served from the cache, not parsed again.
    cache = DiscoveryCache(cache_file)
    key = str(root / "plugin.toml")
    cache.put(key, os.stat(key), Path(key).read_bytes(),
              dataclasses.replace(first[0].manifest, description="from the cache"))
    cache.save()
    again = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert again[0].manifest is not None and again[0].manifest.description == "from the cache"

    # Any change to the manifest file invalidates its entry.
    write_plugin("cached", "1.1.0")
    stat = (root / "plugin.toml").stat()
    os.utime(root / "plugin.toml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    changed = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert changed[0].manifest is not None and str(changed[0].manifest.version) == "1.1.0"


def test_cache_entry_is_not_served_for_a_file_replaced_with_the_same_size_and_time(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    root = write_plugin("swapped", "1.0.0")
    manifest = root / "plugin.toml"
    cache_file = tmp_path / "cache.json"
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    # Another file of the same size, renamed over it with the old modification time (what a
    # copy that keeps times does): only the inode tells them apart.
    before = manifest.stat()
    other = root / "new.toml"
    other.write_text(manifest.read_text().replace("1.0.0", "2.0.0"))
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, manifest)
    after = manifest.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert found.manifest is not None and str(found.manifest.version) == "2.0.0"


def test_cache_drops_plugins_that_disappeared(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    import shutil

    write_plugin("keep")
    gone = write_plugin("gone")
    cache_file = tmp_path / "cache.json"
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    shutil.rmtree(gone)
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert "gone" not in cache_file.read_text()


def test_corrupt_cache_file_is_ignored(write_plugin: WritePlugin, plugins_dir: Path,
                                       tmp_path: Path) -> None:
    write_plugin("p")
    cache_file = tmp_path / "cache.json"
    cache_file.write_text("{not json")
    found = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert found[0].manifest is not None


def test_entry_point_plugins_are_discovered_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    pkg = site / "ep_plugin_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported by discovery')\n")
    dist = site / "ep_plugin_pkg-2.3.4.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ep-plugin-pkg\nVersion: 2.3.4\nSummary: An EP plugin\n"
    )
    (dist / "entry_points.txt").write_text(
        "[plughost.plugins]\nep-hello = ep_plugin_pkg.main:Plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    found = [d for d in discover([], entry_points=True) if d.location.startswith("entry point ep-")]
    assert len(found) == 1
    manifest = found[0].manifest
    assert manifest is not None
    assert (manifest.id, str(manifest.version), manifest.entry) == (
        "ep-hello", "2.3.4", "ep_plugin_pkg.main:Plugin")
    assert manifest.description == "An EP plugin"
    assert found[0].source == "entry-point"



# An entry is [size, mtime_ns, ctime_ns, inode, device, digest of the bytes, settled,
# manifest].
@pytest.mark.parametrize("poison", [
    lambda e: e[7].update(description="edited"),  # valid, but not what plughost wrote
    lambda e: e[7].update(version="not a version"),
    lambda e: e[7].update(id="Not An Id"),
    lambda e: e.__setitem__(7, ["not", "a", "table"]),
    lambda e: e.__setitem__(6, True),
    lambda e: e.pop(),
    lambda e: e.__setitem__(0, "12"),
])
def test_cache_entry_edited_by_hand_is_parsed_again(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path, poison: Any
) -> None:
    write_plugin("edited", "1.2.3")
    cache_file = tmp_path / "cache.json"
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    head, entries = _cache_entries(cache_file)
    [entry] = entries.values()
    poison(entry)
    cache_file.write_bytes(head + b"\n" + json.dumps(entries).encode())
    [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert found.manifest is not None and str(found.manifest.version) == "1.2.3"
    assert found.manifest.id == "edited" and found.manifest.description != "edited"
    # The file was written afresh, and is trusted again.
    assert _cache_entries(cache_file)[1] != entries


def test_cache_written_by_another_format_or_version_is_read_again(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    write_plugin("old", "1.0.0")
    cache_file = tmp_path / "cache.json"
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    head, entries = _cache_entries(cache_file)
    [entry] = entries.values()
    entry[7]["description"] = "stale"
    body = json.dumps(entries).encode()
    fmt, version, codec, _ = head.split(b" ")[1:]
    digest = b"%08x" % zlib.crc32(body, zlib.crc32(codec))
    # The control: this format, version and codec over the body's digest are served as written.
    cache_file.write_bytes(b"plughost-discovery-cache %s %s %s %s\n" % (fmt, version, codec, digest)
                           + body)
    [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert found.manifest is not None and found.manifest.description == "stale"
    for other in (b"plughost-discovery-cache %s 0.0.0-other %s %s" % (fmt, codec, digest),
                  b"plughost-discovery-cache 4 %s %s %s" % (version, codec, digest),
                  # the other codec named over this body's digest: not what was written
                  b"plughost-discovery-cache %s %s %s %s" % (
                      fmt, version, b"json" if codec == b"orjson" else b"orjson", digest),
                  json.dumps({"format": 4, "plughost": version.decode(),
                              "crc32": digest.decode()}).encode()):
        cache_file.write_bytes(other + b"\n" + body)
        [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
        assert found.manifest is not None and found.manifest.description != "stale"


def test_cache_entry_is_not_served_for_a_file_rewritten_in_place_with_its_old_time(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    # Same size, same inode, the modification time put back (or a rewrite within one tick of
    # the file system's clock): only the bytes tell the files apart, and the cache checks them.
    root = write_plugin("inplace", "1.0.0")
    manifest = root / "plugin.toml"
    cache_file = tmp_path / "cache.json"
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    before = manifest.stat()
    with open(manifest, "r+b") as fh:  # in place: the inode stays
        fh.write(manifest.read_bytes().replace(b"1.0.0", b"9.0.0"))
    os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = manifest.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert found.manifest is not None and str(found.manifest.version) == "9.0.0"
    # ...and the entry now holds the new bytes: served from the cache from then on.
    cache = DiscoveryCache(cache_file)
    assert cache.get(str(manifest), manifest.stat(), manifest.read_bytes()) is not None
    assert cache.get(str(manifest), manifest.stat(), b"other bytes") is None


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Discoveries from now on see the clock ``seconds`` ahead (the files' times stay)."""
    import plughost.core.discovery as discovery

    real = discovery._now_ns
    monkeypatch.setattr(discovery, "_now_ns", lambda: real() + int(seconds * 1e9))


def _unreadable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the manifests discovery opens from now on (and let it open them)."""
    import plughost.core.discovery as discovery

    opened: list[str] = []
    real = discovery._read_regular

    def read(path: str, size: int) -> bytes:
        opened.append(path)
        return real(path, size)

    monkeypatch.setattr(discovery, "_read_regular", read)
    return opened


@pytest.mark.skipif(os.name != "posix", reason="entries settle only where ctime is a change time")
def test_a_settled_entry_is_served_on_its_stat_without_reading_the_file(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_plugin("old", "1.0.0")
    cache_file = tmp_path / "cache.json"
    # Written just now: read and checked against its digest, not settled yet.
    opened = _unreadable(monkeypatch)
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert len(opened) == 2
    assert _cache_entries(cache_file)[1].popitem()[1][6] is False
    # Once the file has gone unchanged long enough, the next discovery reads it a last time
    # and settles the entry; the ones after only stat it.
    _later(monkeypatch, 10)
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert len(opened) == 3 and _cache_entries(cache_file)[1].popitem()[1][6] is True
    [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert len(opened) == 3
    assert found.manifest is not None and str(found.manifest.version) == "1.0.0"


@pytest.mark.skipif(os.name != "posix", reason="entries settle only where ctime is a change time")
@pytest.mark.parametrize("how", ["in place, old time put back", "renamed over, old time kept",
                                 "in place, new time"])
def test_a_settled_entry_is_not_served_once_its_file_changes(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    root = write_plugin("settled", "1.0.0")
    manifest = root / "plugin.toml"
    cache_file = tmp_path / "cache.json"
    _later(monkeypatch, 10)  # the file is "old": its entry settles when it is written
    discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert _cache_entries(cache_file)[1].popitem()[1][6] is True
    before = manifest.stat()
    text = manifest.read_bytes().replace(b"1.0.0", b"9.0.0")
    if how.startswith("in place"):
        with open(manifest, "r+b") as fh:
            fh.write(text)
    else:
        other = root / "new.toml"
        other.write_bytes(text)
        os.replace(other, manifest)
    if "old time" in how:
        os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert manifest.stat().st_mtime_ns == before.st_mtime_ns
    [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert found.manifest is not None and str(found.manifest.version) == "9.0.0"


def test_entries_never_settle_where_the_change_time_is_not_one(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import plughost.core.discovery as discovery

    monkeypatch.setattr(discovery, "_CHANGE_TIMES", False)
    write_plugin("p")
    cache_file = tmp_path / "cache.json"
    _later(monkeypatch, 10)
    opened = _unreadable(monkeypatch)
    for _ in range(3):
        [found] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
        assert found.manifest is not None
    assert len(opened) == 3
    assert _cache_entries(cache_file)[1].popitem()[1][6] is False


def test_cached_and_cold_discovery_report_the_same_plugins_and_errors(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path
) -> None:
    write_plugin("fine")
    write_plugin("json-too").joinpath("manifest.json").write_text('{"id": "json-too"}')
    (plugins_dir / "broken").mkdir()
    (plugins_dir / "broken" / "plugin.toml").write_text('id = "broken"\nversion = "1"\n')
    (plugins_dir / "only-json").mkdir()
    (plugins_dir / "only-json" / "manifest.json").write_text(
        '{"id": "only-json", "version": "1.0.0", "entryPoint": "node main.js"}')
    (plugins_dir / "a-file.txt").write_text("not a folder")
    (plugins_dir / "empty").mkdir()

    def summary(found: list[Any]) -> list[tuple[Any, ...]]:
        return [(d.location, d.root, d.manifest,
                 None if d.error is None else (d.error.code, str(d.error))) for d in found]

    cold = summary(discover_directories([plugins_dir]))
    cache_file = tmp_path / "cache.json"
    filling = summary(discover_directories([plugins_dir], cache=DiscoveryCache(cache_file)))
    served = summary(discover_directories([plugins_dir], cache=DiscoveryCache(cache_file)))
    assert cold == filling == served
    codes = {Path(loc).name: err[0] for loc, _, _, err in cold if err is not None}
    assert codes == {"broken": "manifest.invalid", "json-too": "manifest.invalid"}
    assert [Path(loc).name for loc, _, m, _ in cold if m is not None] == ["fine", "only-json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_manifest_that_is_not_a_regular_file_is_never_opened(
    plugins_dir: Path, tmp_path: Path
) -> None:
    folder = plugins_dir / "fifo"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "plugin.toml")  # opening it to read would wait for a writer forever
    for cache in (None, DiscoveryCache(tmp_path / "cache.json")):
        [found] = discover_directories([plugins_dir], cache=cache)
        assert found.manifest is None and found.error is not None


@pytest.mark.parametrize(("default", "codec"), [
    (2**64, b"json"), (-(2**63) - 1, b"json"), (10**25, b"json"), ("\ud800 lone", b"json"),
    (2**64 - 1, b"orjson"), (-(2**63), b"orjson"), (1.5, b"orjson"),
    ("1" * 40, b"orjson"), ("-" + "9" * 30, b"orjson"),
])
def test_cache_entries_read_back_as_json_reads_them(
    default: Any, codec: bytes, tmp_path: Path, plugins_dir: Path
) -> None:
    # orjson (the fast extra) reads the cache file where it reads what json reads; an integer
    # beyond 64 bits (which it would turn into a float) and text it refuses go to json. Digits
    # in a string are text: ten thousand hex digests hold a few runs of twenty, and a cache
    # that big went to json for them before.
    from plughost.core.discovery import _load_entries

    root = plugins_dir / "big"
    root.mkdir()
    (root / "main.py").write_text("")
    (root / "manifest.json").write_text(json.dumps(
        {"id": "big", "version": "1.0.0", "entry": "main:P",
         "config": {"schema": {"type": "object"}, "defaults": {"n": default}}}))
    cache_file = tmp_path / "cache.json"
    [first] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert first.manifest is not None, first.error
    head, _, body = cache_file.read_bytes().partition(b"\n")
    assert head.split(b" ")[3] == codec
    assert _load_entries(body, fast=codec == b"orjson") == json.loads(body)
    [again] = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert again.manifest == first.manifest
    assert again.manifest.config_defaults["n"] == default
    assert type(again.manifest.config_defaults["n"]) is type(default)


def test_each_plugin_folder_is_its_directory_joined_with_its_name(
    write_plugin: WritePlugin, plugins_dir: Path
) -> None:
    # Roots are joined without parsing the name as a path: the same Path as directory / name,
    # from a Path or a string directory alike.
    for pid in ("a", "b.c", "d-e"):
        write_plugin(pid)
    for directory in (plugins_dir, str(plugins_dir)):
        found = discover_directories([directory])  # type: ignore[list-item]
        assert [d.root for d in found] == [plugins_dir / p for p in ("a", "b.c", "d-e")]
        assert all(type(d.root) is type(plugins_dir) and d.root is not None
                   and d.location == str(d.root) and d.root.name == d.location.rsplit("/", 1)[1]
                   for d in found)


def test_a_cache_bigger_than_its_first_read_is_read_whole(
    write_plugin: WritePlugin, plugins_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cache file is read in one read of up to _FIRST_READ bytes; past that, the rest of
    # its size and on to its end. Every entry of a file three times that size is served.
    import plughost.core.discovery as discovery

    monkeypatch.setattr(discovery, "_FIRST_READ", 1024)
    for i in range(12):
        write_plugin(f"p{i:02d}", "1.0.0", description="x" * 200)
    cache_file = tmp_path / "cache.json"
    first = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert cache_file.stat().st_size > 3 * 1024
    opened = _unreadable(monkeypatch)
    _later(monkeypatch, 10)  # settled: served without reading the manifests at all
    cache = DiscoveryCache(cache_file)
    assert len(cache._entries) == 12
    discover_directories([plugins_dir], cache=cache)
    again = discover_directories([plugins_dir], cache=DiscoveryCache(cache_file))
    assert [d.manifest for d in again] == [d.manifest for d in first]
    assert len(opened) == 12  # each manifest read once more, when it settled; not again
