"""Why fakes are missed: per labelled object, what the detector and the gallery said of it.

Reads the judged marks that ``scripts/tune_verdict.py`` keeps (``OUT/samples.pkl``) and, for
every labelled object of an enrolled brand, reports whether it was detected, whether its samples
voted for its true brand, and its mean identity and authenticity similarity to that brand
against the brand's threshold. Run it on tuning clips only.

    python scripts/tune_verdict.py --clips work/tune/clips --gallery work/tune/gallery --out work/tune_out
    python scripts/diagnose_tracks.py --clips work/tune/clips --samples work/tune_out/samples.pkl
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import Config
from pipeline.eval.metrics import roc_auc
from pipeline.eval.runner import FrameLog
from pipeline.eval.scoring import load_clips


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", required=True)
    p.add_argument("--samples", required=True, help="samples.pkl written by scripts/tune_verdict.py")
    p.add_argument("--min-detection", type=float, default=0.5)
    args = p.parse_args()
    clips = {c.stream: c for c in load_clips(args.clips)}
    quantile = Config.load().verdict.authenticity_quantile
    log = FrameLog()
    log.frames = pickle.loads(Path(args.samples).read_bytes())
    enrolled = {b for _t, samples in log.frames.values() for s in samples for b in s.thresholds}
    found: dict[tuple[str, int], list] = {}
    for stream, clip in clips.items():
        for k, obj in enumerate(clip.objects):
            if any((stream, int(f)) in log.frames for f in obj.frames):
                got = log.samples_of(stream, obj)
                found[(stream, k)] = [s for s in got if s.detection >= args.min_detection]
    rows = []
    for (stream, k), got in sorted(found.items()):
        obj = clips[stream].objects[k]
        if obj.brand not in enrolled:
            continue
        if not got:
            rows.append((obj, 0, None, None, None, None))
            continue
        votes = [s.brand for s in got]
        right = Counter(votes).most_common(1)[0][0] == obj.brand  # ties: first voted wins, every run
        thr = next((s.thresholds[obj.brand] for s in got if obj.brand in s.thresholds), float("nan"))
        ident = float(np.mean([s.identity_to(obj.brand) for s in got]))
        # As the verdict judges a track: an upper quantile of its samples' authenticity.
        auth = float(np.quantile([s.authenticity_to(obj.brand) for s in got], quantile))
        rows.append((obj, len(got), right, ident, auth, thr))
    for label, authentic in (("authentic", True), ("counterfeit", False)):
        sel = [r for r in rows if r[0].authentic == authentic]
        det = [r for r in sel if r[1]]
        print(
            f"{label}: {len(sel)} objects, {len(det)} detected, {sum(bool(r[2]) for r in det)} voted to their brand, "
            f"mean identity {np.mean([r[3] for r in det]) if det else float('nan'):.3f}, "
            f"mean track authenticity - threshold {np.nanmean([r[4] - r[5] for r in det]) if det else float('nan'):.3f}"
        )
    usable = [r for r in rows if r[1] and r[5] == r[5]]
    if usable and len({r[0].authentic for r in usable}) == 2:
        score = np.array([r[4] - r[5] for r in usable])
        auc = roc_auc(score, np.array([r[0].authentic for r in usable]))
        print(f"track AUC of authenticity (quantile {quantile}) - threshold (true brand): {auc:.3f}")
    for obj, n, right, ident, auth, thr in rows:
        if not obj.authentic:
            detail = "not detected" if not n else f"identity {ident:.3f} authenticity {auth:.3f} threshold {thr:.3f}"
            print(f"  fake {obj.brand:<24} {n:>3} samples, brand vote right: {right}, {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
