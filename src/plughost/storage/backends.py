"""Open every storage backend a host needs from its settings, in one call, owned by one object.

::

    with open_storage(HostSettings.from_env()) as storage:   # migrates the database if needed
        storage.repository.list_plugins()
        storage.objects.put(package_key(pid, version), data)

This is what the host and the management service call at start: it creates the home's
directories, opens the database, applies pending migrations (``auto_migrate``), and opens the
object store named by ``object_store``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from plughost.settings import HostSettings
from plughost.storage.db import Database
from plughost.storage.objects import ObjectStore, object_store_from_url
from plughost.storage.repository import Repository

__all__ = ["Storage", "open_storage"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Storage:
    """The database, its repository and the object store of one host. Close it once."""

    settings: HostSettings
    database: Database
    repository: Repository
    objects: ObjectStore

    def close(self) -> None:
        """Release the owner lease and close the database connections (idempotent). The
        object stores hold no resources."""
        self.repository.close()
        self.database.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_storage(settings: HostSettings | None = None, *, migrate: bool | None = None) -> Storage:
    """Open the database and object store named by ``settings`` (default: from the environment).

    :param migrate: apply pending migrations; default ``settings.auto_migrate``.
    :raises DatabaseUnavailable, MigrationError, ConfigurationError, ExtraNotInstalled: with a
        message naming what to fix. Nothing stays open when it fails.
    """
    settings = settings or HostSettings.from_env()
    settings.ensure_dirs()
    database = Database(settings.database_url)
    try:
        database.ping()
        if settings.auto_migrate if migrate is None else migrate:
            database.migrate()
        objects = object_store_from_url(settings.object_store)
        repository = Repository(database, lock_dir=settings.lock_dir)
    except BaseException:
        database.close()
        raise
    log.debug("storage open: %r, %r", database, objects)
    return Storage(settings, database, repository, objects)
