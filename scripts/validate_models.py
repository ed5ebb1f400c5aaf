"""Measure the shipped models on held-out brands and print the model card's figures as JSON.

python scripts/validate_models.py --marks ../shared/data/logos --det-val work/det_val
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import Config
from pipeline.eval.model_check import detector_ap50, embedder_report
from pipeline.infer.detector import OnnxDetector
from pipeline.infer.embedder import OnnxEmbedder
from pipeline.infer.hands import OnnxHands
from pipeline.infer.models import DETECTOR_FILE, EMBEDDER_FILE, MODELS_DIR
from pipeline.infer.verifier import OnnxJudge
from pipeline.synth.datasets import PAIR_MARK_SIZES, load_coco
from pipeline.synth.marks import MarkLibrary
from pipeline.synth.render import MARK_SIZES
from pipeline.types import MARK


def size_range(p: argparse.ArgumentParser, flag: str, default: tuple[float, float], text: str) -> None:
    """An option taking a mark size range in pixels: SMALLEST LARGEST."""
    p.add_argument(flag, type=float, nargs=2, default=default, metavar=("SMALLEST", "LARGEST"), help=text)


def main(argv: list[str] | None = None) -> int:
    cfg = Config.load()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--marks", type=Path, required=True, help="folder of mark PNGs")
    p.add_argument("--det-val", type=Path, help="held-out detector frames (COCO folder)")
    p.add_argument("--detector", type=Path, default=MODELS_DIR / DETECTOR_FILE)
    p.add_argument("--embedder", type=Path, default=MODELS_DIR / EMBEDDER_FILE)
    p.add_argument(
        "--views",
        type=int,
        default=cfg.gallery.views,
        help="camera views per gallery image (default: gallery.views of the config, as replay uses)",
    )
    size_range(
        p,
        "--view-sizes",
        cfg.gallery.view_sizes,
        "mark size range of the camera views, pixels (default: gallery.view_sizes of the config)",
    )
    size_range(
        p, "--apparent", MARK_SIZES, "size range of the query marks, pixels (default: the training crops' range)"
    )
    size_range(
        p,
        "--stream-sizes",
        PAIR_MARK_SIZES,
        "with --verifier, measure again on marks of this size range (default: stream marks' sizes)",
    )
    p.add_argument("--authentic", type=int, default=3, help="authentic queries per brand")
    p.add_argument("--brands", type=int, default=0, help="limit held-out brands (0 = all)")
    p.add_argument(
        "--verifier",
        action="store_true",
        help="also measure the ROC-AUC with the verifier weighed in (verifier, verdict, models.verifier of the config)",
    )
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--card", type=Path, help="write the figures into this model card (between markers)")
    p.add_argument("--bench", nargs="*", type=Path, default=[], help="benchmark JSON-line files to include")
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
    if not args.marks.is_dir():
        p.error(f"marks folder not found: {args.marks}")
    _, held = MarkLibrary.from_folder(args.marks).split()
    marks = list(held)[: args.brands or None]
    learned = args.verifier and cfg.verifier.learned
    judging = OnnxJudge(cfg.model_path("verifier")) if learned else nullcontext()
    with_hands = args.verifier and cfg.verifier.hands
    finding = OnnxHands(cfg.model_path("hands"), threshold=cfg.verifier.hand_threshold) if with_hands else nullcontext()
    with OnnxEmbedder(args.embedder) as emb, judging as judge, finding as hands:
        verifier = (cfg.verifier, cfg.verdict.verifier_weight, cfg.verdict.verifier_target) if args.verifier else None

        def report(apparent: tuple[float, float]) -> dict:
            r = embedder_report(
                emb,
                marks,
                views=args.views,
                authentic=args.authentic,
                verifier=verifier,
                view_sizes=tuple(args.view_sizes),
                judge=judge,
                apparent=apparent,
                hands=hands,
            )
            return r.to_dict() | {"version": emb.version}

        result["embedder"] = report(tuple(args.apparent))
        if judge is not None:
            result["embedder"]["verifier_version"] = judge.version
        if hands is not None:
            result["embedder"]["hands_version"] = hands.version
        if args.verifier and args.stream_sizes:
            # The verifier reads the full-resolution crop: its figures at the sizes of stream marks.
            result["at_stream_sizes"] = report(tuple(args.stream_sizes))
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.card:
        write_card(args.card, result, args.bench, " ".join(["python scripts/validate_models.py", *sys.argv[1:]]))
    return 0


def write_card(card: Path, result: dict, bench_files: list[Path], command: str) -> None:
    """Replace the figures section of the model card with these measurements."""
    det, emb = result.get("detector", {}), result["embedder"]
    lines = [
        "<!-- figures:start (written by scripts/validate_models.py --card; do not edit by hand) -->",
        f"Measured with `{command}` ({result['seconds']} s).",
        "",
        "| figure | floor | measured |",
        "| --- | --- | --- |",
    ]
    if det:
        lines.append(
            f"| detector mark AP50, {det['frames']} held-out frames, {det['marks']} marks | >= 0.90 "
            f"| {det['mark_ap50']:.3f} |"
        )
        for k, v in det["mark_ap50_by_size"].items():
            lines.append(f"| detector mark AP50, marks {k.replace('_', ' ')} | (reported) | {v:.3f} |")
    lines.append(
        f"| brand top-1 retrieval, gallery of {emb['gallery_brands']} held-out brands "
        f"({emb['authentic_queries']} authentic queries) | >= 0.80 | {emb['brand_top1']:.3f} |"
    )
    lines.append(
        f"| counterfeit-vs-authentic ROC-AUC, all families ({emb['counterfeit_queries']} fakes) | >= 0.85 "
        f"| {emb['counterfeit_auc']:.3f} |"
    )
    for fam, v in emb["counterfeit_auc_by_family"].items():
        lines.append(f"| ROC-AUC, family `{fam}` | (reported) | {v:.3f} |")
    stream = result.get("at_stream_sizes", {})
    if stream:
        sizes = "-".join(f"{v:g}" for v in stream["query_sizes"])
        lines.append(
            f"| counterfeit ROC-AUC, embedder alone, marks {sizes} px | (reported) | {stream['counterfeit_auc']:.3f} |"
        )
    for part in (emb, stream):
        sizes = "-".join(f"{v:g}" for v in part.get("query_sizes", []))
        for key, what in (
            ("verified_auc", "with the verifier weighed in"),
            ("verifier_alone_auc", "the verifier alone"),
        ):
            for fam, v in part.get(key, {}).items():
                name = "all families" if fam == "all" else f"family `{fam}`"
                lines.append(f"| ROC-AUC {what} (`--verifier`), marks {sizes} px, {name} | (reported) | {v:.3f} |")
    for path in bench_files:
        for raw in path.read_text().splitlines():
            if raw.startswith("{"):
                b = json.loads(raw)
                if b.get("benchmark") == "detector_speed":
                    lines.append(
                        f"| detector speed, 640x360, one CPU core | >= 40 frames/s | {b['frames_per_s']} "
                        f"frames/s (graph alone {b['baseline_graph_only_frames_per_s']}) |"
                    )
                if b.get("benchmark") == "embedder_speed":
                    lines.append(
                        f"| embedder speed, one CPU core | >= 500 crops/s | {b['crops_per_s']} crops/s "
                        f"(unbatched {b['baseline_unbatched_crops_per_s']}) |"
                    )
    lines.append("<!-- figures:end -->")
    text = card.read_text()
    start, end = text.index("<!-- figures:start"), text.index("<!-- figures:end -->") + len("<!-- figures:end -->")
    card.write_text(text[:start] + "\n".join(lines) + text[end:])


if __name__ == "__main__":
    sys.exit(main())
