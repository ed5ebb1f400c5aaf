"""Measure the shipped models on held-out brands and print the model card's figures as JSON.

python scripts/validate_models.py --marks ../shared/data/logos --det-val work/det_val
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.eval.model_check import detector_ap50, embedder_report
from pipeline.infer.detector import OnnxDetector
from pipeline.infer.embedder import OnnxEmbedder
from pipeline.infer.models import DETECTOR_FILE, EMBEDDER_FILE, MODELS_DIR
from pipeline.synth.datasets import load_coco
from pipeline.synth.marks import MarkLibrary
from pipeline.types import MARK


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--marks", type=Path, required=True, help="folder of mark PNGs")
    p.add_argument("--det-val", type=Path, help="held-out detector frames (COCO folder)")
    p.add_argument("--detector", type=Path, default=MODELS_DIR / DETECTOR_FILE)
    p.add_argument("--embedder", type=Path, default=MODELS_DIR / EMBEDDER_FILE)
    p.add_argument("--views", type=int, default=8, help="references per gallery image")
    p.add_argument("--authentic", type=int, default=3, help="authentic queries per brand")
    p.add_argument("--brands", type=int, default=0, help="limit held-out brands (0 = all)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    result: dict = {}
    t0 = time.time()
    if args.det_val:
        items = load_coco(args.det_val / "annotations.json")
        frames = [cv2.imread(str(path))[:, :, ::-1].copy() for path, _, _ in items]
        truths = [b[c == MARK] for _, b, c in items]
        # A low score threshold: AP integrates over the whole precision/recall curve.
        with OnnxDetector(args.detector, threshold=0.05) as det:
            ap = detector_ap50(det, frames, truths)
            result["detector"] = {
                "frames": len(frames),
                "marks": int(sum(len(t) for t in truths)),
                "mark_ap50": round(ap.pop("all"), 4),
                "mark_ap50_by_size": {k: round(v, 4) for k, v in ap.items()},
                "version": det.version,
            }
        print(json.dumps(result["detector"]), file=sys.stderr)
    _, held = MarkLibrary.from_folder(args.marks).split()
    marks = list(held)[: args.brands or None]
    with OnnxEmbedder(args.embedder) as emb:
        report = embedder_report(emb, marks, views=args.views, authentic=args.authentic)
        result["embedder"] = report.to_dict() | {"version": emb.version}
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
