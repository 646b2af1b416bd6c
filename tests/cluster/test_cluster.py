"""Three ``plughost serve`` on one PostgreSQL, one S3 bucket and Redis: every operation made
through any node is seen on all of them; a node killed mid-operation is taken over; with Redis
gone, changes still arrive (by polling); concurrent updates of one plugin are serialised."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(240)]

MakeCluster = Callable[..., Cluster]
MakePackage = Callable[..., Path]


def _state(cluster: Cluster, i: int, plugin_id: str) -> str | None:
    found = cluster.plugin(i, plugin_id)
    return None if found is None else str(found["state"])


def test_every_operation_on_a_random_node_is_applied_on_all(
        make_cluster: MakeCluster, package: MakePackage) -> None:
    rng = random.Random(16)
    cluster = make_cluster()
    cluster.start(3)
    pick = lambda: rng.choice(cluster.up())  # noqa: E731

    # install
    r = cluster.install(pick(), package("kv", "1.0.0"))
    assert r.status_code == 201, r.text
    cluster.everywhere(lambda i: _state(cluster, i, "kv") == "active")
    # plugin storage is shared: written through one node, read through the others
    assert cluster.command(pick(), "kv.put", key="greeting", value={"hello": "cluster"})
    assert [cluster.command(i, "kv.get", key="greeting") for i in cluster.up()] == [
        {"hello": "cluster"}] * 3
    # disable, enable
    assert cluster.node(pick()).post("/api/v1/plugins/kv/disable").status_code == 200
    cluster.everywhere(lambda i: _state(cluster, i, "kv") == "disabled")
    assert cluster.node(pick()).post("/api/v1/plugins/kv/enable").status_code == 200
    cluster.everywhere(lambda i: _state(cluster, i, "kv") == "active")
    # config: the running plugin on every node sees the new value
    r = cluster.node(pick()).put("/api/v1/plugins/kv/config", json={"values": {"x": 1}})
    assert r.status_code == 200, r.text
    cluster.everywhere(lambda i: cluster.command(i, "kv.conf") == {"x": 1})
    r = cluster.node(pick()).put("/api/v1/plugins/kv/config", json={"values": {"x": 2}})
    assert r.status_code == 200, r.text  # another node's write is the base, not a conflict
    cluster.everywhere(lambda i: cluster.command(i, "kv.conf") == {"x": 2})
    # grant
    r = cluster.node(pick()).post("/api/v1/plugins/kv/permissions/grant",
                                  json={"scope": "net:api.example.com:443"})
    assert r.status_code == 200, r.text
    cluster.everywhere(lambda i: cluster.command(i, "kv.allowed", kind="net",
                                                 target="api.example.com:443") is True)
    # update, then rollback
    r = cluster.update(pick(), "kv", package("kv", "1.1.0"))
    assert r.status_code == 200, r.text
    cluster.everywhere(lambda i: cluster.command(i, "kv.version") == "1.1.0")
    r = cluster.node(pick()).post("/api/v1/plugins/kv/rollback", json={})
    assert r.status_code == 200, r.text
    cluster.everywhere(lambda i: cluster.command(i, "kv.version") == "1.0.0")
    assert cluster.command(pick(), "kv.get", key="greeting") == {"hello": "cluster"}
    # every node reports what it runs
    nodes = cluster.node(pick()).get("/api/v1/nodes").json()
    assert {n["name"] for n in nodes["items"]} == {"node0", "node1", "node2"}
    assert all(n["status"] == "up" and n["transport"] == "redis" for n in nodes["items"])
    eventually(lambda: all({"id": "kv", "state": "active"} in n["plugins"]
                           for n in cluster.node(0).get("/api/v1/nodes").json()["items"]))
    # where one plugin runs, without every plugin's state of every node
    one = cluster.node(pick()).get("/api/v1/nodes", params={"plugin_id": "kv"}).json()
    assert [n["plugins"] for n in one["items"]] == [[{"id": "kv", "state": "active"}]] * 3
    assert cluster.node(pick()).get("/api/v1/nodes",
                                    params={"plugin_id": "nope"}).status_code == 404
    # uninstall
    assert cluster.node(pick()).delete("/api/v1/plugins/kv").status_code == 200
    cluster.everywhere(lambda i: _state(cluster, i, "kv") is None)
    assert all(cluster.node(i).get("/api/v1/commands").json()["items"] == []
               for i in cluster.up())


def test_a_node_killed_mid_operation_is_taken_over(
        make_cluster: MakeCluster, package: MakePackage, tmp_path: Path) -> None:
    cluster = make_cluster()
    cluster.start(3)
    started = tmp_path / "activation-started"
    hanging = f"""
import pathlib, time
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        pathlib.Path({str(started)!r}).write_text("x")
        time.sleep(120)
"""
    r = cluster.install(0, package("slow", "1.0.0", code=hanging), **{"async": "true"})
    assert r.status_code == 202, r.text
    operation = r.json()["id"]
    eventually(started.exists, timeout=30)  # node 0 is inside the install, holding its lock
    cluster.kill(0)
    # Another node notices the dead owner, fails the operation and undoes it.
    op = eventually(lambda: (o := cluster.node(1).get(f"/api/v1/operations/{operation}").json())
                    ["status"] == "failed" and o, timeout=20)
    assert op["error"]["code"] == "operation.interrupted"
    nodes = cluster.node(2).get("/api/v1/nodes").json()["items"]
    assert {n["name"]: n["status"] for n in nodes}["node0"] == "down"
    assert all(_state(cluster, i, "slow") is None for i in cluster.up())
    # The lock died with node 0: the plugin installs through another node at once.
    r = cluster.install(2, package("slow", "1.0.1"))
    assert r.status_code == 201, r.text
    cluster.everywhere(lambda i: _state(cluster, i, "slow") == "active")


def test_without_redis_changes_arrive_by_polling(
        make_cluster: MakeCluster, package: MakePackage,
        own_redis: tuple[str, Any]) -> None:
    url, redis_proc = own_redis
    cluster = make_cluster(redis_url=url, refresh=1.0)
    cluster.start(2)
    assert cluster.install(0, package("kv", "1.0.0")).status_code == 201
    cluster.everywhere(lambda i: _state(cluster, i, "kv") == "active", timeout=5)
    redis_proc.kill()
    redis_proc.wait(10)
    assert cluster.node(1).post("/api/v1/plugins/kv/disable").status_code == 200
    # The announcement is lost; node 0 polls the change log every second.
    eventually(lambda: _state(cluster, 0, "kv") == "disabled", timeout=5)
    assert cluster.node(0).get("/readyz").status_code == 200  # Redis is not a shared store


def test_concurrent_updates_of_one_plugin_from_two_nodes_are_serialised(
        make_cluster: MakeCluster, package: MakePackage) -> None:
    cluster = make_cluster()
    cluster.start(2)
    assert cluster.install(0, package("kv", "1.0.0")).status_code == 201
    cluster.everywhere(lambda i: _state(cluster, i, "kv") == "active")
    packages = [package("kv", "2.0.0"), package("kv", "3.0.0")]
    answers: list[Any] = [None, None]

    def update(i: int) -> None:
        answers[i] = cluster.update(i, "kv", packages[i])

    threads = [threading.Thread(target=update, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200], [a.text for a in answers]  # one after the other, never at once
    final = {cluster.command(i, "kv.version") for i in cluster.up()}
    cluster.everywhere(lambda i: cluster.command(i, "kv.version") == cluster.plugin(
        0, "kv")["version"])
    assert len(final) <= 2
    versions = cluster.node(1).get("/api/v1/plugins/kv/versions").json()["items"]
    assert sorted(v["version"] for v in versions) == ["1.0.0", "2.0.0", "3.0.0"]
    assert sum(v["current"] for v in versions) == 1


#: A plugin that cannot start without ``webhook_url`` (no default): it installs into
#: ``needs-config``.
NEEDS_CONFIG_CODE = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    def activate(self, ctx):
        self.url = ctx.config["webhook_url"]

    @command("where")
    def where(self):
        return self.url
"""
NEEDS_CONFIG_SCHEMA = """
[config.schema]
type = "object"
required = ["webhook_url"]
[config.schema.properties.webhook_url]
type = "string"
"""


@pytest.mark.parametrize("order", ["configure-on-A-then-enable-on-B",
                                   "enable-on-B-then-configure-on-A"])
def test_a_plugin_waiting_for_config_runs_on_every_node_once_configured_and_enabled(
        make_cluster: MakeCluster, package: MakePackage, order: str) -> None:
    cluster = make_cluster()
    cluster.start(2)
    a, b = 0, 1
    r = cluster.install(a, package("notify", "1.0.0", code=NEEDS_CONFIG_CODE,
                                   extra=NEEDS_CONFIG_SCHEMA))
    assert (r.status_code, r.json()["state"]) == (201, "needs-config"), r.text
    # Both nodes have seen it while it could not run.
    cluster.everywhere(lambda i: _state(cluster, i, "notify") == "needs-config")

    def configure() -> None:
        r = cluster.node(a).put("/api/v1/plugins/notify/config",
                                json={"values": {"webhook_url": "https://hooks.example/x"}})
        assert r.status_code == 200, r.text

    def enable() -> None:
        assert cluster.node(b).post("/api/v1/plugins/notify/enable").status_code == 200

    steps = [configure, enable] if order.startswith("configure") else [enable, configure]
    for step in steps:
        step()
    cluster.everywhere(lambda i: _state(cluster, i, "notify") == "active")
    assert [cluster.command(i, "notify.where") for i in cluster.up()] == [
        "https://hooks.example/x"] * 2
    eventually(lambda: all({"id": "notify", "state": "active"} in n["plugins"]
                           for n in cluster.node(b).get("/api/v1/nodes").json()["items"]))
