"""Detection, cropping and embedding with the frames uploaded to the device once.

This is the GPU path: a batch of uint8 frames becomes one device buffer that the detector, the
crop graph and the embedder all read through IO binding; only boxes, scores and embeddings come
back to the host. The same code runs on ONNX Runtime's CPU provider (where it is used in tests);
on a CPU-only machine the spine uses the plain host path instead, which is faster there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.boxes import crop_regions
from pipeline.infer.detector import OnnxDetector, decode
from pipeline.infer.embedder import Embeddings, OnnxEmbedder
from pipeline.infer.session import DEFAULT_PROVIDERS, OnnxSession
from pipeline.types import MARK, Detections

CROPPER_FILE = "cropper.onnx"


class DevicePipeline:
    """Detector, crop graph and embedder sharing one upload per batch of same-sized frames."""

    def __init__(
        self,
        detector: OnnxDetector,
        embedder: OnnxEmbedder,
        cropper_path: str | Path,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int = 0,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.cropper = OnnxSession(cropper_path, providers, threads)
        side = self.cropper.output_shapes[0][1] if self.cropper.output_shapes else None
        if side != embedder.crop_size:
            self.cropper.close()
            raise ValueError(
                f"{cropper_path} cuts {side} px crops but the embedder takes {embedder.crop_size} px; "
                f"rebuild it with `python -m models.training.cropper --crop {embedder.crop_size}`"
            )

    def run(
        self, images: Sequence[np.ndarray], min_score: float
    ) -> tuple[list[Detections], list[np.ndarray], Embeddings]:
        """Detect and embed marks in (H, W, 3) uint8 images.

        Returns every image's detections, per image the indices (into its detections) of the
        marks that were embedded (score >= ``min_score``), and their embeddings in that order.
        """
        det_session = self.detector.session
        results: list[Detections | None] = [None] * len(images)
        chosen: list[np.ndarray] = [np.zeros(0, np.int64)] * len(images)
        vectors: dict[int, Embeddings] = {}
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(images):
            by_size.setdefault(img.shape, []).append(i)
        for shape, idx in by_size.items():
            frames = det_session.upload(np.stack([images[i] for i in idx]))
            out = det_session.run_bound({det_session.input_name: frames})
            boxes, scores = out["boxes"], out["scores"]
            rois, owner = [], []
            for j, i in enumerate(idx):
                det = decode(boxes[j], scores[j], shape[1], shape[0], self.detector.threshold, self.detector.iou)  # type: ignore[arg-type]
                results[i] = det
                pick = np.nonzero((det.classes == MARK) & (det.scores >= min_score))[0]
                chosen[i] = pick
                rois.append(crop_regions(det.boxes[pick]))
                owner.extend([j] * len(pick))
            if not owner:
                continue
            crops = self.cropper.run_bound(
                {"frames": frames, "rois": np.concatenate(rois), "batch": np.asarray(owner, np.int64)},
                keep_on_device=("crops",),
            )["crops"]
            emb_session = self.embedder.session
            out_emb = emb_session.run_bound({emb_session.input_name: crops})
            emb = OnnxEmbedder.outputs([out_emb[n] for n in emb_session.output_names])  # type: ignore[misc]
            k = 0
            for i in idx:
                n = len(chosen[i])
                vectors[i] = emb[k : k + n]
                k += n
        empty = Embeddings.empty(self.embedder.auth_dim, self.embedder.identity_dim)
        ordered = [vectors.get(i, empty) for i in range(len(images))]
        dets = [r if r is not None else Detections.empty() for r in results]
        return dets, chosen, Embeddings.concat(ordered) if ordered else empty

    def close(self) -> None:
        self.cropper.close()
