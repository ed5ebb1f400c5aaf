"""Live sources against a real HLS server on loopback: reconnection and the stall watchdog."""

from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest

from pipeline.ingest.live import LiveSource
from pipeline.ingest.source import Sampling
from pipeline.ingest.urls import check_url
from tests.ingest.conftest import make_video


@pytest.fixture
def hls(http_dir):
    root, base = http_dir
    make_video(
        root / "live.m3u8",
        seconds=3,
        fps=10,
        gop=10,
        size="160x90",
        extra=("-f", "hls", "-hls_time", "1", "-hls_list_size", "0"),
    )
    return f"{base}/live.m3u8"


def test_stream_that_ends_is_reconnected(hls):
    src = LiveSource("s1", check_url(hls), Sampling("all"), backoff_base=0.05, backoff_cap=0.2)
    frames = []
    for frame in src:
        frames.append(frame)
        if src.stats.reconnects >= 1 and len(frames) >= 45:
            break
    src.stop()
    assert src.stats.reconnects >= 1
    # Media time keeps growing across the reconnection.
    assert frames[-1].t > 3.0
    assert all(b.t >= a.t for a, b in itertools.pairwise(frames))


def test_stalled_source_is_restarted_by_the_watchdog():
    """A server that accepts the connection and then says nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    held = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    url = check_url(f"rtmp://127.0.0.1:{port}/live/s")
    src = LiveSource(
        "s", url, Sampling("keyframes"), stall_timeout=1.0, connect_grace=0.5, backoff_base=0.05, backoff_cap=0.1
    )
    states = []
    thread = threading.Thread(target=lambda: list(src), daemon=True)
    thread.start()
    end = time.monotonic() + 45  # generous: the machine may be busy
    while time.monotonic() < end and (src.stats.stalls < 2 or src.stats.reconnects < 2):
        states.append(src.state)
        time.sleep(0.05)
    src.stop()
    thread.join(timeout=20)
    listener.close()
    for c in held:
        c.close()
    summary = (src.stats, sorted(set(states)))
    # The counters, not the sampled states: "stalled" lasts only until the restart begins.
    assert src.stats.stalls >= 2 and src.stats.reconnects >= 2, summary
    assert not thread.is_alive(), summary
