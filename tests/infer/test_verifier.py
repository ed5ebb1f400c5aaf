"""The verifier: a brand's reference laid over real renderings of its mark and of counterfeits."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from pipeline.boxes import cut_crops
from pipeline.infer.models import MODELS_DIR
from pipeline.infer.verifier import (
    JUDGE_SIDE,
    NO_FIT,
    OUTLINE_COLOURS,
    Fit,
    MarkVerifier,
    OnnxJudge,
    VerifierConfig,
    aligned_reference,
    anisotropy,
    best_ink,
    box_mask,
    fit_features,
    fit_half,
    fit_reference,
    fitted_ink,
    half_box,
    halved_fit,
    ink_candidates,
    judge_inputs,
    mirror_reference,
    outline_colour,
    overlay,
    reference_mask,
    reseat,
    shifted_box,
    start_warp,
)
from pipeline.synth.counterfeit import make_counterfeit
from pipeline.synth.marks import MarkLibrary
from pipeline.synth.render import (
    MARK,
    Hands,
    Pose,
    SceneItem,
    busy_background,
    gallery_image,
    render_frame,
    render_mark_views,
)

CFG = VerifierConfig()


def scene(
    mask: np.ndarray, colour: tuple[int, int, int], seed: int, size: float = 150.0
) -> tuple[np.ndarray, np.ndarray]:
    """A 400x400 frame with ``mask`` on a product, turned and tilted as a camera would; its box."""
    rng = np.random.default_rng(seed)
    bg = busy_background(rng, 400, 400)
    pose = Pose(200.0, 200.0, size, float(rng.normal(0, 8)), tuple(float(v) for v in rng.uniform(-0.06, 0.06, 8)))
    frame, anns = render_frame(bg, [SceneItem.make(rng, mask, colour)], [pose], rng, effects=0.5)
    box = next(a.box for a in anns if a.category == MARK)
    return frame, np.asarray(box, np.float32)


def score_of(frame: np.ndarray, box: np.ndarray, reference: np.ndarray) -> float:
    inks = ink_candidates(cut_crops(frame, box[None], CFG.side)[0], CFG.clusters)
    return fit_reference(inks, reference_mask(reference, CFG.side), CFG).score(CFG.anisotropy_limit)


@pytest.fixture(scope="module")
def marks(library: MarkLibrary) -> list:
    # Marks with enough structure to fake by every family (not symmetric, not tiny).
    return [m for m in library if min(m.mask.shape) >= 24][:6]


def test_an_authentic_mark_fits_its_reference(marks: list) -> None:
    scores = []
    for i, m in enumerate(marks):
        frame, box = scene(m.mask, m.colour, seed=i)
        scores.append(score_of(frame, box, gallery_image(m.mask, m.colour)))
    assert np.median(scores) >= 0.9, scores


@pytest.mark.parametrize("family", ["mirror", "aspect", "stroke", "erase", "splice", "warp"])
def test_counterfeits_fit_worse_than_the_authentic_mark(marks: list, family: str) -> None:
    rng = np.random.default_rng(7)
    worse = total = 0
    for i, m in enumerate(marks):
        fake = make_counterfeit(m.mask, family, rng, other=marks[(i + 1) % len(marks)].mask)
        if fake is None:
            continue
        ref = gallery_image(m.mask, m.colour)
        real = score_of(*scene(m.mask, m.colour, seed=100 + i), ref)
        faked = score_of(*scene(fake, m.colour, seed=100 + i), ref)
        worse += faked < real
        total += 1
    assert total >= 3
    assert worse / total >= 0.75, f"{family}: {worse} of {total} counterfeits scored below the authentic mark"


@pytest.mark.parametrize(
    ("fit", "expected"),
    [
        (Fit(0.95, 1.1, 0.5), 0.95),  # camera-like warp, mirror worse: agreement as it is
        (Fit(0.95, 1.3 * np.e**0.2, 0.5), 0.75),  # stretched beyond the limit
        (Fit(0.6, 1.0, 0.9), 0.3),  # the mirror image fits better
        (NO_FIT, -1.0),
    ],
)
def test_fit_score(fit: Fit, expected: float) -> None:
    assert fit.score(1.3) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("sx", "sy", "expected"),
    [(1.0, 1.0, 1.0), (2.0, 2.0, 1.0), (1.5, 1.0, 1.5), (1.0, 0.5, 2.0)],
)
def test_anisotropy_of_a_scaling(sx: float, sy: float, expected: float) -> None:
    h = start_warp((0, 0, 10, 10), (0, 0, 10 * sx, 10 * sy), 20.0)
    assert anisotropy(h, 5.0, 5.0) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "h",
    [
        # The line x = 5 goes to infinity: the Jacobian there divides by zero.
        np.array([[1, 0, 0], [0, 1, 0], [1, 0, -5]], np.float32),
        np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32),
        np.array([[np.inf, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32),
    ],
)
def test_anisotropy_of_a_warp_no_camera_makes_is_infinite(h: np.ndarray) -> None:
    # Once (5,000 rendered pairs) an ECC homography did this, and the SVD raised LinAlgError.
    assert anisotropy(h, 5.0, 5.0) == float("inf")


@pytest.mark.parametrize(
    "crop",
    [
        np.full((128, 128, 3), 90, np.uint8),  # a flat crop: no ink to fit
        np.zeros((128, 128, 3), np.uint8),
    ],
)
def test_flat_crops_give_no_fit(crop: np.ndarray, marks: list) -> None:
    inks = ink_candidates(crop)
    assert inks == []
    assert fit_reference(inks, reference_mask(gallery_image(marks[0].mask, marks[0].colour), 128), CFG) == NO_FIT


def test_an_empty_reference_gives_no_fit(marks: list) -> None:
    frame, box = scene(marks[0].mask, marks[0].colour, seed=3)
    blank = np.full((256, 256, 3), 250, np.uint8)
    assert score_of(frame, box, blank) == -1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: reference_mask(np.zeros((10, 10), np.uint8), 64), "expected an \\(H, W, 3\\) uint8 image"),
        (lambda: VerifierConfig(side=16), "coarse <= side"),
        (lambda: VerifierConfig(clusters=1), "clusters"),
        (lambda: VerifierConfig(anisotropy_limit=0.5), "anisotropy_limit"),
        (lambda: VerifierConfig(rescue_shift=0.0), "rescue_shift"),
        (lambda: VerifierConfig(rescue_shift=0.6), "rescue_shift"),
        (lambda: VerifierConfig(halves=1.5), "halves"),
    ],
)
def test_bad_input_is_named(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("sims", "expected"),
    [
        ({}, []),
        ({"a": 0.9, "b": 0.3}, ["a"]),  # below the floor
        ({"a": 0.5, "b": 0.9, "c": 0.7, "d": 0.6}, ["b", "c", "d"]),  # best three, best first
    ],
)
def test_candidates(sims: dict[str, float], expected: list[str]) -> None:
    v = MarkVerifier(lambda ref: None, VerifierConfig(top_brands=3, brand_floor=0.4))
    assert v.candidates(sims) == expected


def test_verifier_scores_each_brand_and_skips_missing_references(marks: list) -> None:
    m, other = marks[0], marks[1]
    images = {1: gallery_image(m.mask, m.colour), 2: gallery_image(other.mask, other.colour)}
    loads: list[int] = []

    def reference_image(ref: int) -> np.ndarray | None:
        loads.append(ref)
        return images.get(ref)

    v = MarkVerifier(reference_image, VerifierConfig(cache=2))
    # cache 2: three references loaded, the oldest (1) is evicted and loaded again
    frame, box = scene(m.mask, m.colour, seed=11)
    found = v.verify(frame, box, {m.slug: 1, other.slug: 2, "gone": 3})
    out = found.scores
    assert set(out) == {m.slug, other.slug}  # a reference whose image is gone gives no score
    assert out[m.slug] > out[other.slug]
    # its own brand's mark lays over it better than another's: what names the brand of a fake
    assert found.same_brand[m.slug] > found.same_brand[other.slug]
    v.verify(frame, box, {m.slug: 1})
    assert loads.count(1) == 2  # evicted once
    v.verify(frame, box, {m.slug: 1})
    assert loads.count(1) == 2  # now cached
    assert not v.verify(frame, box, {}) and v.verify(frame, box, {}).scores == {}


@pytest.mark.parametrize("learned", [False, True])
@pytest.mark.parametrize("workers", [1, 2])
def test_verify_many_matches_one_mark_at_a_time(marks: list, judge: OnnxJudge, workers: int, learned: bool) -> None:
    """Marks aligned on several threads and judged in one model run get exactly the findings each
    gets alone; a mark with no reference and an empty list give nothing."""
    images = {i + 1: gallery_image(m.mask, m.colour) for i, m in enumerate(marks[:3])}
    jobs = []
    for i, m in enumerate(marks[:3]):
        frame, box = scene(m.mask, m.colour, seed=40 + i)
        jobs.append((frame, box, {marks[k].slug: k + 1 for k in range(3)}))
    jobs.append((jobs[0][0], jobs[0][1], {}))
    with MarkVerifier(images.get, VerifierConfig(workers=workers), judge if learned else None) as v:
        alone = [v.verify(*job) for job in jobs]
        together = v.verify_many(jobs)
        assert v.verify_many([]) == []
    assert len(together) == len(jobs) and not together[-1]
    for one, many in zip(alone, together, strict=True):
        assert one.scores.keys() == many.scores.keys()
        for brand in one.scores:
            assert many.scores[brand] == pytest.approx(one.scores[brand], abs=1e-5)
            assert many.same_brand[brand] == pytest.approx(one.same_brand[brand], abs=1e-5)


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        VerifierConfig(workers=0)


def test_overlay_outlines_the_aligned_reference(marks: list) -> None:
    m = marks[0]
    frame, box = scene(m.mask, m.colour, seed=5)
    crop = cut_crops(frame, box[None], CFG.side)[0]
    ref = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
    fit = fit_reference(ink_candidates(crop, CFG.clusters), ref, CFG)
    assert fit.warp is not None and fit.warp.shape == (3, 3)
    drawn = overlay(crop, ref, fit)
    colour = outline_colour(crop)
    line = np.all(drawn == colour, axis=-1) & ~np.all(crop == colour, axis=-1)
    assert line.sum() > CFG.side  # an outline at least a crop side long
    np.testing.assert_array_equal(overlay(crop, ref, NO_FIT), crop)  # no fit: nothing drawn


def test_overlay_hatches_what_the_hand_hides(marks: list) -> None:
    m = marks[0]
    frame, box = scene(m.mask, m.colour, seed=5)
    crop = cut_crops(frame, box[None], CFG.side)[0]
    ref = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
    hidden = np.zeros(crop.shape[:2], bool)
    hidden[:, :20] = True
    drawn = overlay(crop, ref, NO_FIT, hidden)
    grey = np.all(drawn == 128, axis=-1)
    # A third of the hidden pixels are hatched, none outside it.
    assert not grey[~hidden].any() or np.array_equal(grey[~hidden], np.all(crop == 128, axis=-1)[~hidden])
    assert 0.25 < grey[hidden].mean() < 0.45
    np.testing.assert_array_equal(overlay(crop, ref, NO_FIT, np.zeros_like(hidden)), crop)
    with pytest.raises(ValueError, match="hidden mask"):
        overlay(crop, ref, NO_FIT, hidden[:5])


def test_aligned_view_for_evidence(marks: list) -> None:
    m = marks[0]
    v = MarkVerifier(lambda ref: gallery_image(m.mask, m.colour) if ref == 1 else None, CFG)
    frame, box = scene(m.mask, m.colour, seed=6)
    view = v.aligned_view(frame, box, 1)
    assert view is not None and view.shape == (CFG.side, CFG.side, 3)
    assert v.aligned_view(frame, box, 2) is None


@pytest.mark.parametrize(
    ("background", "not_expected"),
    [((0, 230, 0), (0, 255, 0)), ((250, 0, 250), (255, 0, 255)), ((120, 120, 120), None)],
)
def test_outline_colour_stands_out(background: tuple[int, int, int], not_expected: tuple | None) -> None:
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[:] = background
    crop[20:40, 20:40] = 255  # white ink
    colour = outline_colour(crop)
    assert colour in OUTLINE_COLOURS and colour != not_expected


@pytest.mark.parametrize(
    ("fit", "expected"),
    [
        (Fit(0.95, 1.0, 0.5), [0.95, 0.0, 0.0, 0.95]),
        (Fit(0.6, np.e, 0.9), [0.6, 1.0, 0.3, 0.6 - (1 - np.log(1.3)) - 0.3]),
        (NO_FIT, [-1.0, 0.0, 0.0, -1.0]),
    ],
)
def test_fit_features(fit: Fit, expected: list[float]) -> None:
    got = fit_features(fit, 1.3)
    assert got.dtype == np.float32 and got.shape == (4,)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.fixture(scope="module")
def pair(marks: list) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """An authentic mark's verifier crop, its ink candidates and its brand's reference mask."""
    m = marks[0]
    frame, box = scene(m.mask, m.colour, seed=5)
    crop = cut_crops(frame, box[None], CFG.side)[0]
    return crop, ink_candidates(crop, CFG.clusters), reference_mask(gallery_image(m.mask, m.colour), CFG.side)


def test_aligned_reference_and_best_ink(pair: tuple) -> None:
    _, inks, ref = pair
    aligned = aligned_reference(ref, fit_reference(inks, ref, CFG), CFG.side)
    assert aligned.shape == (CFG.side, CFG.side) and aligned.min() >= 0.0 and aligned.max() <= 1.0
    ink = best_ink(inks, aligned)
    # The chosen candidate is the one the aligned reference correlates with best.
    assert np.corrcoef(ink.ravel(), aligned.ravel())[0, 1] == pytest.approx(
        max(np.corrcoef(k.ravel(), aligned.ravel())[0, 1] for k in inks), abs=1e-6
    )
    assert not aligned_reference(ref, NO_FIT, CFG.side).any()  # no fit: nothing laid over
    assert not best_ink([], aligned).any()
    assert not best_ink(inks, np.zeros_like(aligned)).any()


def test_judge_inputs_shapes(pair: tuple) -> None:
    crop, inks, ref = pair
    small, masks, feats = judge_inputs(crop, inks, ref, fit_reference(inks, ref, CFG))
    assert small.shape == (JUDGE_SIDE, JUDGE_SIDE, 3) and small.dtype == np.uint8
    assert masks.shape == (JUDGE_SIDE, JUDGE_SIDE, 2) and masks.dtype == np.float32
    assert feats.shape == (4,)
    with pytest.raises(ValueError, match="square"):
        judge_inputs(crop[:, :100], inks, ref, NO_FIT)


@pytest.fixture(scope="module")
def judge():  # type: ignore[no-untyped-def]
    with OnnxJudge(MODELS_DIR / "verifier.onnx") as j:
        yield j


def test_the_shipped_verifier_model_prefers_authentic_marks(marks: list, judge: OnnxJudge) -> None:
    """Each test mark against its own reference, authentic and faked three ways (unseen brands
    for the model: the sample marks are drawn from every split)."""
    rng = np.random.default_rng(3)
    real, fake = [], []
    for i, m in enumerate(marks):
        ref = {1: gallery_image(m.mask, m.colour)}
        v = MarkVerifier(ref.get, CFG, judge)
        real.append(v.verify(*scene(m.mask, m.colour, seed=200 + i), {m.slug: 1}).scores[m.slug])
        for family in ("stroke", "erase", "aspect"):
            made = make_counterfeit(m.mask, family, rng)
            if made is not None:
                fake.append(v.verify(*scene(made, m.colour, seed=300 + i), {m.slug: 1}).scores[m.slug])
    assert all(0.0 <= p <= 1.0 for p in real + fake)
    assert np.median(real) > 0.5 > np.median(fake), (real, fake)


def test_the_shipped_verifier_model_tells_a_brands_mark_from_anothers(marks: list, judge: OnnxJudge) -> None:
    """Each test mark, authentic and as a stroke fake, against its own brand's reference and the
    next mark's: the same-brand figure is higher for its own brand, fake or not."""
    rng = np.random.default_rng(4)
    own, other = [], []
    for i, m in enumerate(marks):
        n = marks[(i + 1) % len(marks)]
        refs = {1: gallery_image(m.mask, m.colour), 2: gallery_image(n.mask, n.colour)}
        v = MarkVerifier(refs.get, CFG, judge)
        made = make_counterfeit(m.mask, "stroke", rng)
        for shown in (m.mask, made):
            if shown is None:
                continue
            found = v.verify(*scene(shown, m.colour, seed=400 + i), {m.slug: 1, n.slug: 2})
            own.append(found.same_brand[m.slug])
            other.append(found.same_brand[n.slug])
    assert all(0.0 <= p <= 1.0 for p in own + other)
    assert np.median(own) > 0.5 > np.median(other), (own, other)


def test_a_mirrored_fake_is_judged_its_brands_on_the_mirrored_fit(marks: list, judge: OnnxJudge) -> None:
    """Where the mirrored reference fits better, the same-brand figure is the larger of the plain
    and the mirrored alignment's: mirrored fakes read as copies of their brand."""
    rng = np.random.default_rng(0)
    plain, flipped = [], []
    for i, m in enumerate(marks):
        made = make_counterfeit(m.mask, "mirror", rng)
        if made is None:
            continue
        frame, box = scene(made, m.colour, seed=500 + i)
        crop = cut_crops(frame, box[None], CFG.side)[0]
        inks = ink_candidates(crop, CFG.clusters)
        ref = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
        fit = fit_reference(inks, ref, CFG)
        same = judge.judge_pairs([judge_inputs(crop, inks, ref, fit)])[1][0]
        found = MarkVerifier({1: gallery_image(m.mask, m.colour)}.get, CFG, judge).verify(frame, box, {m.slug: 1})
        if fit.mirrored > fit.agreement:
            mirrored = judge.judge_pairs([judge_inputs(crop, inks, mirror_reference(ref), fit.as_mirrored())])[1][0]
            assert found.same_brand[m.slug] == pytest.approx(max(same, mirrored), abs=1e-5)
        else:
            assert found.same_brand[m.slug] == pytest.approx(same, abs=1e-5)
        plain.append(same)
        flipped.append(found.same_brand[m.slug])
    assert np.median(flipped) > np.median(plain), (plain, flipped)


def test_as_mirrored_swaps_the_two_fits() -> None:
    warp, mirror_warp = np.eye(3, dtype=np.float32), 2 * np.eye(3, dtype=np.float32)
    fit = Fit(0.4, 1.1, 0.9, warp, 1.2, mirror_warp).as_mirrored()
    assert (fit.agreement, fit.anisotropy, fit.mirrored) == (0.9, 1.2, 0.4)
    assert fit.warp is mirror_warp and fit.mirror_warp is None


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((2, JUDGE_SIDE, JUDGE_SIDE, 3), (2, JUDGE_SIDE, JUDGE_SIDE, 2), (2, 3)), "expected fit"),
        (((2, 64, 64, 3), (2, JUDGE_SIDE, JUDGE_SIDE, 2), (2, 4)), "expected crops"),
        (((2, JUDGE_SIDE, JUDGE_SIDE, 3), (1, JUDGE_SIDE, JUDGE_SIDE, 2), (2, 4)), "expected masks"),
    ],
)
def test_judge_names_bad_shapes(judge: OnnxJudge, shapes: tuple, message: str) -> None:
    arrays = [np.zeros(s, np.float32) for s in shapes]
    with pytest.raises(ValueError, match=message):
        judge.judge(*arrays)


def test_judge_of_nothing(judge: OnnxJudge) -> None:
    out = judge.judge(
        np.zeros((0, JUDGE_SIDE, JUDGE_SIDE, 3), np.uint8),
        np.zeros((0, JUDGE_SIDE, JUDGE_SIDE, 2), np.float32),
        np.zeros((0, 4), np.float32),
    )
    assert [o.shape for o in out] == [(0,), (0,)]


def test_judge_refuses_another_model() -> None:
    with pytest.raises(ValueError, match="expected a verifier model"):
        OnnxJudge(MODELS_DIR / "embedder.onnx")


def two_tone(hand: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 64 px crop: a dark bar (the mark) on a light product, with a skin-coloured block over its
    right third when ``hand``; and where that block lies."""
    crop = np.full((64, 64, 3), 230, np.uint8)
    crop[24:40, 8:56] = (20, 20, 120)
    hidden = np.zeros((64, 64), bool)
    if hand:
        hidden[:, 44:] = True
        crop[hidden] = (224, 172, 105)
    return crop, hidden


def test_ink_candidates_leave_the_hand_out() -> None:
    crop, hidden = two_tone(hand=True)
    seen = ink_candidates(crop, 3)
    # Without being told, the hand is a colour cluster of its own: some candidate is the hand.
    assert any(c[hidden].mean() > 0.9 for c in seen)
    told = ink_candidates(crop, 3, hidden)
    assert told and all(float(c[hidden].max()) == 0.0 for c in told)
    # The bar's visible part is still a candidate.
    bar = np.zeros((64, 64), bool)
    bar[24:40, 8:44] = True
    assert any(c[bar].mean() > 0.9 and c[~bar & ~hidden].mean() < 0.1 for c in told)


@pytest.mark.parametrize(
    ("hidden", "expected"),
    [
        (None, None),  # nothing hidden: as before
        (np.zeros((64, 64), bool), None),  # an empty mask: as before
        (np.ones((64, 64), bool), []),  # all hidden: nothing to align
    ],
)
def test_ink_candidates_without_a_hand(hidden: np.ndarray | None, expected: list | None) -> None:
    crop, _ = two_tone(hand=False)
    got = ink_candidates(crop, 3, hidden)
    want = ink_candidates(crop, 3) if expected is None else expected
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_judge_inputs_blank_what_the_hand_hides(marks: list) -> None:
    m = marks[0]
    frame, box = scene(m.mask, m.colour, 3)
    crop = cut_crops(frame, box[None], CFG.side)[0]
    reference = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
    inks = ink_candidates(crop, CFG.clusters)
    fit = fit_reference(inks, reference, CFG)
    hidden = np.zeros(crop.shape[:2], bool)
    hidden[:, : CFG.side // 3] = True
    plain = judge_inputs(crop, inks, reference, fit)
    small, masks, figures = judge_inputs(crop, inks, reference, fit, hidden=hidden)
    cut = JUDGE_SIDE // 3 - 1  # the area shrink blends the edge column
    assert masks[:, :cut].max() == 0.0 and masks[:, cut + 2 :].max() > 0.5
    np.testing.assert_array_equal(masks[:, cut + 2 :], plain[1][:, cut + 2 :])
    # Under the hand the crop is one flat colour: the median of what is visible.
    assert small[:, :cut].reshape(-1, 3).std(0).max() == 0.0
    np.testing.assert_array_equal(figures, plain[2])
    with pytest.raises(ValueError, match="hidden mask"):
        judge_inputs(crop, inks, reference, fit, hidden=hidden[:10])


class HalfHand:
    """A hand finder that says a hand covers the left half of every crop (the issue names no real one)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def find(self, crops: np.ndarray) -> np.ndarray:
        self.seen.append(crops.shape)
        out = np.zeros(crops.shape[:3], bool)
        out[:, :, : crops.shape[2] // 2] = True
        return out


def test_the_verifier_asks_where_the_hand_is(marks: list, judge: OnnxJudge) -> None:
    m = marks[1]
    frame, box = scene(m.mask, m.colour, 5)
    refs = {1: gallery_image(m.mask, m.colour)}
    finder = HalfHand()
    with MarkVerifier(refs.get, CFG, judge) as plain, MarkVerifier(refs.get, CFG, judge, finder) as handed:
        a = plain.verify(frame, box, {m.slug: 1})
        b = handed.verify(frame, box, {m.slug: 1})
    assert finder.seen == [(1, CFG.side, CFG.side, 3)]
    # Half the mark hidden: the model sees less of it, and judges differently.
    assert a.scores[m.slug] != b.scores[m.slug]


def test_hand_threshold_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="hand_threshold"):
        VerifierConfig(hand_threshold=1.0)


def test_a_hand_left_out_of_the_fit_leaves_the_mark_fitting(marks: list) -> None:
    """Authentic marks with a hand over a fifth to a third of them: told where the hand is, the
    fit measures the visible part, which fits as an unhidden mark does."""
    told, blind = [], []
    for seed, m in enumerate(marks):
        views = render_mark_views(
            np.random.default_rng(seed),
            m.mask,
            m.colour,
            (CFG.side,),
            apparent=(80.0, 100.0),
            hands=Hands(1.0, (0.2, 0.3)),
        )
        if views is None:
            continue
        crop, hidden = views.crops[0], views.hands[0] > 127
        ref = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
        told.append(fit_reference(ink_candidates(crop, CFG.clusters, hidden), ref, CFG, hidden).agreement)
        blind.append(fit_reference(ink_candidates(crop, CFG.clusters), ref, CFG).agreement)
    assert len(told) >= 4
    assert np.median(told) > np.median(blind) and np.median(told) > 0.8


def test_fit_reference_names_a_hidden_mask_of_another_size(pair: tuple) -> None:
    _, inks, ref = pair
    with pytest.raises(ValueError, match="hidden mask"):
        fit_reference(inks, ref, CFG, np.zeros((10, 10), bool))


@pytest.mark.parametrize(
    ("box", "dx", "dy", "expected"),
    [
        pytest.param((10.0, 20.0, 50.0, 40.0), 0.0, 0.0, (10.0, 20.0, 50.0, 40.0), id="unmoved"),
        pytest.param((10.0, 20.0, 50.0, 40.0), 0.1, 0.0, (14.0, 20.0, 54.0, 40.0), id="right"),
        pytest.param((10.0, 20.0, 50.0, 40.0), 0.0, -0.5, (10.0, 10.0, 50.0, 30.0), id="up"),
        pytest.param((5.0, 5.0, 5.0, 5.0), 0.3, 0.3, (5.0, 5.0, 5.0, 5.0), id="empty-box"),
    ],
)
def test_shifted_box(box: tuple, dx: float, dy: float, expected: tuple) -> None:
    assert shifted_box(box, dx, dy) == pytest.approx(expected)


def _plain(fit: Fit) -> tuple[float, float, float]:
    return fit.agreement, fit.anisotropy, fit.mirrored


@pytest.mark.parametrize("which", ["own", "other"])
def test_rescue_only_ever_finds_a_better_fit(marks: list, which: str) -> None:
    """The wider search runs only when asked and set, and keeps the first search's fit unless a
    shifted start beats it; off (the default) or not asked, the fit is exactly the first search's."""
    m, other = marks[0], marks[1]
    frame, box = scene(m.mask, m.colour, seed=21)
    inks = ink_candidates(cut_crops(frame, box[None], CFG.side)[0], CFG.clusters)
    shown = m if which == "own" else other
    ref = reference_mask(gallery_image(shown.mask, shown.colour), CFG.side)
    plain = fit_reference(inks, ref, CFG)
    assert _plain(fit_reference(inks, ref, CFG, rescue=True)) == _plain(plain)  # off by default
    eager = dataclasses.replace(CFG, rescue=1.01)  # every fit counts as poor
    assert _plain(fit_reference(inks, ref, eager)) == _plain(plain)  # set, but not asked
    rescued = fit_reference(inks, ref, eager, rescue=True)
    assert rescued.agreement >= plain.agreement and rescued.mirrored >= plain.mirrored


@pytest.mark.parametrize(
    ("half", "expected"),
    [
        pytest.param("left", (10.0, 20.0, 30.0, 40.0), id="left"),
        pytest.param("right", (30.0, 20.0, 50.0, 40.0), id="right"),
        pytest.param("top", (10.0, 20.0, 50.0, 30.0), id="top"),
        pytest.param("bottom", (10.0, 30.0, 50.0, 40.0), id="bottom"),
    ],
)
def test_half_box(half: str, expected: tuple) -> None:
    assert half_box((10.0, 20.0, 50.0, 40.0), half) == pytest.approx(expected)


def test_half_box_names_an_unknown_half() -> None:
    with pytest.raises(ValueError, match="expected a half of"):
        half_box((0.0, 0.0, 1.0, 1.0), "middle")


@pytest.mark.parametrize(
    ("box", "margin", "inside"),
    [
        pytest.param((2.0, 2.0, 6.0, 4.0), 0.0, 8, id="plain"),
        pytest.param((2.0, 2.0, 6.0, 4.0), 0.25, 18, id="grown"),  # x 1-7, y 1.5-4.5: 6 x 3
        pytest.param((3.0, 3.0, 3.0, 3.0), 0.5, 0, id="empty"),
        pytest.param((-5.0, -5.0, 50.0, 50.0), 0.0, 100, id="past-the-edges"),
    ],
)
def test_box_mask(box: tuple, margin: float, inside: int) -> None:
    mask = box_mask((10, 10), box, margin)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert int((mask == 255).sum()) == inside


def _splice_case(marks: list, seed: int) -> tuple[list, np.ndarray, Fit, np.ndarray]:
    """A splice of marks[0] (its left half kept, the right half another mark's) and its fit."""
    m, other = marks[0], marks[1]
    spliced = m.mask.copy()
    h, w = spliced.shape
    spliced[:, w // 2 :] = cv2.resize(other.mask, (w, h))[:, w // 2 :]
    frame, box = scene(spliced, m.colour, seed=seed)
    inks = ink_candidates(cut_crops(frame, box[None], CFG.side)[0], CFG.clusters)
    ref = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
    return inks, ref, fit_reference(inks, ref, CFG), spliced


def test_a_splice_fits_its_brands_half_better_than_its_whole(marks: list) -> None:
    inks, ref, whole, _ = _splice_case(marks, seed=31)
    half = fit_half(fitted_ink(inks, ref, whole), ref, CFG)
    assert half.warp is not None and half.mirrored == -1.0
    assert half.agreement > whole.agreement + 0.05, (half.agreement, whole.agreement)


def test_half_fit_of_nothing(marks: list) -> None:
    inks, ref, _, _ = _splice_case(marks, seed=31)
    assert fitted_ink(inks, ref, NO_FIT) is None  # the whole found nothing: no ink, no half either
    assert fitted_ink([], ref, NO_FIT) is None
    assert fit_half(None, ref, CFG) is NO_FIT


def test_halves_raise_a_splices_same_brand_figure_only_when_set(marks: list, judge: OnnxJudge) -> None:
    """Off, the same-brand figure is the whole fit's; on, the splice's kept half raises it, and a
    half's figure counts only where it reaches ``halves``."""
    m = marks[0]
    _, _, _, spliced = _splice_case(marks, seed=31)
    frame, box = scene(spliced, m.colour, seed=31)
    refs = {1: gallery_image(m.mask, m.colour)}
    off = MarkVerifier(refs.get, dataclasses.replace(CFG, halves=-1.0), judge).verify(frame, box, {m.slug: 1})
    eager = MarkVerifier(refs.get, dataclasses.replace(CFG, halves=0.0, halves_below=1.01), judge)
    never = MarkVerifier(refs.get, dataclasses.replace(CFG, halves=1.0, halves_below=1.01), judge)
    on = eager.verify(frame, box, {m.slug: 1})
    # The authenticity figure stays the whole mark's (reseated from the half, still a fake).
    assert on.scores[m.slug] < 0.5 and off.scores[m.slug] < 0.5, (on.scores, off.scores)
    assert on.same_brand[m.slug] > off.same_brand[m.slug]  # half the brand's mark, found
    # At 1 no half's figure counts: what is left is the whole mark's, reseated, and lower.
    assert never.verify(frame, box, {m.slug: 1}).same_brand[m.slug] < on.same_brand[m.slug]


@pytest.mark.parametrize(
    ("changes", "hide", "tried"),
    [
        pytest.param({"halves": 0.8}, False, True, id="splice"),
        pytest.param({"halves": -1.0}, False, False, id="halves-off"),
        pytest.param({"halves": 0.8, "halves_below": 0.0}, False, False, id="whole-agrees-enough"),
        pytest.param({"halves": 0.8}, True, False, id="hand-over-the-mark"),
    ],
)
def test_halved_fit_lays_out_a_half_only_where_streams_would(
    marks: list, changes: dict, hide: bool, tried: bool
) -> None:
    inks, ref, whole, _ = _splice_case(marks, seed=31)
    hidden = np.zeros(inks[0].shape, bool)
    hidden[:8, :8] = hide
    fit, half = halved_fit(inks, ref, whole, hidden, dataclasses.replace(CFG, **changes))
    if not tried:
        assert half is None and fit is whole
        return
    assert half is not None and half.warp is not None
    assert fit.agreement >= whole.agreement  # reseated only where the whole then agrees better


def test_reseat_finds_the_alignment_of_an_authentic_mark_laid_askew(marks: list) -> None:
    m = marks[0]
    frame, box = scene(m.mask, m.colour, seed=23)
    inks = ink_candidates(cut_crops(frame, box[None], CFG.side)[0], CFG.clusters)
    ref = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
    good = fit_reference(inks, ref, CFG)
    assert good.warp is not None and good.agreement > 0.9
    shift = np.eye(3, dtype=np.float32)
    shift[0, 2] = 10.0  # the reference laid 10 px off, as onto a neighbouring stroke
    askew = Fit(0.3, good.anisotropy, good.mirrored, shift @ good.warp)
    half = fit_half(fitted_ink(inks, ref, good), ref, CFG)
    reseated = reseat(fitted_ink(inks, ref, askew), ref, askew, half, CFG)
    assert reseated.agreement > 0.9 and reseated.mirrored == askew.mirrored
    assert reseat(fitted_ink(inks, ref, askew), ref, askew, NO_FIT, CFG) is askew  # nothing to start from
    assert reseat(fitted_ink(inks, ref, good), ref, good, half, CFG).agreement >= good.agreement  # never worse


@pytest.mark.parametrize(("hand", "tried"), [(False, True), (True, False)])
def test_halves_are_not_tried_where_a_hand_hides_the_mark(
    marks: list, judge: OnnxJudge, monkeypatch: pytest.MonkeyPatch, hand: bool, tried: bool
) -> None:
    """A hand over half an authentic mark leaves its visible half fitting the reference's half as a
    splice's kept half does: with a hand found, no half is fitted."""
    import pipeline.infer.verifier as verifier_module

    calls = []
    real = verifier_module.fit_half
    monkeypatch.setattr(verifier_module, "fit_half", lambda *a, **k: calls.append(1) or real(*a, **k))
    m = marks[0]
    _, _, _, spliced = _splice_case(marks, seed=31)
    frame, box = scene(spliced, m.colour, seed=31)
    refs = {1: gallery_image(m.mask, m.colour)}
    eager = dataclasses.replace(CFG, halves=0.0, halves_below=1.01)
    with MarkVerifier(refs.get, eager, judge, HalfHand() if hand else None) as verifier:
        verifier.verify(frame, box, {m.slug: 1})
    assert bool(calls) is tried


@pytest.mark.parametrize("halves", [-1.0, 0.0])
def test_evidence_shows_the_alignment_the_verifier_judged(marks: list, judge: OnnxJudge, halves: float) -> None:
    """The evidence overlay lays the reference as the verifier judged it: reseated from its best
    half where halves are on, the plain fit where they are off."""
    m = marks[0]
    _, _, _, spliced = _splice_case(marks, seed=31)
    frame, box = scene(spliced, m.colour, seed=31)
    refs = {1: gallery_image(m.mask, m.colour)}
    cfg = dataclasses.replace(CFG, halves=halves, halves_below=1.01)
    crop = cut_crops(frame, box[None], CFG.side)[0]
    inks = ink_candidates(crop, CFG.clusters)
    ref = reference_mask(refs[1], CFG.side)
    plain = fit_reference(inks, ref, cfg)
    ink = fitted_ink(inks, ref, plain)
    judged = reseat(ink, ref, plain, fit_half(ink, ref, cfg), cfg) if halves >= 0 else plain
    with MarkVerifier(refs.get, cfg, judge) as verifier:
        view = verifier.aligned_view(frame, box, 1)
    assert view is not None
    np.testing.assert_array_equal(view, overlay(crop, ref, judged))
    if halves >= 0:
        assert judged.agreement > plain.agreement  # the reseated alignment is another one


def _counted_fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on the ECC fits ``fit_reference`` runs: the motion of each (affine or homography)."""
    import pipeline.infer.verifier as verifier

    motions: list[int] = []
    ecc = verifier._ecc

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        motions.append(args[3])
        return ecc(*args, **kwargs)

    monkeypatch.setattr(verifier, "_ecc", counted)
    return motions


@pytest.mark.parametrize(
    ("angles_below", "every_angle"),
    [
        pytest.param(-1.0, True, id="off-every-angle"),
        pytest.param(1.01, True, id="never-fits-that-well"),
        pytest.param(0.0, False, id="first-angle-enough"),
    ],
)
def test_angles_below_skips_the_other_start_angles(
    monkeypatch: pytest.MonkeyPatch, pair: tuple, angles_below: float, every_angle: bool
) -> None:
    _, inks, ref = pair
    full = fit_reference(inks, ref, CFG)
    motions = _counted_fits(monkeypatch)
    fit = fit_reference(inks, ref, dataclasses.replace(CFG, angles_below=angles_below))
    # Every ink from the first angle in both mirror states; the best inks from the others.
    first = 2 * len(inks)
    turned = min(CFG.search_inks, len(inks)) * 2 * (len(CFG.angles) - 1)
    assert motions.count(cv2.MOTION_AFFINE) == first + (turned if every_angle else 0)
    # An authentic mark's alignment barely depends on the turned starts.
    assert fit.agreement == pytest.approx(full.agreement, abs=0.02) and fit.agreement >= 0.8


@pytest.mark.parametrize(
    ("mirror_gap", "refined_mirror"),
    [
        pytest.param(-1.0, True, id="off-always-refined"),
        pytest.param(2.0, True, id="gap-never-that-wide"),
        pytest.param(0.0, False, id="any-gap"),
    ],
)
def test_mirror_gap_leaves_a_far_worse_mirror_unrefined(
    monkeypatch: pytest.MonkeyPatch, pair: tuple, mirror_gap: float, refined_mirror: bool
) -> None:
    _, inks, ref = pair
    full = fit_reference(inks, ref, CFG)
    assert full.mirrored < full.agreement  # the test mark is no mirror image of itself
    motions = _counted_fits(monkeypatch)
    fit = fit_reference(inks, ref, dataclasses.replace(CFG, mirror_gap=mirror_gap))
    assert motions.count(cv2.MOTION_HOMOGRAPHY) == (2 if refined_mirror else 1)
    assert (fit.mirror_warp is not None) == refined_mirror
    assert fit.agreement == full.agreement and fit.warp is not None  # the plain fit is untouched
    if not refined_mirror:
        assert -1.0 < fit.mirrored < fit.agreement  # its coarse agreement, still behind
        assert fit.score() == pytest.approx(full.score())  # no mirror excess either way


@pytest.mark.parametrize(("fine", "tolerance"), [(0, 0.0), (128, 0.0), (96, 1.0), (64, 2.0)])
def test_the_fine_fit_at_fewer_pixels_lands_where_the_full_size_one_does(marks: list, fine: int, tolerance: float):
    # verifier.fine: the homography fitted on the crop and reference shrunk, its warp given back at
    # the crop's scale; 0 (and the crop's own side) fit at full size, bit for bit.
    for i, m in enumerate(marks[:4]):
        frame, box = scene(m.mask, m.colour, seed=i)
        inks = ink_candidates(cut_crops(frame, box[None], CFG.side)[0], CFG.clusters)
        reference = reference_mask(gallery_image(m.mask, m.colour), CFG.side)
        full = fit_reference(inks, reference, CFG)
        shrunk = fit_reference(inks, reference, dataclasses.replace(CFG, fine=fine))
        assert full.warp is not None and shrunk.warp is not None
        # Where the two warps send the crop's corners and centre, in crop pixels.
        points = np.array([[0, 0, 1], [127, 0, 1], [0, 127, 1], [127, 127, 1], [64, 64, 1]], np.float64).T
        a, b = full.warp.astype(np.float64) @ points, shrunk.warp.astype(np.float64) @ points
        apart = np.abs(a[:2] / a[2] - b[:2] / b[2]).max()
        assert apart <= tolerance, (m.slug, apart)
        assert abs(full.agreement - shrunk.agreement) <= 0.02 * tolerance, (m.slug, full.agreement, shrunk.agreement)
