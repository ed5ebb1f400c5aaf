"""Embedder crops per second on one CPU core (floor: 500).

Baseline in the same run: the same model fed one crop at a time, the unbatched way.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import rate, report

from pipeline.infer.embedder import OnnxEmbedder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    with OnnxEmbedder(threads=1, providers=["CPUExecutionProvider"], batch=args.batch) as emb:
        side = emb.crop_size
        crops = np.random.default_rng(0).integers(0, 256, (args.batch, side, side, 3), dtype=np.uint8)

        def single() -> int:
            emb.embed(crops[:1])
            return 1

        def batched() -> int:
            emb.embed(crops)
            return len(crops)

        base = rate(single, args.seconds)
        cps = rate(batched, args.seconds)
        report(
            {
                "benchmark": "embedder_speed",
                "crop": f"{side}x{side}",
                "threads": 1,
                "batch": args.batch,
                "crops_per_s": round(cps, 1),
                "baseline_unbatched_crops_per_s": round(base, 1),
                "floor": 500,
                "model": emb.version,
            }
        )


if __name__ == "__main__":
    main()
