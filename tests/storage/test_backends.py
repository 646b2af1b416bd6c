"""open_storage: one call opens, migrates and wires the database and the object store."""

from __future__ import annotations

from pathlib import Path

import pytest

import plughost.storage as storage_pkg
from plughost.errors import ConfigurationError, DatabaseUnavailable
from plughost.settings import HostSettings
from plughost.storage import migrations
from plughost.storage.backends import open_storage
from plughost.storage.objects import FilesystemObjectStore, S3ObjectStore, package_key
from plughost.storage.records import StoredPlugin


def test_defaults_put_everything_under_the_home_and_migrate(tmp_path: Path) -> None:
    settings = HostSettings(home=tmp_path / "home")
    with open_storage(settings) as storage:
        assert migrations.current(storage.database) == migrations.head()
        assert isinstance(storage.objects, FilesystemObjectStore)
        storage.objects.put(package_key("p", "1.0.0"), b"zip")
        storage.repository.add_plugin(StoredPlugin.from_manifest({"id": "p", "version": "1.0.0"}))
        with storage.repository.lock_plugin("p"):
            assert (tmp_path / "home" / "locks" / "p.lock").exists()
    assert storage.database.closed
    assert (tmp_path / "home" / "plughost.db").exists()
    assert (tmp_path / "home" / "objects" / "blobs").is_dir()
    with open_storage(settings) as again:  # reopening keeps the data
        assert again.repository.require_plugin("p").version == "1.0.0"


def test_server_database_and_s3_change_nothing_else(
    database_url: str, moto_s3_endpoint: str, tmp_path: Path
) -> None:
    settings = HostSettings(
        home=tmp_path,
        database_url=database_url,
        object_store=f"s3://plughost-bs/x?endpoint_url={moto_s3_endpoint}&create_bucket=true",
    )
    with open_storage(settings) as storage:
        assert isinstance(storage.objects, S3ObjectStore)
        storage.objects.put(package_key("p", "1.0.0"), b"zip")
        storage.repository.add_plugin(StoredPlugin.from_manifest({"id": "p", "version": "1.0.0"}))
        assert [p.id for p in storage.repository.list_plugins()] == ["p"]


def test_unreachable_database_fails_fast_and_leaves_nothing_open(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = HostSettings(
        home=tmp_path, database_url=f"postgresql://u@127.0.0.1:{port}/x?connect_timeout=2"
    )
    with pytest.raises(DatabaseUnavailable):
        open_storage(settings)
    with pytest.raises(ConfigurationError, match="unsupported scheme"):
        open_storage(HostSettings(home=tmp_path, object_store="ftp://nope"))


def test_package_front_door_is_lazy_and_complete() -> None:
    for name in storage_pkg.__all__:
        assert getattr(storage_pkg, name) is not None
    with pytest.raises(AttributeError):
        storage_pkg.nothing_here  # noqa: B018
