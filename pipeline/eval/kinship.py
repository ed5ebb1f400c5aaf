"""Fitting the verdict's kinship model: is a track its brand's mark (authentic or a copy) at all?

The same-brand gate keeps marks of other brands (enrolled or not) from alerting as a brand's
fakes. One figure alone decides poorly: the verifier's same-brand figure reads a bent copy or a
splice as another brand's mark, and the embedder's identity similarity lets near neighbours in.
Together, with how far each leads the next brand, they separate the two (``KINSHIP_FIGURES``).
The model is a logistic regression on those figures, one row per labelled object of the tuning
clips and brand the verifier checked it against; a row is positive when the brand is the
object's own. Pure numpy: the rows, the fit and how it sorts the rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.eval.runner import FrameLog
from pipeline.eval.scoring import Clip
from pipeline.verdict import KINSHIP_FIGURES, MarkSample, Track, kinship


@dataclass(frozen=True)
class KinshipRows:
    """One row per (labelled object, brand the verifier checked it against)."""

    figures: np.ndarray  # (N, F) float64, the columns of KINSHIP_FIGURES
    own: np.ndarray  # (N,) bool: the brand is the object's own
    family: np.ndarray  # (N,) str: the object's counterfeit family, "authentic" for none
    group: np.ndarray  # (N,) int: which clip set the object came from (for cross-validation)

    def __post_init__(self) -> None:
        n, f = len(self.own), len(KINSHIP_FIGURES)
        if self.figures.shape != (n, f):
            raise ValueError(f"expected ({n}, {f}) figures, got {self.figures.shape}")
        for name in ("own", "family", "group"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"expected ({n},) {name}, got {getattr(self, name).shape}")

    def __len__(self) -> int:
        return len(self.own)

    @classmethod
    def concat(cls, parts: Sequence[KinshipRows]) -> KinshipRows:
        if not parts:
            return cls(np.zeros((0, len(KINSHIP_FIGURES))), np.zeros(0, bool), np.zeros(0, str), np.zeros(0, int))
        return cls(
            np.concatenate([p.figures for p in parts]),
            np.concatenate([p.own for p in parts]),
            np.concatenate([p.family for p in parts]),
            np.concatenate([p.group for p in parts]),
        )


def track_of(samples: Sequence[MarkSample]) -> Track:
    """A track of a labelled object's samples (all of them: no window), to read its figures."""
    return Track(0, samples[0].box, samples[0].t, deque(samples))


def kinship_rows(log: FrameLog, clips: Sequence[Clip], group: int = 0, min_checks: int = 3) -> KinshipRows:
    """Rows of every labelled object in ``clips`` and every brand the verifier checked it against
    in at least ``min_checks`` of its samples (the verdict's ``confirm``: fewer never decide)."""
    figures, own, family = [], [], []
    for clip in clips:
        for obj in clip.objects:
            samples = log.samples_of(clip.stream, obj)
            checked = sorted({b for s in samples for b in s.same_brand})
            if not checked:
                continue
            # One track of the object's samples serves every brand it was checked against.
            track = track_of(samples)
            for brand in checked:
                if sum(brand in s.same_brand for s in samples) < min_checks:
                    continue
                figures.append(track.kinship_figures(brand))
                own.append(brand == obj.brand)
                family.append(obj.family or "authentic")
    n = len(own)
    return KinshipRows(
        np.asarray(figures, np.float64).reshape(n, len(KINSHIP_FIGURES)),
        np.asarray(own, bool),
        np.asarray(family, str),
        np.full(n, group, int),
    )


def fit_logistic(figures: np.ndarray, positive: np.ndarray, l2: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method with an L2 penalty on the weights (not the bias).

    Args:
        figures: (N, F) float.
        positive: (N,) bool labels; both classes must be present.
        l2: penalty on the squared weights (the rows are few; it keeps separable data finite).
        iterations: Newton steps (it converges in about ten).

    Returns:
        (F + 1,) float64: one weight per figure, then the bias (``pipeline.verdict.kinship``'s order).
    """
    x = np.asarray(figures, np.float64)
    y = np.asarray(positive, bool)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"expected (N, F) figures and (N,) labels, got {x.shape} and {y.shape}")
    if y.all() or not y.any():
        raise ValueError(f"need rows of both kinds to fit, got {int(y.sum())} positive of {len(y)}")
    x1 = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.r_[np.full(x.shape[1], l2), 0.0]
    w = np.zeros(x1.shape[1])
    for _ in range(iterations):
        p = kinship(x, w)
        grad = x1.T @ (p - y) + penalty * w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def cross_validated(rows: KinshipRows, l2: float = 1.0) -> np.ndarray:
    """(N,) probabilities, each row's from a model fitted without its group (one group: in-sample)."""
    groups = np.unique(rows.group)
    if len(groups) < 2:
        return kinship(rows.figures, fit_logistic(rows.figures, rows.own, l2))
    out = np.zeros(len(rows))
    for g in groups:
        held = rows.group == g
        w = fit_logistic(rows.figures[~held], rows.own[~held], l2)
        out[held] = kinship(rows.figures[held], w)
    return out
