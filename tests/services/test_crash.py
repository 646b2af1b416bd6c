"""Crash safety: kill install / update / rollback / uninstall at every crash point (a real
``os._exit`` in a subprocess, no cleanup), reopen, and find the plugin exactly as before or
exactly as after — never in between. On SQLite + filesystem store (the default storage) and on
PostgreSQL + S3 (moto)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plughost.services.crash import CRASH_ENV, CRASH_POINTS
from tests.fixtures.databases import DatabaseServers, _wipe
from tests.services.conftest import PLUGIN_CODE, STORAGE_PARAMS, make_settings, snapshot

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("crash_driver.py")

#: Points at which the operation has not committed: reopening must show the state before.
BEFORE_COMMIT = {p for p in CRASH_POINTS if not p.endswith(("after_commit", "after_blobs"))}


class Env:
    """Packages, a trusted key, and the 'after' snapshot of each operation (computed once)."""

    def __init__(self, root: Path) -> None:
        from plughost.security.package import pack
        from plughost.security.signing import keygen, sign

        self.root = root
        self.private, self.public = keygen(root / "keys", "publisher")
        self.packages: dict[str, Path] = {}
        for version in ("1.0.0", "1.1.0"):
            src = root / "src" / version
            src.mkdir(parents=True)
            (src / "plugin.toml").write_text(
                f'id = "hello"\nname = "Hello"\nversion = "{version}"\nentry = "main:Main"\n'
                '[config.defaults]\ngreeting = "hi"\n')
            (src / "main.py").write_text(PLUGIN_CODE)
            self.packages[version] = sign(pack(src, root / f"hello-{version}.zip"),
                                          self.private)
        self._after: dict[str, dict[str, Any]] = {}

    def args(self, operation: str) -> list[str]:
        return {"install": [str(self.packages["1.0.0"])],
                "update": ["hello", str(self.packages["1.1.0"])],
                "rollback": ["hello"], "uninstall": ["hello"]}[operation]

    async def prepare(self, settings: Any, operation: str) -> Any:
        from plughost.security.signing import TrustStore
        from plughost.services.manager import PluginService

        TrustStore.for_home(settings.home).add(self.public, "publisher")
        async with PluginService(settings) as svc:
            if operation != "install":
                await svc.install(self.packages["1.0.0"])
            if operation in ("rollback", "uninstall"):
                await svc.update("hello", self.packages["1.1.0"])
        return settings

    async def after(self, operation: str, storage: Storage) -> dict[str, Any]:
        key = f"{storage.backend}:{operation}"
        if key not in self._after:
            settings = storage.fresh(self.root / f"after-{key.replace(':', '-')}")
            await self.prepare(settings, operation)
            assert run(settings, operation, self.args(operation)) == 0
            self._after[key], _ = await observe(settings)
        return self._after[key]


class Storage:
    """Makes settings with an empty database and object store on one backend."""

    def __init__(self, backend: str, servers: DatabaseServers, s3: str | None) -> None:
        self.backend = backend
        self.servers = servers
        self.s3 = s3

    def fresh(self, home: Path, *, reuse: bool = False) -> Any:
        if self.backend == "sqlite":
            return make_settings(home)
        from plughost.storage.migrations import upgrade

        if reuse:
            url = self.servers.migrated("postgres")
            _wipe(url)
        else:
            url = self.servers.create("postgres")
            upgrade(url)
        bucket = f"crash-{os.urandom(4).hex()}"
        store = (f"s3://{bucket}/store?endpoint_url={self.s3}&region=us-east-1"
                 "&create_bucket=1")
        return make_settings(home, database_url=url, object_store=store)


def run(settings: Any, operation: str, args: list[str], crash: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGHOST_")}
    env["PLUGHOST_DATABASE_URL"] = settings.database_url
    env["PLUGHOST_OBJECT_STORE"] = settings.object_store
    home = settings.home
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if crash is not None:
        env[CRASH_ENV] = crash
    proc = subprocess.run([sys.executable, str(DRIVER), str(home), operation, *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    if proc.returncode not in (0, 99):
        raise AssertionError(f"driver failed ({proc.returncode}):\n{proc.stderr}")
    return proc.returncode


async def observe(settings: Any) -> tuple[dict[str, Any], Any]:
    """Open the service (which reconciles) and snapshot everything, running plugins too."""
    from plughost.services.manager import PluginService

    async with PluginService(settings) as svc:
        return snapshot(settings, svc), svc.reconcile_report


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(tmp_path_factory.mktemp("crash"))


@pytest.fixture(params=STORAGE_PARAMS)
def storage(request: pytest.FixtureRequest, db_servers: DatabaseServers) -> Storage:
    s3 = request.getfixturevalue("moto_s3_endpoint") if request.param == "postgres" else None
    if request.param == "postgres":
        db_servers.migrated("postgres")  # skips, with the reason, when the server is absent
    return Storage(request.param, db_servers, s3)


def test_every_crash_point_is_exercised() -> None:
    operations = {p.split(".")[0] for p in CRASH_POINTS}
    assert operations == {"install", "update", "rollback", "uninstall"}


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_crash_leaves_the_plugin_exactly_before_or_after(point: str, env: Env,
                                                               storage: Storage,
                                                               tmp_path: Path) -> None:
    operation = point.split(".")[0]
    settings = storage.fresh(tmp_path / "home", reuse=True)
    await env.prepare(settings, operation)
    before, _ = await observe(settings)
    assert run(settings, operation, env.args(operation), crash=point) == 99
    observed, _ = await observe(settings)
    after = await env.after(operation, storage)
    assert before != after  # the two outcomes are distinguishable
    assert observed == (before if point in BEFORE_COMMIT else after)
    assert observed["staging"] == []
    # Reconciling again finds nothing left to do.
    _, again = await observe(settings)
    assert not again.changed


async def test_crash_after_blob_leaves_orphans_that_the_next_start_removes(env: Env,
                                                                          tmp_path: Path):
    settings = make_settings(tmp_path / "home")
    await env.prepare(settings, "install")
    assert run(settings, "install", env.args("install"), crash="install.after_blob") == 99
    assert any((settings.cache_dir / "plugins" / "hello").iterdir())
    assert any(settings.staging_dir.iterdir())
    _, report = await observe(settings)
    assert report.objects_removed == ["plugins/hello/1.0.0/hello_1.0.0.zip"]
    assert len(report.cache_removed) == 1 and len(report.staging_removed) == 1
