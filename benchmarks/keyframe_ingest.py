"""Keyframe-only ingest into numpy frames, against ``ffmpeg -skip_frame nokey -i CLIP -f null -``
on the same clip (floor: within 80% of ffmpeg's own speed).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

from _common import bench_clip, report

from pipeline.ingest.ffmpeg_bin import ffmpeg_exe
from pipeline.ingest.source import FFmpegSource, Sampling


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args()
    clip = bench_clip(args.seconds)
    command = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-skip_frame", "nokey"]
    command += ["-i", str(clip), "-f", "null", "-"]

    def baseline() -> int:
        subprocess.run(command, check=True)
        return 0

    def ingest() -> int:
        with FFmpegSource(clip, sampling=Sampling("keyframes")) as src:
            return sum(1 for _ in src)

    def timed(fn: Callable[[], int]) -> tuple[float, int]:
        t0 = time.perf_counter()
        n = fn()
        return time.perf_counter() - t0, n

    # Each run takes a fifth of a second and this machine's speed drifts within minutes, so the
    # two alternate (after one warm-up each) and the medians are compared.
    timed(baseline), timed(ingest)
    base_s, ours_s, frames = [], [], 0
    for _ in range(args.repeat):
        base_s.append(timed(baseline)[0])
        took, frames = timed(ingest)
        ours_s.append(took)
    base, ours = statistics.median(base_s), statistics.median(ours_s)
    report(
        {
            "benchmark": "keyframe_ingest",
            "clip": "1280x720 30fps H.264 GOP 2s",
            "clip_s": args.seconds,
            "keyframes": frames,
            "runs": args.repeat,
            "ingest_s": round(ours, 4),
            "baseline_ffmpeg_null_s": round(base, 4),
            "relative_speed": round(base / ours, 3),
            "floor": 0.8,
        }
    )


if __name__ == "__main__":
    main()
