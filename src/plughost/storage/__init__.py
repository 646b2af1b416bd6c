"""Persistence: the database (SQLAlchemy 2 + Alembic) and the object store (filesystem, S3).

Front door, imported lazily so ``import plughost.storage`` works without the ``db`` extra::

    Storage, open_storage                     plughost.storage.backends (start here)
    Database, create_engine_from_url          plughost.storage.db
    Repository                                plughost.storage.repository
    ObjectStore, ObjectInfo, FilesystemObjectStore, S3ObjectStore,
    object_store_from_url, package_key        plughost.storage.objects
    upgrade, current, head                    plughost.storage.migrations

Stdlib-only stores used by the plugin services (no extra needed), imported directly:

    ConfigStore, SQLiteConfigStore, RedisConfigStore   plughost.storage.config_store
    KeyValueStore (ctx.storage backend)                 plughost.storage.kv

See docs/storage.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Database",
    "FilesystemObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "Repository",
    "S3ObjectStore",
    "Storage",
    "create_engine_from_url",
    "current",
    "head",
    "object_store_from_url",
    "open_storage",
    "package_key",
    "upgrade",
]

_WHERE = {
    "Storage": "backends",
    "open_storage": "backends",
    "Database": "db",
    "create_engine_from_url": "db",
    "Repository": "repository",
    "ObjectStore": "objects",
    "ObjectInfo": "objects",
    "FilesystemObjectStore": "objects",
    "S3ObjectStore": "objects",
    "object_store_from_url": "objects",
    "package_key": "objects",
    "upgrade": "migrations",
    "current": "migrations",
    "head": "migrations",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'plughost.storage' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ModuleNotFoundError as exc:
        if exc.name in ("sqlalchemy", "alembic"):
            from plughost.errors import ExtraNotInstalled

            raise ExtraNotInstalled("plughost.storage", "db", exc.name) from exc
        raise
