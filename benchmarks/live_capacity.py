"""Live capacity: concurrent 720p30 RTMP streams (H.264, 2 s GOP, ``ffmpeg -re`` into a local
nginx-rtmp) one worker sustains with keyframe sampling and no growing lag (target: 50 streams,
p95 arrival-to-verdict latency under 1 s, under 4 GiB in all).

For each stream count the worker runs for ``--seconds``; a level is sustained when no frames were
dropped, every stream delivered frames, and the latency of the last third is not above the first
third's by more than 0.5 s. Baseline in the same run: the worker's resident memory with no stream.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import bench_clip, bench_index, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import Config
from pipeline.daemon.worker import Worker
from tests.daemon.conftest import Publisher, RtmpServer, wait_until


def _rss(pid: int) -> float:
    """Proportional resident memory (PSS), so libraries shared by many ffmpeg processes count once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb() -> float:
    """Resident memory (PSS) of the worker and its ffmpeg children (one per stream)."""
    me = os.getpid()
    total = _rss(me)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me:
                total += _rss(int(entry))
    return total


def run_level(worker: Worker, rtmp: RtmpServer, clip: Path, n: int, seconds: float) -> dict:
    pubs = [Publisher(clip, rtmp.url(f"s{k}"), loop=True) for k in range(n)]
    time.sleep(1.0)
    latencies: list[tuple[float, float]] = []
    original = worker._conclude  # where each micro-batch's verdicts come out

    def timed(staged):  # type: ignore[no-untyped-def]
        alerts = original(staged)
        now = time.monotonic()
        for frame in staged.frames:
            lag = worker.streams[frame.stream].last_latency if frame.stream in worker.streams else 0.0
            latencies.append((now, lag))
        return alerts

    worker._conclude = timed  # type: ignore[method-assign]
    for k in range(n):
        worker.add_stream(f"s{k}", rtmp.url(f"s{k}"))
    wait_until(lambda: all(s["processed"] > 0 for s in worker.list_streams()), 30, 0.5)
    latencies.clear()
    dropped_before = worker.frames_dropped()
    start = time.monotonic()
    time.sleep(seconds)
    states = worker.list_streams()
    dropped = worker.frames_dropped() - dropped_before
    mem = rss_mb()
    for k in range(n):
        worker.remove_stream(f"s{k}")
    worker._conclude = original  # type: ignore[method-assign]
    for p in pubs:
        p.stop()
    lat = np.array([v for t, v in latencies if t >= start]) if latencies else np.zeros(1)
    third = max(1, len(lat) // 3)
    growth = float(np.mean(lat[-third:]) - np.mean(lat[:third]))
    fed = all(s["processed"] > 0 for s in states)
    return {
        "streams": n,
        "p95_latency_s": round(float(np.percentile(lat, 95)), 3),
        "latency_growth_s": round(growth, 3),
        "dropped_frames": int(dropped),
        "all_streams_fed": fed,
        "rss_mb": round(mem, 1),
        "sustained": bool(fed and dropped == 0 and growth <= 0.5),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--levels", default="10,25,50,75")
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    clip = bench_clip(20.0)
    cfg = Config.load(
        overrides={
            "daemon.sample": "keyframes",
            "daemon.queue": 256,
            "daemon.stall_timeout": 20.0,
            "daemon.outbox": tempfile.mkdtemp() + "/outbox.sqlite",
            "daemon.webhook_url": "",
            "daemon.index": str(bench_index()),
            "daemon.max_streams": 500,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        rtmp = RtmpServer(Path(tmp))
        rtmp.start()
        worker = Worker.from_config(cfg).start()
        idle_mb = rss_mb()
        levels = []
        try:
            for n in (int(v) for v in args.levels.split(",")):
                level = run_level(worker, rtmp, clip, n, args.seconds)
                print(level, file=sys.stderr, flush=True)
                levels.append(level)
                if not level["sustained"]:
                    break
        finally:
            worker.shutdown(5)
            rtmp.stop()
    ok = [lv for lv in levels if lv["sustained"]]
    best = max(ok, key=lambda lv: lv["streams"]) if ok else None
    report(
        {
            "benchmark": "live_capacity",
            "stream": "1280x720 30fps H.264 GOP 2s via nginx-rtmp",
            "sampling": "keyframes",
            "max_sustained_streams": best["streams"] if best else 0,
            "p95_latency_s_at_max": best["p95_latency_s"] if best else None,
            "rss_mb_per_stream_at_max": round((best["rss_mb"] - idle_mb) / best["streams"], 1) if best else None,
            "rss_mb_total_at_max": best["rss_mb"] if best else None,
            "baseline_idle_rss_mb": round(idle_mb, 1),
            "levels": levels,
            "targets": {"streams": 50, "p95_latency_s": 1.0, "total_gib": 4},
        }
    )


if __name__ == "__main__":
    main()
