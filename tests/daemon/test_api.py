"""The worker daemon's HTTP API and lifecycle against real nginx-rtmp and ffmpeg publishers."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from tests.daemon.conftest import Daemon, Publisher, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEMO_GALLERY = ROOT / "demo" / "gallery"
DEMO_CLIP = ROOT / "demo" / "clips" / "demo_authentic.mp4"


@pytest.fixture
def daemon(tmp_path, receiver):
    # 1 fps: a counterfeit shown for a few seconds gives the verdict enough samples.
    d = Daemon(tmp_path / "daemon", DEMO_GALLERY, receiver.url, {"sample": "1"})
    d.start()
    yield d
    d.kill()


def _status(exc_info) -> int:  # type: ignore[no-untyped-def]
    return exc_info.value.code


@pytest.mark.parametrize(
    ("method", "path", "body", "token", "status"),
    [
        ("POST", "/streams", {"id": "a", "url": "rtmp://127.0.0.1:1/live/a"}, None, 401),
        ("POST", "/streams", {"id": "a", "url": "rtmp://127.0.0.1:1/live/a"}, "wrong", 401),
        ("POST", "/streams", {"id": "a", "url": "file:///etc/passwd"}, Daemon.TOKEN, 400),
        ("POST", "/streams", {"id": "a", "url": "concat:/etc/passwd"}, Daemon.TOKEN, 400),
        ("POST", "/streams", {"id": "", "url": "rtmp://127.0.0.1:1/live/a"}, Daemon.TOKEN, 422),
        ("POST", "/streams", {"id": "a", "url": "rtmp://127.0.0.1:1/live/a", "seller": ""}, Daemon.TOKEN, 422),
        ("POST", "/streams", {"id": "a", "url": "rtmp://127.0.0.1:1/live/a", "seller": "a\nb"}, Daemon.TOKEN, 400),
        ("POST", "/streams", {"id": "a", "url": "rtmp://127.0.0.1:1/live/a", "seller": 17}, Daemon.TOKEN, 422),
        ("DELETE", "/streams/nope", None, Daemon.TOKEN, 404),
        ("DELETE", "/streams/nope", None, None, 401),
        ("GET", "/evidence/nope.jpg", None, None, 404),
        ("GET", "/evidence/..%2F..%2Fetc%2Fpasswd.jpg", None, None, 404),
    ],
)
def test_refusals(daemon, method, path, body, token, status):
    with pytest.raises(urllib.error.HTTPError) as err:
        daemon.request(method, path, body, token=token)
    assert _status(err) == status


def test_health_metrics_and_stream_lifecycle(daemon, rtmp):
    assert daemon.get("/healthz")["status"] == "ok"
    assert "No alerts." in daemon.get("/review")
    pub = Publisher(DEMO_CLIP, rtmp.url("s1"), loop=True)
    try:
        state = daemon.request("POST", "/streams", {"id": "s1", "url": rtmp.url("s1")})
        assert state["id"] == "s1" and state["state"] in ("starting", "running") and state["seller"] is None
        with pytest.raises(urllib.error.HTTPError) as err:
            daemon.request("POST", "/streams", {"id": "s1", "url": rtmp.url("s1")})
        assert _status(err) == 400
        assert wait_until(lambda: daemon.get("/streams")[0]["processed"] >= 2, 40, 0.5)
        s = daemon.get("/streams")[0]
        assert s["state"] == "running" and s["lag_s"] < 5
        assert s["dropped"] == 0  # one stream never overloads the worker
        metrics = daemon.get("/metrics")
        for name in (
            "fakewatch_frames_decoded_total",
            "fakewatch_frames_dropped_total",
            "fakewatch_stream_reconnects_total",
            "fakewatch_stage_duration_seconds",
            "fakewatch_batch_size_frames",
            "fakewatch_queue_depth_frames",
            "fakewatch_end_to_end_latency_seconds",
            "fakewatch_alerts_raised_total",
            "fakewatch_alerts_delivered_total",
            "fakewatch_alert_delivery_failures_total",
        ):
            assert name in metrics, name
        assert 'fakewatch_frames_decoded_total{stream="s1"}' in metrics
        daemon.request("DELETE", "/streams/s1")
        assert daemon.get("/streams") == []
    finally:
        pub.stop()
    assert daemon.terminate() == 0


def test_rtmp_server_restart_reconnects_and_alerts_go_on(daemon, rtmp, receiver, fake_clip):
    pub = Publisher(DEMO_CLIP, rtmp.url("s2"), loop=True)
    daemon.request("POST", "/streams", {"id": "s2", "url": rtmp.url("s2"), "seller": "reseller-9"})
    assert daemon.get("/streams")[0]["seller"] == "reseller-9"
    assert wait_until(lambda: daemon.get("/streams")[0]["processed"] >= 2, 40, 0.5)
    rtmp.stop()
    pub.stop()
    assert wait_until(lambda: daemon.get("/streams")[0]["state"] in ("reconnecting", "stalled"), 30, 0.5)
    rtmp.start()
    pub = Publisher(DEMO_CLIP, rtmp.url("s2"), loop=True)
    try:
        before = daemon.get("/streams")[0]["processed"]
        assert wait_until(lambda: daemon.get("/streams")[0]["processed"] > before + 1, 60, 0.5)
        s = daemon.get("/streams")[0]
        assert s["state"] == "running" and s["reconnects"] >= 1
        assert 'fakewatch_stream_reconnects_total{stream="s2"}' in daemon.get("/metrics")
    finally:
        pub.stop()
    # The seller goes on with a counterfeit after the restart: it still raises its alert, which
    # names the stream's seller (not authorized: the demo gallery's brand.json files list none).
    pub = Publisher(fake_clip, rtmp.url("s2"))
    try:
        assert wait_until(lambda: any(a["stream"] == "s2" for a in receiver.received), 60, 0.5)
    finally:
        pub.stop()
    alert = next(a for a in receiver.received if a["stream"] == "s2")
    assert alert["seller"] == "reseller-9" and alert["authorized_seller"] is False
    # A reviewer can narrow the alerts and the review page to one stream.
    of_s2 = daemon.get("/alerts?stream=s2")
    assert alert["id"] in [a["id"] for a in of_s2] and {a["stream"] for a in of_s2} == {"s2"}
    assert daemon.get("/alerts?stream=nope") == []
    page = daemon.get("/review?stream=s2")
    assert "recent alerts of s2" in page and alert["id"] in page and "seller reseller-9" in page


def test_live_hls_stream_over_http(daemon, tmp_path):
    """ffmpeg writes a live HLS playlist and segments; a local HTTP server serves them."""
    import functools
    import subprocess
    import threading
    from http.server import ThreadingHTTPServer

    from pipeline.ingest.ffmpeg_bin import ffmpeg_exe
    from tests.ingest.conftest import QuietHandler

    hls = tmp_path / "hls"
    hls.mkdir()
    writer = subprocess.Popen(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(DEMO_CLIP),
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "5",
            "-hls_flags",
            "delete_segments",
            str(hls / "live.m3u8"),
        ]
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(hls)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert wait_until(lambda: (hls / "live.m3u8").exists(), 20)
        url = f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
        daemon.request("POST", "/streams", {"id": "hls1", "url": url})
        assert wait_until(lambda: daemon.get("/streams")[0]["processed"] >= 2, 60, 0.5)
        assert daemon.get("/streams")[0]["state"] == "running"
    finally:
        writer.kill()
        writer.wait()
        server.shutdown()
        server.server_close()


def test_local_files_only_when_allowed(tmp_path, receiver):
    d = Daemon(tmp_path / "files", DEMO_GALLERY, receiver.url, {"allow_files": True})
    d.start()
    try:
        d.request("POST", "/streams", {"id": "f1", "url": str(DEMO_CLIP)})
        assert wait_until(lambda: d.get("/streams")[0]["state"] == "ended", 60, 0.5)
        # "ended" is the source's state: on a loaded machine the file is read to its end before the
        # worker has taken its frames off the queue, so wait for them rather than race it.
        assert wait_until(lambda: d.get("/streams")[0]["processed"] >= 3, 60, 0.5)
    finally:
        d.kill()


@pytest.mark.parametrize(("host", "message"), [("127.0.0.1", "Address already in use"), ("nonexistent.invalid", "")])
def test_serve_refuses_an_address_it_cannot_listen_on(capsys, monkeypatch, host, message):
    import socket

    from pipeline.cli import main

    monkeypatch.setenv("FAKEWATCH_DAEMON__TOKEN", "t")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--host", host, "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"cannot listen on {host}:{port}: {message}" in err and "listening on" not in err
