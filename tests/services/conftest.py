"""Fixtures for the install pipeline: homes on each storage backend, signed packages, and the
``state_snapshot`` that proves refused operations change nothing.

Backends (``settings`` is parametrised): ``sqlite`` — SQLite file + filesystem object store under
the home (the default); ``postgres`` — PostgreSQL + S3 on moto's server (skipped, with the reason,
when the PostgreSQL server is absent).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import textwrap
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.databases import *  # noqa: F403
from tests.fixtures.databases import DatabaseServers, _wipe
from tests.fixtures.objectstores import *  # noqa: F403

STORAGE_PARAMS = [
    pytest.param("sqlite", id="sqlite+fs"),
    pytest.param("postgres", id="postgres+s3", marks=pytest.mark.postgres),
]

PLUGIN_CODE = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        self.count = getattr(self, "count", 0)
        self.version = ctx.manifest.version

    def ping(self):
        self.count += 1
        return [str(self.version), self.count]

    def export_state(self):
        return {"count": self.count}

    def import_state(self, state, from_version):
        self.count = state["count"]
        self.imported_from = from_version
"""


def make_settings(home: Path, **overrides: Any) -> Any:
    from plughost.settings import HostSettings

    return HostSettings(home=home, **overrides)


@pytest.fixture(params=STORAGE_PARAMS)
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, db_servers: DatabaseServers
) -> Any:
    """Host settings on each storage backend (home under tmp_path)."""
    home = tmp_path / "home"
    if request.param == "sqlite":
        return make_settings(home)
    url = db_servers.migrated("postgres")
    _wipe(url)
    endpoint = request.getfixturevalue("moto_s3_endpoint")
    bucket = f"plughost-{secrets.token_hex(6)}"
    store = f"s3://{bucket}/store?endpoint_url={endpoint}&region=us-east-1&create_bucket=1"
    return make_settings(home, database_url=url, object_store=store)


@pytest.fixture
def signer(tmp_path: Path) -> dict[str, Path]:
    """A publisher key pair (not yet trusted anywhere)."""
    from plughost.security.signing import keygen

    private, public = keygen(tmp_path / "keys", "publisher")
    return {"private": private, "public": public}


@pytest.fixture
def trusted(settings: Any, signer: dict[str, Path]) -> Any:
    """The settings, with the publisher's key in the home's trust store."""
    from plughost.security.signing import TrustStore

    TrustStore.for_home(settings.home).add(signer["public"], "publisher")
    return settings


MakePackage = Callable[..., Path]


@pytest.fixture
def make_package(tmp_path: Path, signer: dict[str, Path]) -> MakePackage:
    """Build (and by default sign) a package: ``make_package("hello", "1.0.0", deps={...})``."""
    from plughost.security.package import pack
    from plughost.security.signing import sign

    def make(
        plugin_id: str = "hello",
        version: str = "1.0.0",
        *,
        dependencies: Mapping[str, str] | None = None,
        code: str = PLUGIN_CODE,
        signed: bool = True,
        key: Path | None = None,
        files: Mapping[str, str | bytes] | None = None,
        extra: str = "",
    ) -> Path:
        root = tmp_path / "src" / f"{plugin_id}-{version}-{secrets.token_hex(3)}"
        root.mkdir(parents=True)
        lines = [f'id = "{plugin_id}"', f'name = "{plugin_id.title()}"',
                 f'version = "{version}"', 'entry = "main:Main"']
        if extra:
            lines.append(textwrap.dedent(extra))
        if dependencies:
            lines.append("[dependencies]")
            lines += [f'"{k}" = "{v}"' for k, v in dependencies.items()]
        (root / "plugin.toml").write_text("\n".join(lines) + "\n")
        (root / "main.py").write_text(textwrap.dedent(code))
        for name, content in (files or {}).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        out = tmp_path / "packages"
        out.mkdir(exist_ok=True)
        package = pack(root, out / f"{plugin_id}-{version}-{secrets.token_hex(3)}.zip")
        if signed:
            sign(package, key or signer["private"])
        return package

    return make


@pytest.fixture
async def service(trusted: Any) -> AsyncIterator[Any]:
    """An open PluginService (plugins started) on each backend, the publisher trusted."""
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        yield svc


# ----------------------------------------------------------------------------- snapshot

_VOLATILE = {"installed_at", "updated_at", "changed_at", "granted_at", "revoked_at"}
_TABLES = ("plugins", "plugin_versions", "plugin_config", "config_history", "grants")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(settings: Any, service: Any = None, *, ignore: frozenset[str] = frozenset()
             ) -> dict[str, Any]:
    """Everything an operation could change: database rows (audit excluded: failures are
    recorded there on purpose), object-store keys and digests, the plugin cache tree with file
    hashes and modes, and the plugins running in ``service``'s host."""
    import sqlalchemy as sa

    from plughost.storage.db import Database
    from plughost.storage.objects import object_store_from_url

    rows: dict[str, list[dict[str, Any]]] = {}
    with Database(settings.database_url) as db, db.engine.connect() as conn:
        for table in _TABLES:
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            items = []
            for row in result.mappings():
                item = {k: v for k, v in row.items() if k not in _VOLATILE | ignore
                        and not (k == "id" and table != "plugins")}  # surrogate keys
                if isinstance(item.get("cache_path"), str):
                    item["cache_path"] = os.path.relpath(item["cache_path"], settings.home)
                items.append(item)
            rows[table] = sorted(items, key=repr)
    store = object_store_from_url(settings.object_store)
    objects = {i.key: i.sha256 for i in store.list("")}
    tree: dict[str, Any] = {}
    cache = settings.cache_dir / "plugins"
    if cache.exists():
        for path in sorted(cache.rglob("*")):
            rel = path.relative_to(cache).as_posix()
            mode = oct(path.stat().st_mode & 0o777)
            tree[rel] = (mode, _digest(path)) if path.is_file() else (mode, "dir")
    running = {}
    if service is not None:
        for record in service.host.registry:
            root = os.path.relpath(record.root, settings.home) if record.root else None
            running[record.id] = (record.state.value, str(record.manifest.version), root)
    staging = sorted(p.name for p in settings.staging_dir.iterdir()) \
        if settings.staging_dir.exists() else []
    return {"rows": rows, "objects": objects, "cache": tree, "running": running,
            "staging": staging}


@pytest.fixture
def state_snapshot() -> Callable[..., dict[str, Any]]:
    """``state_snapshot(settings, service=None)``: see :func:`snapshot`."""
    return snapshot
