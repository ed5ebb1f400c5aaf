"""Labelled clips (formats.md section 2) and scoring alerts against them (section 4).

Pure functions over parsed records: no video is decoded here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.alerts import Alert
from pipeline.boxes import iou_matrix

LABELS_FORMAT = "fakewatch-labels/1"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".ts", ".flv", ".avi")
IOU_MIN = 0.3
BEFORE_S = 0.5
AFTER_S = 2.0


class LabelError(ValueError):
    """A label file does not follow formats.md section 2; the message names the file."""


@dataclass(frozen=True)
class LabelledObject:
    """One labelled mark: which brand, authentic or not, and its box per visible frame."""

    id: int
    brand: str
    authentic: bool
    frames: np.ndarray  # (M,) int64, sorted
    boxes: np.ndarray  # (M, 4) float32
    family: str | None = None

    def first_frame(self) -> int:
        return int(self.frames[0])

    def last_frame(self) -> int:
        return int(self.frames[-1])

    def box_near(self, frame: float) -> np.ndarray:
        """The labelled box at the labelled frame nearest ``frame``."""
        return self.boxes[int(np.argmin(np.abs(self.frames - frame)))]


@dataclass(frozen=True)
class Clip:
    """A labelled clip: its video, stream id, timing and objects."""

    stream: str
    video: Path
    fps: float
    frames: int
    size: tuple[int, int]
    objects: tuple[LabelledObject, ...]

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def counterfeits(self) -> list[LabelledObject]:
        return [o for o in self.objects if not o.authentic]


def load_clip(label_path: str | Path) -> Clip:
    """Parse and validate one label file, raising ``LabelError`` naming it."""
    path = Path(label_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise LabelError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise LabelError(f"{path}: expected a JSON object")
    if data.get("format") != LABELS_FORMAT:
        raise LabelError(f"{path}: unknown format {data.get('format')!r}, expected {LABELS_FORMAT!r}")
    for key in ("video", "fps", "frames", "size", "objects"):
        if key not in data:
            raise LabelError(f"{path}: missing field {key!r}")
    try:
        fps, n_frames = float(data["fps"]), int(data["frames"])
        width, height = (int(v) for v in data["size"])
    except (TypeError, ValueError):
        raise LabelError(f"{path}: fps, frames and size must be numbers") from None
    if fps <= 0 or n_frames < 0 or width <= 0 or height <= 0:
        raise LabelError(f"{path}: fps, frames and size must be positive")
    if not isinstance(data["objects"], list):
        raise LabelError(f"{path}: objects must be a list")
    objects = []
    seen: set[int] = set()
    for k, obj in enumerate(data["objects"]):
        where = f"{path}: objects[{k}]"
        if not isinstance(obj, dict):
            raise LabelError(f"{where}: expected an object")
        for key in ("id", "brand", "authentic", "boxes"):
            if key not in obj:
                raise LabelError(f"{where}: missing field {key!r}")
        # A label's truth must be a JSON boolean: "no" or 0 read as Python truthiness would flip it.
        if not isinstance(obj["authentic"], bool):
            raise LabelError(f"{where}: authentic must be true or false, got {obj['authentic']!r}")
        if isinstance(obj["id"], bool) or not isinstance(obj["id"], int):
            raise LabelError(f"{where}: id must be a whole number, got {obj['id']!r}")
        if obj["id"] in seen:
            raise LabelError(f"{where}: id {obj['id']} is used by an earlier object of this clip")
        seen.add(obj["id"])
        rows = obj["boxes"]
        if not isinstance(rows, list) or not rows:
            raise LabelError(f"{where}: boxes must be a non-empty list of [frame, x1, y1, x2, y2]")
        try:
            arr = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise LabelError(f"{where}: boxes must be [frame, x1, y1, x2, y2] numbers") from None
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise LabelError(f"{where}: expected boxes of 5 numbers [frame, x1, y1, x2, y2], got shape {arr.shape}")
        fr, bx = arr[:, 0], arr[:, 1:]
        bad = (
            (bx[:, 0] < 0)
            | (bx[:, 1] < 0)
            | (bx[:, 2] > width)
            | (bx[:, 3] > height)
            | (bx[:, 2] <= bx[:, 0])
            | (bx[:, 3] <= bx[:, 1])
        )
        if bad.any():
            i = int(np.argmax(bad))
            raise LabelError(f"{where}: box {rows[i]} lies outside the {width}x{height} frame or is empty")
        if ((fr < 0) | (fr >= max(n_frames, 1))).any():
            raise LabelError(f"{where}: frame numbers must lie in [0, {n_frames})")
        order = np.argsort(fr, kind="stable")
        objects.append(
            LabelledObject(
                obj["id"],
                str(obj["brand"]),
                obj["authentic"],
                fr[order].astype(np.int64),
                bx[order].astype(np.float32),
                obj.get("family"),
            )
        )
    video = path.with_name(str(data["video"]))
    return Clip(path.stem, video, fps, n_frames, (width, height), tuple(objects))


def load_clips(folder: str | Path) -> list[Clip]:
    """Every labelled clip of a folder (a video with a same-stem .json sidecar)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelError(f"clips folder not found: {folder}")
    clips = [load_clip(p) for p in sorted(folder.glob("*.json")) if p.with_suffix("").name[:1] != "."]
    if not clips:
        raise LabelError(f"{folder}: no labelled clips (video + .json sidecar)")
    return clips


@dataclass
class ObjectResult:
    """A counterfeit object and the first alert that caught it."""

    stream: str
    object: LabelledObject
    first_visible: float
    caught_by: list[int] = field(default_factory=list)  # indices into the alerts list
    first_alert_t: float | None = None

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


@dataclass
class Score:
    """Alert-level scores over a set of clips (formats.md section 4)."""

    objects: list[ObjectResult]
    alert_hits: list[bool]  # per alert: does it catch some counterfeit object
    hours: float
    streams: list[str]
    alert_streams: list[str] = field(default_factory=list)  # per alert: its stream

    @property
    def counterfeits(self) -> int:
        return len(self.objects)

    @property
    def caught(self) -> int:
        return sum(o.caught for o in self.objects)

    @property
    def alerts(self) -> int:
        return len(self.alert_hits)

    @property
    def true_alerts(self) -> int:
        return sum(self.alert_hits)

    @property
    def false_alerts(self) -> int:
        return self.alerts - self.true_alerts

    def times_to_first_alert(self) -> list[float]:
        return [o.first_alert_t - o.first_visible for o in self.objects if o.first_alert_t is not None]

    def to_dict(self) -> dict:
        ttfa = self.times_to_first_alert()
        return {
            "event_recall": _ratio(self.caught, self.counterfeits),
            "alert_precision": _ratio(self.true_alerts, self.alerts),
            "false_alerts_per_stream_hour": round(self.false_alerts / self.hours, 3) if self.hours else None,
            "median_time_to_first_alert_s": round(float(np.median(ttfa)), 3) if ttfa else None,
            "p90_time_to_first_alert_s": round(float(np.percentile(ttfa, 90)), 3) if ttfa else None,
            "alerts_per_caught_counterfeit": _ratio(self.true_alerts, self.caught),
            "counts": {
                "clips": len(self.streams),
                "hours": round(self.hours, 4),
                "counterfeits": self.counterfeits,
                "caught": self.caught,
                "alerts": self.alerts,
                "true_alerts": self.true_alerts,
                "false_alerts": self.false_alerts,
            },
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def overlap(alert: Alert, obj: LabelledObject, fps: float) -> float | None:
    """IoU of ``alert``'s box with ``obj``'s box nearest its time; None outside the object's window
    (from BEFORE_S before its first frame to AFTER_S after its last)."""
    start = obj.first_frame() / fps - BEFORE_S
    end = obj.last_frame() / fps + AFTER_S
    if not start <= alert.t <= end:
        return None
    box = obj.box_near(alert.t * fps)
    return float(iou_matrix(np.asarray([alert.box], np.float32), box[None])[0, 0])


def catches(alert: Alert, obj: LabelledObject, fps: float) -> bool:
    """Whether ``alert`` catches counterfeit ``obj`` (same brand, time window, IoU >= 0.3)."""
    if obj.authentic or alert.brand != obj.brand:
        return False
    iou = overlap(alert, obj, fps)
    return iou is not None and iou >= IOU_MIN


def score(clips: Sequence[Clip], alerts: Sequence[Alert], enrolled: Collection[str] | None = None) -> Score:
    """Score alerts against labelled clips.

    An alert whose stream matches no clip catches nothing (a false alert). With ``enrolled`` (the
    gallery's brands), a counterfeit of a brand outside it is not an object to catch: formats.md
    says a mark of an unenrolled brand must never raise an alert, so it can only cost a false
    alert, never a miss. Without it, every labelled counterfeit counts.
    """
    by_stream = {c.stream: c for c in clips}
    objects: list[ObjectResult] = []
    per_stream: dict[str, list[ObjectResult]] = {c.stream: [] for c in clips}
    for clip in clips:
        for obj in clip.counterfeits:
            if enrolled is not None and obj.brand not in enrolled:
                continue
            r = ObjectResult(clip.stream, obj, obj.first_frame() / clip.fps)
            objects.append(r)
            per_stream[clip.stream].append(r)
    hits = []
    for i, alert in enumerate(alerts):
        home = by_stream.get(alert.stream)
        hit = False
        if home is not None:
            for r in per_stream[home.stream]:
                if catches(alert, r.object, home.fps):
                    hit = True
                    r.caught_by.append(i)
                    if r.first_alert_t is None or alert.t < r.first_alert_t:
                        r.first_alert_t = alert.t
        hits.append(hit)
    hours = sum(c.seconds for c in clips) / 3600
    return Score(objects, hits, hours, [c.stream for c in clips], [a.stream for a in alerts])


def recall_by_family(result: Score) -> dict[str, dict[str, float | int | None]]:
    """Counterfeits, caught and event recall per counterfeit family (labels' optional ``family``).

    Objects without a family are counted under ``"unlabelled"``; families are sorted by name.
    """
    counts: dict[str, list[int]] = {}
    for r in result.objects:
        c = counts.setdefault(r.object.family or "unlabelled", [0, 0])
        c[0] += 1
        c[1] += r.caught
    return {
        fam: {"counterfeits": n, "caught": k, "event_recall": _ratio(k, n)} for fam, (n, k) in sorted(counts.items())
    }


# What a false alert fell on, most telling first (see ``false_alert_kind``).
FALSE_ALERT_KINDS = (
    "counterfeit_named_as_another_brand",
    "authentic_mark_of_the_brand",
    "mark_of_another_brand",
    "counterfeit_of_the_brand_misplaced",
    "no_labelled_mark",
)


def false_alert_kind(alert: Alert, clip: Clip | None) -> str:
    """What a false alert fell on: the labelled object its box overlaps (IoU >= 0.3) at its time.

    A counterfeit of another brand means the fake was caught but named wrongly; an authentic mark
    of the alert's brand means the brand's threshold let a genuine mark through; a mark of another
    brand (often one outside the gallery) means it was taken for an enrolled brand.
    """
    if clip is None:
        return "no_labelled_mark"
    best: tuple[float, LabelledObject] | None = None
    for obj in clip.objects:
        iou = overlap(alert, obj, clip.fps)
        if iou is not None and (best is None or iou > best[0]):
            best = (iou, obj)
    if best is None or best[0] <= 0.0:
        return "no_labelled_mark"
    iou, obj = best
    if obj.brand == alert.brand and not obj.authentic:
        # A fake of the alert's brand that the alert did not catch: its box overlaps too little.
        return "counterfeit_of_the_brand_misplaced"
    if iou < IOU_MIN:
        return "no_labelled_mark"
    if obj.authentic:
        return "authentic_mark_of_the_brand" if obj.brand == alert.brand else "mark_of_another_brand"
    return "counterfeit_named_as_another_brand"


def false_alert_kinds(clips: Sequence[Clip], alerts: Sequence[Alert], result: Score) -> dict[str, int]:
    """How many false alerts fell on each kind of thing (``FALSE_ALERT_KINDS``)."""
    by_stream = {c.stream: c for c in clips}
    counts = dict.fromkeys(FALSE_ALERT_KINDS, 0)
    for alert, hit in zip(alerts, result.alert_hits, strict=True):
        if not hit:
            counts[false_alert_kind(alert, by_stream.get(alert.stream))] += 1
    return counts
