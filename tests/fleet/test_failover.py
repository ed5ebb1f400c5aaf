"""The fleet on a real local Ray cluster: nine live RTMP streams over three workers, one killed."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pipeline.outbox import Outbox
from tests.daemon.conftest import Publisher, counterfeits, wait_until
from tests.fleet.conftest import fleet_config

pytestmark = pytest.mark.slow


def _alerts_by_stream(fleet) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[dict]] = {}
    for a in fleet.recent_alerts(1000):
        out.setdefault(a["stream"], []).append(a)
    return out


def test_failover_moves_streams_keeps_alerts_and_registry(ray_cluster, rtmp, fake_clip, tmp_path):
    from pipeline.fleet.actors import SCHEDULER, Fleet, worker_outbox

    ray = ray_cluster
    cfg, path = fleet_config(tmp_path, workers=3, streams_per_worker=6)
    brand = counterfeits(fake_clip)[0]["brand"]
    publishers = [Publisher(fake_clip, rtmp.url(f"s{i}"), loop=True) for i in range(10)]
    fleet = Fleet(cfg, str(path)).start()
    try:
        for i in range(9):
            fleet.add_stream(f"s{i}", rtmp.url(f"s{i}"))
        snap = ray.get(fleet.scheduler.snapshot.remote())
        assert sorted(len(w["streams"]) for w in snap["workers"].values()) == [3, 3, 3]

        # Every stream raises the alert its clip calls for.
        assert wait_until(lambda: len(_alerts_by_stream(fleet)) == 9, 90, 1.0), _alerts_by_stream(fleet).keys()
        assert {a["brand"] for a in fleet.recent_alerts(1000)} == {brand}

        # Kill one worker's process outright.
        victim = sorted(snap["workers"])[0]
        moved = set(snap["workers"][victim]["streams"])
        os.kill(ray.get(fleet.workers[victim].pid.remote()), signal.SIGKILL)
        killed_at = time.time()
        fleet.add_stream("s9", rtmp.url("s9"))  # added during the failure

        def moved_and_running() -> bool:
            streams = {s["id"]: s for s in fleet.list_streams()}
            return all(
                streams[sid]["worker"] not in (None, victim) and streams[sid]["state"] == "running"
                for sid in [*moved, "s9"]
            )

        assert wait_until(moved_and_running, 15, 0.25), fleet.list_streams()
        moved_in = time.time() - killed_at
        snap = ray.get(fleet.scheduler.snapshot.remote())
        assert not snap["workers"][victim]["alive"]
        assert snap["streams"]["s9"]["worker"] != victim
        alive = [w for w in snap["workers"].values() if w["alive"]]
        assert sum(len(w["streams"]) for w in alive) == 10

        # The moved streams go on alerting from their new workers.
        def moved_alert_again() -> bool:
            fresh = {a["stream"] for a in fleet.recent_alerts(1000) if a["created_at"] >= _iso(killed_at + 1)}
            return moved | {"s9"} <= fresh

        assert wait_until(moved_alert_again, 60, 1.0), _alerts_by_stream(fleet).keys()

        # Nothing the dead worker had committed is missing from the central outbox.
        with Outbox(worker_outbox(fleet.config, victim)) as box:
            theirs = {a["id"] for a in box.recent(1000)}
        central = {a["id"] for a in fleet.recent_alerts(1000)}
        assert theirs and theirs <= central

        # A restarted scheduler keeps the registry (and the alerts keep arriving).
        before = ray.get(fleet.scheduler.snapshot.remote())
        ray.kill(ray.get_actor(SCHEDULER), no_restart=False)
        assert wait_until(lambda: _ready(ray, fleet), 30, 0.5)
        after = ray.get(fleet.scheduler.snapshot.remote())
        assert {s: r["worker"] for s, r in after["streams"].items()} == {
            s: r["worker"] for s, r in before["streams"].items()
        }
        n = len(central)
        assert wait_until(lambda: len(fleet.recent_alerts(1000)) > n, 60, 1.0)

        # A worker joining takes its share: streams move to it and run there.
        (joined,) = fleet.add_workers(1)
        snap = ray.get(fleet.scheduler.snapshot.remote())
        loads = [len(w["streams"]) for w in snap["workers"].values() if w["alive"]]
        assert len(snap["workers"][joined]["streams"]) >= 3 and max(loads) - min(loads) <= 1, snap["workers"]

        def joined_running() -> bool:
            return all(s["state"] == "running" for s in fleet.list_streams() if s["worker"] == joined)

        assert wait_until(joined_running, 30, 0.5), fleet.list_streams()
        print(f"streams moved and running {moved_in:.1f} s after the kill")
    finally:
        fleet.shutdown()
        for p in publishers:
            p.stop()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _ready(ray, fleet) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(ray.get(fleet.scheduler.ready.remote(), timeout=2))
    except Exception:
        return False
