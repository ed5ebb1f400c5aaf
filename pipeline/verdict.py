"""Per-stream verdicts: marks tracked across sampled frames, judged against their brand's gallery.

A sampled mark imitates brand B when B's references are clearly its nearest (similar enough,
and ahead of every other brand by a margin). It looks counterfeit when its similarity to B's
nearest reference falls below B's calibrated authenticity threshold. A track raises one alert
once enough of its recent samples look counterfeit; a mark of a brand not in the gallery is
near no brand and raises nothing.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from pipeline.boxes import iou_matrix


@dataclass(frozen=True)
class VerdictConfig:
    """Decision settings (``verdict:`` in configs/fakewatch.yaml)."""

    match_floor: float = 0.25  # below this similarity a mark imitates no enrolled brand
    margin: float = 0.08  # best brand must lead the next brand by this much
    threshold_offset: float = 0.0  # added to every brand's calibrated threshold
    confirm: int = 2  # suspect samples needed before an alert
    window: int = 4  # ... among the track's last this many samples
    max_gap: float = 4.0  # seconds a track survives without a matching mark
    min_detection: float = 0.35  # detector score a mark needs to be judged
    min_size: float = 12.0  # pixels; smaller marks are too small to judge
    alert_threshold: float = 0.0  # suspicion score an alert needs (set by calibration)
    brand_thresholds: dict[str, float] = field(default_factory=dict)  # per-brand alert_threshold


@dataclass(frozen=True)
class MarkSample:
    """One detected mark in one sampled frame, with what the gallery says of it."""

    stream: str
    frame: int
    t: float
    box: np.ndarray  # (4,) float32
    detection: float
    brand: str  # nearest brand ("" when no neighbour)
    similarity: float  # to the nearest reference of ``brand``
    runner_up: float  # to the nearest reference of any other brand
    threshold: float  # ``brand``'s authenticity threshold
    ref: int  # id of the nearest reference of ``brand``
    matches: tuple[tuple[str, int, float], ...] = ()  # (brand, ref, similarity), best first
    crop: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if np.asarray(self.box).shape != (4,):
            raise ValueError(f"expected a (4,) box, got {np.asarray(self.box).shape}")

    def imitates(self, cfg: VerdictConfig) -> bool:
        """Whether the mark is clearly one enrolled brand's (authentic or not)."""
        return (
            bool(self.brand) and self.similarity >= cfg.match_floor and (self.similarity - self.runner_up >= cfg.margin)
        )

    def suspicion(self, cfg: VerdictConfig) -> float:
        """How far below its brand's authentic range the mark falls, in [0, 1]."""
        thr = self.threshold + cfg.threshold_offset
        span = max(thr - cfg.match_floor, 1e-3)
        return float(np.clip((thr - self.similarity) / span, 0.0, 1.0))


@dataclass
class Track:
    """One mark followed across sampled frames of a stream."""

    id: int
    box: np.ndarray
    last_t: float
    samples: deque[MarkSample]
    history: deque[bool]  # suspect or not, per recent sample
    brands: Counter[str] = field(default_factory=Counter)
    alerted: bool = False
    suspicion: list[float] = field(default_factory=list)

    @property
    def brand(self) -> str:
        return self.brands.most_common(1)[0][0] if self.brands else ""


@dataclass(frozen=True)
class Verdict:
    """A confirmed suspected counterfeit: the sample that confirmed it and its track."""

    sample: MarkSample
    track: int
    brand: str
    score: float


class StreamVerdicts:
    """Tracks and verdicts of one stream; feed it each sampled frame's marks in time order."""

    def __init__(self, stream: str, config: VerdictConfig) -> None:
        self.stream = stream
        self.cfg = config
        self.tracks: list[Track] = []
        self._next = 1

    def update(self, t: float, samples: list[MarkSample]) -> list[Verdict]:
        """Associate this frame's marks with tracks and return newly confirmed verdicts."""
        cfg = self.cfg
        self.tracks = [tr for tr in self.tracks if t - tr.last_t <= cfg.max_gap]
        usable = [
            s
            for s in samples
            if s.detection >= cfg.min_detection and max(s.box[2] - s.box[0], s.box[3] - s.box[1]) >= cfg.min_size
        ]
        assigned = self._associate(usable)
        verdicts = []
        for sample, track in zip(usable, assigned, strict=True):
            if track is None:
                track = Track(self._next, sample.box, t, deque(maxlen=cfg.window), deque(maxlen=cfg.window))
                self._next += 1
                self.tracks.append(track)
            track.box, track.last_t = sample.box, t
            track.samples.append(sample)
            imitates = sample.imitates(cfg)
            if imitates:
                track.brands[sample.brand] += 1
            suspect = imitates and sample.brand == track.brand and sample.suspicion(cfg) > 0
            track.history.append(suspect)
            if suspect:
                track.suspicion.append(sample.suspicion(cfg))
            if not track.alerted and sum(track.history) >= cfg.confirm:
                score = float(np.mean(track.suspicion[-cfg.window :]))
                needed = cfg.brand_thresholds.get(track.brand, cfg.alert_threshold)
                if score >= needed:
                    track.alerted = True
                    verdicts.append(Verdict(sample, track.id, track.brand, score))
        return verdicts

    def _associate(self, samples: list[MarkSample]) -> list[Track | None]:
        """Greedy matching by IoU, then by distance relative to size for fast movers."""
        out: list[Track | None] = [None] * len(samples)
        if not samples or not self.tracks:
            return out
        boxes = np.stack([s.box for s in samples]).astype(np.float32)
        tboxes = np.stack([tr.box for tr in self.tracks]).astype(np.float32)
        ious = iou_matrix(boxes, tboxes)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        tcentres = (tboxes[:, :2] + tboxes[:, 2:]) / 2
        sizes = np.maximum(tboxes[:, 2] - tboxes[:, 0], tboxes[:, 3] - tboxes[:, 1])
        dist = np.linalg.norm(centres[:, None, :] - tcentres[None, :, :], axis=2) / np.maximum(sizes[None, :], 1)
        score = np.where(ious >= 0.2, 1 + ious, np.where(dist < 1.5, 1 - dist / 1.5, 0.0))
        used_s, used_t = set(), set()
        for flat in np.argsort(-score, axis=None):
            i, j = np.unravel_index(flat, score.shape)
            if score[i, j] <= 0:
                break
            if i in used_s or j in used_t:
                continue
            out[i] = self.tracks[j]
            used_s.add(i)
            used_t.add(j)
        return out
