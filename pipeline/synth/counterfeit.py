"""Counterfeit variants of a mark: shapes that imitate a brand but deviate from its mark.

Every function here is pure: a uint8 coverage mask in, a new uint8 coverage mask out. A
variant is only accepted when it measurably deviates from the authentic mark
(``shape_deviation`` above ``MIN_DEVIATION``), so a mirrored symmetric mark or a warp too
gentle to see is never labelled counterfeit; a mirror image must also deviate from every turn of
the mark a held product shows (``turned_deviation``).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from pipeline.synth.marks import tight_crop

FAMILIES: tuple[str, ...] = ("warp", "stroke", "erase", "extra", "mirror", "aspect", "splice")

# 1 - IoU of the two shapes normalised into one canvas; below this a variant is not a fake.
MIN_DEVIATION = 0.15
_CANVAS = 96
# A mirror image must also deviate from the mark turned by up to this many degrees: products are
# held at an angle (the clips turn marks by about 12 degrees, one standard deviation), so a mirror
# image that a turn reproduces is what a camera shows of the authentic mark.
MIRROR_TURN = 30.0
# The steepest a warp's displacement field may be (pixels of displacement per pixel). A bent print
# stays one piece; a steeper field folds the mark over itself and tears it, and what comes out no
# longer imitates the brand. Drawn without this bound (sessions 1-18), 58% of warps folded over
# their ink and the median warp deviated 0.59 from its mark, about as far as another brand's mark
# (0.74): a label "counterfeit of this brand" was not true of them. At 0.35 the map's Jacobian
# determinant stays above 1 - 2 x 0.35 = 0.3 (squeezed or stretched, never folded) and the median
# warp deviates 0.26, as far as a stroke or an erased part does.
MAX_BEND_SLOPE = 0.35


def normalised(mask: np.ndarray, size: int = _CANVAS) -> np.ndarray:
    """Fit a mask, aspect ratio kept, centred into a ``size`` x ``size`` float canvas in [0, 1]."""
    h, w = mask.shape
    scale = (size - 2) / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    canvas = np.zeros((size, size), np.float32)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = small
    return canvas


def shape_deviation(a: np.ndarray, b: np.ndarray) -> float:
    """Return 1 - soft IoU of two masks after normalising both into a common canvas."""
    na, nb = normalised(a), normalised(b)
    inter = np.minimum(na, nb).sum()
    union = np.maximum(na, nb).sum()
    return float(1.0 - inter / union) if union > 0 else 0.0


def turned(mask: np.ndarray, angle: float) -> np.ndarray:
    """The mask turned by ``angle`` degrees about its centre, nothing cut off, tightly cropped."""
    h, w = mask.shape
    side = int(np.ceil(np.hypot(h, w))) + 2
    canvas = np.zeros((side, side), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = mask
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    return tight_crop(cv2.warpAffine(canvas, rot, (side, side), flags=cv2.INTER_LINEAR))


def turned_deviation(a: np.ndarray, b: np.ndarray, max_angle: float = MIRROR_TURN, step: float = 2.0) -> float:
    """``shape_deviation`` of ``a`` from ``b`` turned by whichever angle within +-``max_angle`` fits best."""
    angles = np.arange(-max_angle, max_angle + step / 2, step)
    return min(shape_deviation(a, turned(b, float(t))) for t in angles)


def padded(mask: np.ndarray, frac: float = 0.15) -> np.ndarray:
    """The mask with an empty border of ``frac`` of its longer side: room for a variant to grow into."""
    p = max(2, int(max(mask.shape) * frac))
    return cv2.copyMakeBorder(mask, p, p, p, p, cv2.BORDER_CONSTANT, value=0)


def bend_field(
    shape: tuple[int, int], rng: np.random.Generator, max_slope: float = MAX_BEND_SLOPE
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random displacement field (dx, dy) in pixels for a mask of ``shape`` that never folds.

    Its spread is 5-10% of the mask's longer side, varying over a third to a fifth of that side
    in both directions (so a long wordmark bends along its length as much as across it); where
    the field would be steeper than ``max_slope`` it is scaled down as a whole (``inf``: never,
    as warps were drawn before session 19; only for pictures of what that did).
    """
    h, w = shape
    size = max(h, w)
    amp = rng.uniform(0.05, 0.10) * size
    grid = int(rng.integers(3, 6))
    nodes = (max(1, round(grid * h / size)), max(1, round(grid * w / size)))
    dx = cv2.resize(rng.normal(0, 1, nodes).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.normal(0, 1, nodes).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    slope = amp * max(float(np.abs(g).max()) for g in (*np.gradient(dx), *np.gradient(dy)))
    if slope > max_slope:
        amp *= max_slope / slope
    return amp * dx, amp * dy


def fold_factor(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Per pixel, the Jacobian determinant of the map p -> p + (dx, dy): below 0 the map folds there."""
    dxdy, dxdx = np.gradient(dx)
    dydy, dydx = np.gradient(dy)
    return np.asarray((1 + dxdx) * (1 + dydy) - dxdy * dydx, np.float32)


def displaced(mask: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``mask`` with each pixel p taken from p + (dx, dy) (background beyond its edges)."""
    h, w = mask.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.asarray(cv2.remap(mask, xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0))


def elastic_warp(mask: np.ndarray, rng: np.random.Generator, max_slope: float = MAX_BEND_SLOPE) -> np.ndarray:
    """Bend the mark with a smooth random displacement field, as a print bent on a product."""
    m = padded(mask)
    dx, dy = bend_field(m.shape, rng, max_slope)
    return tight_crop(displaced(m, dx, dy))


def stroke_weight(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make strokes heavier or thinner than the brand's."""
    m = padded(mask)
    k = max(3, int(max(mask.shape) * rng.uniform(0.03, 0.06)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    thinner = cv2.erode(m, kernel)
    # Thin strokes vanish when eroded; such marks can only be faked heavier.
    if rng.random() < 0.5 and (thinner > 127).sum() > 0.35 * (m > 127).sum():
        return tight_crop(thinner)
    return tight_crop(cv2.dilate(m, kernel))


def erase_part(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Erase a part of the mark (a blob or one of its pieces)."""
    out = mask.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8))
    pieces = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] > 0.05 * (mask > 127).sum()]
    if len(pieces) >= 2 and rng.random() < 0.5:
        victim = int(rng.choice(pieces))
        out[labels == victim] = 0
    else:
        h, w = mask.shape
        ys, xs = np.nonzero(mask > 127)
        i = rng.integers(len(xs))
        r = int(max(h, w) * rng.uniform(0.15, 0.28))
        cv2.circle(out, (int(xs[i]), int(ys[i])), r, 0, -1)
    return tight_crop(out) if (out > 127).any() else mask.copy()


def add_part(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a part the brand's mark does not have: a bar, a dot or a copied piece."""
    m = padded(mask, 0.25)
    h, w = m.shape
    size = max(mask.shape)
    kind = rng.integers(3)
    cx, cy = int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h)
    if kind == 0:
        t = max(2, int(size * rng.uniform(0.06, 0.12)))
        length = int(size * rng.uniform(0.4, 0.8))
        angle = rng.uniform(0, np.pi)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        cv2.line(m, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 255, t)
    elif kind == 1:
        cv2.circle(m, (cx, cy), int(size * rng.uniform(0.1, 0.2)), 255, -1)
    else:
        ph, pw = max(2, h // 3), max(2, w // 3)
        sy, sx = rng.integers(0, h - ph), rng.integers(0, w - pw)
        ty, tx = rng.integers(0, h - ph), rng.integers(0, w - pw)
        piece = m[sy : sy + ph, sx : sx + pw].copy()
        m[ty : ty + ph, tx : tx + pw] = np.maximum(m[ty : ty + ph, tx : tx + pw], piece)
    return tight_crop(m)


def mirror(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror the mark left-right (or top-bottom)."""
    return np.ascontiguousarray(mask[:, ::-1] if rng.random() < 0.75 else mask[::-1, :])


def aspect(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stretch one axis beyond what perspective explains."""
    h, w = mask.shape
    f = rng.uniform(1.4, 1.9)
    size = (round(w * f), h) if rng.random() < 0.5 else (w, round(h * f))
    return cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)


def splice(mask: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """Replace half of the mark with half of another mark."""
    if other is None:
        return add_part(mask, rng)
    h, w = mask.shape
    o = cv2.resize(other, (w, h), interpolation=cv2.INTER_AREA)
    out = mask.copy()
    if rng.random() < 0.5:
        cut = w // 2
        out[:, cut:] = o[:, cut:]
    else:
        cut = h // 2
        out[cut:, :] = o[cut:, :]
    return tight_crop(out) if (out > 127).any() else mask.copy()


_MAKERS: dict[str, Callable[..., np.ndarray]] = {
    "warp": elastic_warp,
    "stroke": stroke_weight,
    "erase": erase_part,
    "extra": add_part,
    "mirror": mirror,
    "aspect": aspect,
}


def make_counterfeit(
    mask: np.ndarray,
    family: str,
    rng: np.random.Generator,
    other: np.ndarray | None = None,
    attempts: int = 6,
) -> np.ndarray | None:
    """Return a counterfeit of ``mask`` in ``family``, or None when no attempt deviated enough.

    Args:
        mask: the authentic coverage mask.
        family: one of ``FAMILIES``.
        rng: the random source.
        other: another brand's mask, used by ``splice``.
        attempts: tries before giving up (a symmetric mark cannot be faked by mirroring).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown counterfeit family {family!r}; expected one of {FAMILIES}")
    for _ in range(attempts):
        fake = splice(mask, rng, other) if family == "splice" else _MAKERS[family](mask, rng)
        if (fake > 127).any() and shape_deviation(mask, fake) >= MIN_DEVIATION:
            # A mirror image the camera could show as the mark turned is not a fake either.
            if family == "mirror" and turned_deviation(mask, fake) < MIN_DEVIATION:
                continue
            return fake
    return None
