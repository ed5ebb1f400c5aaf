"""Replay speed at 2 fps sampling of a 720p30 H.264 clip, as a multiple of real time (floor: 15x).

Baseline in the same run: ffmpeg decoding and sampling the same clip with no models
(``-vf select=... -f null -``), the upper bound replay can reach on this machine.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from _common import bench_clip, bench_index, report

from pipeline.config import Config
from pipeline.ingest.ffmpeg_bin import ffmpeg_exe
from pipeline.ingest.probe import probe
from pipeline.ingest.source import FFmpegSource, Sampling
from pipeline.spine import Spine, run_sources


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=20.0, help="clip length")
    p.add_argument("--sample", default="2")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    clip = bench_clip(args.seconds)
    index = bench_index()
    media = probe(clip).duration or args.seconds
    sampling = Sampling.from_arg(args.sample)
    select = sampling.select_expression()
    vf = ["-vf", f"select='{select}'"] if select else []
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        subprocess.run(
            [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(clip), *vf, "-f", "null", "-"], check=True
        )
    decode_x = media * args.repeat / (time.perf_counter() - t0)
    cfg = Config.load()
    with Spine.from_config(cfg, index) as spine:
        run_sources(spine, [FFmpegSource(clip, "warmup", sampling)])
        t0 = time.perf_counter()
        frames = 0
        for k in range(args.repeat):
            res = run_sources(spine, [FFmpegSource(clip, f"run{k}", sampling)])
            frames += sum(r.frames for r in res.values())
        wall = time.perf_counter() - t0
        stages = {k: round(v, 2) for k, v in spine.times.seconds.items()}
    report(
        {
            "benchmark": "replay_speed",
            "clip": "1280x720 30fps H.264 GOP 2s",
            "sampling": str(sampling),
            "media_s": round(media * args.repeat, 1),
            "frames": frames,
            "speed_x_realtime": round(media * args.repeat / wall, 2),
            "baseline_ffmpeg_decode_only_x_realtime": round(decode_x, 2),
            "stage_seconds": stages,
            "floor_x": 15,
        }
    )


if __name__ == "__main__":
    main()
