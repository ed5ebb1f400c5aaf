"""The regression gate: a small fixed clip set, generated with a fixed seed from the sample marks,
evaluated and compared with ``benchmarks/baseline.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline.config import ROOT

BASELINE = ROOT / "benchmarks" / "baseline.json"
SAMPLE_MARKS = ROOT / "data" / "marks"
GATE_SEED = 4242
ENROLLED = 40
# Higher is better for these figures; lower is better for the others compared.
HIGHER_IS_BETTER = ("event_recall", "alert_precision", "detection_ap50", "brand_top1_on_detected")
LOWER_IS_BETTER = ("false_alerts_per_stream_hour", "median_time_to_first_alert_s", "alerts_per_caught_counterfeit")


def record_evaluation(name: str, metrics: dict, source: str, baseline: Path = BASELINE) -> None:
    """Keep an evaluation's headline figures in the baseline file under ``evaluation.<name>``.

    Recorded, not gated: the evaluation clip sets are too large to generate on every CI run. The
    gate's own margins and figures are left as they are.
    """
    data = json.loads(baseline.read_text()) if baseline.exists() else {"margins": {}, "figures": {}}
    counts = metrics.get("counts", {})
    data.setdefault("evaluation", {})[name] = {
        "source": source,
        **{k: metrics.get(k) for k in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER)},
        "counts": {k: counts.get(k) for k in ("clips", "hours", "counterfeits", "caught", "alerts", "false_alerts")},
    }
    baseline.write_text(json.dumps(data, indent=2) + "\n")


def make_gate_set(out: Path, clips: int = 24, seconds: float = 10.0) -> tuple[Path, Path]:
    """Render the gate clips and gallery into ``out`` (skipped when already there)."""
    from pipeline.synth.clips import plan_clip, render_clip, write_gallery
    from pipeline.synth.marks import MarkLibrary

    clip_dir, gallery = out / "clips", out / "gallery"
    if len(list(clip_dir.glob("*.json"))) == clips and gallery.is_dir():
        return clip_dir, gallery
    marks = list(MarkLibrary.from_folder(SAMPLE_MARKS))
    write_gallery(marks[:ENROLLED], gallery)
    rng = np.random.default_rng(GATE_SEED)
    for k in range(clips):
        spec = plan_clip(
            f"gate_{k:02d}",
            rng,
            marks[:ENROLLED],
            marks[ENROLLED:],
            seconds=seconds,
            size=(640, 360),
            objects=2,
            min_mark=40,
            max_mark=110,
        )
        render_clip(spec, clip_dir)
    return clip_dir, gallery


def compare(metrics: dict, baseline: dict) -> list[str]:
    """Figures worse than the baseline by more than its stated margins (empty when none)."""
    worse = []
    margins = baseline["margins"]
    for key, base in baseline["figures"].items():
        got = metrics.get(key)
        if base is None:
            continue
        if got is None:
            worse.append(f"{key}: missing (baseline {base})")
            continue
        margin = margins.get(key, 0.0)
        if key in HIGHER_IS_BETTER and got < base - margin:
            worse.append(f"{key}: {got} < baseline {base} - {margin}")
        if key in LOWER_IS_BETTER and got > base + margin:
            worse.append(f"{key}: {got} > baseline {base} + {margin}")
    return worse


def run_gate(work: Path) -> dict:
    """Generate (once) and evaluate the gate set; returns its metrics."""
    from pipeline.eval.cli import add_arguments, evaluate

    clip_dir, gallery = make_gate_set(work / "gate")
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(
        ["--clips", str(clip_dir), "--gallery", str(gallery), "--out", str(work / "gate_out"), "--no-report"]
    )
    return evaluate(args)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.eval.gate [--update]``: evaluate the gate set, compare or rewrite the baseline."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--work", type=Path, default=ROOT / "work")
    p.add_argument("--update", action="store_true", help="write the measured figures as the new baseline")
    args = p.parse_args(argv)
    metrics = run_gate(args.work)
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {"margins": {}, "figures": {}}
    if args.update:
        baseline["figures"] = {k: metrics.get(k) for k in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER)}
        BASELINE.write_text(json.dumps(baseline, indent=2) + "\n")
        print(f"baseline updated: {BASELINE}")
        return 0
    worse = compare(metrics, baseline)
    print("\n".join(worse) if worse else "gate passed")
    return 1 if worse else 0


if __name__ == "__main__":
    raise SystemExit(main())
