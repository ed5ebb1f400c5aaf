"""Picture of what the verifier sees: labelled marks of clips, each cut at the verifier's size
beside the same crop with its brand's gallery mark aligned onto it (its outline), and the score.

Takes one authentic mark and one counterfeit per family (enrolled brands only), from the middle
of its visible span. Run it on tuning clips.

    python scripts/plot_verifier.py --clips work/tune_a/clips --gallery work/tune_a/gallery --out docs/verifier.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.boxes import cut_crops
from pipeline.config import Config
from pipeline.eval.scoring import load_clips
from pipeline.gallery.index import GalleryError, gallery_images, read_rgb
from pipeline.infer.verifier import fit_reference, ink_candidates, overlay, reference_mask

CAPTION = 18


def pick(clips: list, enrolled: set[str], per_kind: int) -> list[tuple]:
    """(clip, object, kind) for up to ``per_kind`` authentic marks and counterfeits of each family."""
    taken: dict[str, int] = {}
    out = []
    for clip in clips:
        for obj in clip.objects:
            if obj.brand not in enrolled:
                continue
            kind = "authentic" if obj.authentic else (obj.family or "counterfeit")
            if taken.get(kind, 0) < per_kind:
                taken[kind] = taken.get(kind, 0) + 1
                out.append((clip, obj, kind))
    return sorted(out, key=lambda t: (t[2] != "authentic", t[2]))


def tile(clip, obj, kind: str, image: Path, cfg) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Crop | crop with the aligned reference, captioned with the kind and the score (BGR)."""
    frame_no = int(obj.frames[len(obj.frames) // 2])
    cap = cv2.VideoCapture(str(clip.video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame_no)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"error: cannot read frame {frame_no} of {clip.video}")
    crop = cut_crops(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), obj.box_near(frame_no)[None], cfg.side)[0]
    ref = reference_mask(read_rgb(image), cfg.side)
    fit = fit_reference(ink_candidates(crop, cfg.clusters), ref, cfg)
    pair = np.hstack([crop, overlay(crop, ref, fit)])
    bar = np.full((CAPTION, pair.shape[1], 3), 255, np.uint8)
    text = f"{kind}: {fit.score(cfg.anisotropy_limit):.2f}"
    cv2.putText(bar, text, (4, CAPTION - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return cv2.cvtColor(np.vstack([bar, pair]), cv2.COLOR_RGB2BGR)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=Path, nargs="+", required=True, help="folders of labelled clips")
    p.add_argument("--gallery", type=Path, required=True, help="the clips' gallery folder")
    p.add_argument("--per-kind", type=int, default=1, help="marks per kind (authentic, each family)")
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("docs/verifier.jpg"))
    args = p.parse_args(argv)
    clips = [c for folder in args.clips for c in load_clips(folder)]
    first_image: dict[str, Path] = {}
    try:
        for brand, path in gallery_images(args.gallery):
            first_image.setdefault(brand, path)
    except GalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    chosen = pick(clips, set(first_image), args.per_kind)
    if not chosen:
        print(f"error: no labelled marks of brands in {args.gallery}", file=sys.stderr)
        return 2
    cfg = Config.load().verifier
    tiles = [tile(clip, obj, kind, first_image[obj.brand], cfg) for clip, obj, kind in chosen]
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % args.columns)
    rows = [np.hstack(tiles[i : i + args.columns]) for i in range(0, len(tiles), args.columns)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"{len(chosen)} marks -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
