"""Box math shared by every stage: pure numpy in, numpy out.

Boxes are float arrays of shape (N, 4) holding ``x1, y1, x2, y2`` in source pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

# Crops for the embedder are squares around the mark, this much larger than its longer side,
# so the aspect ratio of the mark survives (a stretched mark is a counterfeit family).
CROP_PAD = 1.15
CROP_SIZE = 64


def as_boxes(boxes: np.ndarray | list) -> np.ndarray:
    """Return ``boxes`` as a float32 (N, 4) array, raising on any other shape."""
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 4), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"expected (N, 4) boxes, got {arr.shape}")
    return arr


def area(boxes: np.ndarray) -> np.ndarray:
    """Area of each box (zero for inverted boxes)."""
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU, shape (len(a), len(b))."""
    a, b = as_boxes(a), as_boxes(b)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    b = as_boxes(boxes)
    s = np.asarray(scores, np.float32)
    if s.shape != (len(b),):
        raise ValueError(f"expected ({len(b)},) scores, got {s.shape}")
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        if len(order) == 1:
            break
        ious = iou_matrix(b[i : i + 1], b[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to a ``width`` x ``height`` frame."""
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    return b


def square_boxes(boxes: np.ndarray, pad: float = CROP_PAD) -> np.ndarray:
    """Square boxes centred on each box, ``pad`` times its longer side."""
    b = as_boxes(boxes)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    half = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * pad / 2
    half = np.maximum(half, 1.0)
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).astype(np.float32)


def crop_regions(boxes: np.ndarray, pad: float = CROP_PAD) -> np.ndarray:
    """The whole-pixel square regions crops are cut from (``square_boxes`` rounded), float32.

    The host path (``cut_crops``) and the device path (RoiAlign) cut the same regions: on a 19 px
    mark enlarged to 64 px, half a pixel of difference is almost two pixels of crop.
    """
    return np.round(square_boxes(boxes, pad))


def cut_crops(frame: np.ndarray, boxes: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Cut square crops around ``boxes`` from an (H, W, 3) uint8 frame.

    Regions outside the frame are filled by replicating its border, so a mark at the edge
    keeps its proportions. Returns (N, size, size, 3) uint8.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    sq = crop_regions(boxes).astype(np.int64)
    h, w = frame.shape[:2]
    out = np.empty((len(sq), size, size, 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(sq):
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        roi = frame[max(y1, 0) : min(y2, h), max(x1, 0) : min(x2, w)]
        if roi.size == 0:
            out[i] = 0
            continue
        top, left = max(0, -y1), max(0, -x1)
        bottom, right = max(0, y2 - h), max(0, x2 - w)
        if top or left or bottom or right:
            roi = cv2.copyMakeBorder(roi, top, bottom, left, right, cv2.BORDER_REPLICATE)
        # Area averaging when shrinking avoids aliasing on large marks.
        interp = cv2.INTER_AREA if roi.shape[0] > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(roi, (size, size), interpolation=interp)
    return out


# The halves of a crop ``kept_halves`` keeps, one at a time, in its order.
KEPT_HALVES: tuple[str, ...] = ("left", "right", "top", "bottom")


def kept_halves(crops: np.ndarray) -> np.ndarray:
    """Each crop four times, with one half of it kept and the other filled with the crop's border colour.

    A crop is centred on its mark (``crop_regions``), so each keeps that half of the mark (in
    ``KEPT_HALVES`` order). A spliced counterfeit keeps half of its brand's mark and borrows the
    other half elsewhere: embedded whole it sits far from its brand, one half alone sits near it.

    Args:
        crops: (N, S, S, 3) uint8 crops.

    Returns:
        (N, 4, S, S, 3) uint8.
    """
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2] or crops.dtype != np.uint8:
        raise ValueError(f"expected (N, S, S, 3) uint8 crops, got {crops.shape} {crops.dtype}")
    n, s = len(crops), crops.shape[1]
    # The median of the outermost ring of pixels: the background the mark sits on.
    ring = np.concatenate([crops[:, 0], crops[:, -1], crops[:, :, 0], crops[:, :, -1]], axis=1)
    fill = np.median(ring, axis=1).astype(np.uint8) if n else np.zeros((0, 3), np.uint8)
    out = np.repeat(crops[:, None], len(KEPT_HALVES), axis=1)
    mid = s // 2
    blanked = {
        "left": (slice(None), slice(mid, None)),
        "right": (slice(None), slice(None, mid)),
        "top": (slice(mid, None), slice(None)),
        "bottom": (slice(None, mid), slice(None)),
    }
    for k, half in enumerate(KEPT_HALVES):
        rows, cols = blanked[half]
        out[:, k, rows, cols] = fill[:, None, None, :]
    return out
