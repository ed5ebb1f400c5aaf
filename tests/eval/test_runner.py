"""FrameLog: which judged mark stands for a labelled object in each sampled frame."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.eval.runner import FrameLog
from pipeline.eval.scoring import LabelledObject
from pipeline.verdict import MarkSample

OBJ = LabelledObject(1, "acme", False, np.arange(0, 4), np.tile(np.float32([100, 100, 200, 200]), (4, 1)))


def judged(frame, *boxes):
    return [MarkSample("s", frame, frame / 30, np.float32(b), 0.9, "acme", 0.8) for b in boxes]


@pytest.mark.parametrize(
    ("frames", "expected_frames"),
    [
        pytest.param({}, [], id="nothing-sampled"),
        pytest.param({("s", 0): (0.0, [])}, [], id="sampled-but-nothing-judged"),
        pytest.param({("s", 2): (0.1, judged(2, (400, 400, 450, 450)))}, [], id="no-overlap"),
        pytest.param({("other", 1): (0.0, judged(1, (100, 100, 200, 200)))}, [], id="another-stream"),
        pytest.param({("s", 9): (0.3, judged(9, (100, 100, 200, 200)))}, [], id="frame-where-it-is-not-visible"),
        pytest.param(
            {("s", 3): (0.1, judged(3, (100, 100, 200, 200))), ("s", 1): (0.0, judged(1, (110, 100, 210, 200)))},
            [1, 3],
            id="time-order",
        ),
    ],
)
def test_samples_of(frames, expected_frames):
    log = FrameLog()
    log.frames = frames
    assert [s.frame for s in log.samples_of("s", OBJ)] == expected_frames


def test_samples_of_picks_the_best_overlap():
    log = FrameLog()
    log.frames = {("s", 0): (0.0, judged(0, (150, 150, 250, 250), (105, 100, 205, 200)))}
    (best,) = log.samples_of("s", OBJ)
    assert best.box[0] == 105
