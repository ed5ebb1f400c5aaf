"""Keyframe-only ingest into numpy frames, against ``ffmpeg -skip_frame nokey -i CLIP -f null -``
on the same clip (floor: within 80% of ffmpeg's own speed).
"""

from __future__ import annotations

import argparse
import subprocess
import time

from _common import bench_clip, report

from pipeline.ingest.ffmpeg_bin import ffmpeg_exe
from pipeline.ingest.source import FFmpegSource, Sampling


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args()
    clip = bench_clip(args.seconds)
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        subprocess.run(
            [
                ffmpeg_exe(),
                "-nostdin",
                "-loglevel",
                "error",
                "-skip_frame",
                "nokey",
                "-i",
                str(clip),
                "-f",
                "null",
                "-",
            ],
            check=True,
        )
    base = (time.perf_counter() - t0) / args.repeat
    t0 = time.perf_counter()
    frames = 0
    for _ in range(args.repeat):
        with FFmpegSource(clip, sampling=Sampling("keyframes")) as src:
            frames += sum(1 for _ in src)
    ours = (time.perf_counter() - t0) / args.repeat
    report(
        {
            "benchmark": "keyframe_ingest",
            "clip": "1280x720 30fps H.264 GOP 2s",
            "clip_s": args.seconds,
            "keyframes": frames // args.repeat,
            "ingest_s": round(ours, 4),
            "baseline_ffmpeg_null_s": round(base, 4),
            "relative_speed": round(base / ours, 3),
            "floor": 0.8,
        }
    )


if __name__ == "__main__":
    main()
