"""Tune the verdict settings on a tuning clip set (never on the evaluation set).

Runs detection, embedding and gallery search over the tuning clips once, keeps every judged mark,
then replays only the verdict stage for each setting in a grid and scores the alerts.

    python scripts/tune_verdict.py --clips work/tune/clips --gallery work/tune/gallery

Several tuning sets can be pooled (``--clips A B --gallery GA GB``, or one gallery or index for all).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.alerts import Alert
from pipeline.cli import resolve_index
from pipeline.config import Config
from pipeline.eval.cli import enrolled_brands
from pipeline.eval.runner import FrameLog, run_clips
from pipeline.eval.scoring import LabelError, load_clips, score
from pipeline.ingest.source import Sampling
from pipeline.verdict import StreamVerdicts, VerdictConfig


def replay_verdicts(log: FrameLog, cfg: VerdictConfig) -> list[Alert]:
    """Alerts the verdict stage raises from logged samples under ``cfg``."""
    streams: dict[str, StreamVerdicts] = {}
    alerts = []
    for (stream, _index), (t, samples) in sorted(log.frames.items()):
        sv = streams.setdefault(stream, StreamVerdicts(stream, cfg))
        if cfg.checks_by_track:
            # As the spine does: only the marks the verdict asks for keep the verifier's findings.
            bare = [dataclasses.replace(s, verified={}, same_brand={}) for s in samples]
            wanted = sv.needs_verification(t, bare)
            samples = [s if w else b for s, b, w in zip(samples, bare, wanted, strict=True)]
        for v in sv.update(t, samples):
            s = v.sample
            alerts.append(
                Alert(
                    stream=s.stream,
                    t=s.t,
                    frame=s.frame,
                    brand=v.brand,
                    box=tuple(float(x) for x in s.box),
                    score=v.score,
                    track=v.track,
                )
            )  # type: ignore[arg-type]
    return alerts


def grid(shipped: VerdictConfig, verified: bool) -> list[dict]:
    """The verdict settings tried. Where the samples carry verifier findings, the verifier's weight
    and target, the same-brand figure's weight in naming the brand and its floor are tried too,
    around the shipped detection floor and attribution weight. The checks the verifier waives
    (``brand_margin``, ``floor_same_brand``) stay as configured: set them in the config to compare."""
    names = ("match_floor", "min_share", "threshold_offset", "confirm", "min_detection", "attribution_weight")
    offsets = [-0.1, -0.05, 0.0, 0.05, 0.1]
    # confirm stops at 3: at the daemon's 1 fps a fourth sample puts a live alert past 5 s.
    if not verified:
        values = [[0.3, 0.4, 0.5], [0.4, 0.5, 0.6], offsets, [2, 3], [0.35, 0.5], [0.0, 0.25, 0.5], [0, 1, 2]]
        return [dict(zip((*names, "brand_agreement"), v, strict=True)) for v in itertools.product(*values)]
    values = [
        [0.4, 0.5],
        [0.5, 0.6],
        offsets,
        [3],
        [shipped.min_detection],
        [shipped.attribution_weight],
        [0, 1, 2],
        [1.0],
        [0.3, 0.4, 0.5],
        [0.0, 1.0, 2.0],
        [-1.0, 0.5, 0.6],
    ]
    keys = (*names, "brand_agreement", "verifier_weight", "verifier_target", "same_brand_weight", "min_same_brand")
    return [dict(zip(keys, v, strict=True)) for v in itertools.product(*values)]


def _run(args: argparse.Namespace, clip_sets: list[list], cfg: Config, log: FrameLog) -> None:
    # Judge every mark the detector is fairly sure of, and verify every one of them: the grid
    # decides the final floor, and the replay drops the checks verified_samples, verify_every or settle would skip.
    loose = dataclasses.replace(
        cfg, verdict=dataclasses.replace(cfg.verdict, min_detection=0.3, verified_samples=0, verify_every=1, settle=0.0)
    )
    galleries = args.gallery * len(clip_sets) if len(args.gallery) == 1 else args.gallery
    for k, (clips, gallery) in enumerate(zip(clip_sets, galleries, strict=True)):
        out = Path(args.out) / f"set_{k}" if len(clip_sets) > 1 else Path(args.out)
        run_clips(clips, resolve_index(gallery), loose, out, Sampling.from_arg(args.sample), 4, observer=log)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", required=True, nargs="+", help="one or more folders of tuning clips")
    p.add_argument("--gallery", required=True, nargs="+", help="one gallery (or index) for all, or one per --clips")
    p.add_argument("--out", default="work/tune_out")
    p.add_argument("--sample", default="2")
    p.add_argument("--reuse", action="store_true", help="reuse the judged marks of the last run")
    args = p.parse_args()
    if len(args.gallery) not in (1, len(args.clips)):
        p.error(f"give one --gallery for all clip folders or one each ({len(args.clips)}), got {len(args.gallery)}")
    try:
        clip_sets = [load_clips(c) for c in args.clips]
    except LabelError as exc:
        p.error(str(exc))
    clips = [c for cs in clip_sets for c in cs]
    if len({c.stream for c in clips}) != len(clips):
        p.error("clip stems repeat across the --clips folders; pooled sets need distinct stream ids")
    cfg = Config.load()
    log = FrameLog()
    cache = Path(args.out) / "samples.pkl"
    if args.reuse and cache.exists():
        log.frames = pickle.loads(cache.read_bytes())
    else:
        _run(args, clip_sets, cfg, log)
        cache.write_bytes(pickle.dumps(log.frames))
    # Counterfeits of brands outside the galleries must never alert: not counted as misses.
    enrolled = set().union(*(enrolled_brands(Path(g)) for g in args.gallery))
    rows = []
    for settings in grid(cfg.verdict, verified=any(s.verified for _, ss in log.frames.values() for s in ss)):
        vc = dataclasses.replace(cfg.verdict, **settings)
        alerts = replay_verdicts(log, vc)
        m = score(clips, alerts, enrolled).to_dict()
        keys = (
            "event_recall",
            "alert_precision",
            "false_alerts_per_stream_hour",
            "median_time_to_first_alert_s",
            "alerts_per_caught_counterfeit",
        )
        rows.append({**settings, **{k: m[k] for k in keys}})

    def key(r: dict) -> float:
        # F0.5: precision counts twice as much as recall. Every false alert costs a reviewer's
        # time on every stream, and the bars are precision >= 0.9 and <= 2 false alerts an hour.
        rec, prec = r["event_recall"] or 0, r["alert_precision"] or 0
        return 1.25 * prec * rec / (0.25 * prec + rec) if prec + rec else 0.0

    rows.sort(key=key, reverse=True)
    for r in rows[:15]:
        print(json.dumps(r))
    Path(args.out, "grid.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
