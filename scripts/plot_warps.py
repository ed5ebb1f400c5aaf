"""Picture of the warp counterfeit family: marks, the same random fields unbounded, and bounded.

The top row holds authentic marks, the middle row each one bent by a displacement field drawn
without a bound on its slope (as the generator drew warps before session 19: the field folds
the mark over itself), the bottom row the same field scaled down to ``MAX_BEND_SLOPE`` (as the
generator draws them now). Under each warp: its deviation from the mark (1 - IoU,
``shape_deviation``) and whether the map folds anywhere on the mark's ink.

    python scripts/plot_warps.py --marks ../shared/data/logos --out docs/warps.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.synth.counterfeit import MAX_BEND_SLOPE, bend_field, displaced, fold_factor, padded, shape_deviation
from pipeline.synth.marks import MarkLibrary, tight_crop

TILE = 112


def _tile(mask: np.ndarray, caption: str = "") -> np.ndarray:
    """The mask drawn dark on white in a square tile, with a caption line under it."""
    canvas = np.full((TILE + 18, TILE), 255, np.uint8)
    h, w = mask.shape
    scale = (TILE - 12) / max(h, w)
    small = cv2.resize(mask, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    y0, x0 = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = 255 - small
    cv2.putText(canvas, caption, (4, TILE + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, 0, 1, cv2.LINE_AA)
    return canvas


def _bent(mask: np.ndarray, seed: int, max_slope: float) -> tuple[np.ndarray, bool]:
    """The mask bent by the field of ``seed`` (scaled to ``max_slope``), and whether it folds on the ink."""
    m = padded(mask)
    dx, dy = bend_field(m.shape, np.random.default_rng(seed), max_slope)
    out = displaced(m, dx, dy)
    folds = bool((fold_factor(dx, dy)[out > 127] < 0).any())
    return tight_crop(out), folds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--marks", type=Path, required=True, help="folder of mark PNGs")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--count", type=int, default=8, help="marks shown")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.marks.is_dir():
        print(f"error: marks folder not found: {args.marks}", file=sys.stderr)
        return 2
    _, held = MarkLibrary.from_folder(args.marks).split()  # the brands the clips are made of
    marks = list(held)
    if not marks:
        print(f"error: no marks in {args.marks}", file=sys.stderr)
        return 2
    picks = np.random.default_rng(args.seed).choice(len(marks), size=min(args.count, len(marks)), replace=False)
    rows: list[list[np.ndarray]] = [[], [], []]
    for k, i in enumerate(picks):
        mask = marks[int(i)].mask
        rows[0].append(_tile(mask, marks[int(i)].slug[:16]))
        for row, slope in ((1, float("inf")), (2, MAX_BEND_SLOPE)):
            bent, folds = _bent(mask, args.seed * 1000 + k, slope)
            rows[row].append(_tile(bent, f"dev {shape_deviation(mask, bent):.2f}{' folds' if folds else ''}"))
    labels = ["authentic", "unbounded", f"slope <= {MAX_BEND_SLOPE}"]
    lines = []
    for label, tiles in zip(labels, rows, strict=True):
        head = np.full((TILE + 18, 120), 255, np.uint8)
        cv2.putText(head, label, (4, TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
        lines.append(np.hstack([head, *tiles]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
