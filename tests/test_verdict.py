"""Verdict rules on hand-made marks: tracking, brand votes, confirmation, one alert per track."""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np
import pytest

from pipeline.verdict import (
    Assessment,
    MarkSample,
    StreamVerdicts,
    Track,
    VerdictConfig,
    appearance_matrix,
    kinship,
    suspicion,
)

CFG = VerdictConfig(match_floor=0.3, min_share=0.5, confirm=3, window=8, max_gap=2.0, min_detection=0.3)


def mark(t, sims, box=(100, 100, 160, 150), det=0.9, threshold=0.7, look=None):
    best = max(sims, key=sims.get) if sims else ""
    return MarkSample(
        stream="s",
        frame=int(t * 30),
        t=t,
        box=np.array(box, np.float32),
        detection=det,
        brand=best,
        similarity=sims.get(best, 0.0),
        brand_sims=dict(sims),
        auth_sims=dict(sims),
        brand_refs=dict.fromkeys(sims, 0),
        thresholds=dict.fromkeys(sims, threshold),
        appearance=None if look is None else np.asarray(look, np.float32),
    )


def judged(cfg, make, checks, unchecked=0, samples=4):
    """Feed ``samples`` marks ``make(t)`` of one object at 2 fps, the verifier's ``checks`` (fields of
    ``MarkSample``; None: never verified) on all but the first ``unchecked``; the assessments seen
    and the alerts raised."""
    seen, alerts = [], []
    sv = StreamVerdicts("s", cfg, observer=lambda track, sample, found: seen.append(found))
    for i in range(samples):
        m = make(i * 0.5)
        alerts += sv.update(i * 0.5, [m if checks is None or i < unchecked else dataclasses.replace(m, **checks)])
    return seen, alerts


def run(frames, cfg=CFG):
    sv = StreamVerdicts("s", cfg)
    out = []
    for t, marks in frames:
        out += sv.update(t, marks)
    return out


FAKE = {"acme": 0.5, "other": 0.3}  # imitates acme, below its threshold 0.7
REAL = {"acme": 0.85, "other": 0.3}
UNENROLLED = [{"acme": 0.2, "x": 0.18}, {"y": 0.22, "acme": 0.1}, {"z": 0.21}]


@pytest.mark.parametrize(
    ("frames", "alerts"),
    [
        pytest.param([(i * 0.5, [mark(i * 0.5, FAKE)]) for i in range(6)], 1, id="fake-one-alert-per-track"),
        pytest.param([(i * 0.5, [mark(i * 0.5, FAKE)]) for i in range(2)], 0, id="not-yet-confirmed"),
        pytest.param([(i * 0.5, [mark(i * 0.5, REAL)]) for i in range(6)], 0, id="authentic"),
        pytest.param([(i * 0.5, [mark(i * 0.5, UNENROLLED[i % 3])]) for i in range(9)], 0, id="unenrolled"),
        pytest.param([], 0, id="empty-stream"),
        pytest.param([(i * 0.5, []) for i in range(5)], 0, id="no-marks"),
        pytest.param([(i * 0.5, [mark(i * 0.5, FAKE, det=0.1)]) for i in range(6)], 0, id="weak-detections"),
        pytest.param([(i * 0.5, [mark(i * 0.5, FAKE, box=(0, 0, 8, 8))]) for i in range(6)], 0, id="too-small"),
        pytest.param(
            [(i * 0.5, [mark(i * 0.5, FAKE)]) for i in range(4)]
            + [(10 + i * 0.5, [mark(10 + i * 0.5, FAKE)]) for i in range(4)],
            2,
            id="gone-and-back-is-a-new-track",
        ),
        pytest.param(
            [(i * 0.5, [mark(i * 0.5, FAKE), mark(i * 0.5, FAKE, box=(400, 300, 460, 350))]) for i in range(4)],
            2,
            id="two-fakes-two-alerts",
        ),
    ],
)
def test_alert_counts(frames, alerts):
    assert len(run(frames)) == alerts


def test_alert_carries_brand_track_and_confirming_sample():
    (v,) = run([(i * 0.5, [mark(i * 0.5, FAKE)]) for i in range(6)])
    assert v.brand == "acme" and v.track == 1 and v.sample.t == 1.0
    assert 0 < v.score <= 1 and v.similarity == pytest.approx(0.5)


def test_one_blurred_frame_does_not_decide():
    frames = [(i * 0.5, [mark(i * 0.5, REAL)]) for i in range(5)]
    frames[2] = (1.0, [mark(1.0, FAKE)])
    assert run(frames) == []


@pytest.mark.parametrize(
    ("quantile", "alerts"),
    [
        pytest.param(0.0, 1, id="lowest-sample-decides"),
        pytest.param(0.5, 1, id="median"),
        pytest.param(0.75, 0, id="upper-quantile-shrugs-off-occlusion"),
    ],
)
def test_hand_over_an_authentic_mark(quantile, alerts):
    # An authentic mark, half of its frames partly hidden by a hand (they look like a fake).
    frames = [(i * 0.5, [mark(i * 0.5, FAKE if i % 2 else REAL)]) for i in range(6)]
    assert len(run(frames, VerdictConfig(**{**CFG.__dict__, "authenticity_quantile": quantile}))) == alerts


def test_moving_mark_stays_one_track():
    frames = [(i * 0.5, [mark(i * 0.5, FAKE, box=(100 + 30 * i, 100, 160 + 30 * i, 150))]) for i in range(6)]
    assert len(run(frames)) == 1


def test_alert_threshold_from_calibration():
    cfg = VerdictConfig(**{**CFG.__dict__, "alert_threshold": 0.99})
    assert run([(i * 0.5, [mark(i * 0.5, FAKE)]) for i in range(6)], cfg) == []
    per_brand = VerdictConfig(**{**cfg.__dict__, "brand_thresholds": {"acme": 0.1}})
    assert len(run([(i * 0.5, [mark(i * 0.5, FAKE)]) for i in range(6)], per_brand)) == 1


@pytest.mark.parametrize(("sim", "expected"), [(0.9, 0.0), (0.7, 0.0), (0.55, 0.5), (0.4, 1.0), (0.1, 1.0)])
def test_suspicion(sim, expected):
    assert suspicion(sim, 0.7, VerdictConfig(suspicion_span=0.3)) == pytest.approx(expected)


def test_sample_checks_its_box():
    with pytest.raises(ValueError, match=r"expected a \(4,\) box"):
        MarkSample("s", 0, 0.0, np.zeros(5), 0.9, "", 0.0)


def test_sample_checks_its_appearance():
    with pytest.raises(ValueError, match=r"expected a \(D,\) appearance vector"):
        MarkSample("s", 0, 0.0, np.zeros(4), 0.9, "", 0.0, appearance=np.zeros((2, 8)))


ACME_LOOK, ZETA_LOOK = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
ZETA = {"zeta": 0.85}  # an authentic mark of another brand


@pytest.mark.parametrize(
    ("min_appearance", "alerts"),
    [
        pytest.param(0.0, 1, id="by-position-alone-the-new-mark-inherits-the-fake's-votes"),
        pytest.param(0.5, 0, id="unlike-appearance-starts-a-new-track"),
    ],
)
def test_product_swapped_in_place(min_appearance, alerts):
    # Two samples of a fake of acme (not yet confirmed), then an authentic zeta mark in the same place.
    frames = [(i * 0.5, [mark(i * 0.5, FAKE, look=ACME_LOOK)]) for i in range(2)]
    frames += [(1.0 + i * 0.5, [mark(1.0 + i * 0.5, ZETA, look=ZETA_LOOK)]) for i in range(1)]
    cfg = VerdictConfig(**{**CFG.__dict__, "min_appearance": min_appearance})
    assert len(run(frames, cfg)) == alerts


def test_alike_appearance_stays_one_track():
    looks = [(1.0, 0.1 * i, 0.0) for i in range(6)]
    frames = [(i * 0.5, [mark(i * 0.5, FAKE, look=np.array(v) / np.linalg.norm(v))]) for i, v in enumerate(looks)]
    cfg = VerdictConfig(**{**CFG.__dict__, "min_appearance": 0.8})
    (v,) = run(frames, cfg)
    assert v.track == 1


@pytest.mark.parametrize(
    ("looks", "track_looks", "expected"),
    [
        pytest.param([], [], np.ones((0, 0)), id="empty"),
        pytest.param([None], [ACME_LOOK], [[1.0]], id="sample-without-vector"),
        pytest.param([ACME_LOOK, ZETA_LOOK], [ACME_LOOK], [[1.0], [0.0]], id="cosines"),
    ],
)
def test_appearance_matrix(looks, track_looks, expected):
    samples = [mark(0.0, FAKE, look=v) for v in looks]
    tracks = []
    for k, v in enumerate(track_looks):
        tr = Track(k, np.zeros(4, np.float32), 0.0, deque(maxlen=4))
        tr.follow(mark(0.0, FAKE, look=v), 0.0)
        tracks.append(tr)
    want = np.asarray(expected, np.float32).reshape(len(looks), len(track_looks))
    np.testing.assert_allclose(appearance_matrix(samples, tracks), want)


def _attr_sample(identity: dict, authenticity: dict) -> MarkSample:
    best = max(identity, key=identity.get) if identity else ""
    return MarkSample(
        stream="s",
        frame=0,
        t=0.0,
        box=np.array([0, 0, 40, 40], np.float32),
        detection=0.9,
        brand=best,
        similarity=identity.get(best, 0.0),
        brand_sims=identity,
        auth_sims=authenticity,
    )


@pytest.mark.parametrize(
    ("identity", "authenticity", "weight", "expected"),
    [
        ({}, {}, 0.5, ""),  # nothing near: no brand
        ({"acme": 0.6, "other": 0.55}, {"acme": 0.1, "other": 0.5}, 0.0, "acme"),  # identity alone
        ({"acme": 0.6, "other": 0.55}, {"acme": 0.1, "other": 0.5}, 0.5, "other"),  # shape decides a near tie
        ({"acme": 0.8, "other": 0.4}, {"acme": 0.1, "other": 0.5}, 0.5, "acme"),  # a clear identity wins
        ({"acme": 0.6, "other": 0.55}, {"acme": 0.3}, 0.5, "acme"),  # unmeasured authenticity counts 0
    ],
)
def test_attribution_weighs_authenticity_beside_identity(identity, authenticity, weight, expected):
    assert _attr_sample(identity, authenticity).attributed(weight) == expected


@pytest.mark.parametrize(
    ("authenticity", "brand", "rank"),
    [
        ({"acme": 0.5, "other": 0.3}, "acme", 1),
        ({"acme": 0.3, "other": 0.5}, "acme", 2),
        ({"acme": 0.3, "other": 0.5, "third": 0.4}, "acme", 3),
        ({"acme": 0.5, "other": 0.5}, "acme", 1),  # a tie does not push a brand down
        ({"other": 0.5}, "acme", 2),  # never measured: similarity 0
        ({}, "acme", 1),
    ],
)
def test_authenticity_rank(authenticity, brand, rank):
    track = Track(1, np.zeros(4, np.float32), 0.0, deque([_attr_sample({"acme": 0.6}, authenticity)] * 3))
    assert track.authenticity_rank(brand) == rank


# Named acme by identity, but its shape is closer to another brand's authentic references.
DISAGREE = MarkSample(
    stream="s",
    frame=0,
    t=0.0,
    box=np.array([100, 100, 160, 150], np.float32),
    detection=0.9,
    brand="acme",
    similarity=0.6,
    brand_sims={"acme": 0.6, "other": 0.4},
    auth_sims={"acme": 0.3, "other": 0.5},
    thresholds={"acme": 0.7, "other": 0.7},
)


@pytest.mark.parametrize(
    ("sample", "agreement", "alerts"),
    [
        pytest.param(DISAGREE, 0, 1, id="off"),
        pytest.param(DISAGREE, 1, 0, id="heads-disagree"),
        pytest.param(DISAGREE, 2, 1, id="runner-up-allowed"),
        pytest.param(None, 1, 1, id="heads-agree"),
    ],
)
def test_brand_agreement(sample, agreement, alerts):
    cfg = VerdictConfig(**{**CFG.__dict__, "brand_agreement": agreement})
    frames = []
    for i in range(4):
        t = i * 0.5
        m = mark(t, FAKE) if sample is None else MarkSample(**{**sample.__dict__, "t": t, "frame": int(t * 30)})
        frames.append((t, [m]))
    assert len(run(frames, cfg)) == alerts


@pytest.mark.parametrize(
    ("same_brand", "lead"),
    [
        ([], None),  # never checked
        ([{"other": 0.9}], None),  # checked, but never against acme
        ([{"acme": 0.9}], 0.9),  # no rival checked: its full figure
        ([{"acme": 0.9, "other": 0.3}], pytest.approx(0.6)),
        ([{"acme": 0.9, "other": 0.3}, {"acme": 0.7, "other": 0.5}], pytest.approx(0.4)),  # means, not one sample
        ([{"acme": 0.3, "other": 0.9}], pytest.approx(-0.6)),  # another brand's mark
        ([{"acme": 0.8, "other": 0.2, "third": 0.6}], pytest.approx(0.2)),  # the strongest rival counts
    ],
)
def test_same_brand_lead(same_brand, lead):
    s = _attr_sample({"acme": 0.6}, {})
    track = Track(1, np.zeros(4, np.float32), 0.0, deque(dataclasses.replace(s, same_brand=f) for f in same_brand))
    assert track.same_brand_lead("acme") == lead


@pytest.mark.parametrize(
    ("same_brand", "margin", "alerts"),
    [
        pytest.param({"acme": 0.95, "other": 0.2}, 0.3, 1, id="clearly-acme's-mark-waives-it"),
        pytest.param({"acme": 0.95, "other": 0.8}, 0.3, 0, id="a-close-rival-keeps-it"),
        pytest.param({"acme": 0.95, "other": 0.2}, -1.0, 0, id="off"),
        pytest.param(None, 0.3, 0, id="unchecked-keeps-it"),
    ],
)
def test_brand_margin_waives_brand_agreement(same_brand, margin, alerts):
    cfg = dataclasses.replace(CFG, brand_agreement=1, brand_margin=margin)
    frames = []
    for i in range(4):
        t = i * 0.5
        m = dataclasses.replace(DISAGREE, t=t, frame=int(t * 30))
        frames.append((t, [m if same_brand is None else dataclasses.replace(m, same_brand=same_brand)]))
    assert len(run(frames, cfg)) == alerts


def test_brand_agreement_must_not_be_negative():
    with pytest.raises(ValueError, match="brand_agreement"):
        VerdictConfig(brand_agreement=-1)


@pytest.mark.parametrize(
    ("verified", "weight", "target", "expected"),
    [
        ({}, 1.0, 0.85, 0.8),  # not verified: the embedder's similarity as it is
        ({"acme": 0.95}, 0.0, 0.85, 0.8),  # weight 0: the verifier is ignored
        ({"acme": 0.95}, 1.0, 0.85, 0.9),  # fits the reference well: more authentic
        ({"acme": 0.55}, 1.0, 0.85, 0.5),  # fits badly: less
        ({"acme": 0.55}, 0.5, 0.85, 0.65),
        ({"other": 0.2}, 1.0, 0.85, 0.8),  # another brand's score does not move acme's
    ],
)
def test_verifier_moves_authenticity(verified, weight, target, expected):
    s = dataclasses.replace(mark(0.0, {"acme": 0.8, "other": 0.3}), verified=verified)
    assert s.authenticity_to("acme", weight, target) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("verified", "weight", "alerts"),
    [
        (0.95, 0.0, 0),  # embedder alone: 0.75 is above the threshold 0.7, no alert
        (0.95, 1.0, 0),  # and the verifier agrees the mark fits its reference
        (0.6, 1.0, 1),  # the verifier finds the reference does not lay over it: 0.75 - 0.25 = 0.5
    ],
)
def test_verifier_decides_near_the_threshold(verified, weight, alerts):
    cfg = dataclasses.replace(CFG, verifier_weight=weight, verifier_target=0.85)
    near = {"acme": 0.75, "other": 0.3}
    frames = [(t * 0.5, [dataclasses.replace(mark(t * 0.5, near), verified={"acme": verified})]) for t in range(5)]
    assert len(run(frames, cfg)) == alerts


@pytest.mark.parametrize(
    ("identity", "aligned", "weight", "expected"),
    [
        ({"acme": 0.6, "other": 0.55}, {"acme": 0.2, "other": 0.8}, 0.0, "acme"),  # weight 0: identity alone
        ({"acme": 0.6, "other": 0.55}, {"acme": 0.2, "other": 0.8}, 1.0, "other"),  # its own brand lays over it
        ({"acme": 0.9, "other": 0.4}, {"acme": 0.5, "other": 0.6}, 1.0, "acme"),  # a clear identity wins
        ({"acme": 0.6, "other": 0.55}, {}, 1.0, "acme"),  # not verified: identity alone
        ({"acme": 0.6, "other": 0.55}, {"other": 0.3}, 1.0, "other"),  # unverified brands count 0
        ({}, {"acme": 0.9}, 1.0, ""),  # nothing near by identity: no brand
    ],
)
def test_attribution_weighs_alignment_beside_identity(identity, aligned, weight, expected):
    s = dataclasses.replace(_attr_sample(identity, {}), same_brand=aligned)
    assert s.attributed(0.0, weight) == expected


@pytest.mark.parametrize(
    ("aligned", "floor", "alerts"),
    [
        pytest.param(None, 0.5, 1, id="not-verified-not-gated"),
        pytest.param(0.7, 0.5, 1, id="lays-over-it"),
        pytest.param(0.2, 0.5, 0, id="nothing-of-the-brand-lays-over-it"),
        pytest.param(0.2, -1.0, 1, id="off"),
    ],
)
def test_alignment_floor(aligned, floor, alerts):
    cfg = dataclasses.replace(CFG, min_same_brand=floor)
    frames = []
    for i in range(4):
        m = mark(i * 0.5, FAKE)
        frames.append((i * 0.5, [m if aligned is None else dataclasses.replace(m, same_brand={"acme": aligned})]))
    assert len(run(frames, cfg)) == alerts


def test_track_alignment_means_only_verified_samples():
    s = _attr_sample({"acme": 0.6}, {})
    samples = [dataclasses.replace(s, same_brand={"acme": 0.4}), s, dataclasses.replace(s, same_brand={"acme": 0.8})]
    track = Track(1, np.zeros(4, np.float32), 0.0, deque(samples))
    assert track.same_brand("acme") == pytest.approx(0.6)
    assert track.same_brand("other") is None


def _checked(s: MarkSample, score: float, aligned: float) -> MarkSample:
    return dataclasses.replace(s, verified={"acme": score}, same_brand={"acme": aligned})


@pytest.mark.parametrize(
    ("settings", "sims", "det", "score", "expected"),
    [
        pytest.param({}, REAL, 0.9, 0.5, [True] * 6, id="every-sample"),
        pytest.param({"verified_samples": 2}, REAL, 0.9, 0.5, [True, True] + [False] * 4, id="first-two-then-carried"),
        pytest.param({"verified_samples": 5}, FAKE, 0.9, 0.1, [True, True, True] + [False] * 3, id="none-once-alerted"),
        pytest.param({}, REAL, 0.1, 0.5, [False] * 6, id="not-judged-not-verified"),
        pytest.param({"verify_every": 2}, REAL, 0.9, 0.5, [True, False] * 3, id="every-second"),
        pytest.param({"verify_every": 4}, REAL, 0.9, 0.5, [True, False, False, False, True, False], id="every-fourth"),
        pytest.param(
            {"verify_every": 3}, FAKE, 0.9, 0.1, [True, False, False, False, False, False], id="every-third-alerted"
        ),
        pytest.param({"settle": 0.9}, REAL, 0.9, 0.95, [True] + [False] * 5, id="settled-authentic"),
        pytest.param({"settle": 0.9}, REAL, 0.9, 0.5, [True] * 6, id="not-sure-enough-to-settle"),
        pytest.param(
            {"settle": 0.9, "verify_every": 2}, REAL, 0.9, 0.95, [True] + [False] * 5, id="settled-and-strided"
        ),
    ],
)
def test_needs_verification(settings, sims, det, score, expected):
    cfg = dataclasses.replace(CFG, **settings)
    sv = StreamVerdicts("s", cfg)
    needed = []
    for i in range(6):
        s = mark(i * 0.5, sims, det=det)
        (need,) = sv.needs_verification(s.t, [s])
        needed.append(need)
        sv.update(s.t, [_checked(s, score, 0.95) if need else s])
    assert needed == expected


@pytest.mark.parametrize(
    ("checks", "level", "settled"),
    [
        pytest.param([], 0.9, False, id="never-checked"),
        pytest.param([(0.95, 0.95)], 0.9, True, id="authentic-and-its-brand"),
        pytest.param([(0.95, 0.3)], 0.9, False, id="authentic-but-maybe-another-brand"),
        pytest.param([(0.3, 0.95)], 0.9, False, id="its-brand-but-not-authentic"),
        pytest.param([(0.95, 0.95), (0.7, 0.95)], 0.9, False, id="on-average-not-sure"),
        pytest.param([(0.95, 0.95), (0.7, 0.95)], 0.8, True, id="on-average-sure-enough"),
    ],
)
def test_a_track_settles_when_the_verifier_is_sure_it_is_authentic(checks, level, settled):
    track = Track(1, np.zeros(4, np.float32), 0.0, deque())
    for score, kin in checks:
        track.note_checks(_checked(mark(0.0, REAL), score, kin))
    assert track.settled(level) is settled


def test_unchecked_samples_carry_their_tracks_mean_findings():
    sv = StreamVerdicts("s", dataclasses.replace(CFG, verified_samples=2))
    sv.update(0.0, [_checked(mark(0.0, REAL), 0.2, 0.4)])
    sv.update(0.5, [_checked(mark(0.5, REAL), 0.6, 0.8)])
    sv.update(1.0, [mark(1.0, REAL)])
    (track,) = sv.tracks
    assert track.verified == 2
    last = track.samples[-1]
    assert last.verified == pytest.approx({"acme": 0.4}) and last.same_brand == pytest.approx({"acme": 0.6})


def test_a_new_track_carries_nothing():
    track = Track(1, np.zeros(4, np.float32), 0.0, deque())
    s = mark(0.0, REAL)
    assert track.carry(s) is s


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"verified_samples": -1}, "verified_samples"),
        ({"verify_every": 0}, "verify_every"),
        ({"settle": -0.1}, "settle"),
        ({"settle": 1.5}, "settle"),
        ({"recall_brand": 1.5}, "recall_brand"),
    ],
)
def test_check_settings_are_validated(settings, match):
    with pytest.raises(ValueError, match=match):
        VerdictConfig(**settings)


@pytest.mark.parametrize(
    ("settings", "by_track"),
    [({}, False), ({"verified_samples": 2}, True), ({"verify_every": 2}, True), ({"settle": 0.9}, True)],
)
def test_checks_by_track(settings, by_track):
    assert VerdictConfig(**settings).checks_by_track is by_track


@pytest.mark.parametrize(
    ("verified", "weight", "rank"),
    [
        pytest.param({}, 1.0, 1, id="not-verified"),
        # a fake scores low against its own brand; "other" was never checked, so its similarity
        # does not move and must not outrank the checked brand
        pytest.param({"acme": 0.0}, 1.0, 1, id="unchecked-brand-left-out"),
        pytest.param({"acme": 0.0, "other": 0.9}, 1.0, 2, id="checked-brand-outranks"),
        pytest.param({"acme": 0.0}, 0.0, 1, id="weight-0-embedder-alone"),
    ],
)
def test_authenticity_rank_with_the_verifier(verified, weight, rank):
    s = dataclasses.replace(_attr_sample({"acme": 0.6, "other": 0.5}, {"acme": 0.5, "other": 0.4}), verified=verified)
    track = Track(1, np.zeros(4, np.float32), 0.0, deque([s] * 3))
    assert track.authenticity_rank("acme", weight, 0.3) == rank


@pytest.mark.parametrize(
    ("samples", "changes", "stopped_at", "brand"),
    [
        pytest.param(2, {}, "confirming", "", id="too-few-samples"),
        pytest.param(4, {"brand_sims": {}, "brand": ""}, "no_brand", "", id="no-brand-named"),
        pytest.param(4, {"brand_sims": {"acme": 0.2}}, "match_floor", "acme", id="unlike-its-references"),
        pytest.param(4, {"same_brand": {"acme": 0.2}}, "same_brand", "acme", id="not-its-mark"),
        pytest.param(4, {"auth_sims": {"acme": 0.5, "other": 0.9}}, "brand_agreement", "acme", id="another-first"),
        pytest.param(4, {"auth_sims": {"acme": 0.85, "other": 0.3}}, "looks_authentic", "acme", id="authentic"),
        pytest.param(4, {}, None, "acme", id="alerts"),
    ],
)
def test_assess_names_the_first_check_that_stops_a_track(samples, changes, stopped_at, brand):
    cfg = dataclasses.replace(CFG, brand_agreement=1, min_same_brand=0.6)
    seen = []
    sv = StreamVerdicts("s", cfg, observer=lambda track, sample, found: seen.append(found))
    alerts = []
    for i in range(samples):
        t = i * 0.5
        alerts += sv.update(t, [dataclasses.replace(mark(t, FAKE), **changes)])
    assert seen, "the observer sees every assessment"
    assert seen[-1].stopped_at == stopped_at and seen[-1].brand == brand
    assert len(alerts) == (stopped_at is None)


def test_brand_share_stops_a_split_vote():
    cfg = dataclasses.replace(CFG, min_share=0.7)
    seen = []
    sv = StreamVerdicts("s", cfg, observer=lambda track, sample, found: seen.append(found.stopped_at))
    for i, sims in enumerate([FAKE, FAKE, {"other": 0.5, "acme": 0.3}, {"other": 0.5, "acme": 0.3}]):
        sv.update(i * 0.5, [mark(i * 0.5, sims)])
    assert seen[-1] == "brand_share"


def test_observer_is_not_called_once_a_track_has_alerted():
    seen = []
    sv = StreamVerdicts("s", CFG, observer=lambda track, sample, found: seen.append(found.stopped_at))
    for i in range(6):
        sv.update(i * 0.5, [mark(i * 0.5, FAKE)])
    assert seen == ["confirming", "confirming", None]


def test_assessment_checks_its_stop():
    with pytest.raises(ValueError, match="stopped_at"):
        Assessment("acme", "bogus")


@pytest.mark.parametrize(
    ("identity", "same_brand", "sure", "stopped_at"),
    [
        pytest.param(0.8, 0.3, 0.7, None, id="sure-identity-waives-the-same-brand-gate"),
        pytest.param(0.65, 0.3, 0.7, "same_brand", id="identity-not-sure-enough"),
        pytest.param(0.8, 0.3, -1.0, "same_brand", id="off"),
        pytest.param(0.65, 0.7, 0.7, None, id="gate-passed-anyway"),
        pytest.param(0.8, None, 0.7, None, id="never-verified"),
    ],
)
def test_sure_identity_waives_the_same_brand_gate(identity, same_brand, sure, stopped_at):
    # acme by identity; a fake by authenticity (identity = authenticity here, under threshold 0.9).
    cfg = dataclasses.replace(CFG, min_same_brand=0.6, sure_identity=sure)
    checks = None if same_brand is None else {"verified": {"acme": 0.1}, "same_brand": {"acme": same_brand}}
    seen, _ = judged(cfg, lambda t: mark(t, {"acme": identity}, threshold=0.9), checks)
    assert seen[-1].stopped_at == stopped_at


@pytest.mark.parametrize(
    ("same_brand", "waiver", "unchecked", "stopped_at"),
    [
        pytest.param(0.9, 0.8, 0, None, id="surely-its-mark-waives-the-floor"),
        pytest.param(0.7, 0.8, 0, "match_floor", id="not-sure-enough"),
        pytest.param(0.9, -1.0, 0, "match_floor", id="off"),
        pytest.param(None, 0.8, 0, "match_floor", id="never-verified"),
        pytest.param(0.9, 0.8, 2, "match_floor", id="too-few-checks"),  # 2 of 4 checked, confirm is 3
    ],
)
def test_floor_same_brand_waives_the_identity_floor(same_brand, waiver, unchecked, stopped_at):
    # acme's mark by identity 0.25, under the floor; a fake by authenticity (0.25 < threshold 0.7).
    cfg = dataclasses.replace(CFG, floor_same_brand=waiver, min_same_brand=0.6)
    checks = None if same_brand is None else {"verified": {"acme": 0.1}, "same_brand": {"acme": same_brand}}
    seen, _ = judged(cfg, lambda t: mark(t, {"acme": 0.25}), checks, unchecked)
    assert seen[-1].stopped_at == stopped_at


@pytest.mark.parametrize(
    ("same_brand", "sure", "unchecked", "stopped_at"),
    [
        pytest.param({"acme": 0.7, "other": 0.1}, 0.5, 0, None, id="clear-lead-waives-the-gate"),
        pytest.param({"acme": 0.7, "other": 0.4}, 0.5, 0, "same_brand", id="lead-too-small"),
        pytest.param({"acme": 0.7}, 0.5, 0, None, id="no-rival-checked-leads-by-its-figure"),
        pytest.param({"acme": 0.3}, 0.5, 0, "same_brand", id="alone-but-low"),
        pytest.param({"acme": 0.7, "other": 0.1}, -1.0, 0, "same_brand", id="off"),
        pytest.param({"acme": 0.7, "other": 0.1}, 0.5, 2, "same_brand", id="too-few-checks"),
        pytest.param({"acme": 0.95, "other": 0.9}, 0.5, 0, None, id="gate-passed-anyway"),
    ],
)
def test_sure_lead_waives_the_same_brand_gate(same_brand, sure, unchecked, stopped_at):
    # acme by identity and a fake by authenticity (0.8 < threshold 0.9); the verifier reads it as
    # acme's mark short of the gate (0.9) but far more than the other brand it was laid against.
    cfg = dataclasses.replace(CFG, min_same_brand=0.9, sure_lead=sure)
    checks = {"verified": dict.fromkeys(same_brand, 0.1), "same_brand": same_brand}
    seen, _ = judged(cfg, lambda t: mark(t, {"acme": 0.8, "other": 0.3}, threshold=0.9), checks, unchecked)
    assert seen[-1].stopped_at == stopped_at


SPLICE_FRAMES = (0.95, 0.1, 0.95, 0.95, 0.2, 0.95)  # four of six frames read as acme's mark; mean 0.68


@pytest.mark.parametrize(
    ("figures", "count", "gate", "stopped_at"),
    [
        pytest.param(SPLICE_FRAMES, 4, "min_same_brand", None, id="often-its-mark-passes-the-gate"),
        pytest.param(SPLICE_FRAMES, 5, "min_same_brand", "same_brand", id="not-often-enough"),
        pytest.param(SPLICE_FRAMES, 0, "min_same_brand", "same_brand", id="off-the-mean-alone"),
        pytest.param((0.85,) * 6, 1, "min_same_brand", "same_brand", id="never-reaching-the-gate"),
        pytest.param(SPLICE_FRAMES, 4, "floor_same_brand", None, id="often-its-mark-waives-the-floor"),
        pytest.param(SPLICE_FRAMES, 5, "floor_same_brand", "match_floor", id="floor-not-often-enough"),
        pytest.param(SPLICE_FRAMES, 0, "floor_same_brand", "match_floor", id="floor-off"),
    ],
)
def test_same_brand_count_passes_a_gate_the_mean_misses(figures, count, gate, stopped_at):
    # acme's fake (authenticity under its threshold, verifier 0.1) whose same-brand figure reaches
    # 0.9 in some frames and not in others. For the gate, identity names acme clearly; for the
    # floor, identity (0.25) sits under the floor (0.3), the same-brand gate is off.
    identity = {"acme": 0.25} if gate == "floor_same_brand" else {"acme": 0.6, "other": 0.2}
    cfg = dataclasses.replace(CFG, same_brand_count=count, **{gate: 0.9})
    seen = []
    sv = StreamVerdicts("s", cfg, observer=lambda track, sample, found: seen.append(found))
    for i, figure in enumerate(figures):
        m = mark(i * 0.5, identity, threshold=0.7)
        sv.update(i * 0.5, [dataclasses.replace(m, verified={"acme": 0.1}, same_brand={"acme": figure})])
    assert seen[-1].stopped_at == stopped_at


@pytest.mark.parametrize(
    ("checked", "stopped_at"),
    [
        pytest.param(3, None, id="confirm-checks-then-carried"),
        pytest.param(2, "match_floor", id="too-few-checks-carried-many-times"),
    ],
)
def test_same_brand_count_needs_confirm_checks(checked, stopped_at):
    # Identity (0.25) sits under the floor (0.3); the verifier's same-brand figure (0.95) would
    # waive it. The live worker checks a few marks and the rest carry the track's mean, which
    # reaches the waiver's level: two checks counted six times over must not waive the floor
    # where confirm asks three.
    cfg = dataclasses.replace(CFG, same_brand_count=2, floor_same_brand=0.9, verify_every=3)
    checks = {"verified": {"acme": 0.1}, "same_brand": {"acme": 0.95}}
    seen = []
    sv = StreamVerdicts("s", cfg, observer=lambda track, sample, found: seen.append(found))
    for i in range(6):
        m = mark(i * 0.5, {"acme": 0.25}, threshold=0.7)
        sv.update(i * 0.5, [dataclasses.replace(m, **checks) if i < checked else m])
    assert seen[-1].stopped_at == stopped_at


def test_same_brand_count_is_checked():
    with pytest.raises(ValueError, match="same_brand_count"):
        dataclasses.replace(CFG, same_brand_count=-1)


@pytest.mark.parametrize(
    ("verified", "sure", "unchecked", "stopped_at"),
    [
        pytest.param(0.02, 0.1, 0, None, id="verifier-sure-it-is-no-authentic-mark"),
        pytest.param(0.3, 0.1, 0, "looks_authentic", id="verifier-not-sure-enough"),
        pytest.param(0.02, -1.0, 0, "looks_authentic", id="off"),
        pytest.param(0.02, 0.1, 2, "looks_authentic", id="too-few-checks"),
        pytest.param(None, 0.1, 0, "looks_authentic", id="never-verified"),
    ],
)
def test_sure_fake_overrules_a_low_threshold(verified, sure, unchecked, stopped_at):
    # acme's threshold is low (0.3): its authenticity similarity 0.8 passes as authentic even after
    # the verifier's weight (0.8 + 1 x (0.02 - 0.4) = 0.42); a verifier that surely finds no
    # authentic mark overrules that.
    cfg = dataclasses.replace(CFG, verifier_weight=1.0, verifier_target=0.4, sure_fake=sure)
    checks = None if verified is None else {"verified": {"acme": verified}, "same_brand": {"acme": 1.0}}
    seen, alerts = judged(cfg, lambda t: mark(t, {"acme": 0.8}, threshold=0.3), checks, unchecked)
    assert seen[-1].stopped_at == stopped_at
    assert len(alerts) == (stopped_at is None)
    if stopped_at is None:
        assert alerts[0].score == pytest.approx(1.0 - verified)


# identity, same_brand, same_brand_lead, identity_lead, bias: the verifier's figure counts most.
KIN = (1.0, 4.0, 2.0, 1.0, -4.0)


@pytest.mark.parametrize(
    ("identity", "same_brand", "weights", "floor", "stopped_at"),
    [
        # acme by identity 0.8 (leading other by 0.5); same-brand 0.5, lead 0.4: 0.8 + 2 + 0.8 + 0.5 - 4 = 0.1
        pytest.param(0.8, {"acme": 0.5, "other": 0.1}, KIN, 0.5, None, id="kin-enough-though-short-of-min-same-brand"),
        # same-brand 0.2, lead -0.1: 0.8 + 0.8 - 0.2 + 0.5 - 4 = -2.1
        pytest.param(0.8, {"acme": 0.2, "other": 0.3}, KIN, 0.5, "same_brand", id="reads-as-another-brand"),
        pytest.param(0.8, {"acme": 0.5, "other": 0.1}, KIN, 0.6, "same_brand", id="higher-floor"),
        pytest.param(0.8, None, KIN, 0.5, None, id="never-verified"),
        # off: the hand-made gate (min_same_brand 0.9) stops it
        pytest.param(0.8, {"acme": 0.5, "other": 0.1}, (), -1.0, "same_brand", id="off-hand-made-gate"),
    ],
)
def test_kinship_gate(identity, same_brand, weights, floor, stopped_at):
    cfg = dataclasses.replace(CFG, min_same_brand=0.9, kinship=weights, min_kinship=floor)
    checks = None if same_brand is None else {"verified": dict.fromkeys(same_brand, 0.1), "same_brand": same_brand}
    seen, _ = judged(cfg, lambda t: mark(t, {"acme": identity, "other": 0.3}, threshold=0.9), checks)
    assert seen[-1].stopped_at == stopped_at


@pytest.mark.parametrize(
    ("figures", "weights", "expected"),
    [
        pytest.param([[0.0, 0.0]], [0.0, 0.0, 0.0], [0.5], id="zero-weights-half"),
        pytest.param([[1.0, 2.0], [0.0, 0.0]], [1.0, 1.0, -3.0], [0.5, 1 / (1 + np.exp(3.0))], id="two-rows"),
        pytest.param(np.zeros((0, 2)), [1.0, 1.0, 0.0], [], id="empty"),
    ],
)
def test_kinship_probability(figures, weights, expected):
    assert kinship(np.asarray(figures, float), np.asarray(weights)) == pytest.approx(expected)


def test_kinship_rejects_mismatched_weights():
    with pytest.raises(ValueError, match=r"expected \(3,\) weights"):
        kinship(np.zeros((1, 2)), np.zeros(4))


@pytest.mark.parametrize("weights", [(), (1.0, 2.0)])
def test_kinship_config_needs_every_weight(weights):
    with pytest.raises(ValueError, match="kinship: expected 5 weights"):
        VerdictConfig(kinship=weights, min_kinship=0.5)
    VerdictConfig(kinship=weights)  # off: no weights needed


def test_track_kinship_figures():
    samples = [
        dataclasses.replace(mark(0.0, {"acme": 0.8, "other": 0.3}), same_brand={"acme": 0.6, "other": 0.2}),
        dataclasses.replace(mark(0.5, {"acme": 0.6, "other": 0.5}), same_brand={"acme": 0.4}),
        mark(1.0, {"acme": 0.7}),  # not verified: counts for identity only
    ]
    track = Track(0, samples[0].box, 0.0, deque(samples, maxlen=8))
    assert track.kinship_figures("acme") == pytest.approx([0.7, 0.5, 0.3, (0.5 + 0.1 + 0.7) / 3])
    assert track.kinship_figures("nobody") is None


def _checked_as(sample, same):
    """``sample`` as the verifier found it: ``same`` brand -> same-brand figure, a fake to each."""
    return dataclasses.replace(sample, verified=dict.fromkeys(same, 0.05), same_brand=dict(same))


@pytest.mark.parametrize(
    ("recall", "same", "expected"),
    [
        pytest.param(-1.0, {"acme": 0.99}, {}, id="off"),
        pytest.param(0.9, {"acme": 0.99, "other": 0.2}, {"acme": 7}, id="its-brand-remembered"),
        pytest.param(0.9, {"acme": 0.85}, {}, id="not-sure-enough"),
        pytest.param(0.9, {}, {}, id="nothing-checked"),
        pytest.param(0.0, {"acme": 0.5, "other": 0.2}, {"acme": 7, "other": 8}, id="every-checked-brand"),
    ],
)
def test_a_track_recalls_the_brands_the_verifier_found_it_to_be(recall, same, expected):
    """A brand found with a same-brand figure of ``recall_brand`` stays among the brands the
    track's next marks are checked against, with its reference, though identity no longer ranks it."""
    cfg = dataclasses.replace(CFG, recall_brand=recall)
    sv = StreamVerdicts("s", cfg)
    first = dataclasses.replace(mark(0.0, {"acme": 0.45, "other": 0.4}), brand_refs={"acme": 7, "other": 8})
    sv.update(0.0, [_checked_as(first, same) if same else first])
    later = mark(0.5, {"x": 0.5, "y": 0.45})  # the next frame's identity ranks other brands
    far = mark(0.5, {"x": 0.5}, box=(600, 400, 660, 450))  # another object: no track to recall
    assert sv.recalled(0.5, [later, far]) == [expected, {}]


def test_an_alerted_track_recalls_nothing():
    cfg = dataclasses.replace(CFG, recall_brand=0.9)
    sv = StreamVerdicts("s", cfg)
    alerts = []
    for i in range(4):
        alerts += sv.update(i * 0.5, [_checked_as(mark(i * 0.5, FAKE), {"acme": 0.99})])
    assert alerts and sv.tracks[0].recalled == {"acme": 0}
    assert sv.recalled(2.0, [mark(2.0, FAKE)]) == [{}]


def test_recalled_of_no_marks():
    assert StreamVerdicts("s", dataclasses.replace(CFG, recall_brand=0.9)).recalled(0.0, []) == []
