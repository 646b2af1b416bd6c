"""Marketplace fixtures: a real repository on disk, served over HTTP on loopback, and a home
that reads it. Packages come from the install pipeline's ``make_package`` (signed by the
publisher key the ``trusted`` home trusts)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plughost.services.market.client import MarketClient
from plughost.services.market.repo import MarketRepository
from plughost.services.market.serve import RepositoryServer


@pytest.fixture
def market_repo(tmp_path: Path) -> MarketRepository:
    """An empty repository."""
    return MarketRepository.init(tmp_path / "repo", name="test")


@pytest.fixture
def served(market_repo: MarketRepository) -> Iterator[RepositoryServer]:
    """The repository's public folder served by a real HTTP server on 127.0.0.1."""
    with RepositoryServer(market_repo.public) as server:
        yield server


@pytest.fixture
def client_home(tmp_path: Path) -> Path:
    return tmp_path / "client-home"


@pytest.fixture
def market_client(client_home: Path, market_repo: MarketRepository,
                  served: RepositoryServer) -> MarketClient:
    """A client that has added the served repository (not refreshed yet)."""
    client = MarketClient(client_home)
    client.add("main", served.url, (market_repo.path / "root.json").read_bytes())
    return client


def tree_state(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symlinks as their target) with its SHA-256; lock files
    left out (they are touched by every operation and hold nothing)."""
    out: dict[str, str] = {}
    if not folder.exists():
        return out
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.name == ".lock":
            continue
        if path.is_symlink():
            out[rel] = "-> " + str(Path(path.readlink()))
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def local_state() -> Callable[[Path], dict[str, str]]:
    return tree_state


def publish(repo: MarketRepository, make_package: Any, plugin_id: str, version: str,
            **kw: Any) -> Path:
    package = make_package(plugin_id, version, **kw)
    repo.publish(package)
    return package
