"""Mark and product detection with the shipped ONNX detector."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from pipeline.boxes import clip_boxes, nms
from pipeline.infer.models import DETECTOR_FILE, MODELS_DIR
from pipeline.infer.session import DEFAULT_PROVIDERS, OnnxSession
from pipeline.types import Detections


class Detector(Protocol):
    """Finds marks and products in frames."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


def decode(
    boxes: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    threshold: float = 0.3,
    iou: float = 0.5,
    max_per_class: int = 50,
) -> Detections:
    """Turn one frame's dense outputs, (N, 4) boxes and (N, C) scores, into detections."""
    out_b, out_s, out_c = [], [], []
    for c in range(scores.shape[1]):
        s = scores[:, c]
        keep = np.nonzero(s >= threshold)[0]
        if len(keep) == 0:
            continue
        b = clip_boxes(boxes[keep], width, height)
        kept = nms(b, s[keep], iou)[:max_per_class]
        out_b.append(b[kept])
        out_s.append(s[keep][kept])
        out_c.append(np.full(len(kept), c, np.int64))
    if not out_b:
        return Detections.empty()
    return Detections(
        np.concatenate(out_b).astype(np.float32),
        np.concatenate(out_s).astype(np.float32),
        np.concatenate(out_c),
    )


def network_input(text: str) -> tuple[int, int] | None:
    """The ``"WxH"`` network input size from a model's metadata; None when absent or malformed."""
    w, _, h = text.partition("x")
    return (int(w), int(h)) if w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0 else None


class OnnxDetector:
    """The ONNX mark detector; frames of one size are batched together (on the CPU provider, the
    graph then takes them ``cpu_frames_per_run`` at a time)."""

    def __init__(
        self,
        path: str | Path = MODELS_DIR / DETECTOR_FILE,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threshold: float = 0.3,
        iou: float = 0.5,
        threads: int = 0,
        cpu_frames_per_run: int = 1,
    ) -> None:
        self.session = OnnxSession(path, providers, threads)
        self.threshold = threshold
        self.iou = iou
        # On a GPU a batch is parallel work; on a CPU it only pushes the stride-8 feature maps out
        # of cache, so there frames go through the graph a few at a time (0 = all at once).
        self.frames_per_run = cpu_frames_per_run if self.session.device == "cpu" else 0
        self.input_size = network_input(self.session.metadata.get("input", ""))
        # Frames resized to the network's input go one at a time through a second session whose
        # shape is pinned: planned for that one shape, the graph runs 7-8% faster on the CPU
        # (benchmarks/detector_speed.py). Other sizes (frames already smaller) take the first.
        self.pinned: OnnxSession | None = None
        dims = self.session.input_shape
        names = [d for d in dims[:3] if isinstance(d, str)]
        if self.frames_per_run == 1 and self.input_size is not None and len(names) == 3:
            width, height = self.input_size
            sizes = dict(zip(names, (1, height, width), strict=True))
            self.pinned = OnnxSession(path, providers, threads, verify=False, fixed_dims=sizes)

    @property
    def version(self) -> str:
        return self.session.info.version if self.session.info else "unverified"

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect in (H, W, 3) uint8 RGB images; one ``Detections`` per image, in order."""
        results: list[Detections | None] = [None] * len(images)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"expected (H, W, 3) uint8 images, got {img.shape} {img.dtype}")
            by_size.setdefault(img.shape, []).append(i)
        for shape, idx in by_size.items():
            height, width = shape[0], shape[1]
            net = self.input_size
            if net is not None and width * height > net[0] * net[1]:
                # The graph would resize anyway, after turning every source pixel into float;
                # OpenCV's uint8 bilinear resize on the host costs a fraction of that on the CPU.
                batch = np.stack([cv2.resize(images[i], net, interpolation=cv2.INTER_LINEAR) for i in idx])
                scale = np.array([width / net[0], height / net[1]] * 2, np.float32)
            else:
                batch, scale = np.stack([images[i] for i in idx]), None
            boxes, scores = self.run_network(batch)
            if scale is not None:
                boxes = boxes * scale
            for j, i in enumerate(idx):
                results[i] = decode(boxes[j], scores[j], width, height, self.threshold, self.iou)
        return [r if r is not None else Detections.empty() for r in results]

    def run_network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The graph's raw boxes and scores for a (B, H, W, 3) uint8 batch, ``frames_per_run`` at a time."""
        step = self.frames_per_run or len(batch)
        session = self.session
        if self.pinned is not None and self.input_size == (batch.shape[2], batch.shape[1]):
            session = self.pinned
        runs = [session.run(batch[k : k + step]) for k in range(0, len(batch), step)]
        return np.concatenate([b for b, _ in runs]), np.concatenate([s for _, s in runs])

    def close(self) -> None:
        self.session.close()
        if self.pinned is not None:
            self.pinned.close()

    def __enter__(self) -> OnnxDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
