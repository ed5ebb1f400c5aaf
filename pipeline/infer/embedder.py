"""Mark crop embedding with the shipped ONNX embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.boxes import CROP_SIZE
from pipeline.infer.models import EMBEDDER_FILE, MODELS_DIR
from pipeline.infer.session import DEFAULT_PROVIDERS, OnnxSession


class Embedder(Protocol):
    """Maps (N, 64, 64, 3) uint8 crops to (N, D) float32 unit vectors."""

    dim: int

    def embed(self, crops: np.ndarray) -> np.ndarray: ...


class OnnxEmbedder:
    """The ONNX crop embedder, run in batches of ``batch``."""

    def __init__(
        self,
        path: str | Path = MODELS_DIR / EMBEDDER_FILE,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        batch: int = 256,
        threads: int = 0,
    ) -> None:
        self.session = OnnxSession(path, providers, threads)
        self.batch = batch
        probe = self.session.run(np.zeros((1, CROP_SIZE, CROP_SIZE, 3), np.uint8))[0]
        self.dim = int(probe.shape[1])

    @property
    def version(self) -> str:
        return self.session.info.version if self.session.info else "unverified"

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Embed (N, 64, 64, 3) uint8 crops into (N, dim) float32 unit vectors."""
        if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or crops.dtype != np.uint8:
            raise ValueError(f"expected (N, {CROP_SIZE}, {CROP_SIZE}, 3) uint8 crops, got {crops.shape} {crops.dtype}")
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            self.session.run(np.ascontiguousarray(crops[i : i + self.batch]))[0]
            for i in range(0, len(crops), self.batch)
        ]
        return np.concatenate(parts).astype(np.float32)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> OnnxEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
