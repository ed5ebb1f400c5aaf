"""Regenerate the committed demo data (demo/clips, demo/gallery) from the sample marks.

python scripts/make_demo.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.synth.clips import plan_scripted_clip, render_clip, write_gallery  # noqa: E402
from pipeline.synth.marks import MarkLibrary  # noqa: E402

ENROLLED = 40
# (clip name, [(sample mark index, counterfeit family or None)])
SCRIPTS = [
    ("demo_bags", [(3, "mirror"), (8, None), (15, "aspect")]),
    ("demo_shoes", [(21, None), (44, None), (30, "erase")]),
    ("demo_authentic", [(5, None), (12, None)]),
]


def main() -> int:
    marks = list(MarkLibrary.from_folder(ROOT / "data" / "marks"))
    out = ROOT / "demo"
    shutil.rmtree(out / "clips", ignore_errors=True)
    shutil.rmtree(out / "gallery", ignore_errors=True)
    write_gallery(marks[:ENROLLED], out / "gallery")
    for seed, (name, script) in enumerate(SCRIPTS):
        spec = plan_scripted_clip(
            name,
            np.random.default_rng(seed),
            [(marks[i], f) for i, f in script],
            marks[:ENROLLED],
            seconds=12,
            size=(1280, 720),
            min_mark=110,
            max_mark=200,
        )
        render_clip(spec, out / "clips")
        print(f"wrote demo/clips/{name}.mp4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
