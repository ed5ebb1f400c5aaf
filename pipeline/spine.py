"""The spine: the one place where the stages are wired together.

``Spine.process`` takes a micro-batch of frames (from any number of streams) through detection,
cropping, embedding, gallery search and per-stream verdicts, and hands alerts to the sinks.
``run_sources`` feeds it from decoders through one bounded queue. Replay, evaluation, the daemon
and Ray workers all call these two and wire nothing themselves.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.alerts import Alert, AlertSink, EvidenceWriter, evidence_image
from pipeline.boxes import KEPT_HALVES, cut_crops, kept_halves
from pipeline.config import Config
from pipeline.gallery.index import Gallery, GalleryIndex
from pipeline.infer.detector import Detector, OnnxDetector
from pipeline.infer.device import DevicePipeline
from pipeline.infer.embedder import Embedder, OnnxEmbedder
from pipeline.infer.hands import OnnxHands
from pipeline.infer.session import set_library_threads
from pipeline.infer.verifier import MarkVerifier, OnnxJudge, PendingVerification, Verification
from pipeline.ingest.source import IngestError, Source
from pipeline.types import MARK, Frame
from pipeline.verdict import MarkSample, StreamVerdicts, Verdict


@dataclass
class StageTimes:
    """Seconds spent per stage, and batch sizes seen (for metrics and benchmarks)."""

    seconds: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    batches: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """What the verifier checks one mark against: the mark, with the gallery's evidence for the
    brands checked beyond its neighbours (``Spine._with_brands``), and each brand's gallery
    reference to lay over it."""

    sample: MarkSample
    refs: dict[str, int]


class _Checks:
    """The verifier's work on some marks, started by ``Spine`` and waited for once."""

    def __init__(
        self,
        plans: dict[tuple[int, int], _Plan],
        pending: PendingVerification | None,
        timed: Callable[[str, float], None],
    ) -> None:
        self.plans, self.pending, self.timed = plans, pending, timed

    def findings(self) -> dict[tuple[int, int], Verification]:
        """(frame, mark) -> what the verifier found of that mark (waits for the verifier's threads)."""
        if self.pending is None:
            return {}
        t0 = time.perf_counter()
        out = dict(zip(self.plans, self.pending.result(), strict=True))
        self.timed("verify", time.perf_counter() - t0)  # the wait, not the threads' work
        return out


@dataclass(frozen=True)
class Staged:
    """A micro-batch ``Spine.stage`` has detected, embedded and searched, its marks perhaps
    being verified (``checks``); ``Spine.conclude`` finishes it."""

    frames: list[Frame]
    found: list[list[MarkSample]]  # per frame, the judged marks before verification
    started: float  # time.perf_counter() when staging began
    checks: _Checks | None = None
    # (frame, mark) -> the brands its crop's halves are nearest to, once searched (``Spine.half_brands``)
    halves: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)


def waves(frames: Sequence[Frame]) -> list[list[int]]:
    """Indices of ``frames`` in waves of at most one frame per stream: wave i holds each stream's
    i-th frame, in the batch's order."""
    out: list[list[int]] = []
    depth: dict[str, int] = {}
    for k, frame in enumerate(frames):
        d = depth.get(frame.stream, 0)
        depth[frame.stream] = d + 1
        if d == len(out):
            out.append([])
        out[d].append(k)
    return out


class Spine:
    """Detector, embedder and gallery, with per-stream verdicts and alert sinks."""

    def __init__(
        self,
        config: Config,
        detector: Detector,
        embedder: Embedder,
        gallery: Gallery,
        sinks: Sequence[AlertSink] = (),
        evidence: EvidenceWriter | None = None,
        model_version: str = "",
        observer: Callable[[Frame, list[MarkSample]], None] | None = None,
        device: DevicePipeline | None = None,
        verifier: MarkVerifier | None = None,
    ) -> None:
        self.config = config
        self.verifier = verifier
        self.observer = observer
        self.device = device
        self.detector = detector
        self.embedder = embedder
        self.gallery = gallery
        self.sinks = list(sinks)
        self.evidence = evidence
        self.model_version = model_version
        self.streams: dict[str, StreamVerdicts] = {}
        self.sellers: dict[str, str] = {}  # stream id -> the seller whose stream it is, where known
        self.times = StageTimes()
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: Config,
        index: str | Path,
        sinks: Sequence[AlertSink] = (),
        evidence: EvidenceWriter | None = None,
    ) -> Spine:
        """Load the configured models and open a gallery index built with the same embedder."""
        m = config.models
        d = config.detector
        set_library_threads(m.library_threads)
        detector = OnnxDetector(
            config.model_path("detector"), m.providers, d.threshold, d.iou, m.threads, d.cpu_frames_per_run
        )
        embedder = OnnxEmbedder(config.model_path("embedder"), m.providers, threads=m.threads)
        gallery = GalleryIndex.open(index, embedder.version)
        device = None
        if m.device_path == "on" or (m.device_path == "auto" and detector.session.device != "cpu"):
            device = DevicePipeline(detector, embedder, config.model_path("cropper"), m.providers, m.threads)
        verifier = None
        if config.verifier.enabled:
            judge = hands = None
            if config.verifier.learned:
                judge = OnnxJudge(config.model_path("verifier"), m.providers, m.threads)
            if config.verifier.hands:
                hands = OnnxHands(config.model_path("hands"), m.providers, m.threads, config.verifier.hand_threshold)
            verifier = MarkVerifier(gallery.reference_image, config.verifier, judge, hands)
        return cls(
            config,
            detector,
            embedder,
            gallery,
            sinks,
            evidence,
            device=device,
            verifier=verifier,
            model_version=f"{detector.version}+{embedder.version}+{gallery.path.name}",
        )

    def close(self) -> None:
        """Close models, gallery and sinks."""
        judge = self.verifier.judge if self.verifier is not None else None
        hands = self.verifier.hands if self.verifier is not None else None
        for part in (self.device, self.detector, self.embedder, self.verifier, judge, hands, self.gallery, *self.sinks):
            close = getattr(part, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Spine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the stages ---------------------------------------------------------------------

    def samples(self, frames: Sequence[Frame]) -> list[list[MarkSample]]:
        """Detect, crop, embed and search: one list of judged marks per frame."""
        vc = self.config.verdict
        per_frame_marks = []
        all_crops: np.ndarray | None = None
        t0 = time.perf_counter()
        if self.device is not None:
            # GPU path: one upload per batch; crops are cut and embedded on the device.
            dets, chosen, vectors = self.device.run([f.image for f in frames], vc.min_detection)
            for det, pick in zip(dets, chosen, strict=True):
                per_frame_marks.append((det.boxes[pick], det.scores[pick]))
            t1 = t2 = t3 = time.perf_counter()
        else:
            detections = self.detector.detect([f.image for f in frames])
            t1 = time.perf_counter()
            crops = []
            side = self.embedder.crop_size
            for frame, det in zip(frames, detections, strict=True):
                marks = det.of_class(MARK)
                keep = marks.scores >= vc.min_detection
                boxes, scores = marks.boxes[keep], marks.scores[keep]
                per_frame_marks.append((boxes, scores))
                if len(boxes):
                    crops.append(cut_crops(frame.image, boxes, side))
            t2 = time.perf_counter()
            all_crops = np.concatenate(crops) if crops else np.zeros((0, side, side, 3), np.uint8)
            vectors = self.embedder.embed(all_crops)
            t3 = time.perf_counter()
        nb = self.gallery.search(vectors.identity, self.config.gallery.neighbours)
        t4 = time.perf_counter()
        out: list[list[MarkSample]] = []
        row = 0
        for frame, (boxes, scores) in zip(frames, per_frame_marks, strict=True):
            found = []
            for box, score in zip(boxes, scores, strict=True):
                crop = all_crops[row] if all_crops is not None else None
                found.append(
                    self._judge(
                        frame,
                        box,
                        float(score),
                        vectors.authenticity[row],
                        nb.similarity[row],
                        nb.brand[row],
                        crop,
                        vectors.identity[row],
                    )
                )
                row += 1
            out.append(found)
        t5 = time.perf_counter()
        with self._lock:
            s = self.times.seconds
            s["detect"] += t1 - t0
            s["crop"] += t2 - t1
            s["embed"] += t3 - t2
            s["search"] += t4 - t3
            s["judge"] += t5 - t4
            self.times.batches.append(len(frames))
        return out

    def _judge(
        self,
        frame: Frame,
        box: np.ndarray,
        score: float,
        auth: np.ndarray,
        sims: np.ndarray,
        brands: np.ndarray,
        crop: np.ndarray | None,
        identity: np.ndarray,
    ) -> MarkSample:
        """One mark's gallery evidence: its nearest brand, and per neighbouring brand its
        identity and authenticity similarity."""
        brand_sims: dict[str, float] = {}
        for sim, b in zip(sims, brands, strict=True):
            if b and b not in brand_sims:  # neighbours come best first
                brand_sims[str(b)] = float(sim)
        auth_sims, brand_refs = {}, {}
        for b in brand_sims:
            auth_sims[b], brand_refs[b] = self.gallery.authenticity(auth, b)
        best = str(brands[0]) if len(brands) and brands[0] else ""
        return MarkSample(
            stream=frame.stream,
            frame=frame.index,
            t=frame.t,
            box=box.astype(np.float32),
            detection=score,
            brand=best,
            similarity=float(sims[0]) if best else 0.0,
            brand_sims=brand_sims,
            auth_sims=auth_sims,
            brand_refs=brand_refs,
            thresholds={b: self.gallery.threshold(b) for b in brand_sims},
            crop=crop,
            appearance=np.asarray(identity, np.float32),
            authenticity=np.asarray(auth, np.float32),
        )

    def _with_brands(self, sample: MarkSample, brands: dict[str, float]) -> MarkSample:
        """``sample`` with the gallery's evidence for ``brands`` (brand -> identity similarity)
        that are not among its neighbours: what the verdict weighs for a brand checked beyond them."""
        new = {b: sim for b, sim in brands.items() if b not in sample.brand_sims}
        if not new or sample.authenticity is None:
            return sample
        auth_sims, brand_refs = dict(sample.auth_sims), dict(sample.brand_refs)
        for b in new:
            auth_sims[b], brand_refs[b] = self.gallery.authenticity(sample.authenticity, b)
        return dataclasses.replace(
            sample,
            brand_sims={**sample.brand_sims, **new},
            auth_sims=auth_sims,
            brand_refs=brand_refs,
            thresholds={**sample.thresholds, **{b: self.gallery.threshold(b) for b in new}},
        )

    def half_brands(self, images: Sequence[np.ndarray], samples: Sequence[MarkSample]) -> list[dict[str, float]]:
        """Per mark, the brand nearest each half of its crop embedded alone (``kept_halves``), with
        that half's identity similarity, where it reaches ``verifier.half_brands``.

        Args:
            images: the frame each mark was found in (full resolution).
            samples: the marks.
        """
        floor = self.config.verifier.half_brands
        if floor < 0 or not samples:
            return [{} for _ in samples]
        t0 = time.perf_counter()
        side = self.embedder.crop_size
        crops = np.stack(
            [
                s.crop if s.crop is not None and s.crop.shape[0] == side else cut_crops(img, s.box[None], side)[0]
                for img, s in zip(images, samples, strict=True)
            ]
        )
        halves = kept_halves(crops).reshape(-1, side, side, 3)
        nb = self.gallery.search(self.embedder.embed(halves).identity, 1)
        out: list[dict[str, float]] = []
        for i in range(len(samples)):
            found: dict[str, float] = {}
            for row in range(i * len(KEPT_HALVES), (i + 1) * len(KEPT_HALVES)):
                if nb.brand.shape[1] and (b := str(nb.brand[row, 0])) and nb.similarity[row, 0] >= floor:
                    found[b] = max(found.get(b, -1.0), float(nb.similarity[row, 0]))
            out.append(found)
        self._add_time("halves", time.perf_counter() - t0)
        return out

    def verify(self, frames: Sequence[Frame], found: Sequence[list[MarkSample]]) -> list[list[MarkSample]]:
        """The frames' samples with the verifier's findings for each brand they are checked
        against, where the streams' verdicts still need them (``StreamVerdicts.needs_verification``).

        Every mark of the frames is aligned at once, on the verifier's threads. The verdicts are
        asked before any of these frames updates them (see ``stage``).
        """
        wanted = {k: self._wanted(f, marks) for k, (f, marks) in enumerate(zip(frames, found, strict=True))}
        plans = self._plans(frames, found, wanted, {})
        seen = self._submit(frames, plans).findings()
        return [
            [self._judged(plans[k, j], seen.get((k, j))) if (k, j) in plans else s for j, s in enumerate(marks)]
            for k, marks in enumerate(found)
        ]

    def _wanted(self, frame: Frame, marks: list[MarkSample]) -> list[bool]:
        """Which marks of ``frame`` its stream's verdicts want checked, as its tracks stand now."""
        return self.stream(frame.stream).needs_verification(frame.t, marks)

    def _plans(
        self,
        frames: Sequence[Frame],
        found: Sequence[list[MarkSample]],
        wanted: dict[int, list[bool]],
        halves: dict[tuple[int, int], dict[str, float]],
    ) -> dict[tuple[int, int], _Plan]:
        """What each wanted mark (frame k, mark j) is checked against, as its stream's tracks stand
        now: the brands identity ranks nearest (the nearest first: it may get a wider search),
        then the brands its track recalls (``verdict.recall_brand``), then, while its track
        recalls none, the brands its crop's halves are nearest to (``half_brands``, searched once
        per mark and kept in ``halves``)."""
        assert self.verifier is not None
        recalled: dict[tuple[int, int], dict[str, int]] = {}
        for k, want in wanted.items():
            if any(want):
                for j, brands in enumerate(self.stream(frames[k].stream).recalled(frames[k].t, found[k])):
                    if want[j]:
                        recalled[k, j] = brands
        # A track that has found no brand's mark yet may be a splice: look for its brand by halves.
        todo = [kj for kj, brands in recalled.items() if not brands and kj not in halves]
        if todo:
            searched = self.half_brands([frames[k].image for k, _ in todo], [found[k][j] for k, j in todo])
            halves.update(zip(todo, searched, strict=True))
        plans = {}
        for (k, j), brands in recalled.items():
            sample = found[k][j]
            extra = {b: 0.0 for b in brands} if brands else halves.get((k, j), {})
            extra = {b: sim for b, sim in extra.items() if b not in sample.brand_sims}
            seen = self._with_brands(sample, extra)
            refs = {b: seen.brand_refs[b] for b in self.verifier.candidates(sample.brand_sims) if b in seen.brand_refs}
            refs.update({b: r for b, r in brands.items() if b not in refs})
            refs.update({b: seen.brand_refs[b] for b in extra if b not in refs and b in seen.brand_refs})
            plans[k, j] = _Plan(seen, refs)
        return plans

    def _submit(self, frames: Sequence[Frame], plans: dict[tuple[int, int], _Plan]) -> _Checks:
        """Start aligning the planned marks on the verifier's threads."""
        assert self.verifier is not None
        if not plans:
            return _Checks(plans, None, self._add_time)
        t0 = time.perf_counter()
        jobs = [(frames[k].image, plan.sample.box, plan.refs) for (k, _), plan in plans.items()]
        checks = _Checks(plans, self.verifier.submit(jobs), self._add_time)
        self._add_time("verify", time.perf_counter() - t0)
        return checks

    def _judged(self, plan: _Plan, *seen: Verification | None) -> MarkSample:
        """The plan's mark with what the verifier found of it (``seen``, merged) for exactly the
        plan's brands."""
        scores: dict[str, float] = {}
        same: dict[str, float] = {}
        for found in seen:
            if found is not None:
                scores.update(found.scores)
                same.update(found.same_brand)
        return dataclasses.replace(
            plan.sample,
            verified={b: v for b, v in scores.items() if b in plan.refs},
            same_brand={b: v for b, v in same.items() if b in plan.refs},
        )

    def _add_time(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.times.seconds[stage] += seconds

    def stage(self, frames: Sequence[Frame]) -> Staged:
        """The first half of ``process``: detect, embed and search a micro-batch, and start
        verifying its marks on the verifier's threads, so that the caller can stage the next
        batch while they work. ``conclude`` each staged batch, in order.

        What a mark is checked against depends on its stream's tracks (which marks they want
        checked where ``verdict.checks_by_track``; which brands they recall, ``verdict.recall_brand``),
        and the batches before may not be concluded yet: what starts here is a guess from the
        tracks as they stand now. ``conclude`` asks again with each stream's tracks as the frames
        before left them, uses what was started, and checks what was missed, so a stream's alerts
        are the same however its frames were batched, and with whichever other streams.
        """
        started = time.perf_counter()
        found = self.samples(frames)
        staged = Staged(list(frames), found, started)
        if self.verifier is not None and frames:
            guessed: Sequence[int] = range(len(frames))
            if self.config.verdict.checks_by_track:
                # A stream's later frames in this batch depend on what its earlier ones find: only
                # each stream's first frame (the first wave) is guessed here; in live work, nearly
                # every frame.
                guessed = waves(frames)[0]
            wanted = {k: self._wanted(frames[k], found[k]) for k in guessed}
            checks = self._submit(frames, self._plans(frames, found, wanted, staged.halves))
            staged = dataclasses.replace(staged, checks=checks)
        return staged

    def conclude(self, staged: Staged) -> list[Alert]:
        """The second half of ``process``: the staged batch's verdicts and alerts (already sunk).

        With the verifier, in waves of one frame per stream, each stream's frames updating its
        tracks in order. Each wave plans its marks' checks as their tracks now stand, takes what
        ``stage`` started, and aligns what it missed at once on the verifier's threads (a mark
        not started, or a brand not among those started); a finding no longer planned is dropped.
        """
        frames, found = staged.frames, staged.found
        alerts: list[Alert] = []
        if self.verifier is None:
            for frame, marks in zip(frames, found, strict=True):
                alerts += self._update(frame, marks)
            return alerts
        before = staged.checks.plans if staged.checks is not None else {}
        started = staged.checks.findings() if staged.checks is not None else {}
        for wave in waves(frames):
            plans = self._plans(frames, found, {k: self._wanted(frames[k], found[k]) for k in wave}, staged.halves)
            missed = {}
            for kj, plan in plans.items():
                guess = before[kj].refs if kj in before else {}
                refs = {b: r for b, r in plan.refs.items() if guess.get(b) != r}
                if refs:
                    missed[kj] = _Plan(plan.sample, refs)
            late = self._submit(frames, missed).findings() if missed else {}
            for k in wave:
                marks = [
                    self._judged(plans[k, j], started.get((k, j)), late.get((k, j))) if (k, j) in plans else s
                    for j, s in enumerate(found[k])
                ]
                alerts += self._update(frames[k], marks)
        return alerts

    def _update(self, frame: Frame, marks: list[MarkSample]) -> list[Alert]:
        """One frame's judged marks into its stream's verdicts: the alerts they raise."""
        if self.observer is not None:
            self.observer(frame, marks)
        return [self._alert(v, frame) for v in self.stream(frame.stream).update(frame.t, marks)]

    def process(self, frames: Sequence[Frame]) -> list[Alert]:
        """Run one micro-batch through every stage; returns the alerts raised (already sunk)."""
        if not frames:
            return []
        return self.conclude(self.stage(frames))

    def stream(self, stream: str) -> StreamVerdicts:
        """The verdict state of one stream (created on first use)."""
        with self._lock:
            if stream not in self.streams:
                self.streams[stream] = StreamVerdicts(stream, self.config.verdict)
            return self.streams[stream]

    def set_seller(self, stream: str, seller: str | None) -> None:
        """Name the seller whose stream this is; its alerts then say whether ``brand.json`` lists
        that seller as authorized for the brand."""
        with self._lock:
            if seller:
                self.sellers[stream] = seller
            else:
                self.sellers.pop(stream, None)

    def end_stream(self, stream: str) -> None:
        """Forget a stream's tracks and seller (it ended or was removed)."""
        with self._lock:
            self.streams.pop(stream, None)
            self.sellers.pop(stream, None)

    def _alert(self, verdict: Verdict, frame: Frame) -> Alert:
        s = verdict.sample
        seller = self.sellers.get(s.stream)
        alert = Alert(
            stream=s.stream,
            t=s.t,
            frame=s.frame,
            brand=verdict.brand,
            box=tuple(float(v) for v in s.box),  # type: ignore[arg-type]
            score=round(verdict.score, 4),
            track=verdict.track,
            matches=tuple(
                {"brand": b, "ref": s.brand_refs[b], "similarity": round(sim, 4)}
                for b, sim in sorted(s.brand_sims.items(), key=lambda kv: -kv[1])[:3]
            ),
            model=self.model_version or None,
            seller=seller,
            authorized_seller=None if seller is None else seller in self.gallery.authorized_sellers(verdict.brand),
        )
        if self.evidence is not None:
            # The device path keeps no crops on the host: cut the one the evidence needs.
            crop = s.crop if s.crop is not None else cut_crops(frame.image, s.box[None], self.embedder.crop_size)[0]
            ref_id = s.brand_refs.get(verdict.brand, -1)
            ref = self.gallery.reference_image(ref_id) if ref_id >= 0 else None
            where = f"{s.stream} t={s.t:.1f}s"
            note = f"seller {seller} is authorized for {verdict.brand} (brand.json)" if alert.authorized_seller else ""
            aligned = None
            if self.verifier is not None and ref_id >= 0:
                aligned = self.verifier.aligned_view(frame.image, s.box, ref_id)
            img = evidence_image(crop, ref, verdict.brand, verdict.score, verdict.similarity, where, aligned, note)
            path = self.evidence.write(alert.id, img)
            alert = Alert(**{**alert.__dict__, "evidence": str(path)})
        for sink in self.sinks:
            sink.write(alert)
        return alert


# --- feeding the spine --------------------------------------------------------------------

_END = object()


class FrameQueue:
    """A bounded queue of frames with a named overflow policy.

    ``block``: producers wait (replay: nothing is skipped). ``drop_oldest``: the oldest queued
    frame is discarded and counted per stream (live: never fall behind). ``on_drop`` hears of
    every frame discarded, here or by the consumer (``drop``).
    """

    def __init__(self, size: int, policy: str = "block", on_drop: Callable[[Frame], None] | None = None) -> None:
        if policy not in ("block", "drop_oldest"):
            raise ValueError(f"unknown overflow policy {policy!r}")
        self.policy = policy
        self._q: queue.Queue[object] = queue.Queue(maxsize=size)
        self.dropped: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._on_drop = on_drop

    def drop(self, frame: Frame) -> None:
        """Count ``frame`` as dropped: taken from the queue, but too late to be of use."""
        with self._lock:
            self._dropped(frame)

    def take_dropped(self) -> dict[str, int]:
        """The frames dropped per stream since the last call (the counts start again at zero)."""
        with self._lock:
            taken = dict(self.dropped)
            self.dropped.clear()
        return taken

    def _dropped(self, frame: Frame) -> None:
        self.dropped[frame.stream] += 1
        if self._on_drop is not None:
            self._on_drop(frame)

    def put(self, item: Frame | object) -> None:
        if self.policy == "block" or item is _END:
            self._q.put(item)
            return
        with self._lock:
            while True:
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        old = self._q.get_nowait()
                    except queue.Empty:
                        continue
                    if isinstance(old, Frame):
                        self._dropped(old)
                    else:  # never drop an end marker: put it back and drop the newcomer instead
                        self._q.put_nowait(old)
                        if isinstance(item, Frame):
                            self._dropped(item)
                        return

    def get(self, timeout: float | None = None) -> object:
        return self._q.get(timeout=timeout)

    def qsize(self) -> int:
        return self._q.qsize()


def collect_batch(frames_q: FrameQueue, size: int, deadline_ms: float, idle: float = 0.5) -> tuple[list[Frame], int]:
    """Up to ``size`` frames: whatever arrives within ``deadline_ms`` of the first one.

    Returns the frames, sorted by stream and time, and how many end markers were taken (one per
    source that finished). Waits at most ``idle`` seconds when nothing arrives.
    """
    batch: list[Frame] = []
    ended = 0
    deadline: float | None = None
    while len(batch) < size:
        timeout = idle if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            item = frames_q.get(timeout=timeout)
        except queue.Empty:
            break
        if item is _END:
            ended += 1
            if not batch:
                break
            continue
        assert isinstance(item, Frame)
        batch.append(item)
        if deadline is None:
            deadline = time.monotonic() + deadline_ms / 1000
    batch.sort(key=lambda f: (f.stream, f.t))
    return batch, ended


def two_in_flight(
    spine: Spine,
    next_batch: Callable[[], list[Frame] | None],
    conclude: Callable[[Staged], object],
    idle: Callable[[], bool] | None = None,
) -> None:
    """Run micro-batches through ``spine`` with two in flight, until ``next_batch`` gives None.

    While the verifier's threads check one batch's marks, the calling thread detects the next;
    verdicts still update in frame order. ``next_batch`` may give an empty batch (nothing arrived
    in time). Where ``idle()`` is true before the next batch is asked for (live work: no frame
    waiting), the staged batch is concluded at once instead of waiting for the next to arrive.
    """
    staged: Staged | None = None
    while True:
        if staged is not None and idle is not None and idle():
            conclude(staged)
            staged = None
        batch = next_batch()
        if batch is None:
            break
        following = spine.stage(batch) if batch else None
        if staged is not None:
            conclude(staged)
        staged = following
    if staged is not None:
        conclude(staged)


@dataclass
class SourceResult:
    """What happened to one source in a run."""

    stream: str
    frames: int = 0
    alerts: int = 0
    error: str | None = None
    media_seconds: float = 0.0


def run_sources(
    spine: Spine,
    sources: Iterable[Source],
    policy: str = "block",
    on_frame: Callable[[Frame], None] | None = None,
    on_alert: Callable[[Alert], None] | None = None,
    stop: threading.Event | None = None,
) -> dict[str, SourceResult]:
    """Decode every source on its own thread and run their frames through ``spine`` in micro-batches.

    Returns one result per stream; a failing source is reported there and the others go on.
    """
    cfg = spine.config.batch
    frames_q = FrameQueue(cfg.queue, policy)
    stop = stop or threading.Event()
    results: dict[str, SourceResult] = {}
    threads = []

    def decode(src: Source) -> None:
        res = results[src.stream]
        try:
            with src:  # type: ignore[attr-defined]
                for frame in src:
                    if stop.is_set():
                        break
                    frames_q.put(frame)
        except IngestError as exc:
            res.error = str(exc)
        except Exception as exc:  # one bad source never takes the run down
            res.error = f"{getattr(src, 'url', src.stream)}: {exc}"
        finally:
            frames_q.put(_END)

    for src in sources:
        results[src.stream] = SourceResult(src.stream)
        th = threading.Thread(target=decode, args=(src,), name=f"decode-{src.stream}", daemon=True)
        threads.append(th)
    for th in threads:
        th.start()
    remaining = len(threads)

    def conclude(staged: Staged) -> None:
        for alert in spine.conclude(staged):
            results[alert.stream].alerts += 1
            if on_alert:
                on_alert(alert)
        for frame in staged.frames:
            res = results[frame.stream]
            res.frames += 1
            res.media_seconds = max(res.media_seconds, frame.t)
            if on_frame:
                on_frame(frame)

    def next_batch() -> list[Frame] | None:
        nonlocal remaining
        if not remaining:
            return None
        batch, ended = collect_batch(frames_q, cfg.size, cfg.deadline_ms)
        remaining -= ended
        if not batch and stop.is_set():
            remaining = 0
        return batch

    try:
        two_in_flight(spine, next_batch, conclude)
    finally:
        stop.set()
        # Unblock decoders waiting on a full queue, then join them.
        while any(th.is_alive() for th in threads):
            with contextlib.suppress(queue.Empty):
                frames_q.get(timeout=0.05)
        for th in threads:
            th.join()
    return results
