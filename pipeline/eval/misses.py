"""Why each missed counterfeit was missed: the run's verdicts replayed over what it logged.

The evaluation logs every sampled frame's marks as the verdict stage received them
(``FrameLog``). Feeding them again, in order, into fresh ``StreamVerdicts`` reproduces the run's
verdicts exactly, and an observer sees every assessment: the brand a track named and the first
check that stopped it. A missed fake's cause is the furthest any of its tracks got: "same_brand"
means it was confirmed, named as its own brand and matched that brand's references, and the
verifier then found it unlike the brand's mark.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.boxes import iou_matrix
from pipeline.eval.scoring import Clip, LabelledObject, Score
from pipeline.verdict import STOPS, Assessment, MarkSample, StreamVerdicts, Track, VerdictConfig

# From the earliest stage to the furthest: a miss is put down to the furthest it reached.
MISS_CAUSES: tuple[str, ...] = (
    "not_detected",
    "not_judged",
    "confirming",
    "wrong_brand",
    *(stop for stop in STOPS if stop not in ("confirming", "no_brand")),
)

CAUSE_TEXT: dict[str, str] = {
    "not_detected": "never detected",
    "not_judged": "detected only too weakly or too small to judge",
    "confirming": "not seen in enough sampled frames to confirm",
    "wrong_brand": "named as another brand",
    "brand_share": "its brand won too few of the votes",
    "match_floor": "too unlike its brand's references (identity floor)",
    "same_brand": "the verifier found it is not its brand's mark (same-brand check)",
    "brand_agreement": "the authenticity head ranked another brand first",
    "looks_authentic": "judged authentic",
}

if TYPE_CHECKING:  # the runner brings the whole pipeline; the report needs only the names below
    from pipeline.eval.runner import FrameLog

Key = tuple[str, int]  # (stream, labelled object id)


@dataclass(frozen=True)
class Miss:
    """Why one counterfeit was missed: the furthest check it reached (``MISS_CAUSES``) and, where its
    tracks named another brand, the brand they named most often."""

    cause: str
    named_as: str = ""

    def __post_init__(self) -> None:
        if self.cause not in MISS_CAUSES:
            raise ValueError(f"cause: expected one of {MISS_CAUSES}, got {self.cause!r}")

    def text(self) -> str:
        """One line for a reviewer."""
        said = CAUSE_TEXT[self.cause]
        return f"{said}: {self.named_as}" if self.named_as else said


def _cause(found: Assessment, obj: LabelledObject) -> str | None:
    """How far one assessment of a track on ``obj`` got (None: it alerted as ``obj``'s brand, which
    scoring counts as a catch, by the same overlap rule)."""
    if found.stopped_at == "confirming":
        return "confirming"
    if found.stopped_at == "no_brand" or found.brand != obj.brand:
        return "wrong_brand"
    return found.stopped_at


def miss_causes(
    clips: Sequence[Clip], log: FrameLog, config: VerdictConfig, result: Score, min_iou: float = 0.3
) -> dict[Key, Miss]:
    """For every counterfeit ``result`` counts as missed, the furthest check it reached (``MISS_CAUSES``).

    A sampled mark speaks for a labelled object when it falls within the object's visible frames
    and its box overlaps the object's nearest labelled box by ``min_iou`` (as scoring does).
    """
    missed = {(r.stream, r.object.id): r.object for r in result.objects if not r.caught}
    by_stream: dict[str, list[tuple[Key, LabelledObject]]] = {}
    for key, obj in missed.items():
        by_stream.setdefault(key[0], []).append((key, obj))
    reached: dict[Key, int] = dict.fromkeys(missed, 0)
    named: dict[Key, Counter[str]] = {key: Counter() for key in missed}  # other brands its tracks named

    def under(stream: str, sample: MarkSample) -> list[tuple[Key, LabelledObject]]:
        out = []
        for key, obj in by_stream.get(stream, []):
            if obj.first_frame() <= sample.frame <= obj.last_frame():
                box = obj.box_near(sample.frame)[None].astype(np.float32)
                if iou_matrix(box, np.asarray(sample.box, np.float32)[None])[0, 0] >= min_iou:
                    out.append((key, obj))
        return out

    def reach(key: Key, cause: str) -> None:
        reached[key] = max(reached[key], MISS_CAUSES.index(cause))

    def observer(stream: str) -> Callable[[Track, MarkSample, Assessment], None]:
        def seen(_track: Track, sample: MarkSample, found: Assessment) -> None:
            for key, obj in under(stream, sample):
                if (cause := _cause(found, obj)) is not None:
                    reach(key, cause)
                if cause == "wrong_brand" and found.brand:
                    named[key][found.brand] += 1

        return seen

    verdicts: dict[str, StreamVerdicts] = {}
    for (stream, _index), (t, samples) in sorted(log.frames.items()):
        for sample in samples:
            for key, _obj in under(stream, sample):
                reach(key, "not_judged")
        if stream not in verdicts:
            verdicts[stream] = StreamVerdicts(stream, config, observer(stream))
        verdicts[stream].update(t, samples)
    out = {}
    for key, i in reached.items():
        cause = MISS_CAUSES[i]
        other = named[key].most_common(1)[0][0] if cause == "wrong_brand" and named[key] else ""
        out[key] = Miss(cause, other)
    return out


def misses_by_cause(causes: dict[Key, Miss], result: Score) -> dict[str, dict[str, int]]:
    """Missed counterfeits per cause, in all and per family: ``{"all": {cause: n}, family: {...}}``
    (causes in ``MISS_CAUSES`` order, families sorted; objects without a family under "unlabelled")."""
    table: dict[str, dict[str, int]] = {"all": dict.fromkeys(MISS_CAUSES, 0)}
    for r in result.objects:
        miss = causes.get((r.stream, r.object.id))
        if r.caught or miss is None:
            continue
        family = r.object.family or "unlabelled"
        table["all"][miss.cause] += 1
        table.setdefault(family, dict.fromkeys(MISS_CAUSES, 0))[miss.cause] += 1
    return {"all": table.pop("all"), **dict(sorted(table.items()))}
