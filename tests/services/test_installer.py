"""The install pipeline: what it accepts, what it refuses, and that refusals change nothing."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plughost.errors import PlughostError
from plughost.services.installer import cache_name
from tests.security.zipcraft import rewrite
from tests.services.conftest import make_settings


async def _refused(svc: Any, snapshot: Any, code: str, *args: Any, **kwargs: Any
                   ) -> PlughostError:
    before = snapshot(svc.settings, svc)
    with pytest.raises(PlughostError) as info:
        await svc.install(*args, **kwargs)
    assert info.value.code == code, info.value.to_dict()
    assert snapshot(svc.settings, svc) == before
    return info.value


async def test_install_records_unpacks_stores_and_activates(service, make_package,
                                                            state_snapshot):
    package = make_package("hello", "1.0.0")
    result = await service.install(package)
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    assert (result.plugin_id, result.version, result.state) == ("hello", "1.0.0", "active")
    assert result.sha256 == digest and result.signed and result.signed_by
    cache = Path(result.cache_path)
    assert cache == service.settings.cache_dir / "plugins" / "hello" / f"1.0.0-{digest[:12]}"
    assert cache.name == cache_name("1.0.0", digest)  # what reconciliation expects to find
    assert not os.access(cache / "main.py", os.W_OK) or os.geteuid() == 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o555
    assert await service.host.call("hello", "ping") == ["1.0.0", 1]
    snap = state_snapshot(service.settings, service)
    assert snap["objects"] == {"plugins/hello/1.0.0/hello_1.0.0.zip": digest}
    [plugin] = snap["rows"]["plugins"]
    assert (plugin["version"], plugin["checksum"], plugin["enabled"]) == ("1.0.0", digest, True)
    assert [v["version"] for v in snap["rows"]["plugin_versions"]] == ["1.0.0"]
    assert snap["staging"] == []
    page = await service.list_plugins()
    assert [(p.id, p.state, p.enabled) for p in page] == [("hello", "active", True)]
    events = await service.audit(plugin_id="hello")
    assert [(e["action"], e["outcome"]) for e in events] == [("plugin.install", "ok")]


async def test_installing_an_installed_id_is_refused_pointing_to_update(service, make_package,
                                                                       state_snapshot):
    await service.install(make_package("hello", "1.0.0"))
    error = await _refused(service, state_snapshot, "install.exists",
                           make_package("hello", "2.0.0"))
    assert "plughost update hello" in error.message


async def test_expected_checksum_is_enforced(service, make_package, state_snapshot):
    package = make_package("hello", "1.0.0")
    wrong = hashlib.sha256(b"something else").hexdigest()
    error = await _refused(service, state_snapshot, "integrity.checksum", package, sha256=wrong)
    assert wrong in error.message
    right = hashlib.sha256(package.read_bytes()).hexdigest()
    assert (await service.install(package, sha256=right.upper())).sha256 == right


async def test_unsigned_package_refused_when_policy_requires_signature(service, make_package,
                                                                      state_snapshot):
    await _refused(service, state_snapshot, "signature.missing",
                   make_package("hello", signed=False))


async def test_signature_by_unknown_key_refused(service, make_package, state_snapshot,
                                                tmp_path):
    from plughost.security.signing import keygen

    private, _ = keygen(tmp_path / "other-keys", "stranger")
    await _refused(service, state_snapshot, "signature.untrusted_key",
                   make_package("hello", key=private))


async def test_signature_by_revoked_key_refused(service, make_package, state_snapshot, signer):
    from plughost.security.signing import TrustStore, key_id, load_public_key

    package = make_package("hello")
    store = TrustStore.for_home(service.settings.home)
    store.revoke(key_id(load_public_key(signer["public"])), "leaked")
    await _refused(service, state_snapshot, "signature.revoked_key", package)


async def test_revoked_signature_beside_a_trusted_one_refused(service, make_package,
                                                             state_snapshot, signer, tmp_path):
    from plughost.security.signing import TrustStore, key_id, keygen, load_public_key, sign

    old_private, old_public = keygen(tmp_path / "old-keys", "old")
    store = TrustStore.for_home(service.settings.home)
    store.add(old_public, "old")
    package = make_package("hello", key=old_private)   # the soon revoked key signs first,
    sign(package, signer["private"])                  # then the trusted publisher's
    store.revoke(key_id(load_public_key(old_public)), "leaked")
    await _refused(service, state_snapshot, "signature.revoked_key", package)
    # the update path applies the same rule
    await service.install(make_package("hello", "1.0.0"))
    newer = make_package("hello", "1.1.0", key=old_private)
    sign(newer, signer["private"])
    before = state_snapshot(service.settings, service)
    with pytest.raises(PlughostError) as info:
        await service.update("hello", newer)
    assert info.value.code == "signature.revoked_key"
    assert state_snapshot(service.settings, service) == before


async def test_corrupted_signature_before_a_valid_one_refused(service, make_package,
                                                              state_snapshot, tmp_path):
    import base64
    import zipfile

    from plughost.security.package import SIGNATURE_FILE

    package = make_package("hello")
    with zipfile.ZipFile(package) as z:
        doc = json.loads(z.read(SIGNATURE_FILE))
    bad = dict(doc["signatures"][0])
    raw = bytearray(base64.b64decode(bad["signature"]))
    raw[-1] ^= 0x80
    bad["signature"] = base64.b64encode(bytes(raw)).decode()
    doc["signatures"].insert(0, bad)
    forged = rewrite(package, tmp_path / "forged.zip",
                     change={SIGNATURE_FILE: json.dumps(doc).encode()})
    await _refused(service, state_snapshot, "signature.invalid", forged)


@pytest.mark.parametrize("other", ["plugin", "version"])
async def test_signature_of_another_plugin_or_version_refused(service, make_package,
                                                              state_snapshot, tmp_path, other):
    from plughost.security.package import SIGNATURE_FILE

    victim = make_package("hello", "1.0.0", signed=False)
    donor = make_package("evil" if other == "plugin" else "hello",
                         "1.0.0" if other == "plugin" else "9.9.9")
    import zipfile

    with zipfile.ZipFile(donor) as z:
        signature = z.read(SIGNATURE_FILE)
    forged = rewrite(victim, tmp_path / "forged.zip", change={SIGNATURE_FILE: signature})
    await _refused(service, state_snapshot, "signature.mismatch", forged)


async def test_modified_file_refused(service, make_package, state_snapshot, tmp_path):
    package = make_package("hello")
    tampered = rewrite(package, tmp_path / "tampered.zip",
                       change={"main.py": b"import os\nos.system('echo owned')\n"})
    await _refused(service, state_snapshot, "archive.integrity", tampered)


async def test_unlisted_file_refused(service, make_package, state_snapshot, tmp_path):
    package = make_package("hello")
    tampered = rewrite(package, tmp_path / "extra.zip", change={"extra.py": b"x = 1\n"})
    await _refused(service, state_snapshot, "archive.integrity", tampered)


async def test_missing_source_is_a_clear_error(service, state_snapshot, tmp_path):
    error = await _refused(service, state_snapshot, "install.source", tmp_path / "nope.zip")
    assert "nope.zip" in error.message


async def test_package_over_max_plugin_size_refused(trusted, make_package, state_snapshot):
    from plughost.services.manager import PluginService

    package = make_package("hello", files={"blob.bin": os.urandom(64 * 1024)})
    settings = make_settings(trusted.home, database_url=trusted.database_url,
                             object_store=trusted.object_store, max_plugin_size=16 * 1024)
    async with PluginService(settings) as svc:
        error = await _refused(svc, state_snapshot, "install.too_large", package)
        assert "max_plugin_size" in error.message


async def test_missing_dependency_refused_then_installed_once_available(service, make_package,
                                                                       state_snapshot):
    app = make_package("app", "1.0.0", dependencies={"lib": "^1.0"})
    error = await _refused(service, state_snapshot, "resolve.missing", app)
    assert "lib" in error.message
    await service.install(make_package("lib", "1.2.0"))
    result = await service.install(app)
    assert result.state == "active"


async def test_resolution_follows_what_another_process_installed_and_removed(trusted,
                                                                          make_package):
    """The installer validates installed manifests once and then follows the change log: a
    dependency another process installed (or removed) since is seen at the next install."""
    from plughost.services.manager import PluginService

    async with PluginService(trusted, start=False) as mine:
        await mine.install(make_package("base"))  # reads and keeps the installed manifests
        async with PluginService(trusted, start=False) as other:
            await other.install(make_package("lib", "1.2.0"))
        await mine.refresh()  # the host runs lib now; the installer needed no refresh
        assert (await mine.install(make_package("app", dependencies={"lib": "^1.0"}))).state
        async with PluginService(trusted, start=False) as other:
            await other.uninstall("app")
            await other.uninstall("lib")
        with pytest.raises(PlughostError) as info:
            await mine.install(make_package("app2", dependencies={"lib": "^1.0"}))
        assert info.value.code == "resolve.missing"
        async with PluginService(trusted, start=False) as other:
            await other.install(make_package("lib", "2.0.0"))
        with pytest.raises(PlughostError) as info:  # the version another process installed
            await mine.install(make_package("app2", dependencies={"lib": "^1.0"}))
        assert info.value.code in ("resolve.conflict", "resolve.missing")


async def test_dependents_are_the_enabled_valid_requirers_read_one_plugin_at_a_time(
        service, make_package, monkeypatch):
    """Who blocks an uninstall: enabled plugins whose current, still valid manifest requires
    it (not optionally) — direct ones by id, transitive ones in safe removal order — found
    through the requirements index, one query per plugin reached, never a read of them all."""
    for pid, deps in (("lib", {}), ("web", {"lib": "^1.0"}), ("app", {"lib": "^1.0"}),
                      ("top", {"app": "^1.0", "web": "^1.0"}), ("off", {"lib": "^1.0"}),
                      ("odd", {"lib": "^1.0"})):
        await service.install(make_package(pid, dependencies=deps))
    await service.install(make_package("opt", extra='[optional-dependencies]\nlib = "^1.0"'))
    await service.disable("off")
    repo = service.installer.repo
    manifest = dict(repo.require_plugin("odd").manifest, version="not a version")
    repo.update_plugin("odd", manifest=manifest)  # no longer validates: ignored, logged
    asked: list[str] = []
    requiring = repo.plugins_requiring

    def plugins_requiring(plugin_id: str, **kwargs: Any) -> Any:
        asked.append(plugin_id)
        return requiring(plugin_id, **kwargs)

    def every_plugin(**kwargs: Any) -> Any:
        raise AssertionError("dependents read every installed plugin")

    monkeypatch.setattr(repo, "plugins_requiring", plugins_requiring)
    monkeypatch.setattr(repo, "iter_plugins", every_plugin)
    installer = service.installer
    assert installer.dependents("lib") == ["app", "web"]
    assert asked == ["lib"]
    asked.clear()
    assert installer.dependents("lib", transitive=True) == ["top", "web", "app"]
    assert asked == ["lib", "app", "web", "top"]
    assert installer.dependents("top", transitive=True) == []
    assert installer.dependents("opt") == []


async def test_incompatible_host_version_refused(service, make_package, state_snapshot):
    package = make_package("hello", extra='host = ">=99.0.0"')
    error = await _refused(service, state_snapshot, "resolve.host", package)
    assert "99" in error.message


async def test_activation_failure_undoes_the_install(service, make_package, state_snapshot):
    broken = make_package("hello", code="""
        from plughost.sdk import Plugin

        class Main(Plugin):
            def activate(self, ctx):
                raise RuntimeError("needs an API key")
    """)
    error = await _refused(service, state_snapshot, "plugin.activate", broken)
    assert "needs an API key" in error.message and "--no-activate" in error.message
    result = await service.install(broken, activate=False)
    assert result.state == "resolved"


async def test_unsigned_allowed_for_allowlisted_ids(trusted, make_package):
    from plughost.services.manager import PluginService

    settings = make_settings(trusted.home, database_url=trusted.database_url,
                             object_store=trusted.object_store,
                             signature_allowlist=("devtool",))
    async with PluginService(settings) as svc:
        result = await svc.install(make_package("devtool", signed=False))
        assert (result.signed, result.signed_by, result.state) == (False, None, "active")
        with pytest.raises(PlughostError) as info:
            await svc.install(make_package("other", signed=False))
        assert info.value.code == "signature.missing"


async def test_install_disabled_is_recorded_but_not_loaded(service, make_package):
    result = await service.install(make_package("hello"), enable=False)
    assert (result.enabled, result.state) == (False, "disabled")
    assert service.host.get("hello").instance is None
    [info] = (await service.list_plugins()).items
    assert (info.enabled, info.state) == (False, "disabled")


async def test_failed_operations_are_audited(service, make_package):
    with pytest.raises(PlughostError):
        await service.install(make_package("hello", signed=False))
    events = await service.audit(action="plugin.install")
    assert events[0]["outcome"] == "denied"
    assert events[0]["details"]["error"]["code"] == "signature.missing"


# ----------------------------------------------------------------------------- URLs


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {}, b"not found"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, dict[str, Any]]]:
    """A local HTTP server on 127.0.0.1 serving ``routes[path] = (status, headers, body)``."""
    routes: dict[str, Any] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def url_service(trusted: Any, web: Any) -> Any:
    from plughost.services.manager import PluginService

    port = web[0].rsplit(":", 1)[1]  # an allowed private address is allowed on its port only
    async with PluginService(trusted, allow_private_urls=[f"127.0.0.1:{port}"],
                             allow_http_urls=True) as svc:
        yield svc


async def test_install_from_url_when_the_operator_allows_that_address(url_service, web,
                                                                      make_package):
    base, routes = web
    package = make_package("hello")
    routes["/hello.zip"] = (200, {}, package.read_bytes())
    seen: list[tuple[str, int, int | None]] = []
    result = await url_service.install(f"{base}/hello.zip",
                                       progress=lambda *a: seen.append(a))
    assert (result.source, result.source_uri, result.state) == ("url", f"{base}/hello.zip",
                                                                  "active")
    assert ("download", len(package.read_bytes()), len(package.read_bytes())) in seen
    assert any(stage == "extract" for stage, _, _ in seen)


async def test_url_to_loopback_refused_by_default(service, state_snapshot, web):
    base, routes = web
    routes["/x.zip"] = (200, {}, b"PK")
    https = base.replace("http://", "https://")
    error = await _refused(service, state_snapshot, "download.address", f"{https}/x.zip")
    assert "loopback" in error.message


async def test_plain_http_refused_by_default(service, state_snapshot):
    await _refused(service, state_snapshot, "download.scheme", "http://example.com/x.zip")


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/",
                                    "http://10.1.2.3/p.zip", "http://[::ffff:127.0.0.2]/p.zip"])
async def test_redirect_to_private_or_metadata_address_refused(url_service, state_snapshot, web,
                                                               target):
    base, routes = web
    routes["/p.zip"] = (302, {"Location": target}, b"")
    error = await _refused(url_service, state_snapshot, "download.address", f"{base}/p.zip")
    assert "address" in error.message


async def test_download_larger_than_limit_refused(trusted, web, make_package, state_snapshot):
    from plughost.services.manager import PluginService

    base, routes = web
    routes["/big.zip"] = (200, {}, os.urandom(40_000))
    settings = make_settings(trusted.home, database_url=trusted.database_url,
                             object_store=trusted.object_store, max_plugin_size=10_000)
    async with PluginService(settings, allow_private_urls=True, allow_http_urls=True) as svc:
        await _refused(svc, state_snapshot, "download.too_large", f"{base}/big.zip")


async def test_http_error_status_refused(url_service, web, state_snapshot):
    base, _ = web
    error = await _refused(url_service, state_snapshot, "download.status", f"{base}/missing.zip")
    assert "404" in error.message


# ----------------------------------------------------------------------------- concurrency


async def test_twenty_parallel_installs_of_one_package_install_it_once(service, make_package,
                                                                       state_snapshot):
    package = make_package("hello")
    results = await asyncio.gather(*(service.install(package) for _ in range(20)),
                                   return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 1 and len(refused) == 19
    assert {r.code for r in refused} == {"install.exists"}  # type: ignore[union-attr]
    snap = state_snapshot(service.settings, service)
    assert len(snap["rows"]["plugins"]) == 1 and len(snap["objects"]) == 1
    assert snap["staging"] == []


def test_twenty_threads_installing_through_separate_installers_serialise(trusted, make_package):
    """Threads with their own Installer and database connections: the plugin lock (a file lock
    on SQLite, a row lock on PostgreSQL) lets exactly one install through."""
    from plughost.services.installer import Installer
    from plughost.storage.db import Database
    from plughost.storage.migrations import upgrade
    from plughost.storage.objects import object_store_from_url
    from plughost.storage.repository import Repository

    trusted.ensure_dirs()
    upgrade(trusted.database_url)
    package = make_package("hello")
    outcomes: list[Any] = []
    barrier = threading.Barrier(20)
    databases = []

    def one() -> None:
        db = Database(trusted.database_url)
        databases.append(db)
        installer = Installer(trusted, Repository(db, lock_dir=trusted.lock_dir),
                              object_store_from_url(trusted.object_store))
        staged = installer.stage(package)
        barrier.wait()
        try:
            outcomes.append(installer.install(staged))
        except PlughostError as exc:
            outcomes.append(exc)
        finally:
            staged.cleanup()

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in databases:
        db.close()
    installed = [o for o in outcomes if not isinstance(o, PlughostError)]
    refused = [o for o in outcomes if isinstance(o, PlughostError)]
    assert len(installed) == 1 and len(refused) == 19
    assert all(r.code == "install.exists" and "update" in r.message for r in refused)
    with Database(trusted.database_url) as db:
        repo = Repository(db, lock_dir=trusted.lock_dir)
        assert [p.id for p in repo.list_plugins()] == ["hello"]
        assert len(repo.list_versions("hello")) == 1


# ----------------------------------------------------------------------------- reconcile


async def test_reconcile_removes_orphans_and_dead_staging(trusted, make_package):
    from plughost.services.manager import PluginService
    from plughost.storage.objects import object_store_from_url

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
    orphan_dir = trusted.cache_dir / "plugins" / "ghost" / "1.0.0-abcdefabcdef"
    orphan_dir.mkdir(parents=True)
    (orphan_dir / "main.py").write_text("x = 1\n")
    half = trusted.cache_dir / "plugins" / "hello" / ".2.0.0-123.extract-deadbeef"
    half.mkdir()
    store = object_store_from_url(trusted.object_store)
    store.put("plugins/ghost/1.0.0/ghost_1.0.0.zip", b"orphan")
    dead = trusted.staging_dir / "999999999-abcdef"
    dead.mkdir(parents=True)
    async with PluginService(trusted) as svc:
        report = svc.reconcile_report
        assert report.objects_removed == ["plugins/ghost/1.0.0/ghost_1.0.0.zip"]
        assert sorted(report.cache_removed) == ["ghost/1.0.0-abcdefabcdef",
                                                f"hello/{half.name}"]
        assert report.staging_removed == ["999999999-abcdef"]
        assert not (trusted.cache_dir / "plugins" / "ghost").exists()
        assert [o.key for o in store.list("")] == ["plugins/hello/1.0.0/hello_1.0.0.zip"]
        assert svc.host.get("hello").state.value == "active"


async def test_reconcile_removes_an_empty_data_dir_an_interrupted_install_left(trusted,
                                                                              make_package):
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
    data = trusted.home / "data"
    (data / "ghost").mkdir(parents=True)  # activated, then the install died before its commit
    (data / "kept").mkdir()  # an uninstall with keep_data: the plugin's data stays
    (data / "kept" / "notes.txt").write_text("mine")
    (data / "hello").mkdir()  # installed: its (empty) directory is its own business
    async with PluginService(trusted) as svc:
        assert svc.reconcile_report.data_removed == ["ghost"]
    assert sorted(p.name for p in data.iterdir()) == ["hello", "kept"]


async def test_reconcile_repairs_a_missing_cache_dir_from_the_blob(trusted, make_package):
    from plughost.security.archive import remove_tree
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        result = await svc.install(make_package("hello"))
    remove_tree(result.cache_path)
    async with PluginService(trusted) as svc:
        assert svc.reconcile_report.repaired == ["hello@1.0.0"]
        assert Path(result.cache_path, "main.py").is_file()
        assert await svc.host.call("hello", "ping") == ["1.0.0", 1]


async def test_reconcile_marks_a_plugin_failed_when_all_its_files_are_gone(trusted,
                                                                          make_package):
    from plughost.security.archive import remove_tree
    from plughost.services.manager import PluginService
    from plughost.storage.objects import object_store_from_url

    async with PluginService(trusted) as svc:
        result = await svc.install(make_package("hello"))
    remove_tree(result.cache_path)
    object_store_from_url(trusted.object_store).delete(result.object_key)
    async with PluginService(trusted) as svc:
        assert svc.reconcile_report.failed == ["hello@1.0.0"]
        [info] = (await svc.list_plugins()).items
        assert info.state == "failed"
        assert "reinstall" in json.dumps(info.to_dict())


async def test_a_service_that_runs_no_plugins_repairs_only_what_an_interruption_left(
        trusted, make_package, monkeypatch):
    # The CLI beside no server: a command on one plugin reads no row or directory per
    # installed plugin to look for damage from outside (the next start does), but still
    # repairs after an interrupted operation.
    from plughost.security.archive import remove_tree
    from plughost.services.manager import PluginService
    from plughost.storage.repository import Repository

    async with PluginService(trusted) as svc:
        result = await svc.install(make_package("hello"))
    remove_tree(result.cache_path)  # damage from outside
    reads: list[str] = []
    for name in ("version_files", "plugin_ids"):
        original = getattr(Repository, name)
        monkeypatch.setattr(Repository, name,
                            lambda self, _o=original, _n=name: reads.append(_n) or _o(self))
    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        assert not svc.reconcile_report.changed and not reads
        assert (await svc.info("hello")).state == "installed"
    dead = trusted.staging_dir / "999999999-abcdef"  # a dead process's staging directory
    dead.mkdir(parents=True)
    async with PluginService(trusted, start=False, run_plugins=False) as svc:
        report = svc.reconcile_report
        assert report.staging_removed and report.repaired == ["hello@1.0.0"]
        assert Path(result.cache_path, "main.py").is_file() and reads
    monkeypatch.undo()
    remove_tree(result.cache_path)
    async with PluginService(trusted) as svc:  # a start looks for damage from outside
        assert svc.reconcile_report.repaired == ["hello@1.0.0"]


async def test_cancelled_install_is_seen_through_then_cancelled(service, make_package,
                                                               state_snapshot):
    """A caller that goes away mid-install (an HTTP client hanging up) cannot stop the worker
    thread; the install finishes consistently, staging is removed, the lock is free, and the
    caller gets its CancelledError."""
    loop = asyncio.get_running_loop()
    package = make_package("hello", files={"blob.bin": os.urandom(256 * 1024)})
    task: asyncio.Task[Any] | None = None

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "extract" and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    task = asyncio.ensure_future(service.install(package, progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = state_snapshot(service.settings, service)
    assert snap["staging"] == []
    assert [p["id"] for p in snap["rows"]["plugins"]] == ["hello"]
    assert list(snap["objects"]) == ["plugins/hello/1.0.0/hello_1.0.0.zip"]
    # Nothing is left locked: the next operation on the id goes through.
    await service.uninstall("hello")
    assert (await service.list_plugins()).total == 0


async def test_failure_at_commit_undoes_the_activation(trusted, make_package, state_snapshot):
    """The grant policy runs inside the commit, after the plugin already activated: when it
    fails, the host, the files and the blob are all put back."""
    from plughost.services.manager import PluginService

    def broken_policy(plugin_id: str, declared: Any) -> Any:
        raise RuntimeError("policy service unreachable")

    async with PluginService(trusted, grant_policy=broken_policy,
                             plugin_services=False) as svc:
        error = await _refused(svc, state_snapshot, "install.policy",
                               make_package("hello", extra='permissions = ["net:a.example"]'))
        assert "policy service unreachable" in error.message
        assert "hello" not in svc.host.registry


async def test_a_package_for_another_platform_is_refused_before_anything_is_stored(
        service, make_package, state_snapshot):
    from plughost.core import platforms

    elsewhere = "win32-arm64" if not platforms.current().startswith("win32") else "linux"
    package = make_package("hello", "1.0.0", extra=f'platforms = ["{elsewhere}"]')
    error = await _refused(service, state_snapshot, "install.platform", package)
    assert platforms.current() in error.message and elsewhere in error.message
    fits = make_package("hello", "1.0.0", extra=f'platforms = ["{platforms.current()}"]')
    assert (await service.install(fits)).state == "active"


async def test_reconcile_lists_every_plugin_directory_only_after_an_interrupted_operation(
        trusted, make_package):
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        result = await svc.install(make_package("hello"))
    leftover = Path(result.cache_path).parent / ".2.0.0-1.extract-feedface"
    leftover.mkdir()
    # Clean exits before: the quick pass checks rows against the top-level listings and each
    # kept version's directory, and does not list inside an installed plugin's directory.
    async with PluginService(trusted) as svc:
        assert not svc.reconcile_report.changed and leftover.is_dir()
        # Asked for, the full comparison finds it.
        report = await asyncio.to_thread(svc.installer.reconcile, full=True)
        assert report.cache_removed == [f"hello/{leftover.name}"] and not leftover.exists()
    leftover.mkdir()
    owners = trusted.home / "locks" / "owners"
    if owners.is_dir():  # SQLite: leases are lock files (on a server database, rows)
        from plughost.storage.locks import new_owner_id

        # The lease file of an owner that died (nobody holds its lock), as a crashed install
        # leaves it: the next start compares everything.
        (owners / f"{new_owner_id()}.lock").write_text("pid 1\n")
        async with PluginService(trusted) as svc:
            assert svc.reconcile_report.cache_removed == [f"hello/{leftover.name}"]
