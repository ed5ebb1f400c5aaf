"""Picture of the tuning clips' counterfeits: each fake beside its brand's gallery image, a few of
its sampled crops, whether the verdict caught it and whether its track named the right brand.

Reads the judged marks ``scripts/tune_verdict.py`` keeps and replays the verdict stage at the
configured settings. Run it on tuning clips only.

    python scripts/plot_tuning_fakes.py --samples work/tune_out/samples.pkl \\
        --clips work/tune_a/clips work/tune_b/clips work/tune_more/clips --gallery work/tune_a/gallery \\
        --out docs/tuning_fakes.jpg
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import Config
from pipeline.eval.runner import FrameLog
from pipeline.eval.scoring import load_clips, score
from pipeline.synth.counterfeit import FAMILIES
from scripts.tune_verdict import replay_verdicts

TILE = 64


def gallery_tile(gallery: Path, brand: str) -> np.ndarray | None:
    """The brand's first gallery image on white, TILE x TILE BGR; None when the brand is not enrolled."""
    images = sorted((gallery / brand).glob("*.png")) + sorted((gallery / brand).glob("*.jpg"))
    if not images:
        return None
    img = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:] / 255.0
        img = (img[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_AREA)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True, help="samples.pkl written by scripts/tune_verdict.py")
    p.add_argument("--clips", required=True, nargs="+")
    p.add_argument("--gallery", required=True, type=Path, help="the gallery folder the clips were made with")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--per-family", type=int, default=4, help="fakes shown per family, misses first")
    args = p.parse_args()
    clips = [c for folder in args.clips for c in load_clips(folder)]
    log = FrameLog()
    log.frames = pickle.loads(Path(args.samples).read_bytes())
    cfg = Config.load().verdict
    result = score(clips, replay_verdicts(log, cfg))
    caught = {(r.stream, r.object.id): r.caught for r in result.objects}
    rows: dict[str, list] = {}
    for clip in clips:
        for obj in clip.counterfeits:
            ref = gallery_tile(args.gallery, obj.brand)
            if ref is None:
                continue
            seen = [s for s in log.samples_of(clip.stream, obj) if s.crop is not None]
            if len(seen) < 5:
                continue
            votes = [s.attributed(cfg.attribution_weight, cfg.same_brand_weight) for s in seen]
            named = Counter(votes).most_common(1)[0][0] == obj.brand
            crops = [seen[i].crop[:, :, ::-1] for i in np.linspace(0, len(seen) - 1, 5).astype(int)]
            rows.setdefault(obj.family or "counterfeit", []).append(
                (caught[(clip.stream, obj.id)], named, obj.brand, ref, crops)
            )
    tiles = []
    for family in [f for f in FAMILIES if f in rows]:
        for hit, named, brand, ref, crops in sorted(rows[family], key=lambda r: (r[0], r[1]))[: args.per_family]:
            label = np.full((TILE, 230, 3), 255, np.uint8)
            cv2.putText(label, f"{family}: {brand[:15]}", (4, 20), 0, 0.45, (0, 0, 0), 1)
            cv2.putText(label, "caught" if hit else "missed", (4, 40), 0, 0.45, (0, 140, 0) if hit else (0, 0, 200), 1)
            cv2.putText(label, "named right" if named else "named as another brand", (4, 58), 0, 0.4, (80, 80, 80), 1)
            gap = np.full((TILE, 6, 3), 255, np.uint8)
            tiles.append(np.concatenate([label, ref, gap, *crops], 1))
    if not tiles:
        print("no counterfeit of an enrolled brand with 5 judged samples", file=sys.stderr)
        return 1
    head = np.full((26, tiles[0].shape[1], 3), 255, np.uint8)
    cv2.putText(head, "fake, verdict          gallery image   5 sampled crops in the clip", (4, 18), 0, 0.45, 0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.concatenate([head, *tiles], 0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out}: {len(tiles)} fakes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
