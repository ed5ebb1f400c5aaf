"""Why a missed counterfeit was missed: the furthest check its tracks reached, replayed from the log."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.alerts import Alert
from pipeline.eval.misses import CAUSE_TEXT, MISS_CAUSES, Miss, miss_causes, misses_by_cause
from pipeline.eval.runner import FrameLog
from pipeline.eval.scoring import Clip, LabelledObject, score
from pipeline.verdict import STOPS, StreamVerdicts, VerdictConfig
from tests.test_verdict import mark as verdict_mark

FPS = 30.0  # as tests/test_verdict.py's marks number their frames
BOX = (100.0, 100.0, 160.0, 150.0)
CFG = VerdictConfig(match_floor=0.3, min_share=0.5, confirm=3, window=8, max_gap=2.0, min_detection=0.3)
FAKE = {"acme": 0.5, "other": 0.3}  # imitates acme, below its threshold 0.7


def fake(first=0, last=180, family="warp"):
    frames = np.arange(first, last + 1)
    return LabelledObject(1, "acme", False, frames, np.tile(np.array(BOX, np.float32), (len(frames), 1)), family)


def clip(*objects):
    return Clip("s", None, FPS, 300, (640, 360), tuple(objects))  # type: ignore[arg-type]


def mark(t, sims, box=BOX, det=0.9, **changes):
    return dataclasses.replace(verdict_mark(t, sims, box=box, det=det), **changes)


def logged(marks):
    """A FrameLog of one mark per sampled frame, 2 per second."""
    log = FrameLog()
    for i, m in enumerate(marks):
        log.frames[("s", m.frame)] = (i * 0.5, [m])
    return log


def replayed(log, cfg):
    """The alerts the run would have raised from ``log`` (what the spine feeds its verdicts)."""
    sv = StreamVerdicts("s", cfg)
    out = []
    for (_s, _i), (t, samples) in sorted(log.frames.items()):
        for v in sv.update(t, samples):
            s = v.sample
            out.append(Alert(stream="s", t=s.t, frame=s.frame, brand=v.brand, box=tuple(s.box), score=v.score))
    return out


def ts(n):
    return [i * 0.5 for i in range(n)]


@pytest.mark.parametrize(
    ("marks", "cfg", "miss"),
    [
        pytest.param([], CFG, Miss("not_detected"), id="nothing-sampled"),
        pytest.param(
            [mark(t, FAKE, box=(400, 200, 460, 250)) for t in ts(6)], CFG, Miss("not_detected"), id="elsewhere"
        ),
        pytest.param([mark(t, FAKE, det=0.1) for t in ts(6)], CFG, Miss("not_judged"), id="weak-detections"),
        pytest.param([mark(t, FAKE) for t in ts(2)], CFG, Miss("confirming"), id="two-samples"),
        pytest.param(
            [mark(t, {"other": 0.5, "acme": 0.3}) for t in ts(6)], CFG, Miss("wrong_brand", "other"), id="named-other"
        ),
        pytest.param([mark(t, {"acme": 0.2}) for t in ts(6)], CFG, Miss("match_floor"), id="unlike-references"),
        pytest.param(
            [mark(t, FAKE, same_brand={"acme": 0.2}) for t in ts(6)],
            dataclasses.replace(CFG, min_same_brand=0.6),
            Miss("same_brand"),
            id="not-its-mark",
        ),
        pytest.param(
            [mark(t, FAKE, auth_sims={"acme": 0.5, "other": 0.9}) for t in ts(6)],
            dataclasses.replace(CFG, brand_agreement=1),
            Miss("brand_agreement"),
            id="another-ranks-first",
        ),
        pytest.param([mark(t, {"acme": 0.85}) for t in ts(6)], CFG, Miss("looks_authentic"), id="judged-authentic"),
        pytest.param(
            [mark(t, {"other": 0.85}) for t in ts(3)] + [mark(t, {"acme": 0.85}) for t in ts(8)[3:]],
            dataclasses.replace(CFG, min_appearance=0.0),
            Miss("looks_authentic"),
            id="the-furthest-it-got",
        ),
    ],
)
def test_miss_cause(marks, cfg, miss):
    clips = [clip(fake())]
    log = logged(marks)
    result = score(clips, replayed(log, cfg), {"acme", "other"})
    assert result.caught == 0
    causes = miss_causes(clips, log, cfg, result)
    assert causes == {("s", 1): miss}
    table = misses_by_cause(causes, result)
    assert table["all"][miss.cause] == 1 and sum(table["all"].values()) == 1
    assert table["warp"][miss.cause] == 1


def test_a_caught_fake_has_no_cause():
    clips = [clip(fake())]
    log = logged([mark(t, FAKE) for t in ts(6)])
    result = score(clips, replayed(log, CFG), {"acme"})
    assert result.caught == 1
    assert miss_causes(clips, log, CFG, result) == {}
    assert misses_by_cause({}, result) == {"all": dict.fromkeys(MISS_CAUSES, 0)}


def test_marks_outside_the_objects_frames_do_not_speak_for_it():
    # The object is visible only in its first second; the marks that fail later are not its.
    clips = [clip(fake(first=0, last=29))]
    log = logged([mark(t, {"acme": 0.2}) for t in ts(6)])
    result = score(clips, replayed(log, CFG), {"acme"})
    assert miss_causes(clips, log, CFG, result) == {("s", 1): Miss("confirming")}


def test_no_clips():
    result = score([], [], set())
    assert miss_causes([], FrameLog(), CFG, result) == {}


def test_every_cause_is_explained_and_follows_the_verdict_order():
    assert set(CAUSE_TEXT) == set(MISS_CAUSES)
    verdict_order = [c for c in MISS_CAUSES if c in STOPS]
    assert verdict_order == [s for s in STOPS if s in verdict_order]


@pytest.mark.parametrize(
    ("miss", "text"),
    [
        (Miss("same_brand"), CAUSE_TEXT["same_brand"]),
        (Miss("wrong_brand", "other"), "named as another brand: other"),
        (Miss("wrong_brand"), "named as another brand"),
    ],
)
def test_miss_text(miss, text):
    assert miss.text() == text


def test_miss_checks_its_cause():
    with pytest.raises(ValueError, match="cause"):
        Miss("bogus")
