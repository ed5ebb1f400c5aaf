"""``fakewatch serve --ray``: the daemon's API over a local Ray cluster it starts itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.daemon.conftest import Daemon, Publisher, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_serve_ray_places_streams_alerts_and_stops_cleanly(tmp_path, rtmp, receiver, fake_clip):
    pytest.importorskip("ray")
    d = Daemon(
        tmp_path / "fleet",
        ROOT / "demo" / "gallery",
        receiver.url,
        {"sample": "1"},
        ray={"workers": 2, "streams_per_worker": 4, "worker_cpus": 0.5},
        serve_args=("--ray",),
    )
    d.start()
    pubs = [Publisher(fake_clip, rtmp.url(f"cam{i}"), loop=True) for i in range(2)]
    try:
        assert d.get("/healthz")["workers"] == 2
        d.request("POST", "/streams", {"id": "cam0", "url": rtmp.url("cam0"), "seller": "reseller-9"})
        d.request("POST", "/streams", {"id": "cam1", "url": rtmp.url("cam1")})
        streams = d.get("/streams")
        assert len({s["worker"] for s in streams}) == 2  # one on each worker
        assert {s["id"]: s["seller"] for s in streams} == {"cam0": "reseller-9", "cam1": None}
        # A bad URL is refused before placement, as by a single worker.
        with pytest.raises(Exception, match="400"):
            d.request("POST", "/streams", {"id": "x", "url": "file:///etc/passwd"})
        # Alerts reach the webhook through the scheduler's outbox, signed, with their stable ids.
        assert wait_until(lambda: {a["stream"] for a in receiver.received} == {"cam0", "cam1"}, 90, 0.5)
        assert all(a["_headers"]["webhook-id"] == a["id"] for a in receiver.received)
        # The worker that runs cam0 was told its seller; the scheduler's store answers per stream.
        assert {(a["stream"], a.get("seller")) for a in receiver.received} == {("cam0", "reseller-9"), ("cam1", None)}
        assert {a["stream"] for a in d.get("/alerts?stream=cam1")} == {"cam1"}
        assert "fakewatch_fleet_workers 2" in d.get("/metrics")
        d.request("DELETE", "/streams/cam1")
        assert [s["id"] for s in d.get("/streams")] == ["cam0"]
        start = time.monotonic()
        assert d.terminate(timeout=30) == 0
        assert time.monotonic() - start < 20
    finally:
        d.kill()
        for p in pubs:
            p.stop()
