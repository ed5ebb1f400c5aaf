"""Live alerts end to end: nginx-rtmp, an ``ffmpeg -re`` publisher, the worker, a webhook."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.outbox import Outbox
from tests.daemon.conftest import Daemon, Publisher, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"


def counterfeits(clip: Path) -> list[dict]:
    labels = json.loads(clip.with_suffix(".json").read_text())
    return [o for o in labels["objects"] if not o["authentic"]]


@pytest.fixture
def live(tmp_path, receiver):
    d = Daemon(tmp_path / "daemon", DEMO / "gallery", receiver.url, {"sample": "1"})
    d.start()
    yield d
    d.kill()


def test_live_counterfeit_alerts_within_5s_at_the_webhook(live, rtmp, receiver, fake_clip):
    live.request("POST", "/streams", {"id": "bags", "url": rtmp.url("bags")})
    time.sleep(1.0)
    t0 = time.time()
    pub = Publisher(fake_clip, rtmp.url("bags"))
    try:
        assert wait_until(lambda: len(receiver.received) >= 1, 40, 0.2), live.log.read_text()[-2000:]
        arrived = time.time()
    finally:
        pub.stop()
    alert = receiver.received[0]
    fakes = {o["brand"]: o for o in counterfeits(fake_clip)}
    assert alert["brand"] in fakes, alert
    first_visible = fakes[alert["brand"]]["boxes"][0][0] / 30
    assert arrived - (t0 + first_visible) <= 5.0
    assert alert["_headers"]["webhook-id"] == alert["id"]
    assert alert["_headers"]["webhook-signature"].startswith("v1,")
    # Reviewers see it on the worker's review page, with its evidence image.
    page = live.get("/review")
    assert alert["id"] in page and f"evidence/{alert['id']}.jpg" in page
    with urllib.request.urlopen(f"http://127.0.0.1:{live.port}/evidence/{alert['id']}.jpg", timeout=10) as resp:
        assert resp.headers["content-type"] == "image/jpeg"
        assert resp.read()[:2] == b"\xff\xd8"  # a JPEG


def test_webhook_down_then_up_delivers_every_alert(live, rtmp, receiver, fake_clip):
    receiver.stop()
    live.request("POST", "/streams", {"id": "bags", "url": rtmp.url("bags")})
    pub = Publisher(fake_clip, rtmp.url("bags"), loop=True)
    outbox = Path(live.root / "outbox.sqlite")
    try:
        assert wait_until(lambda: live.get("/healthz")["outbox"]["alerts"] >= 1, 40, 0.5)
        time.sleep(max(0.0, 30 - 12))  # the receiver stays down about 30 s in all
    finally:
        pub.stop()
    receiver.start()
    with Outbox(outbox) as box:
        stored = {a["id"] for a in box.recent(1000)}
    assert wait_until(lambda: stored <= {a["id"] for a in receiver.received}, 60, 0.5)


def test_sigterm_keeps_and_later_delivers_every_alert(live, rtmp, receiver, fake_clip):
    receiver.stop()  # nothing can be delivered before the signal
    live.request("POST", "/streams", {"id": "bags", "url": rtmp.url("bags")})
    pub = Publisher(fake_clip, rtmp.url("bags"), loop=True)
    try:
        assert wait_until(lambda: live.get("/healthz")["outbox"]["alerts"] >= 1, 40, 0.5)
        raised = live.get("/alerts")
        start = time.monotonic()
        assert live.proc is not None
        live.proc.send_signal(signal.SIGTERM)
        assert live.proc.wait(timeout=15) == 0
        assert time.monotonic() - start <= 10
    finally:
        pub.stop()
    with Outbox(live.root / "outbox.sqlite") as box:
        kept = {a["id"] for a in box.recent(1000)}
    assert {a["id"] for a in raised} <= kept
    receiver.start()
    live.start()  # the restarted worker resumes delivery from the outbox
    assert wait_until(lambda: kept <= {a["id"] for a in receiver.received}, 60, 0.5)
