"""Clip plans: what a labelled clip shows is what its labels say it shows."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline.synth.clips as clips
from pipeline.synth.marks import MarkLibrary


@pytest.mark.parametrize(("outside", "borrows_from"), [(20, "outside"), (0, "enrolled")])
def test_a_splice_borrows_from_marks_outside_the_gallery(library: MarkLibrary, monkeypatch, outside, borrows_from):
    marks = list(library)
    enrolled, unenrolled = marks[:20], marks[20 : 20 + outside]
    borrowed: list[int] = []
    made = clips.make_counterfeit

    def record(mask, family, rng, other=None, attempts=6):  # type: ignore[no-untyped-def]
        fake = made(mask, family, rng, other=other, attempts=attempts)
        if family == "splice" and fake is not None:
            borrowed.append(id(other))
        return fake

    monkeypatch.setattr(clips, "make_counterfeit", record)
    rng = np.random.default_rng(7)
    for k in range(40):
        clips.plan_clip(f"c{k}", rng, enrolled, unenrolled, objects=3, fake_rate=0.85, unenrolled_rate=0.0)
    assert borrowed, "no splice was planned; the test needs one"
    pool = {id(m.mask) for m in (unenrolled if borrows_from == "outside" else enrolled)}
    assert set(borrowed) <= pool
