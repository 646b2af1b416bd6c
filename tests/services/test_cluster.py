"""A cluster node's heartbeat: what it writes costs what changed, not what is installed."""

from __future__ import annotations

from typing import Any


async def test_a_heartbeat_writes_the_plugin_states_only_when_one_changed(
        trusted: Any, make_package: Any) -> None:
    from plughost.services.cluster import ClusterNode
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        await svc.install(make_package("hello"))
        await svc.install(make_package("other"))
        repo = svc.repository
        written: list[tuple[dict[str, str | None] | None, bool]] = []
        beat_node = repo.beat_node

        def recording(*args: Any, plugins: Any, whole: bool, **kwargs: Any) -> bool:
            written.append((None if plugins is None else dict(plugins), whole))
            return bool(beat_node(*args, plugins=plugins, whole=whole, **kwargs))

        repo.beat_node = recording
        node = ClusterNode(svc, heartbeat_interval=3600, poll_interval=3600)
        await node.start()
        try:
            assert written == [({"hello": "active", "other": "active"}, True)]
            await node._beat()
            await node._beat()
            assert written[1:] == [(None, False), (None, False)]  # the rows keep them
            [stored] = repo.list_nodes()
            assert stored.plugins == {"hello": "active", "other": "active"}
            await svc.disable("hello")
            await node._beat()
            assert written[-1] == ({"hello": "disabled"}, False)  # what changed, alone
            await svc.uninstall("other")
            await node._beat()
            assert written[-1] == ({"other": None}, False)
            [stored] = repo.list_nodes()
            assert stored.plugins == {"hello": "disabled"}
            [stored] = repo.list_nodes(plugin_id="hello")
            assert stored.plugins == {"hello": "disabled"}
            assert [n.plugins for n in repo.list_nodes(plugin_id="other")] == [{}]
            repo.delete_node(node.id)  # forgotten by another node: written whole again
            await node._beat()
            assert written[-2:] == [(None, False), ({"hello": "disabled"}, True)]
            [stored] = repo.list_nodes()
            assert stored.plugins == {"hello": "disabled"}
        finally:
            await node.aclose()
        assert repo.list_nodes() == []


async def test_nodes_dead_for_long_are_forgotten_and_the_living_kept(
        trusted: Any, monkeypatch: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from plughost.services import cluster
    from plughost.services.manager import PluginService

    async with PluginService(trusted) as svc:
        repo = svc.repository
        node = cluster.ClusterNode(svc, heartbeat_interval=3600, poll_interval=3600)
        await node.start()
        try:
            assert repo.beat_node("dead-node", name="gone", url="", version="0",
                                  started_at=datetime.now(UTC), applied_seq=0,
                                  plugins={"x": "active"}, info={})
            now = datetime.now(UTC)
            assert repo.nodes_beaten_before(now - timedelta(hours=1)) == []
            assert repo.nodes_beaten_before(now + timedelta(seconds=1)) == sorted(
                ["dead-node", node.id])
            node._take_over()  # beaten just now: kept
            assert len(repo.list_nodes()) == 2
            monkeypatch.setattr(cluster, "FORGET_AFTER", timedelta(seconds=-60))
            node._take_over()  # "long" dead now; this node's owner lease is alive: kept
            assert [n.id for n in repo.list_nodes()] == [node.id]
        finally:
            await node.aclose()
