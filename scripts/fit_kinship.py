"""Fit the verdict's kinship model on tuning clips (never on the evaluation clips).

Reads the judged marks of a tuning pass (``scripts/tune_verdict.py`` writes them to
``OUT/samples.pkl``; without ``--samples`` this script runs the pass itself), builds one row per
labelled object and brand the verifier checked it against (``pipeline.eval.kinship``), and
fits the logistic model ``verdict.kinship`` holds. With several clip folders, each folder is
also scored with weights fitted on the others (cross-validation), beside the shipped gate:

    python scripts/fit_kinship.py --clips work/tune_a/clips work/tune_b/clips \\
        --gallery work/tune_a/gallery work/tune_b/gallery --out work/kinship

It prints the weights as the YAML line to put under ``verdict:`` in configs/fakewatch.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import Config, ConfigError
from pipeline.eval.cli import enrolled_brands
from pipeline.eval.kinship import KinshipRows, cross_validated, fit_logistic, kinship_rows
from pipeline.eval.runner import FrameLog
from pipeline.eval.scoring import LabelError, load_clips, score
from pipeline.verdict import KINSHIP_FIGURES, VerdictConfig
from scripts.tune_verdict import _run, replay_verdicts


def subset(log: FrameLog, streams: set[str]) -> FrameLog:
    out = FrameLog()
    out.frames = {k: v for k, v in log.frames.items() if k[0] in streams}
    return out


def gate_passes(rows: KinshipRows, cfg: VerdictConfig) -> np.ndarray:
    """Which rows the hand-made gate lets through: the same-brand figure, or its lead (``sure_lead``)."""
    same, lead = rows.figures[:, 1], rows.figures[:, 2]
    passes = same >= cfg.min_same_brand
    if cfg.sure_lead >= 0:
        passes |= lead >= cfg.sure_lead
    return passes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", required=True, nargs="+", help="tuning clip folders (each one a cross-validation fold)")
    p.add_argument("--gallery", required=True, nargs="+", help="one gallery (or index) for all, or one per --clips")
    p.add_argument("--samples", nargs="*", type=Path, default=[], help="judged marks of earlier passes (samples.pkl)")
    p.add_argument("--out", type=Path, default=Path("work/kinship"), help="where a new pass writes samples.pkl")
    p.add_argument("--sample", default="2", help="sampling of a new pass (frames per second)")
    p.add_argument("--l2", type=float, default=1.0, help="penalty on the squared weights")
    p.add_argument("--min-kinship", type=float, default=0.5, help="probability the gate asks for")
    args = p.parse_args()
    if len(args.gallery) not in (1, len(args.clips)):
        p.error(f"give one --gallery for all clip folders or one each ({len(args.clips)}), got {len(args.gallery)}")
    if not 0.0 <= args.min_kinship <= 1.0:
        p.error(f"--min-kinship: expected a probability in [0, 1], got {args.min_kinship}")
    try:
        clip_sets = [load_clips(c) for c in args.clips]
        cfg = Config.load()
    except (LabelError, ConfigError) as exc:
        p.error(str(exc))
    galleries = args.gallery * len(clip_sets) if len(args.gallery) == 1 else args.gallery
    log = FrameLog()
    for path in args.samples:
        if not path.is_file():
            p.error(f"samples not found: {path}")
        log.frames.update(pickle.loads(path.read_bytes()))
    if not args.samples:
        args.out.mkdir(parents=True, exist_ok=True)
        _run(argparse.Namespace(gallery=args.gallery, out=str(args.out), sample=args.sample), clip_sets, cfg, log)
        (args.out / "samples.pkl").write_bytes(pickle.dumps(log.frames))
    if not any(s.same_brand for _, ss in log.frames.values() for s in ss):
        p.error("the judged marks carry no verifier findings: run the pass with verifier.enabled true")

    confirm = cfg.verdict.confirm
    rows = KinshipRows.concat([kinship_rows(log, clips, k, confirm) for k, clips in enumerate(clip_sets)])
    if len(rows) == 0 or rows.own.all() or not rows.own.any():
        p.error(f"{len(rows)} rows, {int(rows.own.sum())} of them an object's own brand: too few to fit")
    weights = fit_logistic(rows.figures, rows.own, args.l2)

    # Rows: how the gate sorts an object's own brand from the others (cross-validated by folder).
    prob = cross_validated(rows, args.l2)
    fake = rows.own & (rows.family != "authentic")
    real = rows.own & (rows.family == "authentic")
    kin = prob >= args.min_kinship
    hand = gate_passes(rows, cfg.verdict)
    print(
        f"{len(rows)} rows: {int(fake.sum())} fakes and {int(real.sum())} authentic marks of their own brand, "
        f"{int((~rows.own).sum())} another brand's"
    )
    for name, passes in (("shipped gate", hand), (f"kinship >= {args.min_kinship}", kin)):
        print(
            f"  {name:16s} lets through {int(passes[fake].sum())} fakes, {int(passes[real].sum())} authentic, "
            f"{int(passes[~rows.own].sum())} of another brand"
        )

    # Clips: each folder replayed with the shipped gate, and with weights fitted on the other folders.
    for k, (clips, gallery) in enumerate(zip(clip_sets, galleries, strict=True)):
        held = rows.group == k
        fold = weights if len(clip_sets) == 1 else fit_logistic(rows.figures[~held], rows.own[~held], args.l2)
        part = subset(log, {c.stream for c in clips})
        enrolled = enrolled_brands(Path(gallery))
        shipped = score(clips, replay_verdicts(part, cfg.verdict), enrolled)
        with_kin = dataclasses.replace(cfg.verdict, kinship=tuple(fold.tolist()), min_kinship=args.min_kinship)
        tried = score(clips, replay_verdicts(part, with_kin), enrolled)
        print(
            f"{args.clips[k]}: caught / false alerts, shipped {shipped.caught}/{shipped.false_alerts}, "
            f"kinship {tried.caught}/{tried.false_alerts} of {shipped.counterfeits}"
        )
    print("weights (" + ", ".join(KINSHIP_FIGURES) + ", bias):")
    print(f"  kinship: {json.dumps([round(float(w), 3) for w in weights])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
