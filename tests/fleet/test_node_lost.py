"""A node of a two-node Ray cluster (both on this machine, loopback) is lost: its streams move."""

from __future__ import annotations

import time

import pytest

from tests.daemon.conftest import Publisher, wait_until
from tests.fleet.conftest import fleet_config

pytestmark = pytest.mark.slow


def test_streams_of_a_lost_node_move_to_the_other(tmp_path, rtmp, fake_clip):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from pipeline.fleet.actors import Fleet

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    edge = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, namespace="fakewatch-node-test", log_to_driver=False)
    # Each worker reserves 2 CPUs: one lands on each node.
    cfg, path = fleet_config(tmp_path, workers=2, streams_per_worker=6, worker_cpus=2.0)
    publishers = [Publisher(fake_clip, rtmp.url(f"n{i}"), loop=True) for i in range(4)]
    fleet = None
    try:
        fleet = Fleet(cfg, str(path)).start()
        for i in range(4):
            fleet.add_stream(f"n{i}", rtmp.url(f"n{i}"))
        nodes = {name: ray.get(h.node.remote()) for name, h in fleet.workers.items()}
        assert sorted(nodes.values()) == sorted([cluster.head_node.node_id, edge.node_id])
        on_edge = next(name for name, node in nodes.items() if node == edge.node_id)
        survivor = next(name for name in nodes if name != on_edge)
        assert wait_until(
            lambda: {a["stream"] for a in fleet.recent_alerts(1000)} == {f"n{i}" for i in range(4)}, 90, 1
        )

        cluster.remove_node(edge)  # the machine is gone, with its worker and ffmpeg processes
        lost_at = time.time()

        def all_on_survivor() -> bool:
            return all(s["worker"] == survivor and s.get("state") == "running" for s in fleet.list_streams())

        assert wait_until(all_on_survivor, 15, 0.25), fleet.list_streams()
        print(f"streams running on the survivor {time.time() - lost_at:.1f} s after the node was lost")
        before = len(fleet.recent_alerts(1000))
        assert wait_until(lambda: len(fleet.recent_alerts(1000)) > before, 60, 1)
    finally:
        if fleet is not None:
            fleet.shutdown()
        for p in publishers:
            p.stop()
        ray.shutdown()
        cluster.shutdown()
