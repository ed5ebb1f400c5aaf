"""``scripts/evaluate.py`` and ``fakewatch eval``: replay labelled clips, score, report, calibrate."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.alerts import AlertFormatError, read_alerts
from pipeline.config import DEFAULT_CONFIG, Config, ConfigError
from pipeline.eval.metrics import clip_bootstrap
from pipeline.eval.scoring import Clip, LabelError, Score, false_alert_kinds, load_clips, recall_by_family, score


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def _precision(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a precision in (0, 1], got {text!r}")
    return value


def _record_name(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]+", text):
        raise argparse.ArgumentTypeError(f"expected a name of lower-case letters, digits, _ and -, got {text!r}")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", required=True, help="folder of labelled clips (video + .json)")
    p.add_argument(
        "--gallery",
        help="gallery folder or built index; with --alerts it only names the enrolled brands "
        "(counterfeits of other brands must never alert, so they are not counted as misses)",
    )
    p.add_argument("--alerts", help="score this alerts file instead of running the pipeline")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sample", help="'keyframes', 'all' or frames per second (default: config)")
    p.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    p.add_argument("--concurrency", type=_at_least_one, default=4, help="clips decoded at once")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="choose alert score thresholds that meet --target-precision and write them",
    )
    p.add_argument("--target-precision", type=_precision, default=0.95, help="precision --calibrate aims for")
    p.add_argument("--calibration-out", help="where --calibrate writes (default: configs/calibration.yaml)")
    p.add_argument("--no-report", action="store_true", help="skip report.html (faster)")
    p.add_argument(
        "--record",
        metavar="NAME",
        type=_record_name,
        help="also keep the headline figures in benchmarks/baseline.json under evaluation.NAME",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="spread the clips over a Ray cluster (a local one when no address is given)",
    )


def enrolled_brands(gallery: Path) -> set[str]:
    """The brands of a built index, or of a gallery folder (its sub-folders, formats.md section 1)."""
    from pipeline.cli import UserError
    from pipeline.gallery.index import GalleryIndex

    if (gallery / "index.json").is_file():
        with GalleryIndex.open(gallery) as idx:
            return set(idx.brands)
    if not gallery.is_dir():
        raise UserError(f"gallery not found: {gallery}")
    return {d.name for d in gallery.iterdir() if d.is_dir() and not d.name.startswith(".")}


def per_clip_counts(clips: list[Clip], result: Score) -> list[dict[str, Any]]:
    """One row per clip: its length and its counts of counterfeits, catches and alerts."""
    per: dict[str, dict[str, Any]] = {
        c.stream: {
            "clip": c.stream,
            "seconds": round(c.seconds, 2),
            "objects": len(c.objects),
            "counterfeits": 0,
            "caught": 0,
            "alerts": 0,
            "false_alerts": 0,
        }
        for c in clips
    }
    for o in result.objects:
        per[o.stream]["counterfeits"] += 1
        per[o.stream]["caught"] += int(o.caught)
    for stream, hit in zip(result.alert_streams, result.alert_hits, strict=True):
        if stream in per:
            per[stream]["alerts"] += 1
            per[stream]["false_alerts"] += int(not hit)
    return list(per.values())


def write_clips_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The per-clip rows as CSV."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["clip", "seconds", "objects", "counterfeits", "caught", "alerts", "false_alerts"]
        )
        w.writeheader()
        w.writerows(rows)


def intervals(rows: list[dict[str, Any]]) -> dict[str, tuple[float, float] | None]:
    """95% intervals of recall, precision and false alerts per hour over the clips (bootstrap)."""
    col = {k: np.array([r[k] for r in rows], np.float64) for k in ("counterfeits", "caught", "alerts", "false_alerts")}
    hours = np.array([r["seconds"] for r in rows], np.float64) / 3600.0
    return clip_bootstrap(col["counterfeits"], col["caught"], col["alerts"], col["false_alerts"], hours)


def evaluate(args: argparse.Namespace) -> dict:
    """Run (or read) alerts for the clips and write every output; returns the metrics."""
    from pipeline.cli import UserError, resolve_index
    from pipeline.eval.report import calibrate, plot_pr_curve, pr_curve, write_report
    from pipeline.ingest.source import Sampling

    clips = load_clips(args.clips)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    extra: dict = {}
    log = None
    cfg = Config.load(args.config)
    gallery_dir: Path | None = None
    enrolled: set[str] | None = None
    if args.alerts:
        alerts = read_alerts(args.alerts)
        if args.gallery:
            enrolled = enrolled_brands(Path(args.gallery))
    else:
        if not args.gallery:
            raise UserError("give --gallery to run the pipeline, or --alerts to score existing alerts")
        try:
            sampling = Sampling.from_arg(
                args.sample or cfg.ingest.sample, cfg.ingest.skip_nonref, cfg.ingest.decoder_threads
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
        index = resolve_index(args.gallery, args.config)
        gallery_dir = Path(args.gallery) if not (Path(args.gallery) / "index.json").is_file() else None
        from pipeline.eval.runner import FrameLog, run_clips
        from pipeline.progress import Progress

        enrolled = enrolled_brands(Path(index))
        # A bar on a terminal; plain lines in a log (CI, a batch job), as replay writes them.
        done: dict[str, float] = {}
        log = FrameLog()
        with Progress("evaluating", round(sum(c.seconds for c in clips)), unit="s") as bar:

            def on_frame(frame) -> None:  # type: ignore[no-untyped-def]
                done[frame.stream] = frame.t
                bar.update(round(sum(done.values())))

            alerts, results = run_clips(clips, index, cfg, out, sampling, args.concurrency, on_frame, log, args.ray)
        failed = {s: r.error for s, r in results.items() if r.error}
        for err in failed.values():
            print(f"evaluate: error: {err}", file=sys.stderr)
        extra = {
            "sampling": str(sampling),
            "frames": sum(r.frames for r in results.values()),
            "failed_clips": sorted(failed),
            **log.detection_figures(clips, enrolled),
        }
    result = score(clips, alerts, enrolled)
    labelled = sum(len(c.counterfeits) for c in clips)
    extra["counterfeits_of_unenrolled_brands"] = labelled - result.counterfeits if enrolled is not None else None
    operating = cfg.verdict.alert_threshold
    extra["alert_threshold"] = operating
    extra["seconds"] = round(time.perf_counter() - t0, 1)
    rows = per_clip_counts(clips, result)
    causes = None
    if log is not None:
        from pipeline.eval.misses import miss_causes, misses_by_cause

        # Replayed from what the run logged: why each missed fake was missed.
        causes = miss_causes(clips, log, cfg.verdict, result)
        extra["misses_by_cause"] = misses_by_cause(causes, result)
    metrics = (
        result.to_dict()
        | extra
        | {
            "intervals_95": intervals(rows),
            "false_alerts_by_kind": false_alert_kinds(clips, alerts, result),
            "recall_by_family": recall_by_family(result),
        }
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_clips_csv(out / "clips.csv", rows)
    curve = pr_curve(clips, alerts, enrolled)
    plot_pr_curve(curve, operating, out / "pr_curve.png")
    if args.calibrate:
        chosen = calibrate(clips, alerts, args.target_precision)
        target = Path(args.calibration_out) if args.calibration_out else DEFAULT_CONFIG.parent / "calibration.yaml"
        text = (
            "# Written by scripts/evaluate.py --calibrate: alert score thresholds that reached\n"
            f"# alert precision >= {args.target_precision} on {args.clips}.\n"
            + yaml.safe_dump({"verdict": chosen}, sort_keys=True)
        )
        target.write_text(text)
        metrics["calibration"] = {"file": str(target), **chosen}
        print(f"calibration written to {target}", file=sys.stderr)
    if args.record and extra.get("failed_clips"):
        # A clip that could not be read counts its fakes as missed: not a figure to keep.
        print(f"evaluate: not recorded as {args.record!r}: some clips could not be read", file=sys.stderr)
    elif args.record:
        from pipeline.eval.gate import record_evaluation

        record_evaluation(args.record, metrics, str(args.clips))
    if not args.no_report:
        write_report(out / "report.html", metrics, out / "pr_curve.png", clips, alerts, result, gallery_dir, causes)
    return metrics


def run(args: argparse.Namespace) -> int:
    """``evaluate`` and print its metrics; the exit status (``scripts/evaluate.py`` and
    ``fakewatch eval`` alike): 1 where a clip could not be read, as replay does for its inputs."""
    metrics = evaluate(args)
    print(json.dumps(metrics, indent=2))
    return 1 if metrics.get("failed_clips") else 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import UserError
    from pipeline.fleet import RayMissing

    p = argparse.ArgumentParser(prog="evaluate", description="Evaluate fakewatch on labelled clips.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (LabelError, AlertFormatError, ConfigError, UserError, RayMissing, ValueError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
