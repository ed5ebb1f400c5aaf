"""Per-stream verdicts: marks tracked across sampled frames, judged against their brand's gallery.

Each sampled mark votes for the brand of its nearest reference by identity (which brand a mark
shows or imitates) and records, for every brand among its neighbours, its identity similarity and
its authenticity similarity to that brand's nearest reference. A track's brand is the one most of
its samples vote for; it imitates that brand when the vote is clear and the mean identity
similarity is high enough (a mark of a brand not in the gallery scatters its votes and stays far
from every brand). It looks counterfeit when its authenticity similarity (an upper quantile over
its samples, so frames where a hand hides part of the mark weigh less) falls below the brand's
calibrated authenticity threshold. Judging a track over its samples is what makes the call
stable: one blurred frame decides nothing. One track raises at most one alert. A mark joins a
track by position and, with ``min_appearance``, only when it looks like the track. With
``brand_agreement``, a track alerts only when the authenticity similarities also rank its brand
near the top: where the two heads disagree, the brand is usually wrong. With ``verifier_weight``,
the verifier's score (the brand's reference laid over the full-resolution crop) moves each
sample's authenticity up or down around ``verifier_target``; its second figure, whether the mark
is the brand's at all (authentic or a copy), can name the brand (``same_brand_weight``) and turn
away marks of other brands (``min_same_brand``), unless it leads every other brand checked by
``sure_lead``. With ``verified_samples``, the verifier checks
only a track's first samples and the rest carry what it found; with ``verify_every``, every k-th
sample of a track. Either way a track that has alerted needs no more checks. With
``floor_same_brand``, a track the verifier surely finds is its brand's mark needs no identity floor.
With ``same_brand_count``, either same-brand gate also passes where that many of the track's
samples reach it, whatever their mean (a splice reads as another mark in a few frames).
With ``sure_fake``, a track the verifier surely finds is no authentic mark looks counterfeit even
where its brand's threshold is low.
``StreamVerdicts.assess`` names the first check (``STOPS``) that keeps a track from alerting, which
is how the evaluation tells why a labelled fake was missed.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.boxes import iou_matrix

# What the kinship model reads of a track and a brand, in the order of ``VerdictConfig.kinship``.
KINSHIP_FIGURES: tuple[str, ...] = ("identity", "same_brand", "same_brand_lead", "identity_lead")


def kinship(figures: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Probability that a mark is its brand's (authentic or a copy): a logistic model.

    Args:
        figures: (N, F) float, one row of ``KINSHIP_FIGURES`` per track and brand.
        weights: (F + 1,) float, one weight per figure, then the bias.

    Returns:
        (N,) float64 probabilities.
    """
    figures = np.atleast_2d(np.asarray(figures, np.float64))
    weights = np.asarray(weights, np.float64)
    if weights.shape != (figures.shape[1] + 1,):
        n = figures.shape[1]
        raise ValueError(f"expected ({n + 1},) weights for (N, {n}) figures, got {weights.shape}")
    return 1.0 / (1.0 + np.exp(-(figures @ weights[:-1] + weights[-1])))


@dataclass(frozen=True)
class VerdictConfig:
    """Decision settings (``verdict:`` in configs/fakewatch.yaml)."""

    match_floor: float = 0.25  # mean identity similarity below which a track imitates no enrolled brand
    min_share: float = 0.5  # share of a track's samples that must vote for its brand
    attribution_weight: float = 0.0  # weight of authenticity beside identity when naming a mark's brand
    threshold_offset: float = 0.0  # added to every brand's calibrated threshold
    suspicion_span: float = 0.3  # authenticity similarity this far below the threshold scores 1
    confirm: int = 3  # samples a track needs before it can alert
    window: int = 8  # the track's last this many samples are weighed
    max_gap: float = 4.0  # seconds a track survives without a matching mark
    min_detection: float = 0.35  # detector score a mark needs to be judged
    min_size: float = 12.0  # pixels; smaller marks are too small to judge
    min_appearance: float = 0.0  # identity-vector cosine a mark needs to join a track (0 = position only)
    authenticity_quantile: float = 0.75  # a track's authenticity: this quantile over its samples
    brand_agreement: int = 0  # the track's brand must rank in this top-k by authenticity (0 = off)
    brand_margin: float = -1.0  # same-brand lead over every other checked brand that waives brand_agreement (-1 = off)
    floor_same_brand: float = -1.0  # mean same-brand figure that waives match_floor (-1 = never)
    alert_threshold: float = 0.0  # suspicion score an alert needs (set by calibration)
    brand_thresholds: dict[str, float] = field(default_factory=dict)  # per-brand alert_threshold
    verifier_weight: float = 0.0  # weight of the verifier's score beside authenticity (0 = embedder alone)
    verifier_target: float = 0.4  # verifier score that leaves authenticity unchanged (the model's probability)
    same_brand_weight: float = 0.0  # weight of the verifier's same-brand figure beside identity when naming a brand
    min_same_brand: float = -1.0  # a track alerts only when its brand's same-brand figure reaches this (-1 = off)
    sure_identity: float = -1.0  # mean identity similarity that waives min_same_brand (-1 = never)
    sure_lead: float = -1.0  # same-brand lead over every other checked brand that waives min_same_brand (-1 = never)
    sure_fake: float = -1.0  # mean verifier score at or below which a track looks counterfeit regardless (-1 = never)
    # Weighed samples whose own same-brand figure reaches a same-brand gate (min_same_brand,
    # floor_same_brand) that pass it whatever the track's mean figure (0 = the mean alone).
    same_brand_count: int = 0
    # Weights of a logistic model of whether a track is its brand's mark (authentic or a copy) on the
    # track's KINSHIP_FIGURES, then a bias; fitted by scripts/fit_kinship.py on the tuning clips.
    kinship: tuple[float, ...] = ()
    min_kinship: float = -1.0  # a track alerts only when that model's probability reaches this (-1 = off)
    verified_samples: int = 0  # samples of a track the verifier checks; later ones carry their mean (0 = every one)
    verify_every: int = 1  # the verifier checks a track's first sample and every this many after; the rest carry
    settle: float = 0.0  # a track found authentic and its brand's this surely needs no more checks (0 = off)
    recall_brand: float = -1.0  # same-brand figure that keeps a brand among a track's checked brands (-1 = off)

    @property
    def checks_by_track(self) -> bool:
        """Whether the verifier checks only some of a track's marks (``needs_verification`` then
        needs the tracks as the frames before left them)."""
        return self.verified_samples > 0 or self.verify_every > 1 or self.settle > 0

    def judges(self, sample: MarkSample) -> bool:
        """Whether a mark is judged at all: sure enough a mark, and large enough to tell."""
        box = sample.box
        return sample.detection >= self.min_detection and max(box[2] - box[0], box[3] - box[1]) >= self.min_size

    def __post_init__(self) -> None:
        if not 0.0 <= self.authenticity_quantile <= 1.0:
            raise ValueError(f"authenticity_quantile: expected a value in [0, 1], got {self.authenticity_quantile}")
        if self.brand_agreement < 0:
            raise ValueError(f"brand_agreement: expected 0 or more, got {self.brand_agreement}")
        if self.verified_samples < 0:
            raise ValueError(f"verified_samples: expected 0 or more, got {self.verified_samples}")
        if self.verify_every < 1:
            raise ValueError(f"verify_every: expected 1 or more, got {self.verify_every}")
        if self.same_brand_count < 0:
            raise ValueError(f"same_brand_count: expected 0 or more (0 = off), got {self.same_brand_count}")
        if not 0.0 <= self.settle <= 1.0:
            raise ValueError(f"settle: expected a probability in [0, 1] (0 = off), got {self.settle}")
        if self.recall_brand > 1.0:
            raise ValueError(f"recall_brand: expected a probability (-1 = off), got {self.recall_brand}")
        if self.min_kinship >= 0 and len(self.kinship) != len(KINSHIP_FIGURES) + 1:
            raise ValueError(
                f"kinship: expected {len(KINSHIP_FIGURES) + 1} weights ({', '.join(KINSHIP_FIGURES)}, bias) "
                f"with min_kinship on, got {len(self.kinship)}"
            )


@dataclass(frozen=True)
class MarkSample:
    """One detected mark in one sampled frame, with what the gallery says of it."""

    stream: str
    frame: int
    t: float
    box: np.ndarray  # (4,) float32
    detection: float
    brand: str  # brand of the nearest reference by identity ("" when none)
    similarity: float  # identity similarity to that reference
    brand_sims: dict[str, float] = field(default_factory=dict)  # best identity similarity per neighbouring brand
    auth_sims: dict[str, float] = field(default_factory=dict)  # authenticity similarity to each brand's nearest ref
    brand_refs: dict[str, int] = field(default_factory=dict)  # id of that nearest authentic reference per brand
    thresholds: dict[str, float] = field(default_factory=dict)  # authenticity threshold per brand
    verified: dict[str, float] = field(default_factory=dict)  # verifier score per brand (pipeline.infer.verifier)
    same_brand: dict[str, float] = field(default_factory=dict)  # verifier: is this mark (a copy of) each brand's
    crop: np.ndarray | None = field(default=None, repr=False)
    appearance: np.ndarray | None = field(default=None, repr=False)  # (D,) L2-normalised identity vector
    authenticity: np.ndarray | None = field(default=None, repr=False)  # (D,) L2-normalised authenticity vector

    def __post_init__(self) -> None:
        if np.asarray(self.box).shape != (4,):
            raise ValueError(f"expected a (4,) box, got {np.asarray(self.box).shape}")
        for name in ("appearance", "authenticity"):
            vector = getattr(self, name)
            if vector is not None and np.asarray(vector).ndim != 1:
                raise ValueError(f"expected a (D,) {name} vector, got {np.asarray(vector).shape}")

    def identity_to(self, brand: str) -> float:
        """Identity similarity to ``brand``'s nearest reference (0 when none was among the neighbours)."""
        return self.brand_sims.get(brand, 0.0)

    def identity_lead(self, brand: str) -> float:
        """How far ``brand`` leads every other neighbouring brand by identity (negative: it trails)."""
        return self.identity_to(brand) - max((v for b, v in self.brand_sims.items() if b != brand), default=0.0)

    def authenticity_to(self, brand: str, verifier_weight: float = 0.0, verifier_target: float = 0.0) -> float:
        """Authenticity similarity to ``brand``'s nearest reference (0 when not measured).

        With ``verifier_weight``, the verifier's score for ``brand`` (when measured) moves it:
        ``+ verifier_weight x (verified - verifier_target)``.
        """
        sim = self.auth_sims.get(brand, 0.0)
        if verifier_weight and brand in self.verified:
            sim += verifier_weight * (self.verified[brand] - verifier_target)
        return sim

    def attributed(self, weight: float = 0.0, same_brand_weight: float = 0.0) -> str:
        """The neighbouring brand this mark shows or imitates.

        Each neighbouring brand scores its identity similarity, plus ``weight`` x authenticity,
        plus ``same_brand_weight`` x the verifier's figure that this mark is that brand's (its
        authentic mark or a copy of it; 0 where not verified). With both weights 0 it is the
        nearest reference's brand. A deformed fake can sit nearer another brand by identity,
        while the verifier, which sees the brand's mark laid over it, still tells whose it is.
        """
        if (weight == 0.0 and same_brand_weight == 0.0) or not self.brand_sims:
            return self.brand

        def score(b: str) -> float:
            shape = weight * self.auth_sims.get(b, 0.0) + same_brand_weight * self.same_brand.get(b, 0.0)
            return self.brand_sims[b] + shape

        return max(self.brand_sims, key=score)


@dataclass
class Track:
    """One mark followed across sampled frames of a stream."""

    id: int
    box: np.ndarray
    last_t: float
    samples: deque[MarkSample]
    alerted: bool = False
    appearance: np.ndarray | None = None  # its samples' identity vectors blended, newest weighing half
    verified: int = 0  # samples the verifier checked
    seen: int = 0  # samples it has followed (its window keeps only the last few)
    # brand -> (sum of verifier scores, sum of same-brand figures, samples): what later samples carry
    _checks: dict[str, tuple[float, float, int]] = field(default_factory=dict, repr=False)
    # brand -> gallery reference id: brands the verifier found it to be the mark of (``note_checks``'s
    # ``recall``), checked again on its later marks whatever identity ranks nearest then
    recalled: dict[str, int] = field(default_factory=dict)

    def follow(self, sample: MarkSample, t: float) -> None:
        """Add ``sample`` to the track, moving its box and blending its appearance."""
        self.box, self.last_t = sample.box, t
        self.samples.append(sample)
        self.seen += 1
        if sample.appearance is not None:
            v = sample.appearance if self.appearance is None else self.appearance + sample.appearance
            self.appearance = v / max(float(np.linalg.norm(v)), 1e-6)

    def settled(self, level: float) -> bool:
        """Whether the verifier's findings so far say, for one brand, that this is the brand's
        authentic mark at least ``level`` surely on average, and the brand's mark at all as surely."""
        return any(total / n >= level and kin / n >= level for total, kin, n in self._checks.values())

    def note_checks(self, sample: MarkSample, recall: float = -1.0) -> None:
        """Count what the verifier found of ``sample`` (checked itself) towards what later samples
        carry; a brand whose same-brand figure reaches ``recall`` (not negative) is remembered, with
        its reference, in ``recalled``."""
        self.verified += 1
        for b, score in sample.verified.items():
            kin_b = sample.same_brand.get(b, 0.0)
            total, kin, n = self._checks.get(b, (0.0, 0.0, 0))
            self._checks[b] = (total + score, kin + kin_b, n + 1)
            if 0.0 <= recall <= kin_b and b in sample.brand_refs:
                self.recalled[b] = sample.brand_refs[b]

    def checks(self, brand: str) -> int:
        """How many of its samples the verifier itself checked against ``brand`` (carried ones not counted)."""
        return self._checks.get(brand, (0.0, 0.0, 0))[2]

    def brand(self, weight: float = 0.0, same_brand_weight: float = 0.0) -> tuple[str, float]:
        """The brand most samples vote for (``MarkSample.attributed``), and its share of the votes."""
        votes = Counter(b for s in self.samples if (b := s.attributed(weight, same_brand_weight)))
        if not votes:
            return "", 0.0
        brand, n = votes.most_common(1)[0]
        return brand, n / len(self.samples)

    def carry(self, sample: MarkSample) -> MarkSample:
        """``sample`` with the track's mean verifier findings per brand (it was not checked itself)."""
        if not self._checks:
            return sample
        verified = {b: total / n for b, (total, _, n) in self._checks.items()}
        same = {b: kin / n for b, (_, kin, n) in self._checks.items()}
        return replace(sample, verified=verified, same_brand=same)

    def mean_identity(self, brand: str) -> float:
        return float(np.mean([s.identity_to(brand) for s in self.samples]))

    def verified_to(self, brand: str) -> float | None:
        """Mean verifier score for ``brand`` over the samples verified against it (None: none were)."""
        return _mean_found([s.verified for s in self.samples], brand)

    def same_brand(self, brand: str) -> float | None:
        """Mean same-brand figure for ``brand`` over the samples verified against it (None: none were)."""
        return _mean_found([s.same_brand for s in self.samples], brand)

    def same_brand_reaching(self, brand: str, level: float) -> int:
        """How many of its samples were found ``brand``'s mark with a same-brand figure of at least ``level``."""
        return sum(1 for s in self.samples if brand in s.same_brand and s.same_brand[brand] >= level)

    def same_brand_lead(self, brand: str) -> float | None:
        """How far ``brand``'s mean same-brand figure leads every other brand it was checked
        against (None: not checked against ``brand``; its full figure where no other was checked)."""
        own = self.same_brand(brand)
        return None if own is None else own - self._rival_same_brand(brand)

    def _rival_same_brand(self, brand: str) -> float:
        """The best mean same-brand figure among the other brands it was checked against (0: none)."""
        others = {b for s in self.samples for b in s.same_brand} - {brand}
        return max((v for b in others if (v := self.same_brand(b)) is not None), default=0.0)

    def identity_lead(self, brand: str) -> float:
        """Mean over its samples of how far ``brand`` leads every other neighbouring brand by identity."""
        return float(np.mean([s.identity_lead(brand) for s in self.samples]))

    def kinship_figures(self, brand: str) -> np.ndarray | None:
        """The track's ``KINSHIP_FIGURES`` for ``brand`` (None: the verifier never checked it against ``brand``)."""
        same = self.same_brand(brand)
        if same is None:
            return None
        lead = same - self._rival_same_brand(brand)
        return np.array([self.mean_identity(brand), same, lead, self.identity_lead(brand)])

    def authenticity(self, brand: str, quantile: float, weight: float = 0.0, target: float = 0.0) -> float:
        """The ``quantile`` of its samples' authenticity similarity to ``brand`` (verifier-weighted).

        Above the median, frames where a hand or glare hides part of an authentic mark (and make it
        look like a fake with a part erased) weigh less; a fake stays low in every frame.
        """
        return float(np.quantile([s.authenticity_to(brand, weight, target) for s in self.samples], quantile))

    def authenticity_rank(self, brand: str, weight: float = 0.0, target: float = 0.0) -> int:
        """Where ``brand`` ranks (1 = first) among its samples' brands by mean authenticity similarity.

        The authenticity head answers "whose authentic references is this closest to" apart from
        the identity head; a fake the identity head names as another brand often stays closer to
        its own brand's references there. With the verifier weighed in, a checked sample ranks
        only the brands it was checked against: a brand left unchecked keeps its similarity
        unmoved and would outrank every checked brand of a fake, its own included.
        """
        brands = {b for s in self.samples for b in (s.verified if weight and s.verified else s.auth_sims)} | {brand}
        mean = {b: float(np.mean([s.authenticity_to(b, weight, target) for s in self.samples])) for b in brands}
        return 1 + sum(v > mean[brand] for b, v in mean.items() if b != brand)


# The checks a track passes on its way to an alert, in the order the verdict applies them; an
# ``Assessment`` names the first one a track fails.
STOPS: tuple[str, ...] = (
    "confirming",  # fewer than ``confirm`` samples so far
    "no_brand",  # no sample names any brand
    "brand_share",  # its brand has too small a share of the samples' votes
    "match_floor",  # too unlike its brand's references by identity
    "same_brand",  # the verifier finds it is not its brand's mark at all
    "brand_agreement",  # the authenticity head ranks other brands above its brand
    "looks_authentic",  # close enough to its brand's authentic references
)


@dataclass(frozen=True)
class Assessment:
    """What the verdict makes of a track now: the brand it names, and the first check that stops
    the track from alerting (None: it alerts, with ``score`` and ``similarity``)."""

    brand: str
    stopped_at: str | None
    score: float = 0.0
    similarity: float = 0.0

    def __post_init__(self) -> None:
        if self.stopped_at is not None and self.stopped_at not in STOPS:
            raise ValueError(f"stopped_at: expected one of {STOPS} or None, got {self.stopped_at!r}")


@dataclass(frozen=True)
class Verdict:
    """A confirmed suspected counterfeit: the sample that confirmed it and its track."""

    sample: MarkSample
    track: int
    brand: str
    score: float
    similarity: float  # the track's authenticity similarity to the brand's references


def appearance_matrix(samples: list[MarkSample], tracks: list[Track]) -> np.ndarray:
    """Cosine of each sample's identity vector with each track's (1 where either has none)."""
    out = np.ones((len(samples), len(tracks)), np.float32)
    rows = [i for i, s in enumerate(samples) if s.appearance is not None]
    cols = [j for j, tr in enumerate(tracks) if tr.appearance is not None]
    if rows and cols:
        a = np.stack([samples[i].appearance for i in rows]).astype(np.float32)  # type: ignore[misc]
        b = np.stack([tracks[j].appearance for j in cols]).astype(np.float32)  # type: ignore[misc]
        out[np.ix_(rows, cols)] = a @ b.T
    return out


def _mean_found(figures: list[dict[str, float]], brand: str) -> float | None:
    """Mean of ``brand``'s figure over the dicts that hold one (None: none do)."""
    found = [f[brand] for f in figures if brand in f]
    return float(np.mean(found)) if found else None


def suspicion(sim: float, threshold: float, cfg: VerdictConfig) -> float:
    """How far below its brand's authentic range a track falls, in [0, 1]."""
    thr = threshold + cfg.threshold_offset
    return float(np.clip((thr - sim) / max(cfg.suspicion_span, 1e-3), 0.0, 1.0))


class StreamVerdicts:
    """Tracks and verdicts of one stream; feed it each sampled frame's marks in time order."""

    def __init__(
        self,
        stream: str,
        config: VerdictConfig,
        observer: Callable[[Track, MarkSample, Assessment], None] | None = None,
    ) -> None:
        """Start a stream's verdicts, with no tracks.

        Args:
            stream: the stream id.
            config: the decision settings.
            observer: called with every assessment of a track that has not alerted (its newest
                sample and what stopped it), e.g. to tell why a labelled fake was missed.
        """
        self.stream = stream
        self.cfg = config
        self.observer = observer
        self.tracks: list[Track] = []
        self._next = 1

    def needs_verification(self, t: float, samples: list[MarkSample]) -> list[bool]:
        """Which of this frame's marks the verifier should check before ``update``.

        Marks the verdict will not judge need none. Where the verifier checks only some of a
        track's marks (``checks_by_track``), a mark whose track has already alerted needs none
        (one object raises one alert), nor one whose track the verifier has found authentic
        (``settle``), nor one whose track has had ``verified_samples`` marks checked, nor one that
        is not the track's first or a ``verify_every``-th: it carries the track's findings (the
        same object, seen again), which is what keeps verifier mode cheap.
        """
        cfg = self.cfg
        if not cfg.checks_by_track:
            # Every judged mark is checked: no need to know its track.
            return [cfg.judges(s) for s in samples]
        tracks = self._tracks_for(t, samples)
        out = []
        for s in samples:
            if id(s) not in tracks:
                out.append(False)
                continue
            track = tracks[id(s)]
            out.append(track is None or self._wants_check(track))
        return out

    def recalled(self, t: float, samples: list[MarkSample]) -> list[dict[str, int]]:
        """Per mark of this frame, the brands (and their references) its track's checks so far found
        it to be the mark of (``recall_brand``): checked again, though identity may not rank them
        among its nearest. Half of a splice is its brand's mark, the other half pulls its identity
        elsewhere, so the frames where the brand ranks among its nearest are few. Empty when off."""
        if self.cfg.recall_brand < 0:
            return [{} for _ in samples]
        tracks = self._tracks_for(t, samples)
        out: list[dict[str, int]] = []
        for s in samples:
            track = tracks.get(id(s))
            out.append(dict(track.recalled) if track is not None and not track.alerted else {})
        return out

    def _tracks_for(self, t: float, samples: list[MarkSample]) -> dict[int, Track | None]:
        """id of each judged sample -> the live track it would join at ``t`` (None: a new one), as
        ``update`` would associate them now; samples the verdict will not judge are left out."""
        usable = [s for s in samples if self.cfg.judges(s)]
        return dict(zip(map(id, usable), self._associate(usable, self._live(t)), strict=True))

    def _wants_check(self, track: Track) -> bool:
        cfg = self.cfg
        if track.alerted or (cfg.verified_samples and track.verified >= cfg.verified_samples):
            return False
        if cfg.settle and track.settled(cfg.settle):
            return False
        return track.seen % cfg.verify_every == 0

    def _live(self, t: float) -> list[Track]:
        return [tr for tr in self.tracks if t - tr.last_t <= self.cfg.max_gap]

    def update(self, t: float, samples: list[MarkSample]) -> list[Verdict]:
        """Associate this frame's marks with tracks and return newly confirmed verdicts."""
        cfg = self.cfg
        self.tracks = self._live(t)
        usable = [s for s in samples if cfg.judges(s)]
        verdicts = []
        for sample, track in zip(usable, self._associate(usable, self.tracks), strict=True):
            if track is None:
                track = Track(self._next, sample.box, t, deque(maxlen=cfg.window))
                self._next += 1
                self.tracks.append(track)
            if sample.verified:
                track.note_checks(sample, cfg.recall_brand)
            else:
                sample = track.carry(sample)
            track.follow(sample, t)
            verdict = self._judge(track, sample)
            if verdict is not None:
                track.alerted = True
                verdicts.append(verdict)
        return verdicts

    def _judge(self, track: Track, sample: MarkSample) -> Verdict | None:
        if track.alerted:
            return None
        found = self.assess(track)
        if self.observer is not None:
            self.observer(track, sample, found)
        if found.stopped_at is not None:
            return None
        return Verdict(sample, track.id, found.brand, found.score, found.similarity)

    def assess(self, track: Track) -> Assessment:
        """The track's brand and the first check (``STOPS``) it fails now; none failed: it alerts."""
        cfg = self.cfg
        if len(track.samples) < cfg.confirm:
            return Assessment("", "confirming")
        brand, share = track.brand(cfg.attribution_weight, cfg.same_brand_weight)
        if not brand:
            return Assessment("", "no_brand")
        if share < cfg.min_share:
            return Assessment(brand, "brand_share")
        if track.mean_identity(brand) < cfg.match_floor and not self._surely_its_mark(track, brand):
            return Assessment(brand, "match_floor")
        # The verifier finds it is not the brand's mark at all: a mark of another (perhaps
        # unenrolled) brand, or a fake of another brand named wrongly.
        if cfg.min_kinship >= 0:
            figures = track.kinship_figures(brand)
            if figures is not None and kinship(figures, np.asarray(cfg.kinship))[0] < cfg.min_kinship:
                return Assessment(brand, "same_brand")
        same = track.same_brand(brand)
        if (
            cfg.min_kinship < 0
            and same is not None
            and same < cfg.min_same_brand
            and not self._often_its_mark(track, brand, cfg.min_same_brand)
            and not self._surely_its_brand(track, brand)
            and not self._leads_surely(track, brand)
        ):
            return Assessment(brand, "same_brand")
        vw, vt = cfg.verifier_weight, cfg.verifier_target
        # The brand check reads the verifier too: on the tuning clips it keeps 8 false alerts to
        # 40 caught where the embedder's ranking alone lets 21 through for 46.
        if (
            cfg.brand_agreement
            and not self._clearly_its_mark(track, brand)
            and track.authenticity_rank(brand, vw, vt) > cfg.brand_agreement
        ):
            return Assessment(brand, "brand_agreement")
        sim = track.authenticity(brand, cfg.authenticity_quantile, vw, vt)
        threshold = next((s.thresholds[brand] for s in reversed(track.samples) if brand in s.thresholds), 1.0)
        score = suspicion(sim, threshold, cfg)
        if score <= 0 or score < cfg.brand_thresholds.get(brand, cfg.alert_threshold):
            verified = self._surely_fake(track, brand)
            if verified is None:
                return Assessment(brand, "looks_authentic", score, sim)
            score = max(score, 1.0 - verified)
        return Assessment(brand, None, score, sim)

    def _checked(self, track: Track, brand: str, setting: float, figure: Callable[[str], float | None]) -> float | None:
        """``figure(brand)`` where ``setting`` is on (not negative) and the verifier itself checked the
        track against ``brand`` at least ``confirm`` times; None otherwise. One or two checks (the
        live worker checks every third mark) are too few to overrule the other stages."""
        if setting < 0 or track.checks(brand) < self.cfg.confirm:
            return None
        return figure(brand)

    def _surely_its_mark(self, track: Track, brand: str) -> bool:
        """Whether the verifier finds the track is ``brand``'s mark (authentic or a copy) surely
        enough to waive the identity floor: a mean same-brand figure of ``floor_same_brand`` over at
        least ``confirm`` checks. The floor keeps marks of brands outside the gallery out; the
        verifier, laying the brand's own mark over the crop, answers that better than the
        embedder's similarity, which a warp or half of another mark pulls away from the brand. One
        or two checks (the live worker checks every third mark) are too few to overrule it."""
        same = self._checked(track, brand, self.cfg.floor_same_brand, track.same_brand)
        if same is not None and same >= self.cfg.floor_same_brand:
            return True
        return self._often_its_mark(track, brand, self.cfg.floor_same_brand)

    def _often_its_mark(self, track: Track, brand: str, level: float) -> bool:
        """Whether at least ``same_brand_count`` of the track's weighed samples found it ``brand``'s
        mark with a same-brand figure of ``level`` (a gate's, not negative). A splice shows the
        half it keeps of its brand's mark in most frames and reads as another mark in a few (the
        other half turned to the camera, a hand over the kept one): those few drag the mean under
        the gate, while a mark of another brand rarely reaches it in any frame. As with the mean,
        the verifier must itself have checked the track against ``brand`` ``confirm`` times:
        samples that carry the track's findings (the live worker) would otherwise count one check
        many times over."""
        n = self.cfg.same_brand_count
        if n <= 0 or self._checked(track, brand, level, lambda _: 0.0) is None:
            return False
        return track.same_brand_reaching(brand, level) >= n

    def _surely_its_brand(self, track: Track, brand: str) -> bool:
        """Whether the embedder names ``brand`` surely enough (a mean identity similarity of
        ``sure_identity``) to overrule the verifier's same-brand doubt: the reverse of
        ``_surely_its_mark``. The same-brand figure keeps marks of other brands out, which sit
        further from the brand by identity; a bent copy of the brand's mark that the embedder still
        places among the brand's references, the verifier reads as another brand's."""
        return self.cfg.sure_identity >= 0 and track.mean_identity(brand) >= self.cfg.sure_identity

    def _leads_surely(self, track: Track, brand: str) -> bool:
        """Whether the verifier finds the track is ``brand``'s mark far more than any other brand's
        (a lead of ``sure_lead`` over at least ``confirm`` checks) though short of the same-brand
        gate. A mark of another brand, enrolled or not, reads as little like each brand it is laid
        against, so it leads none by much; a bent, thickened or mirrored copy of the brand's mark
        still reads far more like its brand than like the next."""
        lead = self._checked(track, brand, self.cfg.sure_lead, track.same_brand_lead)
        return lead is not None and lead >= self.cfg.sure_lead

    def _surely_fake(self, track: Track, brand: str) -> float | None:
        """The track's mean verifier score for ``brand`` where it finds the track is no authentic
        ``brand`` mark surely enough (at most ``sure_fake`` over at least ``confirm`` checks) to
        overrule an embedder that places it within the brand's authentic range; None otherwise. A
        brand whose camera views spread widely gets a low threshold, under which a thinned or
        part-erased copy still passes; the verifier, comparing the mark with the brand's own laid
        over it, sees the difference."""
        score = self._checked(track, brand, self.cfg.sure_fake, track.verified_to)
        return score if score is not None and score <= self.cfg.sure_fake else None

    def _clearly_its_mark(self, track: Track, brand: str) -> bool:
        """Whether the verifier finds the track is ``brand``'s mark (authentic or a copy) by a lead
        of ``brand_margin`` over every other brand it was checked against. The brand-agreement check
        then has nothing to add: it asks which brand's authentic references the mark sits nearest,
        and a fake sits near none, so for a fake it ranks brands by noise."""
        if self.cfg.brand_margin < 0:
            return False
        lead = track.same_brand_lead(brand)
        return lead is not None and lead >= self.cfg.brand_margin

    def _associate(self, samples: list[MarkSample], tracks: list[Track]) -> list[Track | None]:
        """Greedy matching by IoU, then by distance relative to size for fast movers.

        With ``min_appearance`` set, a mark never joins a track that looks unlike it: when a seller
        puts one product down and raises another in the same place, the new mark starts its own
        track instead of inheriting the old one's votes (and its verdict).
        """
        out: list[Track | None] = [None] * len(samples)
        if not samples or not tracks:
            return out
        boxes = np.stack([s.box for s in samples]).astype(np.float32)
        tboxes = np.stack([tr.box for tr in tracks]).astype(np.float32)
        ious = iou_matrix(boxes, tboxes)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        tcentres = (tboxes[:, :2] + tboxes[:, 2:]) / 2
        sizes = np.maximum(tboxes[:, 2] - tboxes[:, 0], tboxes[:, 3] - tboxes[:, 1])
        dist = np.linalg.norm(centres[:, None, :] - tcentres[None, :, :], axis=2) / np.maximum(sizes[None, :], 1)
        score = np.where(ious >= 0.2, 1 + ious, np.where(dist < 1.5, 1 - dist / 1.5, 0.0))
        if self.cfg.min_appearance > 0:
            score = np.where(appearance_matrix(samples, tracks) < self.cfg.min_appearance, 0.0, score)
        used_s: set[int] = set()
        used_t: set[int] = set()
        for flat in np.argsort(-score, axis=None):
            i, j = (int(v) for v in np.unravel_index(flat, score.shape))
            if score[i, j] <= 0:
                break
            if i in used_s or j in used_t:
                continue
            out[i] = tracks[j]
            used_s.add(i)
            used_t.add(j)
        return out
