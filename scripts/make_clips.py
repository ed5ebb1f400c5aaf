"""Generate labelled livestream clips and their gallery (formats.md sections 1 and 2).

    python scripts/make_clips.py --marks ../shared/data/logos --out work/eval --clips 30 --seconds 20 --seed 200

Writes OUT/clips/NAME.mp4 + NAME.json and OUT/gallery/BRAND/ref_0.png. Only held-out brands
appear; a fifth of them (by id) stay out of the gallery, as unenrolled brands.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.progress import Progress
from pipeline.synth.clips import plan_clip, render_clip, write_gallery
from pipeline.synth.marks import MarkLibrary


def unenrolled(slug: str) -> bool:
    """A fixed fifth of the held-out brands is never enrolled in generated galleries."""
    return hashlib.sha256(f"unenrolled:{slug}".encode()).digest()[0] < 256 // 5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--marks", type=Path, required=True, help="folder of mark PNGs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clips", type=int, default=30)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=200)
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    p.add_argument("--brands", type=int, default=0, help="enrol at most this many brands (0 = all)")
    p.add_argument("--prefix", default="live")
    args = p.parse_args(argv)
    if not args.marks.is_dir():
        print(f"error: marks folder not found: {args.marks}", file=sys.stderr)
        return 2
    _, held = MarkLibrary.from_folder(args.marks).split()
    enrolled = [m for m in held if not unenrolled(m.slug)]
    outside = [m for m in held if unenrolled(m.slug)]
    if args.brands:
        enrolled = enrolled[: args.brands]
    if not enrolled:
        print("error: no held-out brands to enrol", file=sys.stderr)
        return 2
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
        if width < 64 or height < 64:
            raise ValueError
    except ValueError:
        p.error(f"--size: expected WIDTHxHEIGHT of at least 64x64 pixels, such as 1280x720; got {args.size!r}")
    write_gallery(enrolled, args.out / "gallery")
    rng = np.random.default_rng(args.seed)
    with Progress("rendering", args.clips, unit="clips") as bar:
        for k in range(args.clips):
            spec = plan_clip(
                f"{args.prefix}_{k:03d}",
                rng,
                enrolled,
                outside,
                seconds=args.seconds,
                size=(width, height),
                min_mark=height / 12,
                max_mark=height / 3.3,
            )
            render_clip(spec, args.out / "clips")
            bar.update(k + 1)
    print(f"wrote {args.clips} clips and a gallery of {len(enrolled)} brands to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
