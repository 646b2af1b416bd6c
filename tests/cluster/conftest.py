"""Three real ``plughost serve`` processes on loopback sharing one PostgreSQL database (created
for the test, dropped at the end of the session), one S3 bucket on moto's server and Redis.

``Cluster.node(i)`` is an httpx client of node ``i``; ``eventually(check)`` waits for a
condition every node must reach (propagation takes a moment: that is what is under test).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.fixtures.databases import *  # noqa: F403
from tests.fixtures.databases import DatabaseServers
from tests.fixtures.objectstores import *  # noqa: F403
from tests.interfaces.http._server import ServerProcess

T = TypeVar("T")

#: A plugin exposing its storage, config, permissions and version as commands.
PLUGIN_CODE = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    def activate(self, ctx):
        self.ctx = ctx

    @command("put")
    def put(self, key, value):
        self.ctx.storage.set(key, value)
        return True

    @command("get")
    def get(self, key):
        return self.ctx.storage.get(key)

    @command("conf")
    def conf(self):
        return dict(self.ctx.config)

    @command("allowed")
    def allowed(self, kind, target):
        return self.ctx.permissions.allowed(kind, target)

    @command("version")
    def version(self):
        return str(self.ctx.manifest.version)
"""

REDIS_URL = os.environ.get("PLUGHOST_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """Nodes started with the same shared stores; each has its own home."""

    def __init__(self, root: Path, env: dict[str, str], args: list[str]) -> None:
        self.root = root
        self.env = env
        self.args = args
        self.nodes: list[ServerProcess | None] = []
        self.clients: list[httpx.Client | None] = []

    def start(self, count: int, *, env: dict[str, str] | None = None) -> list[int]:
        """Start ``count`` more nodes at once; returns their indexes when all are ready."""
        first = len(self.nodes)
        started = []
        for i in range(first, first + count):
            home = self.root / f"node{i}"
            home.mkdir(parents=True, exist_ok=True)
            started.append(ServerProcess(home, [*self.args, "--node-name", f"node{i}"],
                                         env={**self.env, **(env or {})}))
        for server in started:
            try:
                server.wait_ready(90)
            except AssertionError:
                for other in started:
                    other.proc.kill()
                raise
            self.nodes.append(server)
            self.clients.append(httpx.Client(base_url=server.base_url, timeout=30))
        return list(range(first, first + count))

    def node(self, i: int) -> httpx.Client:
        client = self.clients[i]
        assert client is not None, f"node {i} is stopped"
        return client

    def up(self) -> list[int]:
        return [i for i, c in enumerate(self.clients) if c is not None]

    def kill(self, i: int) -> None:
        """``kill -9``: no shutdown, no cleanup."""
        server = self.nodes[i]
        assert server is not None
        server.proc.kill()
        server.proc.wait(10)
        self._drop(i)

    def stop(self, i: int) -> None:
        server = self.nodes[i]
        assert server is not None
        server.stop()
        self._drop(i)

    def _drop(self, i: int) -> None:
        client = self.clients[i]
        if client is not None:
            client.close()
        self.clients[i] = None
        self.nodes[i] = None

    def close(self) -> None:
        for i in self.up():
            self.stop(i)

    def install(self, i: int, package: Path, **params: str) -> httpx.Response:
        with package.open("rb") as fh:
            return self.node(i).post("/api/v1/plugins/install", params=params,
                                     data={"source": "local"},
                                     files={"file": (package.name, fh, "application/zip")})

    def update(self, i: int, plugin_id: str, package: Path) -> httpx.Response:
        with package.open("rb") as fh:
            return self.node(i).put(f"/api/v1/plugins/{plugin_id}", data={"source": "local"},
                                    files={"file": (package.name, fh, "application/zip")})

    def command(self, i: int, name: str, **args: Any) -> Any:
        r = self.node(i).post(f"/api/v1/commands/{name}", json={"args": args})
        assert r.status_code == 200, r.text
        return r.json()["result"]

    def plugin(self, i: int, plugin_id: str) -> dict[str, Any] | None:
        r = self.node(i).get(f"/api/v1/plugins/{plugin_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def everywhere(self, check: Callable[[int], T], *, timeout: float = 10.0) -> list[T]:
        """Wait until ``check(i)`` is truthy on every running node; returns the answers."""
        return [eventually(lambda i=i: check(i), timeout=timeout) for i in self.up()]


def eventually(check: Callable[[], T], *, timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy (an external system's state is the
    event awaited); fail with its last answer after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.TransportError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout} s; last answer: {last!r}")


@pytest.fixture
def shared_stores(db_servers: DatabaseServers, moto_s3_endpoint: str) -> dict[str, str]:
    """A new PostgreSQL database and S3 bucket of this test's own."""
    url = db_servers.create("postgres")
    bucket = f"plughost-cluster-{secrets.token_hex(6)}"
    return {
        "PLUGHOST_DATABASE_URL": url,
        "PLUGHOST_OBJECT_STORE": (f"s3://{bucket}/store?endpoint_url={moto_s3_endpoint}"
                                  "&region=us-east-1&create_bucket=1"),
        "PLUGHOST_REQUIRE_SIGNATURE": "never",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    }


@pytest.fixture
def make_cluster(tmp_path: Path, shared_stores: dict[str, str]) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(redis_url=..., refresh=...)``: a Cluster with no nodes yet."""
    made: list[Cluster] = []

    def make(*, redis_url: str | None = REDIS_URL, refresh: float = 1.0) -> Cluster:
        env = dict(shared_stores)
        if redis_url:
            env["PLUGHOST_REDIS_URL"] = redis_url
        cluster = Cluster(tmp_path / f"cluster{len(made)}", env,
                          ["--refresh-interval", str(refresh), "--heartbeat", "0.5",
                           "--log-level", "info"])
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def package(tmp_path: Path) -> Callable[..., Path]:
    """``package("kv", "1.0.0", extra=...)``: a plugin package (unsigned; the cluster allows it)."""
    from plughost.security.package import pack

    def make(plugin_id: str = "kv", version: str = "1.0.0", *, code: str = PLUGIN_CODE,
             extra: str = "") -> Path:
        root = tmp_path / "src" / f"{plugin_id}-{version}-{secrets.token_hex(3)}"
        root.mkdir(parents=True)
        (root / "plugin.toml").write_text(
            f'id = "{plugin_id}"\nname = "{plugin_id}"\nversion = "{version}"\n'
            f'entry = "main:Main"\n{textwrap.dedent(extra)}')
        (root / "main.py").write_text(textwrap.dedent(code))
        out = tmp_path / "packages"
        out.mkdir(exist_ok=True)
        return pack(root, out)

    return make


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port (so stopping it harms nobody)."""
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server is needed: apt-get install redis-server"
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    eventually(answers, timeout=10)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
