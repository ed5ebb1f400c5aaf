"""Model-level metrics, pure numpy: detection AP, ROC-AUC, retrieval accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.boxes import iou_matrix


def _longer_side(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def average_precision(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    truths: Sequence[np.ndarray],
    iou_threshold: float = 0.5,
    size_range: tuple[float, float] | None = None,
) -> float:
    """All-point interpolated AP over images (PASCAL VOC 2010+ style).

    Args:
        predictions: per image, (N, 4) boxes and (N,) scores.
        truths: per image, (M, 4) ground-truth boxes.
        iou_threshold: IoU a detection needs with an unmatched truth to count as a hit.
        size_range: only truths whose longer side lies in [low, high) count; as in COCO's size
            breakdown, detections matching other truths, and unmatched detections outside the
            range, are ignored rather than counted as false.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"expected one prediction set per image, got {len(predictions)} and {len(truths)}")
    lo, hi = size_range if size_range else (-np.inf, np.inf)
    total = sum(int(((_longer_side(t) >= lo) & (_longer_side(t) < hi)).sum()) for t in truths)
    if total == 0:
        return float("nan")
    scores, hits = [], []
    for (boxes, conf), gt in zip(predictions, truths, strict=True):
        order = np.argsort(-np.asarray(conf), kind="stable")
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[order]
        gt_side = _longer_side(gt)
        counted = (gt_side >= lo) & (gt_side < hi)
        ious = iou_matrix(boxes, gt)
        used = np.zeros(len(gt), bool)
        pred_side = _longer_side(boxes)
        for k in range(len(boxes)):
            score = float(np.asarray(conf)[order[k]])
            cand = np.where(used, -1.0, ious[k]) if len(gt) else np.zeros(0)
            j = int(np.argmax(cand)) if len(cand) else -1
            if j >= 0 and cand[j] >= iou_threshold:
                used[j] = True
                if counted[j]:
                    scores.append(score)
                    hits.append(True)
            elif lo <= pred_side[k] < hi:
                scores.append(score)
                hits.append(False)
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.cumsum(np.asarray(hits)[order])
    fp = np.cumsum(~np.asarray(hits)[order])
    recall = tp / total
    precision = tp / np.maximum(tp + fp, 1)
    # Precision envelope, then the area under the step curve.
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outscores a negative; ties count half)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(positive, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # Average ranks over ties.
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def clip_bootstrap(
    counterfeits: np.ndarray,
    caught: np.ndarray,
    alerts: np.ndarray,
    false_alerts: np.ndarray,
    hours: np.ndarray,
    rounds: int = 2000,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """95% intervals of the clip-set figures, resampling whole clips with replacement.

    A set of 40 clips holds a few dozen counterfeits, so one caught fake more or less moves
    recall by two points: the interval says which differences between two runs are real.

    Args:
        counterfeits, caught, alerts, false_alerts, hours: (C,) per-clip counts and lengths.
        rounds: bootstrap resamples.
        seed: random seed (the same inputs and seed give the same intervals).

    Returns:
        ``event_recall``, ``alert_precision`` and ``false_alerts_per_stream_hour`` -> (low, high),
        or None for a figure no resample can measure (no clips, no counterfeits, no alerts).
    """
    per_clip = [np.asarray(a, np.float64) for a in (counterfeits, caught, alerts, false_alerts, hours)]
    n = len(per_clip[0])
    if any(a.shape != (n,) for a in per_clip):
        raise ValueError(f"expected five (C,) arrays of one length, got {[a.shape for a in per_clip]}")
    names = ("event_recall", "alert_precision", "false_alerts_per_stream_hour")
    if n == 0:
        return dict.fromkeys(names)
    pick = np.random.default_rng(seed).integers(0, n, size=(rounds, n))
    cf, ca, al, fa, hr = (a[pick].sum(axis=1) for a in per_clip)
    with np.errstate(divide="ignore", invalid="ignore"):
        figures = (ca / cf, (al - fa) / al, fa / hr)
    out: dict[str, tuple[float, float] | None] = {}
    for name, values in zip(names, figures, strict=True):
        values = values[np.isfinite(values)]
        out[name] = (
            (round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4))
            if len(values)
            else None
        )
    return out
