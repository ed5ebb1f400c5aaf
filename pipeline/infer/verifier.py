"""Mark verification: lay the brand's authentic mark over the crop and measure what is left.

The embedder compares two vectors of a 64 px crop; in a stream a mark is often 100-200 px
across, and a stroke a few pixels heavier, a stretched axis or a mirrored part is lost in the
shrink. The verifier looks at the crop cut from the full-resolution frame instead. It splits the
crop into colour clusters (one of them, or all but one, is the mark's ink), aligns the
reference's ink coverage onto each candidate by enhanced correlation (ECC: a coarse affine
search over a few start angles and the mirror image, then a homography), and reports:

- ``agreement``: the correlation of the aligned reference with the crop's ink (1 = identical);
  a counterfeit's erased, added, spliced or re-weighted parts stay misaligned under any
  camera-like warp;
- ``anisotropy``: how unequally the fitted warp stretches the two axes; camera tilt explains
  about 1.3, a stretched counterfeit needs 1.4-1.9;
- ``mirrored``: the agreement of the mirrored reference; above ``agreement`` the mark is a
  mirror image of the brand's.

With a verifier model (``models/verifier.onnx``), a small network then judges the aligned pair
itself: the crop, its ink and the reference warped onto it, side by side at ``JUDGE_SIDE``
pixels, beside the fit's figures. It sees where the ink leaves the reference (a heavier stroke,
an added dot) rather than one correlation over the whole mark, and never learns brands: a new
brand needs only its gallery image. A second output says whether the mark is the brand's mark at
all, authentic or a copy, rather than another brand's: what names the brand a fake imitates and
turns away marks of brands outside the gallery. Without the model the score is the hand-made
``Fit.score`` and the second figure ``Fit.alignment``.

Where a presenter's hand covers part of the mark (found by the hand net, ``pipeline.infer.hands``),
that part is left out of the ink candidates, of the ECC objective and of what the model compares:
a part hidden is not a part erased.

The alignment is numpy/OpenCV on the CPU; ``MarkVerifier`` caches reference masks per gallery
reference, ``OnnxJudge`` owns the network's session.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from pipeline.boxes import cut_crops, iou_matrix
from pipeline.gallery.references import coverage
from pipeline.infer.hands import HandFinder, hidden_part
from pipeline.infer.session import DEFAULT_PROVIDERS, OnnxSession

JUDGE_SIDE = 96  # pixels of the pair the verifier model judges (the 128 px crop, shrunk)
FIT_FEATURES = 4  # agreement, log anisotropy, mirror excess, hand-made score


@dataclass(frozen=True)
class VerifierConfig:
    """Verifier settings (``verifier:`` in configs/fakewatch.yaml)."""

    enabled: bool = True  # samples carry verifier findings the verdict weighs (costs CPU; see configs)
    side: int = 128  # pixels of the square crop cut from the full-resolution frame
    coarse: int = 48  # pixels of the coarse affine search
    # Start angles of the coarse search (degrees); the first is tried on every ink candidate.
    angles: tuple[float, ...] = (0.0, -20.0, 20.0)
    search_inks: int = 2  # ink candidates the other start angles are tried on
    # A mirror state whose fits from the first start angle already agree this well is not searched
    # from the others (-1 = always searched): those starts end in the same alignment, a few
    # thousandths better at most.
    angles_below: float = -1.0
    # The mirrored reference's coarse fit is refined only where it comes within this of the plain
    # reference's (-1 = always refined); further behind, it keeps its coarse agreement and no warp:
    # a mark that fits its mirror image that much worse is no mirror copy.
    mirror_gap: float = -1.0
    # A fit of a mark's nearest brand that agrees less than this is searched again from starts
    # shifted by `rescue_shift` of the ink's box (-1 = never): thin parallel strokes lock the
    # search onto the neighbouring stroke, and an authentic mark laid over askew reads as a fake.
    rescue: float = -1.0
    rescue_shift: float = 0.08  # shift of those starts, as a fraction of the ink's box
    # A splice keeps one half of its brand's mark exactly and replaces the other: the brand's mark
    # laid over the whole crop reads as another brand's. Where a fit agrees less than
    # `halves_below`, each half of the reference is also laid over the matching half of the crop's
    # ink, and the model's same-brand figure of the best half's alignment counts where it reaches
    # `halves` (-1 = never). Not tried where a presenter's hand hides part of the mark.
    halves: float = -1.0
    halves_below: float = 0.9
    # A half's fit counts only where the whole reference it implies covers the crop's ink box by
    # at least this IoU: a splice is its brand's mark in size, while a detector box around one
    # letter of a wordmark fits that letter to the reference's half and implies a mark beyond it.
    halves_cover: float = 0.65
    coarse_iterations: int = 25  # ECC iterations of each coarse affine fit
    keep: int = 1  # coarse fits refined by a homography, per mirror state
    fine_iterations: int = 30  # ECC iterations of that homography
    # Pixels of the square that homography is fitted at (0 = the crop's `side`): the judge sees the
    # pair at 96 px, and the fit's cost grows with its pixels.
    fine: int = 0
    clusters: int = 3  # colour clusters the crop is split into
    top_brands: int = 3  # brands verified per mark: its nearest by identity...
    brand_floor: float = 0.4  # ...with at least this identity similarity
    # Where a mark's track has found no brand's mark yet (`verdict.recall_brand`), each half of its
    # crop is embedded alone, and the brand nearest a half is checked too where that half's identity
    # similarity reaches this (-1 = never): the half a splice keeps sits near its brand, the whole
    # crop rarely does.
    half_brands: float = -1.0
    anisotropy_limit: float = 1.3  # axis stretch camera tilt explains; beyond it counts against the mark
    cache: int = 512  # reference masks kept
    learned: bool = True  # judge each aligned pair with the verifier model (models.verifier); off: Fit.score
    hands: bool = True  # leave a presenter's hand (models.hands) out of the alignment and the judgement
    hand_threshold: float = 0.5  # hand net probability above which a pixel counts as hand
    workers: int = 2  # threads aligning marks at once (OpenCV lets go of the GIL)

    def __post_init__(self) -> None:
        if self.side < 32 or self.coarse < 16 or self.coarse > self.side:
            raise ValueError(f"verifier: expected 16 <= coarse <= side and side >= 32, got {self.coarse}, {self.side}")
        if self.clusters < 2:
            raise ValueError(f"verifier: clusters must be 2 or more, got {self.clusters}")
        if self.anisotropy_limit < 1.0:
            raise ValueError(f"verifier: anisotropy_limit must be >= 1, got {self.anisotropy_limit}")
        if self.workers < 1:
            raise ValueError(f"verifier: workers must be 1 or more, got {self.workers}")
        if not 0.0 < self.hand_threshold < 1.0:
            raise ValueError(f"verifier: hand_threshold must lie in (0, 1), got {self.hand_threshold}")
        if not 0.0 < self.rescue_shift < 0.5:
            raise ValueError(f"verifier: rescue_shift must lie in (0, 0.5), got {self.rescue_shift}")
        if self.halves > 1.0:
            raise ValueError(f"verifier: halves must be at most 1 (-1 = never), got {self.halves}")
        if self.half_brands > 1.0:
            raise ValueError(f"verifier: half_brands must be at most 1 (-1 = never), got {self.half_brands}")


@dataclass(frozen=True)
class Fit:
    """How well a brand's reference mark lays over a crop."""

    agreement: float  # ECC correlation of the aligned reference (-1 when no fit converged)
    anisotropy: float  # singular-value ratio of the fitted warp at the mark's centre
    mirrored: float  # the same correlation for the mirrored reference
    warp: np.ndarray | None = field(default=None, compare=False, repr=False)  # (3, 3) crop -> reference, plain fit
    mirror_anisotropy: float = 1.0  # the mirrored fit's singular-value ratio
    mirror_warp: np.ndarray | None = field(default=None, compare=False, repr=False)  # crop -> mirrored reference

    def score(self, anisotropy_limit: float = 1.3) -> float:
        """Agreement less what a camera cannot explain (stretch, a mirror image fitting better)."""
        stretch = max(float(np.log(max(self.anisotropy, 1e-3) / anisotropy_limit)), 0.0)
        return float(self.agreement - stretch - max(self.mirrored - self.agreement, 0.0))

    def as_mirrored(self) -> Fit:
        """The mirrored reference's fit seen as the plain one (for ``mirror_reference``): a mirror
        image of the brand's mark judged against the brand's mark mirrored."""
        return Fit(self.mirrored, self.mirror_anisotropy, self.agreement, self.mirror_warp)

    @property
    def alignment(self) -> float:
        """How well the reference lays over the crop at all, plain or mirrored (-1: no fit)."""
        return max(self.agreement, self.mirrored)


NO_FIT = Fit(-1.0, 1.0, -1.0)


@dataclass(frozen=True)
class Verification:
    """What the verifier found of one mark, per candidate brand.

    ``scores``: is it the brand's authentic mark (the model's probability, else ``Fit.score``).
    ``same_brand``: is it the brand's mark at all, authentic or a copy (the model's probability,
    else ``Fit.alignment``). A fake scores low against every brand; the second figure still
    tells its own brand from a neighbouring one, and a mark of an unenrolled brand from both.
    """

    scores: dict[str, float] = field(default_factory=dict)
    same_brand: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.scores) != set(self.same_brand):
            scored, kin = sorted(self.scores), sorted(self.same_brand)
            raise ValueError(f"expected one same-brand figure per scored brand, got {scored} and {kin}")

    def __bool__(self) -> bool:
        return bool(self.scores)


def fit_features(fit: Fit, anisotropy_limit: float = 1.3) -> np.ndarray:
    """(4,) float32 of what the fit measured: agreement, log anisotropy, mirror excess, ``Fit.score``."""
    return np.array(
        [
            fit.agreement,
            np.log(max(fit.anisotropy, 1e-3)),
            max(fit.mirrored - fit.agreement, 0.0),
            fit.score(anisotropy_limit),
        ],
        np.float32,
    )


def aligned_reference(reference: np.ndarray, fit: Fit, side: int) -> np.ndarray:
    """The reference mask warped onto the crop (``side`` px square, float32 in [0, 1]); zeros without a fit."""
    if fit.warp is None:
        return np.zeros((side, side), np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return np.clip(cv2.warpPerspective(reference, fit.warp, (side, side), flags=flags), 0.0, 1.0)


def best_ink(inks: Sequence[np.ndarray], aligned: np.ndarray) -> np.ndarray:
    """The ink candidate that correlates best with the aligned reference (zeros when there is none)."""
    if not inks or not aligned.any():
        return np.zeros_like(aligned)
    a = aligned - aligned.mean()
    na = float(np.linalg.norm(a))

    def corr(ink: np.ndarray) -> float:
        k = ink - ink.mean()
        return float((a * k).sum() / (na * float(np.linalg.norm(k)) + 1e-6))

    return max(inks, key=corr)


def _hidden_mask(hidden: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``hidden`` checked against the crop's (S, S) ``shape``; None where it hides nothing."""
    if hidden is None:
        return None
    if hidden.shape != shape:
        raise ValueError(f"expected a {shape} hidden mask, got {hidden.shape}")
    return hidden if hidden.any() else None


def judge_inputs(
    crop: np.ndarray,
    inks: Sequence[np.ndarray],
    reference: np.ndarray,
    fit: Fit,
    anisotropy_limit: float = 1.3,
    hidden: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the verifier model reads for one aligned pair.

    Args:
        crop: the (S, S, 3) uint8 verifier crop.
        inks: its ``ink_candidates``.
        reference: the brand's ``reference_mask``.
        fit: ``fit_reference(inks, reference)``.
        hidden: (S, S) bool, where a presenter's hand covers the crop: there the crop takes the
            median colour of what is visible and both masks are blank, so a part hidden is not
            compared (and does not read as a part erased).

    Returns:
        The crop (JUDGE_SIDE, JUDGE_SIDE, 3) uint8, the crop's ink and the aligned reference
        (JUDGE_SIDE, JUDGE_SIDE, 2) float32, and ``fit_features`` (4,) float32.
    """
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1] or crop.dtype != np.uint8:
        raise ValueError(f"expected a square (S, S, 3) uint8 crop, got {crop.shape} {crop.dtype}")
    side = crop.shape[0]
    aligned = aligned_reference(reference, fit, side)
    masks = np.stack([best_ink(inks, aligned), aligned], axis=2).astype(np.float32)
    hidden = _hidden_mask(hidden, crop.shape[:2])
    if hidden is not None:
        crop = crop.copy()
        if not hidden.all():
            crop[hidden] = np.median(crop[~hidden], axis=0).astype(np.uint8)
        masks[hidden] = 0.0
    size = (JUDGE_SIDE, JUDGE_SIDE)
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    small_masks = cv2.resize(masks, size, interpolation=cv2.INTER_AREA)
    return small, small_masks, fit_features(fit, anisotropy_limit)


def mirror_reference(reference: np.ndarray) -> np.ndarray:
    """A ``reference_mask`` mirrored left to right, as ``fit_reference`` fits it."""
    return np.ascontiguousarray(reference[:, ::-1])


def reference_mask(image: np.ndarray, side: int) -> np.ndarray:
    """The ink coverage of a gallery image, centred at 70% of a ``2 * side`` float32 canvas."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    mask, _ = coverage(image)
    canvas = 2 * side
    out = np.zeros((canvas, canvas), np.float32)
    if mask.size == 0:
        return out
    h, w = mask.shape
    s = canvas * 0.7 / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    y0, x0 = (canvas - nh) // 2, (canvas - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out


def ink_candidates(crop: np.ndarray, clusters: int = 3, hidden: np.ndarray | None = None) -> list[np.ndarray]:
    """Soft masks that may be the mark's ink: each colour cluster, and each one's complement.

    Which cluster is ink is not known (a light mark on a dark product, a hand over it); the
    alignment tries them all and keeps the one the reference fits best. ``hidden``: an (S, S)
    bool mask of what a presenter's hand covers (``pipeline.infer.hands``): left out of the
    clusters, so the hand takes none of them, and out of every candidate.
    """
    hidden = _hidden_mask(hidden, crop.shape[:2])
    lab = cv2.cvtColor(cv2.GaussianBlur(crop, (0, 0), 1.0), cv2.COLOR_RGB2LAB).astype(np.float32)
    px = lab.reshape(-1, 3)
    visible = np.ones(crop.shape[:2], bool) if hidden is None else ~hidden
    # A hand over nearly all of the crop leaves nothing to align.
    if visible.mean() < 0.1:
        return []
    seen = px[visible.reshape(-1)]
    if len(np.unique(seen[:: max(1, len(seen) // 512)], axis=0)) < clusters:
        return []
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)  # k-means++ seeding: the same crop always gives the same masks
    # Cluster a quarter of the visible pixels (every other row and column), then label them all.
    sub = lab[::2, ::2][visible[::2, ::2]].reshape(-1, 3)
    _, _, centres = cv2.kmeans(sub, clusters, None, crit, 2, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
    ids = np.argmin(((px[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1).reshape(crop.shape[:2])
    share = float(visible.mean())
    out = []
    for c in range(clusters):
        m = ((ids == c) & visible).astype(np.float32)
        frac = float(m.mean()) / share
        # Blurred, then cut back to what is visible: no ink bleeds under the hand.
        if 0.03 < frac < 0.85:
            out.append(cv2.GaussianBlur(m, (0, 0), 0.8) * visible)
        if clusters > 2 and 0.03 < 1 - frac < 0.85:
            out.append(cv2.GaussianBlur((1 - m) * visible, (0, 0), 0.8) * visible)
    return out


def _tight(mask: np.ndarray, level: float) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask > level)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def start_warp(crop_box: tuple[float, ...], ref_box: tuple[float, ...], angle: float) -> np.ndarray:
    """A (3, 3) crop -> reference map sending one box onto the other, turned by ``angle`` degrees."""
    cx, cy = (crop_box[0] + crop_box[2]) / 2, (crop_box[1] + crop_box[3]) / 2
    rx, ry = (ref_box[0] + ref_box[2]) / 2, (ref_box[1] + ref_box[3]) / 2
    sx = (ref_box[2] - ref_box[0]) / max(crop_box[2] - crop_box[0], 1.0)
    sy = (ref_box[3] - ref_box[1]) / max(crop_box[3] - crop_box[1], 1.0)
    a = np.deg2rad(angle)
    lin = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([sx, sy])
    h = np.eye(3, dtype=np.float32)
    h[:2, :2] = lin
    h[:2, 2] = np.array([rx, ry]) - lin @ np.array([cx, cy])
    return h


def anisotropy(h: np.ndarray, x: float, y: float) -> float:
    """Singular-value ratio of the homography's Jacobian at (x, y): 1 for a similarity; infinite
    where the homography sends (x, y) to infinity (or holds no finite numbers): no camera does."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
        v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
        rows = [[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]], [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]
        jac = np.array(rows) / w
    if not np.isfinite(jac).all():
        # The SVD of such a Jacobian does not converge (a LinAlgError, seen once in 5,000 pairs).
        return float("inf")
    s = np.linalg.svd(jac, compute_uv=False)
    return float(s[0] / max(s[1], 1e-6))


def ink_anisotropy(h: np.ndarray, ink: np.ndarray) -> float:
    """``anisotropy`` of the warp at the centre of the ink's box (the crop's centre without ink)."""
    box = _tight(ink, 0.5) or (0.0, 0.0, float(ink.shape[1]), float(ink.shape[0]))
    return anisotropy(h, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def _ecc(
    template: np.ndarray,
    image: np.ndarray,
    h: np.ndarray,
    motion: int,
    iters: int,
    blur: int,
    template_mask: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iters, 1e-5 if motion == cv2.MOTION_HOMOGRAPHY else 1e-4)
    warp = h.copy() if motion == cv2.MOTION_HOMOGRAPHY else h[:2].copy()
    try:
        if template_mask is None:
            # OpenCV's stubs do not allow the None mask the function takes.
            rho, warp = cv2.findTransformECC(template, image, warp, motion, crit, None, blur)  # type: ignore[call-overload]
        else:
            # Only the template's (the crop's) visible pixels count: where a hand covers the mark,
            # the reference's ink finds no ink to match and would pull the fit off the rest. The
            # reference is valid everywhere (no input mask; the stubs do not allow that None either).
            rho, warp = cv2.findTransformECCWithMask(  # type: ignore[call-overload]
                template, image, template_mask, None, warp, motion, crit, blur
            )
    except cv2.error:  # no convergence (a flat mask, a degenerate warp)
        return -1.0, h
    if motion != cv2.MOTION_HOMOGRAPHY:
        warp = np.vstack([warp, [0, 0, 1]]).astype(np.float32)
    return float(rho), warp


def _ecc_scaled(
    size: int,
    template: np.ndarray,
    image: np.ndarray,
    h: np.ndarray,
    motion: int,
    iters: int,
    blur: int,
    template_mask: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """``_ecc`` fitted on ``template`` (square) shrunk to ``size`` pixels and ``image`` by the same
    factor, the warp given and returned at their own scale; at full size where ``size`` is 0 or no
    smaller."""
    side = template.shape[0]
    if size <= 0 or size >= side:
        return _ecc(template, image, h, motion, iters, blur, template_mask)
    d = size / side
    # A resize maps pixel centres: x -> d (x + 0.5) - 0.5.
    c = 0.5 * d - 0.5
    down = np.array([[d, 0, c], [0, d, c], [0, 0, 1]], np.float32)
    up = np.linalg.inv(down).astype(np.float32)
    shrink = (size, size)
    mask = None if template_mask is None else cv2.resize(template_mask, shrink, interpolation=cv2.INTER_NEAREST)
    rho, warp = _ecc(
        cv2.resize(template, shrink, interpolation=cv2.INTER_AREA),
        cv2.resize(image, None, fx=d, fy=d, interpolation=cv2.INTER_AREA),
        down @ h @ up,
        motion,
        iters,
        blur,
        mask,
    )
    return rho, (up @ warp @ down).astype(np.float32) if rho > -1.0 else h


def shifted_box(box: tuple[float, ...], dx: float, dy: float) -> tuple[float, ...]:
    """``box`` (x0, y0, x1, y1) moved by ``dx`` and ``dy`` of its width and height."""
    w, h = box[2] - box[0], box[3] - box[1]
    return (box[0] + dx * w, box[1] + dy * h, box[2] + dx * w, box[3] + dy * h)


def fit_reference(
    inks: list[np.ndarray],
    reference: np.ndarray,
    cfg: VerifierConfig,
    hidden: np.ndarray | None = None,
    rescue: bool = False,
) -> Fit:
    """Align ``reference`` (a ``reference_mask``) onto the best of the crop's ink candidates.

    ``hidden``: (S, S) bool, where a presenter's hand covers the crop: those pixels are left out
    of the fit, so the agreement is measured over what is visible. ``rescue``: where the best fit
    agrees less than ``cfg.rescue``, search again from starts shifted up, down, left and right.
    """
    if not inks or not reference.any() or not cfg.angles:
        return NO_FIT
    hidden = _hidden_mask(hidden, inks[0].shape)
    side, coarse = inks[0].shape[0], cfg.coarse
    ref_box = _tight(reference, 0.3)
    if ref_box is None:
        return NO_FIT
    refs = {False: reference, True: mirror_reference(reference)}
    c = reference.shape[1]
    ref_boxes = {False: ref_box, True: (c - ref_box[2], ref_box[1], c - ref_box[0], ref_box[3])}
    down = coarse / side
    small_refs = {m: cv2.resize(r, None, fx=down, fy=down, interpolation=cv2.INTER_AREA) for m, r in refs.items()}
    # Coarse: an affine fit of both mirror states on every ink candidate from the first start
    # angle; the other start angles only on the candidates that fitted best.
    small_inks: dict[int, tuple[np.ndarray, tuple[float, ...]]] = {}
    for i, ink in enumerate(inks):
        small = cv2.resize(ink, (coarse, coarse), interpolation=cv2.INTER_AREA)
        box = _tight(small, 0.5)
        if box is not None:
            small_inks[i] = (small, box)
    small_boxes = {m: tuple(v * down for v in b) for m, b in ref_boxes.items()}
    visible = small_visible = None
    if hidden is not None:
        visible = np.where(hidden, 0, 255).astype(np.uint8)
        small_visible = cv2.resize(visible, (coarse, coarse), interpolation=cv2.INTER_NEAREST)

    def coarse_fit(
        i: int, mirrored: bool, angle: float, shift: tuple[float, float] = (0.0, 0.0)
    ) -> tuple[float, int, bool, np.ndarray]:
        small, box = small_inks[i]
        warp = start_warp(shifted_box(box, *shift), small_boxes[mirrored], angle)
        rho, h = _ecc(small, small_refs[mirrored], warp, cv2.MOTION_AFFINE, cfg.coarse_iterations, 3, small_visible)
        return rho, i, mirrored, h

    # Fine: the best coarse fits refined to a homography at full crop size.
    up = np.diag([1 / down, 1 / down, 1.0]).astype(np.float32)
    back = np.diag([down, down, 1.0]).astype(np.float32)
    best: dict[bool, tuple[float, float, np.ndarray | None]] = {False: (-1.0, 1.0, None), True: (-1.0, 1.0, None)}

    def refine(found: list[tuple[float, int, bool, np.ndarray]]) -> None:
        tried = {False: 0, True: 0}
        plain = max((f[0] for f in found if not f[2]), default=-1.0)
        for coarse_rho, i, mirrored, h in sorted(found, key=lambda f: -f[0]):
            # A coarse fit that did not converge (-1) is never refined.
            if coarse_rho <= -1.0 or tried[mirrored] >= cfg.keep:
                continue
            tried[mirrored] += 1
            if mirrored and cfg.mirror_gap >= 0 and coarse_rho < plain - cfg.mirror_gap:
                if coarse_rho > best[True][0]:
                    best[True] = (coarse_rho, 1.0, None)
                continue
            warp = up @ h @ back
            rho, hh = _ecc_scaled(
                cfg.fine, inks[i], refs[mirrored], warp, cv2.MOTION_HOMOGRAPHY, cfg.fine_iterations, 5, visible
            )
            if rho > best[mirrored][0]:
                stretch = ink_anisotropy(hh, inks[i])
                # A homography that sends the mark's centre to infinity is no alignment at all.
                if np.isfinite(stretch):
                    best[mirrored] = (rho, stretch, hh)

    first, rest = cfg.angles[0], cfg.angles[1:]
    found = [coarse_fit(i, m, first) for i in small_inks for m in (False, True)]
    best_inks = sorted(small_inks, key=lambda i: -max(f[0] for f in found if f[1] == i))[: cfg.search_inks]
    searched = [m for m in (False, True) if not _fits_well(found, m, cfg.angles_below)]
    found += [coarse_fit(i, m, a) for i in best_inks for m in searched for a in rest]
    refine(found)
    if rescue and cfg.rescue >= 0 and max(best[False][0], best[True][0]) < cfg.rescue and best_inks:
        d = cfg.rescue_shift
        shifts = [(-d, 0.0), (d, 0.0), (0.0, -d), (0.0, d)]
        refine([coarse_fit(best_inks[0], m, first, sh) for m in (False, True) for sh in shifts])
    return Fit(best[False][0], best[False][1], best[True][0], best[False][2], best[True][1], best[True][2])


def _fits_well(found: list[tuple[float, int, bool, np.ndarray]], mirrored: bool, level: float) -> bool:
    """Whether a coarse fit of that mirror state agrees at least ``level`` (never where it is negative)."""
    return level >= 0 and max((f[0] for f in found if f[2] == mirrored), default=-1.0) >= level


HALVES = ("left", "right", "top", "bottom")


def half_box(box: tuple[float, ...], half: str) -> tuple[float, float, float, float]:
    """One half (``HALVES``) of a box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box[:4]
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    halves = {"left": (x0, y0, mx, y1), "right": (mx, y0, x1, y1), "top": (x0, y0, x1, my), "bottom": (x0, my, x1, y1)}
    if half not in halves:
        raise ValueError(f"expected a half of {HALVES}, got {half!r}")
    return halves[half]


def box_mask(shape: tuple[int, int], box: tuple[float, ...], margin: float = 0.0) -> np.ndarray:
    """(H, W) uint8, 255 inside ``box`` grown by ``margin`` of its size on every side, 0 elsewhere."""
    x0, y0, x1, y1 = box[:4]
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    ys, xs = np.indices(shape)
    inside = (xs >= x0 - mx) & (xs < x1 + mx) & (ys >= y0 - my) & (ys < y1 + my)
    return np.where(inside, 255, 0).astype(np.uint8)


def implied_cover(warp: np.ndarray, ref_box: tuple[float, ...], ink_box: tuple[float, ...]) -> float:
    """IoU of the crop's ink box with the reference's box mapped into the crop (``warp``: crop ->
    reference): how much of a mark of the reference's size the crop holds."""
    x0, y0, x1, y1 = ref_box[:4]
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)[None]
    try:
        inv = np.linalg.inv(warp.astype(np.float64))
    except np.linalg.LinAlgError:
        return 0.0
    mapped = cv2.perspectiveTransform(corners.astype(np.float64), inv)[0]
    implied = np.array([[*mapped.min(axis=0), *mapped.max(axis=0)]], np.float32)
    return float(iou_matrix(implied, np.asarray([ink_box[:4]], np.float32))[0, 0])


def fitted_ink(inks: Sequence[np.ndarray], reference: np.ndarray, fit: Fit) -> np.ndarray | None:
    """The ink candidate ``fit`` laid ``reference`` over best (None: no fit, or no ink)."""
    if fit.warp is None or not inks:
        return None
    return best_ink(inks, aligned_reference(reference, fit, inks[0].shape[0]))


def fit_half(
    ink: np.ndarray | None,
    reference: np.ndarray,
    cfg: VerifierConfig,
    margin: float = 0.06,
) -> Fit:
    """The best of the reference's halves aligned onto the matching half of the crop's ink.

    ``ink``: the candidate the whole reference fitted best (``fitted_ink``). Each half of the
    ink's box, grown by ``margin``, is fitted alone (an affine ECC from the half-box
    correspondence, coarse, then the best half at full size), so the other half of the crop,
    whatever it holds, does not pull the fit. The result's agreement is the correlation over that
    half; NO_FIT where there is no ink (the whole fit found nothing). Never tried where a hand
    hides part of the mark (``halved_fit``), so every pixel counts.
    """
    if ink is None:
        return NO_FIT
    side, coarse = ink.shape[0], cfg.coarse
    ink_box, ref_box = _tight(ink, 0.5), _tight(reference, 0.3)
    if ink_box is None or ref_box is None:
        return NO_FIT
    down = coarse / side
    small_ink = cv2.resize(ink, (coarse, coarse), interpolation=cv2.INTER_AREA)
    small_ref = cv2.resize(reference, None, fx=down, fy=down, interpolation=cv2.INTER_AREA)
    found = []
    for half in HALVES:
        crop_half, ref_half = half_box(ink_box, half), half_box(ref_box, half)
        small_box = tuple(v * down for v in crop_half)
        mask = box_mask((coarse, coarse), small_box, margin)
        warp = start_warp(small_box, tuple(v * down for v in ref_half), 0.0)
        rho, h = _ecc(small_ink, small_ref, warp, cv2.MOTION_AFFINE, cfg.coarse_iterations, 3, mask)
        if rho > -1.0:
            found.append((rho, half, h))
    if not found:
        return NO_FIT
    _, half, h = max(found, key=lambda f: f[0])
    up = np.diag([1 / down, 1 / down, 1.0]).astype(np.float32)
    back = np.diag([down, down, 1.0]).astype(np.float32)
    b = half_box(ink_box, half)
    mask = box_mask((side, side), b, margin)
    rho, hh = _ecc(ink, reference, up @ h @ back, cv2.MOTION_AFFINE, cfg.fine_iterations, 5, mask)
    if rho <= -1.0 or implied_cover(hh, ref_box, ink_box) < cfg.halves_cover:
        return NO_FIT
    stretch = anisotropy(hh, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    return Fit(rho, stretch, -1.0, hh) if np.isfinite(stretch) else NO_FIT


def reseat(
    ink: np.ndarray | None,
    reference: np.ndarray,
    fit: Fit,
    start: Fit,
    cfg: VerifierConfig,
) -> Fit:
    """``fit`` with its plain alignment searched again from ``start``'s warp (a half's fit), on
    ``ink`` (``fitted_ink`` of ``fit``), kept where the whole reference then agrees better.

    Where one half of an authentic mark lays over the crop well but the whole was laid askew (thin
    parallel strokes lock the search onto the neighbouring stroke), this finds the whole mark's
    true alignment, and the mark is judged on it rather than read as a fake of its own brand.
    A splice's other half stays unlike the reference from any start.
    """
    if start.warp is None or fit.warp is None or ink is None:
        return fit
    rho, h = _ecc(ink, reference, start.warp, cv2.MOTION_HOMOGRAPHY, cfg.fine_iterations, 5, None)
    if rho <= fit.agreement:
        return fit
    stretch = ink_anisotropy(h, ink)
    if not np.isfinite(stretch):
        return fit
    return Fit(rho, stretch, fit.mirrored, h, fit.mirror_anisotropy, fit.mirror_warp)


def halved_fit(
    inks: Sequence[np.ndarray], reference: np.ndarray, fit: Fit, hidden: np.ndarray | None, cfg: VerifierConfig
) -> tuple[Fit, Fit | None]:
    """``fit`` reseated from the best of its reference's halves (``fit_half``, ``reseat``), and
    that half; ``(fit, None)`` where no half is tried or found.

    A splice keeps half its brand's mark: the half's alignment is judged too. Halves are tried
    where the whole fit agrees under ``halves_below``, and not where a hand hides part of the
    mark: the visible half of an authentic mark fits its half of the reference as a splice's kept
    half does, and the model reads authenticity least surely under a hand. The verifier in streams
    and its training pairs (``pipeline.synth.datasets``) both lay marks out this way.
    """
    if cfg.halves < 0 or fit.agreement >= cfg.halves_below:
        return fit, None
    if hidden is not None and hidden.any():
        return fit, None
    # One ink for both: the candidate the whole reference was laid over best.
    ink = fitted_ink(inks, reference, fit)
    half = fit_half(ink, reference, cfg)
    if half.warp is None:
        return fit, None
    return reseat(ink, reference, fit, half, cfg), half


def overlay(crop: np.ndarray, reference: np.ndarray, fit: Fit, hidden: np.ndarray | None = None) -> np.ndarray:
    """The crop with the aligned reference's outline drawn on it (RGB), for reviewers.

    Where the outline leaves the crop's ink, the mark deviates from the brand's; a crop with no
    fit comes back unmarked. The outline takes whichever of a few vivid colours lies farthest
    from the crop's own colours, so it shows on a green product as on a magenta one. ``hidden``
    (where a presenter's hand covers the crop) is hatched: the verifier did not compare it.
    """
    out = crop.copy()
    hidden = _hidden_mask(hidden, crop.shape[:2])
    if hidden is not None:
        ys, xs = np.indices(hidden.shape)
        out[hidden & ((xs + ys) % 6 < 2)] = (128, 128, 128)
    if fit.warp is None:
        return out
    aligned = aligned_reference(reference, fit, crop.shape[0]) > 0.5
    edge = aligned & ~cv2.erode(aligned.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out[edge] = outline_colour(crop)
    return out


OUTLINE_COLOURS = ((0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 0), (0, 0, 255))


def outline_colour(crop: np.ndarray) -> tuple[int, int, int]:
    """The vivid colour (of ``OUTLINE_COLOURS``) farthest from every colour cluster of the crop."""
    px = crop.reshape(-1, 3).astype(np.float32)[:: max(1, crop.shape[0] * crop.shape[1] // 1024)]
    dist = np.linalg.norm(px[None, :, :] - np.asarray(OUTLINE_COLOURS, np.float32)[:, None, :], axis=2)
    # The 5% quantile: the distance to the nearest sizeable patch of the crop, not to one stray pixel.
    return OUTLINE_COLOURS[int(np.argmax(np.quantile(dist, 0.05, axis=1)))]


class OnnxJudge:
    """The verifier model: (crop, ink, aligned reference, fit figures) -> the probability that the
    mark is the brand's authentic mark, and that it is the brand's mark at all (authentic or a copy).

    Use as a context manager, or call ``close``.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int = 0) -> None:
        self.session = OnnxSession(path, providers or DEFAULT_PROVIDERS, threads)
        if self.session.input_names != ["crops", "masks", "fit"]:
            raise ValueError(
                f"{path}: expected a verifier model with inputs crops, masks, fit; got {self.session.input_names}"
            )
        if set(self.session.output_names) != {"authentic", "same_brand"}:
            raise ValueError(
                f"{path}: expected a verifier model with outputs authentic, same_brand; got {self.session.output_names}"
                " (export it again with models.training.export verifier)"
            )

    @property
    def version(self) -> str:
        return self.session.info.version if self.session.info else "unverified"

    def judge(self, crops: np.ndarray, masks: np.ndarray, fits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of stacked ``judge_inputs``: (N,) float32 probability that each pair shows the brand's
        authentic mark, and (N,) float32 probability that it shows the brand's mark at all
        (authentic or a copy) rather than another brand's."""
        n = len(crops)
        want = ((n, JUDGE_SIDE, JUDGE_SIDE, 3), (n, JUDGE_SIDE, JUDGE_SIDE, 2), (n, FIT_FEATURES))
        for name, arr, shape in zip(("crops", "masks", "fit"), (crops, masks, fits), want, strict=True):
            if arr.shape != shape:
                raise ValueError(f"verifier model: expected {name} {shape}, got {arr.shape}")
        if n == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        out = self.session.run_bound(
            {"crops": crops.astype(np.uint8), "masks": masks.astype(np.float32), "fit": fits.astype(np.float32)}
        )
        authentic = np.asarray(out["authentic"], np.float32).reshape(n)
        return authentic, np.asarray(out["same_brand"], np.float32).reshape(n)

    def judge_pairs(self, pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """``judge`` of a list of ``judge_inputs`` results, stacked here."""
        if not pairs:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        crops, masks, fits = (np.stack(part) for part in zip(*pairs, strict=True))
        return self.judge(crops, masks, fits)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> OnnxJudge:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


MarkJob = tuple[np.ndarray, np.ndarray, dict[str, int]]  # (frame, box, brand -> reference id): one mark to verify


@dataclass(frozen=True)
class _Laid:
    """One mark's references aligned onto it: per brand the reference mask and its fit, and
    what the model judges (``judge_inputs`` per brand, then those of the mirrored alignments)."""

    fits: dict[str, tuple[np.ndarray, Fit]]
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    flipped: list[int]  # indices into fits whose mirrored alignment is judged too, in pairs' order
    halved: list[int] = field(default_factory=list)  # indices into fits whose best half is judged too, after those


class PendingVerification:
    """Marks being aligned on a ``MarkVerifier``'s threads (``MarkVerifier.submit``)."""

    def __init__(self, verifier: MarkVerifier, laid: list[Future[_Laid]]) -> None:
        self._verifier = verifier
        self._laid = laid

    def result(self) -> list[Verification]:
        """Wait for the alignments and judge them: one ``Verification`` per submitted mark, in order."""
        return self._verifier.judged([f.result() for f in self._laid])


class MarkVerifier:
    """Verifies marks against their brands' gallery references; owns a cache of reference masks
    and the threads marks are aligned on (the judge stays its owner's to close).

    Use as a context manager, or call ``close``.

    Args:
        reference_image: gallery reference id -> its RGB image (None when the gallery folder is gone).
        config: the verifier settings.
        judge: the verifier model; without it a pair scores ``Fit.score``.
        hands: finds a presenter's hand over a mark, left out of its alignment and judgement
            (``pipeline.infer.hands``); None: every pixel counts. Stays its owner's to close.
    """

    def __init__(
        self,
        reference_image: Callable[[int], np.ndarray | None],
        config: VerifierConfig,
        judge: OnnxJudge | None = None,
        hands: HandFinder | None = None,
    ) -> None:
        self.reference_image = reference_image
        self.cfg = config
        self.judge = judge
        self.hands = hands
        self._masks: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._masks_lock = threading.Lock()  # the cache is shared by the alignment threads
        self._pool: ThreadPoolExecutor | None = None

    def _reference(self, ref: int) -> np.ndarray | None:
        with self._masks_lock:
            if ref in self._masks:
                self._masks.move_to_end(ref)
                return self._masks[ref]
        # Read and rendered outside the lock, so another thread's cached masks never wait on it.
        image = self.reference_image(ref)
        mask = reference_mask(image, self.cfg.side) if image is not None else None
        with self._masks_lock:
            self._masks[ref] = mask
            if len(self._masks) > self.cfg.cache:
                self._masks.popitem(last=False)
        return mask

    def candidates(self, brand_sims: dict[str, float]) -> list[str]:
        """The brands a mark is verified against: its nearest by identity, above the floor."""
        ranked = sorted(brand_sims.items(), key=lambda kv: -kv[1])[: self.cfg.top_brands]
        return [b for b, sim in ranked if sim >= self.cfg.brand_floor]

    def verify(self, image: np.ndarray, box: np.ndarray, refs: dict[str, int]) -> Verification:
        """The mark at ``box`` in ``image`` checked against each brand's reference.

        Args:
            image: the full-resolution (H, W, 3) uint8 RGB frame.
            box: the mark's (4,) box in ``image`` pixels.
            refs: brand -> id of the gallery reference to lay over the mark; a brand whose
                reference image is gone is left out.
        """
        return self.verify_many([(image, box, refs)])[0]

    def verify_many(self, marks: Sequence[MarkJob]) -> list[Verification]:
        """``verify`` of several marks (of one frame or many): aligned on ``workers`` threads at
        once, every aligned pair judged in one model run."""
        return self.submit(marks).result()

    def submit(self, marks: Sequence[MarkJob]) -> PendingVerification:
        """Start aligning ``marks`` on the verifier's threads and return at once (the caller's
        thread goes on, e.g. to detect the next frames); ``result()`` gives ``verify_many``'s."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.cfg.workers, thread_name_prefix="verifier")
        return PendingVerification(self, [self._pool.submit(self._lay, m) for m in marks])

    def judged(self, laid: Sequence[_Laid]) -> list[Verification]:
        """The findings of aligned marks: the judge's, in one model run, else the fits' own."""
        limit = self.cfg.anisotropy_limit
        if self.judge is None:
            return [
                Verification(
                    {b: fit.score(limit) for b, (_, fit) in m.fits.items()},
                    {b: fit.alignment for b, (_, fit) in m.fits.items()},
                )
                for m in laid
            ]
        authentic, same = self.judge.judge_pairs([p for m in laid for p in m.pairs])
        out, start = [], 0
        for m in laid:
            n = len(m.fits)
            kin = same[start : start + n].copy()
            for k, i in enumerate(m.flipped):
                kin[i] = max(kin[i], same[start + n + k])
            for k, i in enumerate(m.halved):
                half = same[start + n + len(m.flipped) + k]
                if half >= self.cfg.halves:
                    kin[i] = max(kin[i], half)
            out.append(
                Verification(
                    dict(zip(m.fits, authentic[start : start + n].tolist(), strict=True)),
                    dict(zip(m.fits, kin.tolist(), strict=True)),
                )
            )
            start += len(m.pairs)
        return out

    def _prepared(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
        """One mark's verifier crop, where a hand hides it (None: nowhere) and its ink candidates."""
        crop = cut_crops(image, box[None], self.cfg.side)[0]
        hidden = hidden_part(self.hands, crop)
        return crop, hidden, ink_candidates(crop, self.cfg.clusters, hidden)

    def _lay(self, mark: MarkJob) -> _Laid:
        """Align each brand's reference onto one mark (and, with a judge, prepare its pairs)."""
        image, box, refs = mark
        if not refs:
            return _Laid({}, [], [])
        crop, hidden, inks = self._prepared(image, box)
        fits = {}
        for k, (brand, ref) in enumerate(refs.items()):
            mask = self._reference(ref)
            if mask is not None:
                # The nearest brand by identity (refs come nearest first) may get a wider search.
                fits[brand] = (mask, fit_reference(inks, mask, self.cfg, hidden, rescue=k == 0))
        if self.judge is None or not fits:
            return _Laid(fits, [], [])
        halves: dict[str, Fit] = {}
        for brand, (mask, fit) in fits.items():
            whole, half = self._halved(inks, mask, fit, hidden)
            if half is not None:
                fits[brand], halves[brand] = (mask, whole), half
        limit = self.cfg.anisotropy_limit
        checked = list(fits.values())
        pairs = [judge_inputs(crop, inks, mask, fit, limit, hidden) for mask, fit in checked]
        # A mirror image of the brand's mark is still a copy of the brand's: where the mirrored
        # reference fits better, the same-brand figure is also judged on that alignment (the
        # plain one lays the mark over it backwards, which looks like another brand's). Both
        # alignments go to the model in the same run.
        flipped = [
            i for i, (_, fit) in enumerate(checked) if fit.mirrored > fit.agreement and fit.mirror_warp is not None
        ]
        pairs += [
            judge_inputs(crop, inks, mirror_reference(checked[i][0]), checked[i][1].as_mirrored(), limit, hidden)
            for i in flipped
        ]
        halved = [i for i, brand in enumerate(fits) if brand in halves]
        pairs += [
            judge_inputs(crop, inks, checked[i][0], halves[b], limit, hidden) for i, b in enumerate(fits) if b in halves
        ]
        return _Laid(fits, pairs, flipped, halved)

    def _halved(
        self, inks: list[np.ndarray], mask: np.ndarray, fit: Fit, hidden: np.ndarray | None
    ) -> tuple[Fit, Fit | None]:
        """``halved_fit``, tried only with the verifier model (the hand-made score has no use for a
        half's alignment)."""
        if self.judge is None:
            return fit, None
        return halved_fit(inks, mask, fit, hidden, self.cfg)

    def aligned_view(self, image: np.ndarray, box: np.ndarray, ref: int) -> np.ndarray | None:
        """The mark's crop with reference ``ref`` aligned onto it (``overlay``), for evidence: the
        alignment the verifier judged (reseated from a half where it was); None when the reference
        image is gone."""
        mask = self._reference(ref)
        if mask is None:
            return None
        crop, hidden, inks = self._prepared(image, box)
        fit, _ = self._halved(inks, mask, fit_reference(inks, mask, self.cfg, hidden), hidden)
        return overlay(crop, mask, fit, hidden)

    def close(self) -> None:
        """Stop the alignment threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> MarkVerifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
