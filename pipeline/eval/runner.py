"""Running the replay pipeline over labelled clips and scoring what it raised."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pipeline.alerts import Alert, EvidenceWriter, JsonlSink, read_alerts
from pipeline.boxes import iou_matrix
from pipeline.config import Config
from pipeline.eval.metrics import average_precision
from pipeline.eval.scoring import Clip, LabelledObject
from pipeline.ingest.source import FFmpegSource, Sampling
from pipeline.spine import SourceResult, Spine, run_sources
from pipeline.types import Frame
from pipeline.verdict import MarkSample


def run_clips(
    clips: Sequence[Clip],
    index: str | Path,
    config: Config,
    out: Path,
    sampling: Sampling,
    concurrency: int = 4,
    on_frame: Callable[..., None] | None = None,
    observer: FrameLog | None = None,
    ray_address: str | None = None,
) -> tuple[list[Alert], dict[str, SourceResult]]:
    """Replay every clip through the spine; alerts go to ``out/alerts.jsonl`` and evidence.

    With ``ray_address`` (``""``: a local cluster) the clips are spread over Ray actors; then
    ``on_frame`` is called once per finished clip, with its stream and its last media time.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency: expected 1 or more clips at once, got {concurrency}")
    out.mkdir(parents=True, exist_ok=True)
    alerts_path = out / "alerts.jsonl"
    alerts_path.unlink(missing_ok=True)
    results: dict[str, SourceResult] = {}
    if ray_address is not None:
        from types import SimpleNamespace

        from pipeline.fleet import require_ray

        require_ray(local=not (ray_address or config.ray.address))
        from pipeline.fleet.offline import replay_on_ray

        jobs = [(c.stream, c.video) for c in clips]
        with JsonlSink(alerts_path) as sink:
            for stream, outcome in replay_on_ray(
                config, index, jobs, sampling, out / "evidence", ray_address or None, observe=observer is not None
            ):
                results[stream] = outcome.result
                for alert in outcome.alerts:
                    sink.write(alert)
                if observer is not None:
                    observer.frames.update(outcome.frames)
                if on_frame is not None:
                    on_frame(SimpleNamespace(stream=stream, t=outcome.result.media_seconds))
        return read_alerts(alerts_path) if alerts_path.exists() else [], results
    with Spine.from_config(config, index, [JsonlSink(alerts_path)], EvidenceWriter(out / "evidence")) as spine:
        spine.observer = observer
        for i in range(0, len(clips), concurrency):
            group = clips[i : i + concurrency]
            sources = [FFmpegSource(c.video, c.stream, sampling) for c in group]
            results.update(run_sources(spine, sources, policy="block", on_frame=on_frame))
            for c in group:
                spine.end_stream(c.stream)
    return read_alerts(alerts_path) if alerts_path.exists() else [], results


class FrameLog:
    """Collects what the detector and gallery said on every sampled frame, for AP50 and brand top-1."""

    def __init__(self) -> None:
        self.frames: dict[tuple[str, int], tuple[float, list[MarkSample]]] = {}

    def __call__(self, frame: Frame, samples: list[MarkSample]) -> None:
        self.frames[(frame.stream, frame.index)] = (frame.t, samples)

    def samples_of(self, stream: str, obj: LabelledObject, min_iou: float = 0.3) -> list[MarkSample]:
        """The judged mark that best overlaps ``obj`` in each of its sampled frames, in time order
        (frames where none overlaps it by ``min_iou`` give none)."""
        out = []
        for box, index in zip(obj.boxes, obj.frames, strict=True):
            samples = self.frames.get((stream, int(index)), (0.0, []))[1]
            if not samples:
                continue
            ious = iou_matrix(box[None], np.asarray([s.box for s in samples], np.float32))[0]
            j = int(np.argmax(ious))
            if ious[j] >= min_iou:
                out.append(samples[j])
        return out

    def detection_figures(self, clips: Sequence[Clip], enrolled: set[str]) -> dict:
        """Mark AP50 over the sampled frames and brand top-1 on detected marks of enrolled brands."""
        by_stream = {c.stream: c for c in clips}
        preds, truths = [], []
        right = total = 0
        for (stream, index), (_t, samples) in sorted(self.frames.items()):
            clip = by_stream.get(stream)
            if clip is None:
                continue
            gt, owners = [], []
            for obj in clip.objects:
                hit = np.nonzero(obj.frames == index)[0]
                if len(hit):
                    gt.append(obj.boxes[hit[0]])
                    owners.append(obj)
            gt_arr = np.asarray(gt, np.float32).reshape(-1, 4)
            boxes = np.asarray([s.box for s in samples], np.float32).reshape(-1, 4)
            preds.append((boxes, np.asarray([s.detection for s in samples], np.float32)))
            truths.append(gt_arr)
            if len(samples) and len(gt_arr):
                ious = iou_matrix(gt_arr, boxes)
                for i, obj in enumerate(owners):
                    j = int(np.argmax(ious[i]))
                    if obj.brand in enrolled and ious[i, j] >= 0.5:
                        total += 1
                        right += int(samples[j].brand == obj.brand)
        ap = average_precision(preds, truths) if truths else float("nan")
        return {
            "detection_ap50": None if np.isnan(ap) else round(ap, 4),
            "brand_top1_on_detected": round(right / total, 4) if total else None,
            "sampled_frames": len(preds),
            "detected_enrolled_marks": total,
        }
