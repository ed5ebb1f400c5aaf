"""``scripts/evaluate.py`` and ``fakewatch eval``: replay labelled clips, score, report."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from pipeline.alerts import AlertFormatError, read_alerts
from pipeline.config import Config, ConfigError
from pipeline.eval.scoring import Clip, LabelError, load_clips, score


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__)
    p.add_argument("--clips", required=True, help="folder of labelled clips (video + .json)")
    p.add_argument("--gallery", help="gallery folder or built index")
    p.add_argument("--alerts", help="score this alerts file instead of running the pipeline")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sample", help="'keyframes', 'all' or frames per second (default: config)")
    p.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    p.add_argument("--concurrency", type=int, default=4, help="clips decoded at once")
    return p


def write_clips_csv(path: Path, clips: list[Clip], result) -> None:  # type: ignore[no-untyped-def]
    per = {c.stream: {"clip": c.stream, "seconds": round(c.seconds, 2), "objects": len(c.objects),
                      "counterfeits": len(c.counterfeits), "caught": 0, "alerts": 0, "false_alerts": 0}
           for c in clips}
    for o in result.objects:
        per[o.stream]["caught"] += int(o.caught)
    for stream, hit in zip(result.alert_streams, result.alert_hits, strict=True):
        if stream in per:
            per[stream]["alerts"] += 1
            per[stream]["false_alerts"] += int(not hit)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(next(iter(per.values())).keys()))
        w.writeheader()
        w.writerows(per.values())


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import UserError, resolve_index
    from pipeline.ingest.source import Sampling

    args = build_parser().parse_args(argv)
    try:
        clips = load_clips(args.clips)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        extra: dict = {}
        if args.alerts:
            alerts = read_alerts(args.alerts)
        else:
            if not args.gallery:
                raise UserError("give --gallery to run the pipeline, or --alerts to score existing alerts")
            cfg = Config.load(args.config)
            sampling = Sampling.from_arg(args.sample or cfg.ingest.sample)
            index = resolve_index(args.gallery, args.config)
            from pipeline.eval.runner import run_clips

            total = sum(c.seconds for c in clips)
            from tqdm import tqdm

            bar = tqdm(total=round(total), desc="evaluating", unit="s", file=sys.stderr,
                       mininterval=0.5 if sys.stderr.isatty() else 10.0)
            done: dict[str, float] = {}

            def on_frame(frame) -> None:  # type: ignore[no-untyped-def]
                done[frame.stream] = frame.t
                bar.n = round(sum(done.values()))
                bar.refresh()

            alerts, results = run_clips(clips, index, cfg, out, sampling, args.concurrency, on_frame)
            bar.close()
            failed = {s: r.error for s, r in results.items() if r.error}
            for s, err in failed.items():
                print(f"evaluate: error: {err}", file=sys.stderr)
            extra = {"sampling": str(sampling), "frames": sum(r.frames for r in results.values()),
                     "failed_clips": sorted(failed)}
        result = score(clips, alerts)
        extra["seconds"] = round(time.perf_counter() - t0, 1)
        data = result.to_dict() | extra
        (out / "metrics.json").write_text(json.dumps(data, indent=2) + "\n")
        write_clips_csv(out / "clips.csv", clips, result)
        print(json.dumps(data, indent=2))
        return 0
    except (LabelError, AlertFormatError, ConfigError, UserError, ValueError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
