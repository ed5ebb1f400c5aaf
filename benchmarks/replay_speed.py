"""Replay speed at 2 fps sampling of a 720p30 H.264 clip, as a multiple of real time (floor: 15x).

Baselines in the same run: ffmpeg decoding and sampling the same clip with no models
(``-skip_frame noref -vf select=... -f null -``, the decoding replay does), the upper bound replay
can reach on this machine; the same with every frame decoded (no ``-skip_frame``); and the same
replay with the verifier switched the other way (``verifier.enabled``), what it costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import time
from pathlib import Path

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
    cfg = Config.load()
    sampling = Sampling.from_arg(args.sample, cfg.ingest.skip_nonref, cfg.ingest.decoder_threads)
    decode_x = decode_speed(clip, sampling, media, args.repeat)
    decode_all_x = decode_speed(clip, dataclasses.replace(sampling, skip_nonref=False), media, args.repeat)
    speed, stages, frames = replay(cfg, clip, index, sampling, media, args.repeat)
    # The same replay with the verifier switched the other way: what laying references over the
    # marks costs (or, with it off in the configuration, what turning it on would).
    other = dataclasses.replace(cfg, verifier=dataclasses.replace(cfg.verifier, enabled=not cfg.verifier.enabled))
    speed_other, other_stages, _ = replay(other, clip, index, sampling, media, args.repeat)
    other_key = "verifier_on" if other.verifier.enabled else "baseline_verifier_off"
    report(
        {
            "benchmark": "replay_speed",
            "clip": "1280x720 30fps H.264 GOP 2s",
            "sampling": str(sampling),
            "media_s": round(media * args.repeat, 1),
            "frames": frames,
            "speed_x_realtime": round(speed, 2),
            "verifier": cfg.verifier.enabled,
            f"{other_key}_x_realtime": round(speed_other, 2),
            f"{other_key}_verify_s": other_stages.get("verify", 0.0),
            "decoder_skip": sampling.decoder_skip(),
            "baseline_ffmpeg_decode_only_x_realtime": round(decode_x, 2),
            "baseline_ffmpeg_decode_every_frame_x_realtime": round(decode_all_x, 2),
            "stage_seconds": stages,
            "floor_x": 15,
        }
    )


def decode_speed(clip: Path, sampling: Sampling, media: float, repeat: int) -> float:
    """x real time of ffmpeg decoding and sampling ``clip`` as replay does, with no models."""
    skip = sampling.decoder_skip()
    pre = ["-skip_frame", skip] if skip else []
    select = sampling.select_expression()
    vf = ["-vf", f"select='{select}'"] if select else []
    t0 = time.perf_counter()
    for _ in range(repeat):
        command = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", *pre, "-i", str(clip), *vf, "-f", "null", "-"]
        subprocess.run(command, check=True)
    return media * repeat / (time.perf_counter() - t0)


def replay(
    cfg: Config, clip: Path, index: Path, sampling: Sampling, media: float, repeat: int
) -> tuple[float, dict[str, float], int]:
    """Replay ``clip`` ``repeat`` times after a warm-up: (x real time, seconds per stage, frames)."""
    with Spine.from_config(cfg, index) as spine:
        run_sources(spine, [FFmpegSource(clip, "warmup", sampling)])
        spine.times.seconds.clear()
        t0 = time.perf_counter()
        frames = 0
        for k in range(repeat):
            res = run_sources(spine, [FFmpegSource(clip, f"run{k}", sampling)])
            frames += sum(r.frames for r in res.values())
        wall = time.perf_counter() - t0
        stages = {k: round(v, 2) for k, v in spine.times.seconds.items()}
    return media * repeat / wall, stages, frames


if __name__ == "__main__":
    main()
