"""Turning gallery images of authentic marks into reference crops.

A gallery image shows one authentic mark, usually on a plain background. Its ink coverage is
recovered from the difference to the background, so the mark can be re-rendered the way a
camera on a stream would show it (colours, tilt, blur, size, compression). These camera views
are embedded beside the plain crop, so a brand enrolled with one image still covers the
conditions a stream brings.
"""

from __future__ import annotations

import numpy as np

from pipeline.boxes import CROP_SIZE, cut_crops
from pipeline.synth.marks import tight_crop
from pipeline.synth.render import MARK_SIZES, render_mark_crop

# A pixel this far (in RGB distance) from the background colour counts as full ink.
_INK_CONTRAST = 60.0


def border_colour(image: np.ndarray) -> np.ndarray:
    """Median colour of the image border: the background of a product shot."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(border, axis=0)


def coverage(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Estimate the mark's coverage mask and ink colour in a plain-background image.

    Returns a uint8 mask (0 background, 255 ink), tight-cropped, and the ink colour.
    """
    bg = border_colour(image).astype(np.float32)
    dist = np.linalg.norm(image.astype(np.float32) - bg[None, None, :], axis=2)
    alpha = np.clip(dist / _INK_CONTRAST, 0, 1)
    mask = (alpha * 255).astype(np.uint8)
    ink_px = image[alpha > 0.9]
    ink = tuple(int(v) for v in np.median(ink_px, axis=0)) if len(ink_px) else (0, 0, 0)
    return tight_crop(mask, threshold=64), ink  # type: ignore[return-value]


def mark_box(image: np.ndarray) -> np.ndarray:
    """The box of the ink in a plain-background image, (1, 4) float32 (whole image if none)."""
    mask, _ = coverage(image)
    bg = border_colour(image).astype(np.float32)
    dist = np.linalg.norm(image.astype(np.float32) - bg[None, None, :], axis=2)
    ys, xs = np.nonzero(dist > _INK_CONTRAST * 0.5)
    if len(xs) == 0 or mask.size == 0:
        h, w = image.shape[:2]
        return np.array([[0, 0, w, h]], np.float32)
    return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)


def plain_reference(image: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The crop of a gallery image's mark as it is, (size, size, 3) uint8."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    return cut_crops(image, mark_box(image), size)[0]


# The mark's size range, in pixels, in camera views unless a caller says otherwise: the training
# crops' range, which indexes built before view sizes were recorded used.
DEFAULT_VIEW_SIZES = MARK_SIZES


def reference_views(
    image: np.ndarray,
    views: int,
    seed: int = 0,
    size: int = CROP_SIZE,
    view_sizes: tuple[float, float] = DEFAULT_VIEW_SIZES,
) -> np.ndarray:
    """The plain crop of a gallery image followed by ``views - 1`` camera renderings of it.

    Args:
        image: (H, W, 3) uint8 RGB gallery image of one authentic mark.
        views: how many crops to return in all (at least 1).
        seed: random seed; the same image and seed give the same views.
        size: crop side in pixels (the embedder's).
        view_sizes: the range of the mark's size in the camera views, in pixels.

    Returns:
        (views, size, size, 3) uint8 crops.
    """
    out = [plain_reference(image, size)]
    mask, ink = coverage(image)
    rng = np.random.default_rng(seed)
    attempts = 0
    while len(out) < views and attempts < views * 3:
        attempts += 1
        crop = render_mark_crop(rng, mask, ink, size=size, box_jitter=0.03, apparent=view_sizes)
        if crop is not None:
            out.append(crop)
    while len(out) < views:  # a mark too faint to re-render: repeat the plain crop
        out.append(out[0])
    return np.stack(out[:views])
